"""The memory plan as a picture: each temporary buffer is a box from the kernel that
writes it to the last kernel that reads it (x) at its place in the arenas (y: byte
offset, one arena per dtype stacked), so reused space shows as boxes sharing rows.
Below, the bytes live after each kernel, with the peak marked."""
from __future__ import annotations

from html import escape

from graphc import dtypes
from graphc.codegen.memory import peak_bytes

WIDTH, HEIGHT, LIVE_HEIGHT, MARGIN = 760, 260, 80, 40


def lifetimes(program) -> list:
    """(name, dtype, first kernel, last kernel, byte offset, bytes) of every temporary,
    the arenas of each dtype placed one after the other."""
    first, last = {}, {}
    for k, kernel in enumerate(program.kernels):
        for name in kernel.outputs:
            first.setdefault(name, k)
        for name in kernel.inputs:
            last[name] = k
    base, at = {}, 0
    for dtype_name, elements in sorted(program.arena_sizes.items()):
        base[dtype_name] = at
        at += elements * dtypes.from_name(dtype_name).itemsize
    rows = []
    for name, offset in program.arena.items():
        info = program.buffers[name]
        size = info.dtype.itemsize
        start = first.get(name, 0)
        rows.append((name, info.dtype.name, start, max(last.get(name, start), start),
                     base[info.dtype.name] + offset * size, info.size * size))
    return rows


def timeline(program) -> dict:
    """The plan's numbers and its SVG picture."""
    rows = lifetimes(program)
    n = max(len(program.kernels), 1)
    live = [sum(r[5] for r in rows if r[2] <= k <= r[3]) for k in range(n)]
    peak = peak_bytes(program)
    return {"buffers": len(rows), "kernels": len(program.kernels), "peak_bytes": peak,
            "peak_live_bytes": max(live, default=0),
            "peak_kernel": live.index(max(live)) if rows else None,
            "svg": _svg(rows, live, n, peak) if rows else ""}


def _svg(rows, live, n, peak) -> str:
    x = lambda k: MARGIN + k * WIDTH / n                          # noqa: E731
    y = lambda b: MARGIN + b * HEIGHT / max(peak, 1)              # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="memory" '
             f'width="{WIDTH + 2 * MARGIN}" height="{HEIGHT + LIVE_HEIGHT + 3 * MARGIN}">',
             f'<text x="{MARGIN}" y="{MARGIN - 10}">arena offset (bytes, 0 to {peak}) '
             f'by kernel index (0 to {n - 1})</text>',
             f'<rect class="frame" x="{MARGIN}" y="{MARGIN}" width="{WIDTH}" '
             f'height="{HEIGHT}"/>']
    for name, dtype, start, end, offset, size in rows:
        parts.append(f'<rect class="buffer" x="{x(start):.1f}" y="{y(offset):.1f}" '
                     f'width="{max(x(end + 1) - x(start), 1):.1f}" '
                     f'height="{max(y(offset + size) - y(offset), 1):.1f}"><title>'
                     f'{escape(name)}: {dtype}, {size} bytes at {offset}, kernels {start}-{end}'
                     f'</title></rect>')
    top = HEIGHT + 2 * MARGIN
    most = max(live, default=0) or 1
    points = " ".join(f"{x(k + 0.5):.1f},{top + LIVE_HEIGHT * (1 - b / most):.1f}"
                      for k, b in enumerate(live))
    parts.append(f'<polyline class="live" points="{points}"/>')
    if live:
        k = live.index(max(live))
        parts.append(f'<circle class="peak" cx="{x(k + 0.5):.1f}" cy="{top:.1f}" r="4"/>'
                     f'<text x="{x(k + 0.5) + 6:.1f}" y="{top + 4:.1f}">peak: {max(live)} '
                     f'bytes live after kernel {k}</text>')
    parts.append(f'<text x="{MARGIN}" y="{top + LIVE_HEIGHT + 20}">bytes live per kernel'
                 f'</text></svg>')
    return "".join(parts)
