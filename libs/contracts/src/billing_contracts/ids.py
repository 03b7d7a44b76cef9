"""UUIDv7 (RFC 9562): unique event ids that sort by creation time, from the standard library.

Ids made in one process are strictly increasing, also within one millisecond (the random tail
is counted up instead), so the order of events one producer made is the order of their ids.
"""

from __future__ import annotations

import os
import threading
import time
from uuid import UUID

_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)
_RANDOM = ((1 << 12) - 1) << 64 | ((1 << 62) - 1)
_lock = threading.Lock()
_last = 0


def uuid7() -> UUID:
    global _last
    random = int.from_bytes(os.urandom(10)) & _RANDOM
    with _lock:
        value = (time.time_ns() // 1_000_000) << 80 | _VERSION_AND_VARIANT | random
        if value <= _last:  # the same millisecond, or the clock stepped back
            value = _last + 1
        _last = value
    return UUID(int=value)
