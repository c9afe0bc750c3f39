"""The client exposes the would-deny rules of Audit policies (the answer's
"audit" list) on an ALLOW and on a DENY, and never lets them change the
answer."""

import asyncio
import unittest

import claiim
import fakegate

WOULD_DENY = {"name": "staging-freeze", "version": 1, "rule": "freeze", "effect": "Deny"}


class AuditTest(unittest.TestCase):
    def setUp(self):
        url = fakegate.serve(self, {
            "deploy:staging": (200, {"outcome": "ALLOW", "reason": "OWN_AIORG", "audit": [WOULD_DENY]}),
            "deploy:production": (403, {"outcome": "DENY", "reason": "POLICY_DENY", "message": "policy deny",
                                        "audit": [WOULD_DENY, "junk"]}),
            "db:read": (200, {"outcome": "ALLOW", "reason": "POLICY_ALLOW", "audit": "not a list"}),
        })
        self.client = claiim.CLAIIMClient(url, "tok", "sv")

    def validate(self, action):
        return asyncio.run(self.client.validate(action, {}))

    def test_allow_carries_the_would_deny(self):
        r = self.validate("deploy:staging")
        self.assertEqual(r.outcome, "ALLOW")
        self.assertEqual(r.audit, [WOULD_DENY])

    def test_deny_carries_it_too(self):
        with self.assertRaises(claiim.Denied) as cm:
            self.validate("deploy:production")
        self.assertEqual(cm.exception.reason, "POLICY_DENY")
        self.assertEqual(cm.exception.audit, [WOULD_DENY])

    def test_malformed_audit_reads_as_none(self):
        r = self.validate("db:read")
        self.assertEqual(r.outcome, "ALLOW")
        self.assertEqual(r.audit, [])


if __name__ == "__main__":
    unittest.main()
