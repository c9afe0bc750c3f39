"""The in-tree build backend (_build/backend.py): what pip installs."""

import base64
import csv
import hashlib
import io
import os
import sys
import tempfile
import unittest
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(HERE, "_build"))
import backend  # noqa: E402

import claiim  # noqa: E402


class BuildTest(unittest.TestCase):
    def test_reads_project_as_tomllib_does(self):
        try:
            import tomllib
        except ImportError:  # Python 3.10
            self.skipTest("tomllib is Python 3.11+")
        with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
            want = tomllib.load(f)["project"]
        self.assertEqual(backend.project(), want)
        self.assertEqual(want["version"], claiim.__version__, "pyproject.toml and claiim.__version__ disagree")

    def test_refuses_what_it_cannot_read(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "pyproject.toml")
            with open(path, "w") as f:
                f.write('[project]\nname = "claiim"\nversion = "1"\nauthors = [{name = "x"}]\n')
            with self.assertRaisesRegex(ValueError, "authors"):
                backend.project(path)

    def test_wheel_holds_the_package_and_a_true_record(self):
        with tempfile.TemporaryDirectory() as d:
            name = backend.build_wheel(d)
            self.assertEqual(name, "claiim-%s-py3-none-any.whl" % claiim.__version__)
            with zipfile.ZipFile(os.path.join(d, name)) as z:
                names = z.namelist()
                self.assertIn("claiim/__init__.py", names)
                self.assertFalse([n for n in names if "__pycache__" in n or n.startswith("tests/")], names)
                info = "claiim-%s.dist-info/" % claiim.__version__
                self.assertEqual(names[-1], info + "RECORD")
                metadata = z.read(info + "METADATA").decode()
                self.assertIn("Name: claiim\n", metadata)
                self.assertIn("Requires-Python: >=3.10\n", metadata)
                rows = list(csv.reader(io.StringIO(z.read(info + "RECORD").decode())))
                self.assertEqual(sorted(r[0] for r in rows), sorted(names))
                for path, digest, size in rows:
                    if path.endswith("RECORD"):
                        continue
                    data = z.read(path)
                    self.assertEqual(int(size), len(data), path)
                    want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                    self.assertEqual(digest, "sha256=" + want, path)
            with open(os.path.join(d, name), "rb") as f:
                first = f.read()
            os.remove(os.path.join(d, name))
            backend.build_wheel(d)
            with open(os.path.join(d, name), "rb") as f:
                self.assertEqual(f.read(), first, "the wheel is not reproducible")


if __name__ == "__main__":
    unittest.main()
