"""CLAIIM gate client (standard library only).

The gate is inline and fail-closed: ``validate`` returns a result only for
an ALLOW and raises ``Denied`` for a DENY *and* for any failure to get an
answer (unreachable gate, timeout, 5xx, unreadable reply).

    client = CLAIIMClient(gate_url="http://localhost:8181/v",
                          agent_token=os.environ["AGENT_TOKEN"],
                          skill_version_id=os.environ["SKILL_VERSION_ID"])
    identity = await client.init()   # raises Denied if the agent may not act
    print(identity.agent_email, identity.system_prompt)
    result = await client.validate("deploy:staging", {"target": "eu-staging-1"})

A call a RequireApproval policy rule holds is denied with reason
APPROVAL_REQUIRED and an ``approval_id``: people approve that exact call,
the agent waits, then asks again with the id, and is allowed once.

    try:
        await client.validate("payments:send", payment)
    except Denied as d:
        if not d.approval_id:
            raise
        await client.wait_for_approval(d.approval_id, timeout=600)
        await client.validate("payments:send", payment, approval_id=d.approval_id)

Retries never decide an action twice. Every ``validate`` sends an
Idempotency-Key, new for the call and the same on each of its tries, and
the gate answers every try carrying it with the one decision it recorded
first. The client retries only a connection that was never made (refused,
no route, unknown host), at most three tries; a request the gate may have
read is never retried: no answer is a DENY.

In a cluster the gate serves HTTPS under a CA the manager keeps. The
client trusts that CA, and only it, from ``ca`` (PEM text) or, when not
given, from the ``CLAIIM_GATE_CA`` of the agent's token Secret in the
environment; without either it uses the system's roots.
"""

import asyncio
import errno
import json
import os
import random
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

__all__ = ["CLAIIMClient", "Identity", "Result", "Denied", "new_key"]
__version__ = "0.1.0"

_MAX_REPLY = 1 << 20
_MAX_TRIES = 3
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
# connect() failures: the request never left, so another try is safe.
_NEVER_SENT = {errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH}
_sleep = time.sleep  # the pause between tries (a test hook)
_APPROVAL_POLL = (0.5, 5.0)  # wait_for_approval's first and longest pause (a test hook)


def new_key():
    """A fresh Idempotency-Key: a version 7 UUID (random, and time-ordered,
    which keeps the gate's keyed decision IDs time-ordered in Chron)."""
    b = bytearray((time.time_ns() // 1_000_000).to_bytes(6, "big") + os.urandom(10))
    b[6] = (b[6] & 0x0F) | 0x70
    b[8] = (b[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(b)))


def _never_sent(err):
    """Whether urllib's error means the connection was never made. urllib
    wraps connect and send errors in URLError; refusals and routing errors
    can only come from connect, a failed name lookup comes before it."""
    reason = getattr(err, "reason", None)
    if isinstance(err, urllib.error.HTTPError) or not isinstance(err, urllib.error.URLError):
        return False
    if isinstance(reason, socket.gaierror):
        return True
    return isinstance(reason, OSError) and reason.errno in _NEVER_SENT


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would resend the token elsewhere: refuse it (a 30x is DENY).
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def _opener_for(ca):
    """An opener that trusts only the gate CAs in ca (PEM text)."""
    if not ca:
        return _opener
    try:
        context = ssl.create_default_context(cadata=ca)
    except (ssl.SSLError, ValueError) as e:
        raise ValueError(f"the gate CA (CLAIIM_GATE_CA) is not a PEM certificate bundle: {e}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=context))


class Denied(Exception):
    """The gate said DENY, or no answer could be had (which means DENY).

    decision_id is the id of the Chron row that recorded the DENY (for a
    refused authentication, its interval's auth.refused row); None when
    the gate was not reached. pinned_skill_version_id is the version the
    agent is pinned to now, as the gate said (None when it did not): when
    it differs from the client's skill_version_id the agent was re-pinned,
    and re-initing with it ends SKILL_VERSION_MISMATCH."""

    def __init__(self, reason, message="", chron_id=None, status=None, decision_id=None, pinned_skill_version_id=None):
        super().__init__(f"{reason}: {message}" if message else reason)
        self.outcome = "DENY"
        self.reason = reason
        self.message = message
        self.chron_id = chron_id
        self.status = status
        self.audit = []  # would-deny rules of Audit policies (_denied fills it)
        self.decision_id = decision_id
        self.pinned_skill_version_id = pinned_skill_version_id


class Identity(dict):
    """What /v/init tells an active agent about itself: the gate's JSON
    object (a dict, keys as the gate sends them), with its fields also as
    attributes: agent, org, anchor, skill_version_id, skill_display_name,
    agent_email, system_prompt, decision_id, ..."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Result:
    """An ALLOW answer."""

    def __init__(self, reply):
        self.outcome = reply.get("outcome")
        self.reason = reply.get("reason")
        self.message = reply.get("message", "")
        self.chron_id = reply.get("chron_id")
        self.decision_id = reply.get("decision_id")
        # The version the agent is pinned to now: after a re-pin it differs
        # from the one this call presented (decided inside the grace window).
        self.pinned_skill_version_id = reply.get("pinned_skill_version_id")
        # Rules of Audit policies that would have denied: recorded, not enforced.
        self.audit = _audit(reply)
        self.raw = reply

    def __repr__(self):
        return f"Result(outcome={self.outcome!r}, reason={self.reason!r}, chron_id={self.chron_id!r})"


class CLAIIMClient:
    def __init__(self, gate_url, agent_token, skill_version_id, timeout=10.0, ca=None):
        self.gate_url = gate_url.rstrip("/")
        self._opener = _opener_for(ca if ca is not None else os.environ.get("CLAIIM_GATE_CA"))
        self._token = agent_token
        self.skill_version_id = skill_version_id
        self.timeout = timeout
        self.identity = None

    def __repr__(self):  # never show the token
        return f"CLAIIMClient(gate_url={self.gate_url!r}, skill_version_id={self.skill_version_id!r})"

    async def init(self):
        """Authenticate; returns (and keeps) the agent's Identity, with its
        pinned skill version's display name, agent email and system prompt.
        Raises Denied when the agent may not act (AGENT_INACTIVE: its anchor
        has not accepted it, or it is suspended; NOT_ADMITTED) or no answer
        could be had."""
        status, reply = await asyncio.to_thread(self._post, "/init", {"skill_version_id": self.skill_version_id})
        if status != 200:
            raise _denied(status, reply)
        self.identity = Identity(reply)
        return self.identity

    async def validate(self, action, context=None, idempotency_key=None, approval_id=None):
        """Ask before acting. Returns Result on ALLOW, raises Denied otherwise.

        idempotency_key: send this key instead of a fresh one, to get the
        gate's first answer again when retrying a call yourself (the gate
        repeats a decision for a few minutes only). Use a new key for each
        action the agent means to take; new_key() makes one.

        approval_id: the approval of this exact call (same action and
        context), from the Denied of the call answered APPROVAL_REQUIRED."""
        body = {"action": action, "context": context or {}, "skill_version_id": self.skill_version_id}
        if approval_id:
            body["approval_id"] = approval_id
        key = idempotency_key or new_key()
        status, reply = await asyncio.to_thread(self._post, "/validate", body, key)
        if status != 200 or reply.get("outcome") != "ALLOW":
            raise _with_approval(_denied(status, reply), reply)
        return Result(reply)

    async def wait_for_approval(self, approval_id, timeout=600.0):
        """Wait until people approve approval_id; returns the gate's status
        of it (a dict). Raises Denied when it is denied (APPROVAL_DENIED),
        expires (APPROVAL_EXPIRED), was used (APPROVAL_USED) or is still pending after timeout
        seconds (APPROVAL_PENDING). Approved means: retry the call now."""
        deadline = time.monotonic() + timeout
        wait = _APPROVAL_POLL[0]
        while True:
            status, reply = await asyncio.to_thread(self._get, "/approvals/" + urllib.parse.quote(approval_id, safe=""))
            state = reply.get("state") if status == 200 else None
            if state == "approved":
                return reply
            if state in ("denied", "expired", "used"):
                d = Denied("APPROVAL_" + state.upper(), reply.get("message", ""), status=403)
                d.approval_id = approval_id
                raise d
            if status not in (200, 429, 503, None):  # not the agent's, or a bad id
                raise _with_approval(_denied(status, reply), {"approval_id": approval_id})
            left = deadline - time.monotonic()
            if left <= 0:
                d = Denied("APPROVAL_PENDING", f"approval {approval_id} is still pending after {timeout}s: the action is denied")
                d.approval_id = approval_id
                raise d
            await asyncio.sleep(min(wait, left))
            wait = min(2 * wait, _APPROVAL_POLL[1])

    def _get(self, path):
        req = urllib.request.Request(self.gate_url + path, method="GET", headers={"Authorization": "Bearer " + self._token})
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return resp.status, _parse(resp.read(_MAX_REPLY))
        except urllib.error.HTTPError as e:
            try:
                return e.code, _parse(e.read(_MAX_REPLY))
            finally:
                e.close()
        except Exception:  # unreachable for now: still pending, until the timeout
            return None, {}

    def _post(self, path, body, key=None):
        try:
            data = json.dumps(body).encode()
        except (TypeError, ValueError) as e:
            return None, {"reason": "BAD_REQUEST", "message": f"the context cannot be sent as JSON: {e}"}
        headers = {"Content-Type": "application/json", "Authorization": "Bearer " + self._token}
        if key:
            headers[IDEMPOTENCY_KEY_HEADER] = key
        for attempt in range(1, _MAX_TRIES + 1):
            req = urllib.request.Request(self.gate_url + path, data=data, method="POST", headers=headers)
            try:
                with self._opener.open(req, timeout=self.timeout) as resp:
                    return resp.status, _parse(resp.read(_MAX_REPLY))
            except urllib.error.HTTPError as e:
                try:
                    return e.code, _parse(e.read(_MAX_REPLY))
                finally:
                    e.close()
            except Exception as e:  # unreachable, timeout, TLS, ...: fail closed
                if attempt < _MAX_TRIES and _never_sent(e):
                    # 100 ms then 200 ms, with jitter so refused clients spread out.
                    d = 0.1 * 2 ** (attempt - 1)
                    _sleep(d + random.uniform(0, d / 2))
                    continue
                return None, {"reason": "UNREACHABLE", "message": f"the gate could not be reached, so the action is denied: {e}"}


def _parse(raw):
    try:
        reply = json.loads(raw)
        return reply if isinstance(reply, dict) else {}
    except ValueError:
        return {}


def _denied(status, reply):
    d = Denied(
        reply.get("reason") or "BAD_RESPONSE",
        reply.get("message") or (f"HTTP {status}" if status else ""),
        chron_id=reply.get("chron_id"),
        status=status,
        decision_id=reply.get("decision_id"),
        pinned_skill_version_id=reply.get("pinned_skill_version_id"),
    )
    d.audit = _audit(reply)
    return d


def _audit(reply):
    """The answer's would-deny rules as dicts (name, version, rule,
    effect); anything malformed reads as none: they never change an answer."""
    audit = reply.get("audit")
    if not isinstance(audit, list):
        return []
    return [m for m in audit if isinstance(m, dict)]


# The approval of a held call (APPROVAL_* reasons), None otherwise.
Denied.approval_id = None


def _with_approval(d, reply):
    approval_id = reply.get("approval_id")
    if isinstance(approval_id, str) and 0 < len(approval_id) <= 64:
        d.approval_id = approval_id
    return d
