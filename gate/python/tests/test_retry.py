"""The Python client's keys and retries against a local HTTP server.

Refusals are real: the server's socket is bound before it listens, so the
kernel refuses connections until the test lets it listen.
"""

import asyncio
import http.server
import re
import threading
import unittest

import claiim
import fakegate

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ALLOW = {"outcome": "ALLOW", "reason": "OWN_AIORG", "decision_id": "d-1"}


class Gate(http.server.HTTPServer):
    """Records each request's Idempotency-Key; answers ALLOW, or reads the
    request and hangs up when hang_up is set."""

    def __init__(self, hang_up=False):
        super().__init__(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server_bind()  # bound, not listening: connections are refused
        self.keys = []
        self.hang_up = hang_up
        self.thread = None

    def listen(self):
        self.server_activate()
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.thread:
            self.shutdown()
        self.server_close()

    def url(self):
        return "http://127.0.0.1:%d/v" % self.server_address[1]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.keys.append(self.headers.get(claiim.IDEMPOTENCY_KEY_HEADER))
        if self.server.hang_up:
            self.close_connection = True
            return  # the request was read; no answer
        fakegate.send_json(self, 200, ALLOW)

    def log_message(self, *args):
        pass


class RetryTest(unittest.TestCase):
    def setUp(self):
        self.sleeps = 0
        self.on_sleep = lambda: None
        self.real_sleep = claiim._sleep

        def sleep(_):
            self.sleeps += 1
            self.on_sleep()

        claiim._sleep = sleep

    def tearDown(self):
        claiim._sleep = self.real_sleep

    def gate(self, **kw):
        g = Gate(**kw)
        self.addCleanup(g.stop)
        return g

    def validate(self, g, **kw):
        return asyncio.run(claiim.CLAIIMClient(g.url(), "tok", "sv").validate("deploy:staging", **kw))

    def test_every_call_sends_its_own_key(self):
        g = self.gate()
        g.listen()
        self.validate(g)
        self.validate(g)
        self.validate(g, idempotency_key="caller-key-1")
        self.assertEqual(len(g.keys), 3)
        self.assertRegex(g.keys[0], UUID7)
        self.assertRegex(g.keys[1], UUID7)
        self.assertNotEqual(g.keys[0], g.keys[1])
        self.assertEqual(g.keys[2], "caller-key-1")

    def test_init_is_not_keyed(self):
        g = self.gate()
        g.listen()
        asyncio.run(claiim.CLAIIMClient(g.url(), "tok", "sv").init())
        self.assertEqual(g.keys, [None])

    def test_retries_a_refused_connection(self):
        g = self.gate()
        self.on_sleep = g.listen  # refused once, then the gate listens
        r = self.validate(g)
        self.assertEqual(r.outcome, "ALLOW")
        self.assertEqual(self.sleeps, 1)
        self.assertEqual(len(g.keys), 1)

    def test_gives_up_after_three_refusals(self):
        g = self.gate()
        with self.assertRaises(claiim.Denied) as cm:
            self.validate(g)
        self.assertEqual(cm.exception.reason, "UNREACHABLE")
        self.assertEqual(self.sleeps, 2)

    def test_no_retry_once_the_request_was_read(self):
        g = self.gate(hang_up=True)
        g.listen()
        with self.assertRaises(claiim.Denied) as cm:
            self.validate(g)
        self.assertEqual(cm.exception.reason, "UNREACHABLE")
        self.assertEqual(self.sleeps, 0)
        self.assertEqual(len(g.keys), 1)


if __name__ == "__main__":
    unittest.main()
