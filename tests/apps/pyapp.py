"""A small HTTP app for tests, configured by arguments.

--crash-after S     exit with code 3 after S seconds (before or after ready)
--exit-code N       exit with code N at once (0 = a clean exit)
--ignore-term       ignore SIGTERM (so only SIGKILL stops it)
--grow MiB          allocate MiB of memory every 0.2 s
--no-listen         never open $PORT
--print-lines N     print N numbered lines to stdout (and one to stderr), then serve
--fail-if FILE      exit with code 1 at once if FILE exists (a broken deploy)
--warm-up S         GET /healthz answers 503 (and prints "health 503") for S seconds

GET /slow?s=N answers after N seconds (default 3).
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WARM_UNTIL = 0.0  # monotonic time until which /healthz answers 503


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real app servers do

    def do_GET(self) -> None:
        if self.path == "/healthz" and time.monotonic() < WARM_UNTIL:
            print("health 503", flush=True)
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/slow"):
            time.sleep(float(self.path.partition("s=")[2] or 3))
        body = json.dumps(
            {
                "pid": os.getpid(),
                "port": os.environ.get("PORT"),
                "app": os.environ.get("KANRI_APP"),
                "instance": os.environ.get("KANRI_INSTANCE"),
                "unbuffered": os.environ.get("PYTHONUNBUFFERED"),
                "greeting": os.environ.get("GREETING"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--crash-after", type=float)
    parser.add_argument("--exit-code", type=int)
    parser.add_argument("--ignore-term", action="store_true")
    parser.add_argument("--grow", type=int, default=0)
    parser.add_argument("--no-listen", action="store_true")
    parser.add_argument("--print-lines", type=int, default=0)
    parser.add_argument("--fail-if")
    parser.add_argument("--warm-up", type=float, default=0.0)
    args = parser.parse_args()
    global WARM_UNTIL
    WARM_UNTIL = time.monotonic() + args.warm_up

    if args.fail_if and os.path.exists(args.fail_if):
        print(f"refusing to start: {args.fail_if} exists", file=sys.stderr)
        sys.exit(1)
    if args.exit_code is not None:
        print(f"exiting with {args.exit_code}")
        sys.exit(args.exit_code)
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for n in range(args.print_lines):
        print(f"line {n} " + "x" * 80)
    if args.print_lines:
        print("to stderr", file=sys.stderr)
    if args.crash_after is not None:
        threading.Timer(args.crash_after, lambda: os._exit(3)).start()
    if args.grow:
        hoard = []

        def grow() -> None:
            while True:
                hoard.append(bytearray(args.grow * 1024 * 1024))
                time.sleep(0.2)

        threading.Thread(target=grow, daemon=True).start()
    if args.no_listen:
        while True:
            time.sleep(1)
    port = int(os.environ["PORT"])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"listening on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
