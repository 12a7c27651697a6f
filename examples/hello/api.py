"""A tiny JSON API (standard library only): GET /api/hello answers with who served it."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/api/health", "/health"):
            body = b'{"ok": true}'
        else:
            body = json.dumps(
                {"hello": "from the api", "instance": os.environ["KANRI_INSTANCE"], "pid": os.getpid()}
            ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(f"{self.command} {self.path} {args[1] if len(args) > 1 else ''}")


port = int(os.environ["PORT"])
print(f"api instance {os.environ['KANRI_INSTANCE']} listening on 127.0.0.1:{port}")
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
