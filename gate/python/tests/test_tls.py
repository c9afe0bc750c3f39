"""The Python client against a gate serving TLS under its own CA.

python_test.go issues the CA and the pair into CLAIIM_TEST_TLS_DIR (ca.crt,
tls.crt, tls.key for 127.0.0.1) before running these tests.
"""

import asyncio
import http.server
import os
import ssl
import threading
import unittest
from unittest import mock

import claiim
import fakegate

TLS_DIR = os.environ.get("CLAIIM_TEST_TLS_DIR")
ALLOW = {"outcome": "ALLOW", "reason": "OWN_AIORG", "decision_id": "d-1"}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        fakegate.send_json(self, 200, ALLOW)

    def log_message(self, *args):
        pass


@unittest.skipUnless(TLS_DIR, "run through go test ./gate/python (it issues the certificates)")
class TLSTest(unittest.TestCase):
    def setUp(self):
        server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(TLS_DIR, "tls.crt"), os.path.join(TLS_DIR, "tls.key"))
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        self.url = "https://127.0.0.1:%d/v" % server.server_address[1]
        with open(os.path.join(TLS_DIR, "ca.crt")) as f:
            self.ca = f.read()

    def validate(self, **kw):
        return asyncio.run(claiim.CLAIIMClient(self.url, "tok", "sv", **kw).validate("deploy:staging"))

    def test_trusts_the_ca_it_is_given(self):
        self.assertEqual(self.validate(ca=self.ca).outcome, "ALLOW")

    def test_trusts_the_ca_of_the_token_secret_in_the_environment(self):
        # The seed's snippet, unchanged, in a pod with envFrom the token Secret.
        with mock.patch.dict(os.environ, {"CLAIIM_GATE_CA": self.ca}):
            self.assertEqual(self.validate().outcome, "ALLOW")

    def test_refuses_a_gate_it_cannot_verify(self):
        with mock.patch.dict(os.environ, {}, clear=False):
            os.environ.pop("CLAIIM_GATE_CA", None)
            with self.assertRaises(claiim.Denied) as cm:
                self.validate()
        self.assertEqual(cm.exception.reason, "UNREACHABLE")
        self.assertIn("CERTIFICATE_VERIFY_FAILED", cm.exception.message)

    def test_a_bundle_without_a_certificate_is_an_error(self):
        with self.assertRaises(ValueError) as cm:
            claiim.CLAIIMClient(self.url, "tok", "sv", ca="not a certificate")
        self.assertIn("CLAIIM_GATE_CA", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
