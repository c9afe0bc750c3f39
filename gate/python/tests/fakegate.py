"""A gate stand-in for the client's tests: canned JSON answers over HTTP."""

import http.server
import json
import threading


def send_json(handler, status, reply):
    """Answer handler's request with status and reply as JSON."""
    raw = json.dumps(reply).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(raw)))
    handler.end_headers()
    handler.wfile.write(raw)


class AnswersHandler(http.server.BaseHTTPRequestHandler):
    """Answers each action with the server's answers[action]: (status, reply)."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        send_json(self, *self.server.answers[body["action"]])

    def log_message(self, *args):
        pass


def serve(testcase, answers):
    """Serve answers until testcase ends; returns the client's base URL."""
    srv = http.server.HTTPServer(("127.0.0.1", 0), AnswersHandler)
    srv.answers = answers
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    testcase.addCleanup(srv.server_close)
    testcase.addCleanup(srv.shutdown)
    return "http://127.0.0.1:%d/v" % srv.server_address[1]
