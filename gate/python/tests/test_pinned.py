"""The client exposes the answer's pinned_skill_version_id (the version the
agent is pinned to now) on an ALLOW and on a DENY, as the Go client does, so
an agent re-pinned while it runs can see it and re-init."""

import asyncio
import unittest

import claiim
import fakegate


class PinnedTest(unittest.TestCase):
    def setUp(self):
        url = fakegate.serve(self, {
            # Inside the re-pin grace window: decided under the old version.
            "deploy:staging": (200, {"outcome": "ALLOW", "reason": "OWN_AIORG", "skill_version_id": "sv-old",
                                     "pinned_skill_version_id": "sv-new"}),
            # After it: the old version is refused, the answer names the new one.
            "deploy:production": (403, {"outcome": "DENY", "reason": "SKILL_VERSION_MISMATCH", "message": "re-init",
                                        "decision_id": "d-2", "pinned_skill_version_id": "sv-new"}),
            "db:read": (200, {"outcome": "ALLOW", "reason": "OWN_AIORG"}),
        })
        self.client = claiim.CLAIIMClient(url, "tok", "sv-old")

    def validate(self, action):
        return asyncio.run(self.client.validate(action, {}))

    def test_allow_names_the_pinned_version(self):
        r = self.validate("deploy:staging")
        self.assertEqual((r.outcome, r.pinned_skill_version_id), ("ALLOW", "sv-new"))

    def test_deny_names_it_too(self):
        with self.assertRaises(claiim.Denied) as cm:
            self.validate("deploy:production")
        e = cm.exception
        self.assertEqual((e.reason, e.decision_id, e.pinned_skill_version_id), ("SKILL_VERSION_MISMATCH", "d-2", "sv-new"))

    def test_absent_reads_as_none(self):
        self.assertIsNone(self.validate("db:read").pinned_skill_version_id)
        self.assertIsNone(claiim.Denied("UNREACHABLE").pinned_skill_version_id)


if __name__ == "__main__":
    unittest.main()
