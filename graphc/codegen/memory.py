"""Memory planning: give every temporary buffer of a program an offset in one scratch
arena per dtype, sized once per compiled program, reusing the space of buffers that are
dead (no later kernel reads them).  Every offset is a multiple of ``ALIGN`` elements, so
a temporary is as aligned as its arena (kernels use 16-byte vector loads on it)."""
from __future__ import annotations

ALIGN = 16            # elements: 64 bytes of float32, 128 of float64


def plan_memory(program):
    """Fill ``program.arena`` (temp name -> element offset) and ``program.arena_sizes``
    (dtype name -> elements); returns the program."""
    temps = {name for name, b in program.buffers.items() if b.kind == "temp"}
    first_write, last_read = {}, {}
    for k, kernel in enumerate(program.kernels):
        for name in kernel.outputs:
            if name in temps:
                first_write.setdefault(name, k)
        for name in kernel.inputs:
            if name in temps:
                last_read[name] = k
    free: dict = {}          # dtype name -> [(offset, size)]
    sizes: dict = {}
    live: list = []          # (last read, name, dtype, offset, size)
    for name in sorted(temps, key=lambda n: (first_write.get(n, 0), n)):
        start = first_write.get(name, 0)
        for entry in [e for e in live if e[0] < start]:
            live.remove(entry)
            free.setdefault(entry[2], []).append((entry[3], entry[4]))
        info = program.buffers[name]
        dtype = info.dtype.name
        size = -(-max(info.size, 1) // ALIGN) * ALIGN
        offset = _take(free.setdefault(dtype, []), size)
        if offset is None:
            offset = sizes.get(dtype, 0)
            sizes[dtype] = offset + size
        program.arena[name] = offset
        live.append((last_read.get(name, start), name, dtype, offset, size))
    program.arena_sizes = sizes
    return program


def _take(blocks: list, size: int):
    """Best fit from a free list; the remainder of the block stays free."""
    fits = [b for b in blocks if b[1] >= size]
    if not fits:
        return None
    offset, block_size = min(fits, key=lambda b: b[1])
    blocks.remove((offset, block_size))
    if block_size > size:
        blocks.append((offset + size, block_size - size))
    return offset


def peak_bytes(program) -> int:
    """Bytes of scratch memory the program's temporaries need."""
    from graphc import dtypes
    return sum(n * dtypes.from_name(d).itemsize for d, n in program.arena_sizes.items())
