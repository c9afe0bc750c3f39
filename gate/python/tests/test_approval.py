"""wait_for_approval and approval_id against a local HTTP server that
plays the gate: a held call, then an approval that is pending twice and
then approved (or denied)."""

import asyncio
import http.server
import json
import threading
import unittest

import claiim
import fakegate

APPROVAL = "0193a1b2-0000-7000-8000-000000000001"


class Gate(http.server.HTTPServer):
    def __init__(self, states):
        super().__init__(("127.0.0.1", 0), Handler)
        self.states = list(states)  # answers of GET /v/approvals/{id}, in turn
        self.bodies = []
        self.paths = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self):
        return "http://127.0.0.1:%d/v" % self.server_address[1]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.server.bodies.append(body)
        if body.get("approval_id") == APPROVAL:
            fakegate.send_json(self, 200, {"outcome": "ALLOW", "reason": "OWN_AIORG", "approval_id": APPROVAL})
        else:
            fakegate.send_json(self, 403, {"outcome": "DENY", "reason": "APPROVAL_REQUIRED", "message": "policy big/approve requires 1 person",
                             "approval_id": APPROVAL, "decision_id": APPROVAL})

    def do_GET(self):
        self.server.paths.append(self.path)
        state = self.server.states.pop(0) if len(self.server.states) > 1 else self.server.states[0]
        fakegate.send_json(self, 200, {"approval_id": APPROVAL, "state": state, "message": "m-" + state})

    def log_message(self, *args):
        pass


class ApprovalTest(unittest.TestCase):
    def setUp(self):
        claiim._APPROVAL_POLL = (0.01, 0.02)

    def client(self, gate):
        self.addCleanup(gate.shutdown)
        return claiim.CLAIIMClient(gate.url(), "tok", "deploy-bot-v1-abc")

    def test_held_call_waited_then_allowed(self):
        gate = Gate(["pending", "pending", "approved"])
        c = self.client(gate)
        with self.assertRaises(claiim.Denied) as held:
            asyncio.run(c.validate("deploy:staging", {"replicas": 50}))
        self.assertEqual(held.exception.reason, "APPROVAL_REQUIRED")
        self.assertEqual(held.exception.approval_id, APPROVAL)
        status = asyncio.run(c.wait_for_approval(held.exception.approval_id, timeout=10))
        self.assertEqual(status["state"], "approved")
        self.assertEqual(gate.paths, ["/v/approvals/" + APPROVAL] * 3)
        result = asyncio.run(c.validate("deploy:staging", {"replicas": 50}, approval_id=APPROVAL))
        self.assertEqual(result.outcome, "ALLOW")
        self.assertEqual(gate.bodies[-1]["approval_id"], APPROVAL)
        self.assertNotIn("approval_id", gate.bodies[0])

    def test_denied(self):
        c = self.client(Gate(["pending", "denied"]))
        with self.assertRaises(claiim.Denied) as d:
            asyncio.run(c.wait_for_approval(APPROVAL, timeout=10))
        self.assertEqual(d.exception.reason, "APPROVAL_DENIED")
        self.assertEqual(d.exception.approval_id, APPROVAL)

    def test_used(self):
        c = self.client(Gate(["used"]))
        with self.assertRaises(claiim.Denied) as d:
            asyncio.run(c.wait_for_approval(APPROVAL, timeout=10))
        self.assertEqual(d.exception.reason, "APPROVAL_USED")

    def test_timeout_is_a_deny(self):
        c = self.client(Gate(["pending"]))
        with self.assertRaises(claiim.Denied) as d:
            asyncio.run(c.wait_for_approval(APPROVAL, timeout=0.1))
        self.assertEqual(d.exception.reason, "APPROVAL_PENDING")

    def test_other_denials_carry_no_approval(self):
        self.assertIsNone(claiim.Denied("POLICY_DENY").approval_id)


if __name__ == "__main__":
    unittest.main()
