"""A PEP 517 build backend for the claiim package, standard library only.

pip runs it from this tree (pyproject.toml: backend-path = ["_build"]), so
`pip install ./gate/python` needs no index: the package is pure Python
with no dependencies, and a wheel is a zip file with three metadata files.
Archives are reproducible: fixed timestamps and modes, sorted entries.
"""

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "claiim"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold


def project(path=None):
    """The [project] table of pyproject.toml: string values only, which is
    all this project declares. tomllib is not in Python 3.10, so the table
    is read line by line (tests/test_build.py checks it against tomllib)."""
    with open(path or os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    table, out = None, {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            table = line.strip("[]").strip()
            continue
        if table != "project":
            continue
        m = re.fullmatch(r'([A-Za-z0-9_-]+)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(#.*)?', line)
        if not m:
            raise ValueError(f"pyproject.toml [project]: cannot read {line!r} (only key = \"string\" lines)")
        out[m.group(1)] = m.group(2).encode().decode("unicode_escape")
    for key in ("name", "version"):
        if key not in out:
            raise ValueError(f"pyproject.toml [project] has no {key}")
    return out


def _dist(meta):
    return re.sub(r"[-_.]+", "_", meta["name"]).lower() + "-" + meta["version"]


def _metadata(meta):
    lines = ["Metadata-Version: 2.1", "Name: " + meta["name"], "Version: " + meta["version"]]
    if "description" in meta:
        lines.append("Summary: " + meta["description"])
    if "requires-python" in meta:
        lines.append("Requires-Python: " + meta["requires-python"])
    return "\n".join(lines) + "\n"


def _wheel_file():
    return "Wheel-Version: 1.0\nGenerator: claiim _build/backend.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _sources():
    """The package's files, relative to ROOT, sorted; no bytecode."""
    out = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, PACKAGE)):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                out.append(os.path.relpath(os.path.join(dirpath, name), ROOT).replace(os.sep, "/"))
    return out


def _read(rel):
    with open(os.path.join(ROOT, rel), "rb") as f:
        return f.read()


def _write_wheel(wheel_directory, files):
    """Writes files ({archive name: bytes}, dist-info included but RECORD)
    as a wheel and returns its file name."""
    meta = project()
    dist = _dist(meta)
    info = dist + ".dist-info"
    files = dict(files)
    files[info + "/METADATA"] = _metadata(meta).encode()
    files[info + "/WHEEL"] = _wheel_file().encode()
    record = []
    for name, data in sorted(files.items()):
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(info + "/RECORD,,")
    files[info + "/RECORD"] = ("\n".join(record) + "\n").encode()
    filename = dist + "-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w", zipfile.ZIP_DEFLATED) as z:
        # RECORD last, as the wheel spec recommends.
        for name in sorted(files, key=lambda n: (n.endswith("/RECORD"), n)):
            entry = zipfile.ZipInfo(name, _EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(entry, files[name])
    return filename


# PEP 517 / PEP 660 hooks.


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    meta = project()
    info = _dist(meta) + ".dist-info"
    os.makedirs(os.path.join(metadata_directory, info), exist_ok=True)
    for name, text in (("METADATA", _metadata(meta)), ("WHEEL", _wheel_file())):
        with open(os.path.join(metadata_directory, info, name), "w", encoding="utf-8") as f:
            f.write(text)
    return info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, {rel: _read(rel) for rel in _sources()})


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # A .pth line puts this tree on sys.path: edits take effect at once.
    return _write_wheel(wheel_directory, {PACKAGE + "_editable.pth": (ROOT + "\n").encode()})


def build_sdist(sdist_directory, config_settings=None):
    meta = project()
    dist = _dist(meta)
    names = ["pyproject.toml", "_build/backend.py"] + _sources()
    filename = dist + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz", format=tarfile.PAX_FORMAT) as tar:
        members = [(n, _read(n)) for n in names] + [("PKG-INFO", _metadata(meta).encode())]
        for name, data in sorted(members):
            entry = tarfile.TarInfo(dist + "/" + name)
            entry.size, entry.mode, entry.mtime = len(data), 0o644, 315532800  # 1980-01-01
            tar.addfile(entry, io.BytesIO(data))
    return filename
