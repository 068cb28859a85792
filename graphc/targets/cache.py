"""graphc's disk cache of compiled code, shared by every backend: the cpu backend's object
code, the cuda backend's cubins and its emulator's shared libraries.

Where: ``$GRAPHC_CACHE_DIR`` when set (an empty value turns the cache off), else the
platform's user cache folder (``platformdirs.user_cache_dir("graphc")``: on Linux
``$XDG_CACHE_HOME/graphc``, by default ``~/.cache/graphc``).  The folder is created
private (0700).  As ssh treats its key files, a folder that another user owns or that
group or others may write is refused with one warning, and compiling goes on without the
cache: whoever can write there could plant code that graphc would load and run.

An entry is one file, ``KEY.KIND`` (``KIND``: ``o``, ``cubin``, ``so``), whose key is a
sha256 of everything that shaped the code (``key()``: the generated source, graphc's
version, the compiler's version and flags, the target).  The file starts with a header
holding the key and a sha256 of the payload, so an entry that is unreadable, truncated,
corrupt, made for another key or by another cache format (even a folder where the file
should be) is rebuilt and overwritten, never trusted.  Writes go to
a temporary file renamed into place: a concurrent reader sees the old entry or the new
one, never half of one.

Size: at most ``$GRAPHC_CACHE_SIZE`` bytes (a number, optionally with a K, M or G
suffix, powers of 1024; default 1G).  A hit marks its entry as just used (its mtime);
after each write the least recently used entries are removed until the cache fits.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import threading
import warnings
from dataclasses import dataclass

import platformdirs

from graphc.version import __version__

DEFAULT_SIZE = 1 << 30
_MAGIC = b"graphc-cache-1\n"
_HEADER = len(_MAGIC) + 2 * 65            # magic, key and checksum (hex, each + "\n")
_ENTRY = re.compile(r"[0-9a-f]{64}\.[a-z]+")
_TEMPORARY = re.compile(r"[0-9a-f]{64}\.[a-z]+\.\d+\.\d+\.tmp")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


_refused: set = set()                     # folders already warned about


def directory() -> str | None:
    """The cache's folder, or None when ``GRAPHC_CACHE_DIR`` is set empty (cache off)."""
    chosen = os.environ.get("GRAPHC_CACHE_DIR")
    if chosen is None:
        return platformdirs.user_cache_dir("graphc")
    return chosen or None


def _usable(folder: str) -> bool:
    """Create ``folder`` private (0700) if it is missing; False (after one warning per
    folder) when it is not a folder, belongs to another user, or group or others may
    write it, so nobody else can put code there that graphc would run."""
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        info = os.stat(folder)
    except OSError as e:
        problem = f"cannot be created or read ({e.strerror})"
    else:
        if not stat.S_ISDIR(info.st_mode):
            problem = "is not a folder"
        elif hasattr(os, "getuid") and info.st_uid != os.getuid():
            problem = f"belongs to another user (uid {info.st_uid})"
        elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            problem = (f"may be written by its group or by others (mode "
                       f"{stat.S_IMODE(info.st_mode):04o}); run chmod go-w on it")
        else:
            return True
    if folder not in _refused:
        _refused.add(folder)
        warnings.warn(f"graphc's cache folder {folder} {problem}: compiling without the "
                      f"disk cache", RuntimeWarning, stacklevel=3)
    return False


def size_limit() -> int:
    """The most bytes the cache may hold: ``$GRAPHC_CACHE_SIZE`` (``500M``, ``2G``,
    ``1048576``), else 1 GiB."""
    text = os.environ.get("GRAPHC_CACHE_SIZE", "").strip()
    if not text:
        return DEFAULT_SIZE
    match = re.fullmatch(r"(\d+)\s*([KMG]?)i?B?", text, flags=re.I)
    if match is None:
        raise ValueError(f"GRAPHC_CACHE_SIZE={text!r}: expected a number of bytes, "
                         f"optionally with a K, M or G suffix (such as 500M)")
    return int(match[1]) * _UNITS[match[2].upper()]


def key(*parts: str) -> str:
    """The sha256 key of an entry made from ``parts`` (source text, compiler version,
    target...) by this version of graphc."""
    h = hashlib.sha256()
    for part in (*parts, __version__):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def _path(entry_key: str, kind: str) -> str | None:
    """Where the entry lives, or None when the cache is off or its folder is refused."""
    folder = directory()
    if folder is None or not _usable(folder):
        return None
    return os.path.join(folder, f"{entry_key}.{kind}")


def load(entry_key: str, kind: str) -> bytes | None:
    """The payload stored for ``entry_key``, or None when the cache is off, or the entry
    is missing or not intact."""
    path = _path(entry_key, kind)
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    payload = _payload(data, entry_key)
    if payload is not None:
        try:
            os.utime(path)                   # just used: last in line for eviction
        except OSError:
            pass
    return payload


def _payload(data: bytes, entry_key: str) -> bytes | None:
    """The payload of an entry file's bytes, if they are intact and made for the key."""
    header = _MAGIC + entry_key.encode() + b"\n"
    if not data.startswith(header) or data[_HEADER - 1:_HEADER] != b"\n":
        return None
    payload = data[_HEADER:]
    if hashlib.sha256(payload).hexdigest().encode() != data[len(header):_HEADER - 1]:
        return None
    return payload


def store(entry_key: str, kind: str, payload: bytes) -> bool:
    """Store ``payload`` for ``entry_key``, then evict down to the size limit; False
    (and nothing left behind) when the cache is off or cannot be written."""
    return store_many({entry_key: payload}, kind) == 1


def store_many(payloads: dict, kind: str) -> int:
    """Store each ``{key: payload}``, then evict down to the size limit (once: eviction
    reads the whole folder); returns how many were stored."""
    stored = sum(_write(entry_key, kind, payload) for entry_key, payload in payloads.items())
    folder = directory()
    if stored and folder is not None:
        evict(folder, size_limit())
    return stored


def _write(entry_key: str, kind: str, payload: bytes) -> bool:
    """Write one entry (atomically: a temporary file renamed into place)."""
    path = _path(entry_key, kind)
    if path is None:
        return False
    tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)   # a damaged entry: a folder in its place
    try:
        with open(tmp, "wb") as f:
            f.write(_MAGIC + entry_key.encode() + b"\n"
                    + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
        os.replace(tmp, path)
    except OSError:
        if os.path.exists(tmp):
            os.remove(tmp)
        return False
    return True


def _entries(folder: str) -> list:
    """(mtime, size, path) of every entry in ``folder``, least recently used first."""
    found = []
    try:
        with os.scandir(folder) as it:
            for e in it:
                if _ENTRY.fullmatch(e.name) and e.is_file(follow_symlinks=False):
                    try:
                        stat = e.stat(follow_symlinks=False)
                    except OSError:
                        continue                 # removed meanwhile by another process
                    found.append((stat.st_mtime_ns, stat.st_size, e.path))
    except OSError:
        return []
    return sorted(found)


def evict(folder: str, limit: int):
    """Remove the least recently used entries of ``folder`` until at most ``limit``
    bytes remain."""
    entries = _entries(folder)
    total = sum(size for _, size, _ in entries)
    for _, size, path in entries:
        if total <= limit:
            break
        try:
            os.remove(path)
        except OSError:
            continue
        total -= size


@dataclass(frozen=True)
class Info:
    """What ``python -m graphc cache info`` prints."""
    directory: str | None
    entries: int
    size: int
    limit: int

    def __str__(self) -> str:
        if self.directory is None:
            return "cache: off (GRAPHC_CACHE_DIR is set empty)"
        return (f"cache: {self.directory}\nentries: {self.entries}\n"
                f"size: {_human(self.size)} ({self.size} bytes)\n"
                f"limit: {_human(self.limit)} ({self.limit} bytes)")


def _human(size: int) -> str:
    for unit in ("G", "M", "K"):
        if size >= _UNITS[unit]:
            return f"{size / _UNITS[unit]:.1f} {unit}iB"
    return f"{size} B"


def info() -> Info:
    """The cache's folder, its number of entries, their total size and the limit."""
    folder = directory()
    entries = [] if folder is None else _entries(folder)
    return Info(folder, len(entries), sum(size for _, size, _ in entries), size_limit())


def clear() -> int:
    """Remove every entry (and temporary file left by an interrupted write); returns how
    many entries were removed.  Other files in the folder are left alone."""
    folder = directory()
    if folder is None:
        return 0
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        entry = _ENTRY.fullmatch(name)
        if entry or _TEMPORARY.fullmatch(name):
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                continue
            removed += bool(entry)
    return removed
