"""CLAIIM gate client (standard library only).

The gate is inline and fail-closed: ``validate`` returns a result only for
an ALLOW and raises ``Denied`` for a DENY *and* for any failure to get an
answer (unreachable gate, timeout, 5xx, unreadable reply).

    client = CLAIIMClient(gate_url="http://localhost:8181/v",
                          agent_token=os.environ["AGENT_TOKEN"],
                          skill_version_id=os.environ["SKILL_VERSION_ID"])
    await client.init()
    result = await client.validate("deploy:staging", {"target": "eu-staging-1"})
"""

import asyncio
import json
import urllib.error
import urllib.request

__all__ = ["CLAIIMClient", "Result", "Denied"]

_MAX_REPLY = 1 << 20


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would resend the token elsewhere: refuse it (a 30x is DENY).
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


class Denied(Exception):
    """The gate said DENY, or no answer could be had (which means DENY)."""

    def __init__(self, reason, message="", chron_id=None, status=None):
        super().__init__(f"{reason}: {message}" if message else reason)
        self.outcome = "DENY"
        self.reason = reason
        self.message = message
        self.chron_id = chron_id
        self.status = status


class Result:
    """An ALLOW answer."""

    def __init__(self, reply):
        self.outcome = reply.get("outcome")
        self.reason = reply.get("reason")
        self.message = reply.get("message", "")
        self.chron_id = reply.get("chron_id")
        self.decision_id = reply.get("decision_id")
        self.raw = reply

    def __repr__(self):
        return f"Result(outcome={self.outcome!r}, reason={self.reason!r}, chron_id={self.chron_id!r})"


class CLAIIMClient:
    def __init__(self, gate_url, agent_token, skill_version_id, timeout=10.0):
        self.gate_url = gate_url.rstrip("/")
        self._token = agent_token
        self.skill_version_id = skill_version_id
        self.timeout = timeout
        self.identity = None

    def __repr__(self):  # never show the token
        return f"CLAIIMClient(gate_url={self.gate_url!r}, skill_version_id={self.skill_version_id!r})"

    async def init(self):
        """Authenticate; returns (and keeps) the agent's identity."""
        status, reply = await asyncio.to_thread(self._post, "/init", {"skill_version_id": self.skill_version_id})
        if status != 200:
            raise _denied(status, reply)
        self.identity = reply
        return reply

    async def validate(self, action, context=None):
        """Ask before acting. Returns Result on ALLOW, raises Denied otherwise."""
        body = {"action": action, "context": context or {}, "skill_version_id": self.skill_version_id}
        status, reply = await asyncio.to_thread(self._post, "/validate", body)
        if status != 200 or reply.get("outcome") != "ALLOW":
            raise _denied(status, reply)
        return Result(reply)

    def _post(self, path, body):
        try:
            data = json.dumps(body).encode()
        except (TypeError, ValueError) as e:
            return None, {"reason": "BAD_REQUEST", "message": f"the context cannot be sent as JSON: {e}"}
        req = urllib.request.Request(
            self.gate_url + path,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": "Bearer " + self._token},
        )
        try:
            with _opener.open(req, timeout=self.timeout) as resp:
                return resp.status, _parse(resp.read(_MAX_REPLY))
        except urllib.error.HTTPError as e:
            try:
                return e.code, _parse(e.read(_MAX_REPLY))
            finally:
                e.close()
        except Exception as e:  # unreachable, timeout, TLS, ...: fail closed
            return None, {"reason": "UNREACHABLE", "message": f"the gate could not be reached, so the action is denied: {e}"}


def _parse(raw):
    try:
        reply = json.loads(raw)
        return reply if isinstance(reply, dict) else {}
    except ValueError:
        return {}


def _denied(status, reply):
    return Denied(
        reply.get("reason") or "BAD_RESPONSE",
        reply.get("message") or (f"HTTP {status}" if status else ""),
        chron_id=reply.get("chron_id"),
        status=status,
    )
