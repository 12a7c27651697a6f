"""A noisy, short-lived app for the soak: prints lines steadily, then exits after a while."""

import os
import random
import socket
import sys
import time

rate = float(sys.argv[1]) if len(sys.argv) > 1 else 50.0  # lines per second
life = random.uniform(float(sys.argv[2]), float(sys.argv[3])) if len(sys.argv) > 3 else 1e9
listener = socket.create_server(("127.0.0.1", int(os.environ["PORT"])))
began = time.monotonic()
n = 0
while time.monotonic() - began < life:
    n += 1
    print(f"{os.environ['KANRI_APP']} line {n} " + "x" * random.randint(10, 200), flush=True)
    if n % 10 == 0:
        print(f"warning {n}", file=sys.stderr, flush=True)
    time.sleep(1 / rate)
sys.exit(1)
