"""An idle app for the footprint scenario: listens on $PORT and does nothing else."""

import os
import socket
import time

listener = socket.create_server(("127.0.0.1", int(os.environ["PORT"])))
while True:
    time.sleep(3600)
