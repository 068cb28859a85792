"""The disk cache of compiled CUDA artifacts (cubins for the GPU, shared libraries for
the emulator).

``$GRAPHC_CACHE_DIR`` (default ``~/.cache/graphc``; empty disables it) holds them under
``cuda/``, one file per artifact named by a sha256 key of everything that shaped it
(source text, compiler, flags, target).  Beside each file, ``NAME.sha256`` records the
key and a checksum of the bytes: an entry that is unreadable, truncated, corrupt or made
for another key is rebuilt and overwritten, never trusted.  Writes are atomic (a temporary
file renamed into place), so a concurrent reader never sees half a file.
"""
from __future__ import annotations

import hashlib
import os
import threading


def cache_dir() -> str | None:
    directory = os.environ.get("GRAPHC_CACHE_DIR")
    if directory is None:
        return os.path.join(os.path.expanduser("~"), ".cache", "graphc", "cuda")
    return os.path.join(directory, "cuda") if directory else None


def key_of(*parts: str) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def path_for(key: str, suffix: str) -> str | None:
    directory = cache_dir()
    return None if directory is None else os.path.join(directory, key + suffix)


def is_valid(path: str, key: str) -> bool:
    """Whether ``path`` holds intact bytes made for ``key``."""
    try:
        with open(path + ".sha256") as f:
            stored_key, checksum = f.read().split()
        with open(path, "rb") as f:
            data = f.read()
    except (OSError, ValueError):
        return False
    return stored_key == key and hashlib.sha256(data).hexdigest() == checksum


def read(path: str, key: str) -> bytes | None:
    if not is_valid(path, key):
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def write(path: str, key: str, data: bytes) -> bool:
    """Store ``data`` for ``key``; False (and nothing left behind) when the cache cannot
    be written."""
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        with open(tmp, "w") as f:
            f.write(f"{key} {hashlib.sha256(data).hexdigest()}\n")
        os.replace(tmp, path + ".sha256")
        return True
    except OSError:
        if os.path.exists(tmp):
            os.remove(tmp)
        return False
