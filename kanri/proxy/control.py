"""The control channel between the daemon and a proxy worker.

A stream socketpair; each message is a 4-byte big-endian length and a pickled
tuple whose first item names it. Pickle is used because both ends are the
same program on a private, inherited socket (no other process can write to
it), and it carries the frozen settings and snapshot objects as they are,
without a second schema to keep in sync.

    daemon -> worker                     worker -> daemon
    ("config", ProxySettings, state_dir)
    ("snapshot", seq, Snapshot)          ("ack", seq)            snapshot applied
    ("stats", seq)                       ("reply", seq, dict)    counters
    ("inflight", seq, upstream_key)      ("reply", seq, int)     requests in flight
    ("stop", seconds)                    (EOF on either side: the peer is gone)
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from typing import Any

MAX_MESSAGE = 64 * 1024 * 1024
_LENGTH = struct.Struct(">I")


def encode(message: tuple[Any, ...]) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


async def read_message(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message, or None at EOF."""
    try:
        header = await reader.readexactly(_LENGTH.size)
        (length,) = _LENGTH.unpack(header)
        if length > MAX_MESSAGE:
            raise ValueError(f"control message of {length} bytes is larger than {MAX_MESSAGE}")
        data = await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    message = pickle.loads(data)
    assert isinstance(message, tuple)
    return message
