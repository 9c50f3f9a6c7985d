"""Stand-in API server: answers the backend's status endpoint, nothing else."""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("SPIFFWORKFLOW_BACKEND_PORT") or 7000)
PREFIX = (os.environ.get("SPIFFWORKFLOW_BACKEND_WSGI_PATH_PREFIX") or "").strip("/")
STATUS = f"/{PREFIX}/v1.0/status" if PREFIX else "/v1.0/status"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        ok = self.path == STATUS
        body = json.dumps({"ok": True, "can_access_frontend": True} if ok else {"error": "not found"}).encode()
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print("stand-in api:", format % args, flush=True)


def main() -> None:
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"stand-in api: listening on {PORT}, status at {STATUS}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
        print("stand-in api: stopped", flush=True)


if __name__ == "__main__":
    main()
