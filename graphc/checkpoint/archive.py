"""What every checkpoint format shares: the errors ``graphc.load`` raises and a zip
reader that refuses zip bombs before inflating anything."""
from __future__ import annotations

import pickle
import struct
import zipfile
import zlib


class DamagedFileError(RuntimeError, pickle.UnpicklingError):
    """What ``graphc.load`` raises for a file it cannot read back: a RuntimeError, as
    torch.load raises for a damaged zip, and an ``UnpicklingError``, as it raises for a
    damaged pickle, so code written for either catches it."""


class UnsafeCheckpointError(pickle.UnpicklingError):
    """What ``graphc.load`` raises for a PyTorch file asking for anything but the
    allow-listed tensor reconstruction (a global such as ``os.system``, an object
    build): the exception ``torch.load(weights_only=True)`` raises.  Raised before the
    request runs: nothing outside the allow-list is ever imported or called."""


class UnsupportedCheckpointError(NotImplementedError):
    """A well-formed file holding what graphc does not have (complex or quantized
    tensors, sparse layouts, dtypes such as float8)."""


# Exceptions that, raised while reading a file, mean it is damaged (wrapped in
# DamagedFileError naming the file).
DAMAGE = (zipfile.BadZipFile, zipfile.LargeZipFile, KeyError, TypeError, ValueError,
          AttributeError, IndexError, OverflowError, EOFError, OSError, MemoryError,
          RecursionError, NotImplementedError, RuntimeError, struct.error, zlib.error,
          pickle.UnpicklingError, UnicodeDecodeError)

# A graphc or PyTorch file stores its members uncompressed, so they add up to less than
# the file.  Other zip tools may compress them (zeros shrink ~1000x), so a member may
# declare up to _RATIO times its compressed size (plus 1 MiB), and the members together
# at most _RATIO times the file or _FLOOR bytes, whichever is more: a zip bomb declares
# far more, and no member is read beyond what it declares.
_RATIO = 64
_FLOOR = 64 << 20


def check_sizes(archive: zipfile.ZipFile, name: str, size: int) -> None:
    """Refuse a zip bomb before inflating anything: members declaring far more bytes than
    a checkpoint of this file's size holds (see ``_RATIO``)."""
    bound = max(_RATIO * size, _FLOOR)
    total = 0
    for member in archive.infolist():
        total += member.file_size
        stored = member.compress_type == zipfile.ZIP_STORED
        if member.compress_size > size or total > bound \
                or (stored and member.file_size != member.compress_size) \
                or member.file_size > _RATIO * max(member.compress_size, 1) + (1 << 20):
            raise DamagedFileError(
                f"graphc.load: {name} is corrupt or a zip bomb: member {member.filename!r} "
                f"declares {member.file_size} bytes ({member.compress_size} compressed; "
                f"{total} in all so far) in a file of {size} bytes")


def read_member(archive: zipfile.ZipFile, member: str) -> bytes:
    """A member's bytes, never more than its declared size (which ``check_sizes``
    bounded): a member that inflates beyond it is damaged."""
    info = archive.getinfo(member)
    with archive.open(info) as stream:
        data = stream.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise ValueError(f"member {member!r} holds {len(data)} bytes, its header says "
                         f"{info.file_size}")
    return data
