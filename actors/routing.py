"""Which shard owns a SKU: a stable hash, the same in every process and release."""

from __future__ import annotations

import hashlib


def shard_of(sku: str, shards: int) -> int:
    # Python's hash() is salted per process; md5 is stable and fast enough here.
    digest = hashlib.md5(sku.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:4], "big") % shards
