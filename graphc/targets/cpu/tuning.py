"""Matmul plans tuned to the host: graphc's loop nest sized for this CPU, or numpy's BLAS
where it measured faster.

``plan(kernel)`` says how the cpu backend runs a ``MatmulKernel``:

- ``Blocking``: the register tile comes from the vector width and register count (LLVM's
  host features: 32 vector registers with AVX-512 or on AArch64, else 16), the depth
  block from L1 and the A and B blocks from L2 and L3 (``/sys/devices/system/cpu/cpu0/
  cache``).  A few candidates (tiles two to four vectors wide, depth blocks of one and
  two L1s) have their inner loops (``_macro_kernel``) compiled into one module and
  timed on one core, interleaved, on a 256 x 256 x 1024 product; of those within 3% of
  the fastest, the one with the fewest loads per multiply-add, then the deepest, wins
  (about 0.4 s, once per host).
- BLAS or not: for a shape class (dtype and each of rows, columns, depth and groups
  rounded up to a power of two, capped) graphc's kernel and a kernel calling numpy's
  ``?gemm`` are compiled and timed on one core, interleaved, on a product of the
  class's shape (0.2-0.5 s per class, once per host); BLAS runs the matmul when it was
  more than 5% faster and the operands fit cblas (``matmul.blas_layout``).  Classes of
  at most 32^3 multiply-adds keep graphc's kernel without measuring.

Results are kept in memory and in graphc's disk cache (``graphc.targets.cache``, kind
``json``) under a key naming the CPU model, its features, LLVM's version, the BLAS
library and what was compared (the candidates; the blocking BLAS was timed against),
so each measurement runs once per host.  ``GRAPHC_MATMUL=graphc`` or ``blas``
overrides the measured choice (``blas`` still needs a library and a cblas layout):
for comparing the two and for tests that need one of them.
"""
from __future__ import annotations

import ctypes
import dataclasses
import functools
import json
import math
import os
import time
from dataclasses import dataclass

import llvmlite.binding as llvm
import llvmlite.ir as ir
import numpy as np

from graphc import dtypes
from graphc.targets import cache
from graphc.targets.cpu import blas
from graphc.targets.cpu.kernel import (I64, PTR, VOID, create_target_machine, for_range,
                                        host_features, i64, new_module, target_machine,
                                        value_type, vector_bytes)
from graphc.targets.cpu.matmul import (Blocking, MatmulRenderer, blas_layout, group_layout,
                                        micro_kernel)
from graphc.codegen import loops as L

_KERNEL = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                           ctypes.c_void_p)
_MACRO = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 3, *[ctypes.c_int64] * 4)
_SEARCH_SHAPE = (256, 256, 1024)   # rows, columns, depth of the blocking search's product
_TIE = 1.03                        # blockings this close to the fastest count as as fast
_CLASS_CAP = 512                   # shape classes round each size up to a power of 2 <= this
_CLASS_WORK = 1 << 24              # ... and measure at most this many multiply-adds
# Classes of at most this many multiply-adds keep graphc's kernel unmeasured: either
# takes a few microseconds, less than the call around it, and measuring costs a compile.
_SMALL_WORK = 1 << 15
_ROUNDS = 5
# BLAS must beat graphc's kernel by this factor: the timed product has no epilogue, which
# graphc's kernel runs on each tile while it is in cache and BLAS as a pass afterwards.
_BLAS_MARGIN = 1.05


# ---- the host --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Host:
    registers: int       # vector registers
    vector_bytes: int
    l1: int              # bytes of L1 data cache, L2, and L3 per core
    l2: int
    l3: int


def _cache_sizes() -> dict:
    """{level: bytes per core} of the data and unified caches of cpu0, from sysfs."""
    sizes = {}
    root = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = os.listdir(root)
    except OSError:
        return sizes
    for entry in entries:
        if not entry.startswith("index"):
            continue
        try:
            with open(os.path.join(root, entry, "type")) as f:
                kind = f.read().strip()
            with open(os.path.join(root, entry, "level")) as f:
                level = int(f.read())
            with open(os.path.join(root, entry, "size")) as f:
                text = f.read().strip()
            with open(os.path.join(root, entry, "shared_cpu_list")) as f:
                sharing = _count_cpus(f.read())
        except (OSError, ValueError):
            continue
        if kind in ("Data", "Unified") and text[:-1].isdigit():
            size = int(text[:-1]) * {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1], 1)
            sizes[level] = size // max(sharing, 1)
    return sizes


def _count_cpus(cpu_list: str) -> int:
    """How many cpus a sysfs list such as ``0-3,8`` names."""
    count = 0
    for part in cpu_list.strip().split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1 if lo else 0
    return count


@functools.cache
def host() -> Host:
    """The host's vector registers and caches (typical sizes where sysfs says nothing)."""
    wide = vector_bytes() == 64 or llvm.get_process_triple().startswith("aarch64")
    sizes = _cache_sizes()
    return Host(32 if wide else 16, vector_bytes(), sizes.get(1, 32 << 10),
                sizes.get(2, 256 << 10), sizes.get(3, 2 << 20))


def candidates(dtype) -> list:
    """Blockings worth timing for ``dtype``, the one sized by the usual rules first: the
    widest tile (``nv`` vectors by as many rows as the registers hold, leaving one per
    B vector and one for A's broadcast) whose B micro-panel fills L1, then tiles three
    and four vectors wide, and each at twice that depth (each depth block is a pass over
    C, which a large product reads from memory)."""
    h = host()
    tiles = [(min((h.registers - nv - 1) // nv, 16), nv) for nv in (2, 3, 4)]
    tiles = [(mr, nv) for mr, nv in tiles if mr >= 4]
    found = []
    for scale in (1, 2):
        for mr, nv in tiles:
            kc = max(int(h.l1 * scale) // (nv * h.vector_bytes) // 16 * 16, 16)
            found.append(Blocking(mr, nv, kc, h.l2 // 2, h.l3 // 2))
    return found


# ---- measuring ---------------------------------------------------------------------------------
def _product_kernel(name, dtype, rows, n, k, groups) -> L.MatmulKernel:
    a = L.Operand("a", (rows * k,) if groups > 1 else (), k, 1)
    b = L.Operand("b", (k * n,) if groups > 1 else (), n, 1)
    return L.MatmulKernel(name, (groups,) if groups > 1 else (), rows, n, k, a, b, dtype,
                          [("c", L.Acc("acc", dtype))], ["a", "b"], ["c"])


class _Jit:
    """A module compiled as the runtime compiles programs (O3 for the host)."""

    def __init__(self, module):
        ir_module = llvm.parse_assembly(str(module))
        options = llvm.create_pipeline_tuning_options(speed_level=3)
        options.loop_vectorization = options.slp_vectorization = True
        options.loop_unrolling = True
        passes = llvm.create_pass_builder(target_machine(), options)
        passes.getModulePassManager().run(ir_module, passes)
        self.engine = llvm.create_mcjit_compiler(ir_module, create_target_machine())
        self.engine.finalize_object()


def _operands(dtype, rows, n, k, groups):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(groups * rows * k).astype(dtype.np)
    b = rng.standard_normal(groups * k * n).astype(dtype.np)
    return a, b, np.empty(groups * rows * n, dtype.np)


def _interleaved(calls, repeats) -> list:
    """Seconds per call of each of ``calls``: the fastest of interleaved rounds (other
    processes only ever add time, and interleaving gives each call the same chances)."""
    times = [[] for _ in calls]
    for _ in range(_ROUNDS):
        for call, record in zip(calls, times):
            start = time.perf_counter()
            for _ in range(repeats):
                call()
            record.append((time.perf_counter() - start) / repeats)
    return [min(t) for t in times]


def _repeats(work: int) -> int:
    """Calls per timing, so each times about a millisecond of work or more."""
    return max(1, min(200, (1 << 22) // max(work, 1)))


def _kernel_call(fn, a, b, c, rows):
    pointers = (ctypes.c_void_p * 3)(a.ctypes.data, b.ctypes.data, c.ctypes.data)
    flag = (ctypes.c_int64 * 2)()
    return lambda: fn(pointers, 0, rows, flag)


def _macro_kernel(module, dtype, blocking: Blocking) -> str:
    """The loop nest's inner part over packed blocks, to time a blocking without
    compiling a whole kernel for it: ``fn(a, b, c, kc, mc, nc, depth)`` runs the
    micro-kernel over each kc-deep slice of an mc x depth block of A and a depth x nc
    block of B (packed) and adds each tile into C (mc x nc), as the kernel's tiles are
    written back.  Sizes must be multiples of the tile's and of kc."""
    et = value_type(dtype)
    lanes = vector_bytes() // dtype.itemsize
    mr, nr = blocking.mr, blocking.nv * lanes
    micro = micro_kernel(module, ir.VectorType(et, lanes), mr, nr)
    name = f"macro.{mr}x{nr}"
    if name in module.globals:
        return name
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR] * 3 + [I64] * 4), name)
    a, b_, c, kc, mc, nc, depth = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    tile = b.alloca(et, size=i64(mr * nr))
    tile.align = 64

    def at(ptr, offset):
        return b.gep(ptr, [offset], inbounds=True, source_etype=et)

    with for_range(b, 0, depth, kc, name="pc") as pc, \
            for_range(b, 0, nc, nr, name="jr") as jr, for_range(b, 0, mc, mr, name="ir") as i:
        b.call(micro, [at(a, b.add(b.mul(pc, mc), b.mul(i, kc))),
                       at(b_, b.add(b.mul(pc, nc), b.mul(jr, kc))), kc, tile])
        with for_range(b, 0, mr, name="r") as r, for_range(b, 0, nr, name="q") as q:
            out = at(c, b.add(b.mul(b.add(i, r), nc), b.add(jr, q)))
            value = b.load(at(tile, b.add(b.mul(r, i64(nr)), q)), typ=et)
            b.store(b.fadd(b.load(out, typ=et), value), out)
    b.ret_void()
    return name


def _aligned(count, dtype) -> np.ndarray:
    """``count`` ones on a 64-byte boundary, as the kernel's packed blocks are."""
    spare = np.ones(count + 64 // dtype.itemsize, dtype.np)
    skip = (-spare.ctypes.data % 64) // dtype.itemsize
    return spare[skip:skip + count]


def _search_blocking(dtype) -> dict:
    """Time each candidate's inner loops on one core, interleaved, on a product of
    ``_SEARCH_SHAPE`` (rounded to the tile); the record of the winner: of the blockings
    within ``_TIE`` of the fastest per multiply-add, the one with the fewest loads per
    multiply-add (``mr + nv`` per ``mr * nv``), then the deepest.  The inner loops alone
    are bound by the multiply-adds, so on a wide core they often time alike, while the
    whole kernel, which also packs and misses the caches, is faster with fewer loads in
    the micro-kernel and (on large products, where each depth block is a pass over C
    in memory) deeper blocks: on Zen 4 the inner loops of all candidates timed alike, while a
    6 x 4-vector tile with kc 256 made an MLP training step 1.6x faster than 14 x 2
    vectors with kc 1024, and at 2048^3 kc 128 was 10-20% slower than kc 512."""
    rows, cols, depth = _SEARCH_SHAPE
    options = candidates(dtype)
    module = new_module("tuning")
    names = [_macro_kernel(module, dtype, option) for option in options]
    jit = _Jit(module)
    lanes = vector_bytes() // dtype.itemsize
    calls, madds, buffers = [], [], []
    for option, name in zip(options, names):
        fn = _MACRO(jit.engine.get_function_address(name))
        nr = option.nv * lanes
        kc = min(option.kc, depth)
        k = depth // kc * kc
        mc, nc = -(-rows // option.mr) * option.mr, -(-cols // nr) * nr
        a, b, c = (_aligned(n, dtype) for n in (mc * k, k * nc, mc * nc))
        buffers.append((a, b, c))
        calls.append(functools.partial(fn, a.ctypes.data, b.ctypes.data, c.ctypes.data,
                                       kc, mc, nc, k))
        madds.append(mc * nc * k)
    times = _interleaved(calls, _repeats(rows * cols * depth))
    per_madd = [t / f for t, f in zip(times, madds)]
    close = [i for i, t in enumerate(per_madd) if t <= min(per_madd) * _TIE]
    best = min(close, key=lambda i: ((options[i].mr + options[i].nv)
                                     / (options[i].mr * options[i].nv), -options[i].kc))
    return {"blocking": dataclasses.asdict(options[best]), "seconds_per_madd": per_madd}


def _measure_blas(dtype, shape_class) -> dict:
    """Seconds per product of the class's shape, one core: graphc's kernel, and the
    kernel that calls BLAS (both called alike, so only the product differs)."""
    rows, n, k, groups = shape_class
    library = blas.library()
    module = new_module("tuning")
    names = [MatmulRenderer(module, _product_kernel(name, dtype, rows, n, k, groups),
                            {"a": 0, "b": 1, "c": 2}, 1, None, blocking(dtype), use).render().name
             for name, use in (("graphc", None), ("blas", library))]
    jit = _Jit(module)
    a, b, c = _operands(dtype, rows, n, k, groups)
    calls = [_kernel_call(_KERNEL(jit.engine.get_function_address(name)), a, b, c,
                          groups * rows) for name in names]
    graphc_s, blas_s = _interleaved(calls, _repeats(groups * rows * n * k))
    return {"graphc_s": graphc_s, "blas_s": blas_s}


# ---- cached results -----------------------------------------------------------------------------
_measured: dict = {}


def _cached(what: str, measure) -> dict:
    """The record for ``what`` on this host: from memory, the disk cache, or ``measure()``
    (then stored in both)."""
    if what in _measured:
        return _measured[what]
    library = blas.library()
    entry = cache.key("matmul tuning", what, llvm.get_host_cpu_name(), host_features(),
                      ".".join(map(str, llvm.llvm_version_info)),
                      library.path if library else "no blas")
    stored = cache.load(entry, "json")
    record = json.loads(stored) if stored is not None else None
    if record is None:
        record = measure()
        cache.store(entry, "json", json.dumps(record).encode())
    _measured[what] = record
    return record


def blocking(dtype) -> Blocking:
    """The measured best blocking for float32 and float64; other dtypes (integers,
    half floats) take the blocking sized by the rules, unmeasured."""
    if dtype not in (dtypes.float32, dtypes.float64):
        return candidates(dtype)[0]
    record = _cached(f"blocking {dtype.name} of {candidates(dtype)}",
                     lambda: _search_blocking(dtype))
    return Blocking(**record["blocking"])


def shape_class(kernel: L.MatmulKernel) -> tuple:
    """(rows, columns, depth, groups), each rounded up to a power of two and capped, the
    groups so that a measurement stays under ``_CLASS_WORK`` multiply-adds."""
    outer, rows, _ = group_layout(kernel)
    groups = 1
    for d in range(outer):
        groups *= kernel.batch[d]
    r, n, k = (min(1 << max(x - 1, 0).bit_length(), _CLASS_CAP)
               for x in (rows, kernel.n, kernel.k))
    g = min(1 << max(groups - 1, 0).bit_length(), max(_CLASS_WORK // (r * n * k), 1))
    return r, n, k, g


@dataclass(frozen=True)
class Plan:
    """How a matmul kernel runs: graphc's loop nest with ``blocking``, or numpy's BLAS
    (``blas`` set); ``reason`` says why, for ``graphc.explain``."""
    blocking: Blocking
    blas: blas.Blas | None
    reason: str


def _shape_text(shape) -> str:
    rows, n, k, groups = shape
    return f"{rows}x{n}x{k}" + (f" x{groups}" if groups > 1 else "")


def plan(kernel: L.MatmulKernel) -> Plan:
    """The plan for ``kernel`` on this host (measuring its shape class on first use)."""
    tiles = blocking(kernel.dtype)
    library = blas.library()
    forced = os.environ.get("GRAPHC_MATMUL", "").strip().lower()
    if library is None:
        return Plan(tiles, None, "no BLAS library loaded")
    if blas_layout(kernel, library.index_bits) is None:
        return Plan(tiles, None, "operands or dtype not expressible for cblas")
    if forced in ("graphc", "blas"):
        return Plan(tiles, library if forced == "blas" else None, f"GRAPHC_MATMUL={forced}")
    if not (kernel.m and kernel.n and kernel.k and all(kernel.batch)):
        return Plan(tiles, None, "empty product")
    shape = shape_class(kernel)
    if math.prod(shape) <= _SMALL_WORK:
        return Plan(tiles, None, f"small product ({_shape_text(shape)}): not measured")
    record = _cached(f"blas {kernel.dtype.name} {shape} against {tiles!r}",
                     lambda: _measure_blas(kernel.dtype, shape))
    ratio = record["graphc_s"] / record["blas_s"]
    reason = f"measured BLAS {ratio:.2f}x graphc's kernel on a {_shape_text(shape)} product"
    return Plan(tiles, library if ratio > _BLAS_MARGIN else None, reason)


def describe(kernel: L.MatmulKernel) -> str:
    """One line for ``graphc.explain``: which code runs the matmul and why."""
    p = plan(kernel)
    how = (f"numpy BLAS {p.blas.gemm[kernel.dtype.name]}" if p.blas is not None
           else f"graphc kernel ({p.blocking})")
    size = "x".join(map(str, (*kernel.batch, kernel.m, kernel.n, kernel.k)))
    return f"{kernel.name} [{size}]: {how}; {p.reason}"
