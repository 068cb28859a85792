"""The matmul kernel of the cpu backend: a BLIS-style loop nest, or a call to numpy's BLAS.

Blocks of A and B are packed into aligned scratch (so any strides work: transposed and
broadcast operands included), a register-tiled micro-kernel accumulates a tile of C in
vector registers, and the fused epilogue runs on each tile when its last depth block is
done.  The sizes (``Blocking``) come from the host (``tuning.py``).  Where ``tuning``
measured numpy's BLAS faster for the shape, the kernel instead calls its ``?gemm`` on
each group of rows (operands as cblas row- or column-major with leading dimensions:
``blas_layout``) and runs the epilogue over the result.
``MatmulRenderer(module, kernel, slots, code, scopes, blocking, blas).render()`` returns
the kernel's function, with the signature of every kernel (see ``kernel.py``).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import llvmlite.ir as ir

from graphc import dtypes
from graphc.targets.cpu.kernel import (F32, F64, I32, I64, PTR, VOID, KernelFunction,
                                        _suffix, declare, for_range, i64, imax, imin,
                                        intrinsic, raise_flag, value_type, vector_bytes)
from graphc.codegen import loops as L
from graphc.targets.cpu.blas import LOCAL_THREADS, NO_TRANS, ROW_MAJOR, TRANS


@dataclass(frozen=True)
class Blocking:
    """The loop nest's sizes: an ``mr`` x ``nv`` vectors register tile, packed blocks of
    depth ``kc`` (a B micro-panel, kc x NR, stays in L1), A blocks (MC x kc) of at most
    ``a_bytes`` (in L2) and B blocks (kc x NC) of at most ``b_bytes`` (in L3)."""
    mr: int
    nv: int
    kc: int
    a_bytes: int
    b_bytes: int

    def __str__(self):
        return f"{self.mr}x{self.nv}v tile, kc {self.kc}"


def group_layout(k: L.MatmulKernel):
    """(number of outer batch dims, rows per group, A's row stride in a group): the inner
    batch dims along which B does not move and A's rows continue are merged into the
    rows of one group, so a linear layer on a (batch, seq, features) input is one
    matrix product whose B is packed once."""
    rows, row_stride, outer = k.m, (k.a.row_stride if k.m > 1 else None), len(k.batch)
    for d in reversed(range(len(k.batch))):
        size, sa = k.batch[d], k.a.batch_strides[d]
        if size != 1:
            if k.b.batch_strides[d] != 0 or (row_stride is not None and sa != rows * row_stride):
                break
            row_stride = sa if row_stride is None else row_stride
            rows *= size
        outer = d
    return outer, rows, (k.a.row_stride if row_stride is None else row_stride)


def blas_layout(k: L.MatmulKernel, index_bits: int = 64):
    """How row-major cblas sees a group's operands: ((transpose A, lda), (transpose B,
    ldb)), or None when graphc's kernel must run it: no BLAS for the dtype, no output of
    the dtype to hold the product, a stride that is neither row- nor column-major (a
    broadcast or strided matrix dim), or a size beyond the library's integers."""
    if k.dtype not in (dtypes.float32, dtypes.float64) or \
            not any(v.dtype is k.dtype for _, v in k.stores):
        return None
    _, rows, a_row_stride = group_layout(k)
    a = _cblas_operand(rows, k.k, a_row_stride, k.a.col_stride)
    b = _cblas_operand(k.k, k.n, k.b.row_stride, k.b.col_stride)
    if a is None or b is None or max(rows, k.n, k.k, a[1], b[1]) >= 1 << (index_bits - 1):
        return None
    return a, b


def _cblas_operand(rows, cols, row_stride, col_stride):
    """(NO_TRANS or TRANS, leading dimension) of a rows x cols matrix with these strides
    (a stride along a dim of size 1 is free), or None when it is neither layout."""
    if cols == 1 or col_stride == 1:
        lead = row_stride if rows > 1 else cols
        if lead >= cols:
            return NO_TRANS, lead
    if rows == 1 or row_stride == 1:
        lead = col_stride if cols > 1 else rows
        if lead >= rows:
            return TRANS, lead
    return None


def _round_up(x: int, step: int) -> int:
    return -(-x // step) * step


def _is_plain_acc(value, dtype) -> bool:
    return isinstance(value, L.Acc) and value.name == "acc" and value.dtype is dtype


def uses_blas(kernel: L.MatmulKernel, blas) -> bool:
    """Whether ``kernel`` is rendered as calls to ``blas`` (a ``blas.Blas``, or None):
    a product with work to do whose operands cblas can read."""
    return (blas is not None and bool(kernel.n and kernel.m and kernel.k and all(kernel.batch))
            and blas_layout(kernel, blas.index_bits) is not None)


class MatmulRenderer:
    """BLIS's loop nest: for each column block (NC) and depth block (KC), pack B into
    NR-wide panels; for each row block (MC), pack A into MR-high panels; then an MR x NR
    register tile (``blocking.nv`` vectors wide, along j) accumulates over the block's
    depth with fused multiply-adds.  Packing makes any strides (transposed, broadcast)
    contiguous.  With ``blas`` (a ``blas.Blas``) and operands cblas can read, the
    product is BLAS's instead (``_blas_groups``).

    Partial sums over depth blocks live in the first output of the kernel's dtype; the
    epilogue runs on a tile when its last depth block is done.  Without such an output
    (say only a bool result) the whole depth is one block."""

    def __init__(self, module, kernel: L.MatmulKernel, slots: dict, code: int, scopes,
                 blocking: Blocking, blas=None):
        if kernel.dtype is dtypes.bool_:
            raise ValueError(f"cpu backend: matmul {kernel.name} of bool operands is not "
                             f"supported")
        self.k = kernel
        self.dtype, self.vt = kernel.dtype, value_type(kernel.dtype)
        lanes = vector_bytes() // kernel.dtype.itemsize
        self.vec = ir.VectorType(self.vt, lanes)
        self.outer, self.rows, self.a_row_stride = group_layout(kernel)
        # The register tile, narrower for few rows or columns so little work is wasted.
        self.mr = max(min(blocking.mr, self.rows), 1)
        self.nr = min(blocking.nv, max(-(-kernel.n // lanes), 1)) * lanes
        self.partial = next((buf for buf, v in kernel.stores if v.dtype is kernel.dtype), None)
        self.epilogue = [(buf, v) for buf, v in kernel.stores
                         if not (buf == self.partial and _is_plain_acc(v, kernel.dtype))]
        size = kernel.dtype.itemsize
        self.kc = max(min(blocking.kc if self.partial else kernel.k, kernel.k), 1)
        self.nc = min(max(blocking.b_bytes // (self.kc * size) // self.nr, 1) * self.nr,
                      _round_up(kernel.n, self.nr))
        self.mc = min(max(blocking.a_bytes // (self.kc * size) // self.mr, 1) * self.mr,
                      _round_up(self.rows, self.mr))
        self.blas = blas if uses_blas(kernel, blas) else None
        self.kf = KernelFunction(module, kernel.name, slots, scopes)
        self.b, self.code = self.kf.b, code

    def render(self) -> ir.Function:
        k = self.k
        if self.blas is not None:
            self._blas_groups()
        elif k.n and k.m and all(k.batch):
            if not k.k:
                self._zero_depth()
            else:
                self._blocked()
        return self.kf.finish()

    # ---- the epilogue -------------------------------------------------------------------
    @contextmanager
    def _row(self, row):
        """Bind the loop variables b0, b1, ..., i of a flat output row."""
        b, k, emit = self.b, self.k, self.kf.emit
        names = [("i", k.m)] + [(f"b{d}", n) for d, n in reversed(list(enumerate(k.batch)))]
        for name, extent in names:
            emit.env[name] = b.srem(row, i64(extent))
            row = b.sdiv(row, i64(extent))
        with emit.scope():
            yield
        for name, _ in names:
            del emit.env[name]

    def _store_epilogue(self, stores, row, col, acc):
        emit = self.kf.emit
        emit.accs["acc"] = lambda: (acc, self.dtype)
        at = self.b.add(self.b.mul(row, i64(self.k.n), flags=("nsw",)), col, flags=("nsw",))
        # Every value before any store: a store may go to the partial-sum buffer, which
        # shares its alias scope with the accumulator's load, so loads after it could
        # not share the subexpressions the values have in common.
        values = [emit.scalar(value) for _, value in stores]
        for (buf, value), result in zip(stores, values):
            emit.store(result, buf, at, value.dtype)

    def _zero_depth(self):
        """k == 0: every output is the epilogue of a zero sum."""
        with for_range(self.b, self.kf.start, self.kf.stop, name="row") as row, \
                self._row(row), for_range(self.b, 0, self.k.n, name="j") as j, \
                self.kf.emit.bind("j", j):
            self._store_epilogue(self.k.stores, row, j, ir.Constant(self.vt, 0))

    # ---- blocking --------------------------------------------------------------------------
    def _blocked(self):
        b, kf, size = self.b, self.kf, self.dtype.itemsize
        malloc = declare(b.module, "aligned_alloc", PTR, [I64, I64])
        free = declare(b.module, "free", VOID, [PTR])
        a_pack = b.call(malloc, [i64(64), i64(_round_up(self.mc * self.kc * size, 64))])
        b_pack = b.call(malloc, [i64(64), i64(_round_up(self.kc * self.nc * size, 64))])
        tile = kf.alloca(self.vt, count=self.mr * self.nr, name="tile", align=64)
        failed = b.or_(b.icmp_unsigned("==", a_pack, ir.Constant(PTR, None)),
                       b.icmp_unsigned("==", b_pack, ir.Constant(PTR, None)))
        with b.if_else(failed, likely=False) as (then, otherwise):
            with then:
                raise_flag(b, kf.flag, -self.code)
            with otherwise:
                self._groups(a_pack, b_pack, tile)
        b.call(free, [a_pack])
        b.call(free, [b_pack])

    @contextmanager
    def _each_group(self):
        """A loop over the row groups [start, stop) reaches (groups share operand bases;
        the range may cut through them): binds (the group's first row, its rows [lo, hi)
        within the range, A's base, B's base)."""
        b, kf, g_rows = self.b, self.kf, self.rows
        first = b.sdiv(kf.start, i64(g_rows))
        last = b.sdiv(b.add(kf.stop, i64(g_rows - 1)), i64(g_rows))
        with for_range(b, first, last, name="group") as g:
            row0 = b.mul(g, i64(g_rows), flags=("nsw",))
            lo = imax(b, b.sub(kf.start, row0), i64(0))
            hi = imin(b, b.sub(kf.stop, row0), i64(g_rows))
            yield (row0, lo, hi, *self._bases(g))

    def _groups(self, a_pack, b_pack, tile):
        with self._each_group() as (row0, lo, hi, a_base, b_base):
            self._gemm(a_pack, b_pack, tile, row0, lo, hi, a_base, b_base)

    def _blas_groups(self):
        """Each group's rows of [start, stop) in one ``?gemm`` call that writes the
        product into the partial-sum output; then the epilogue runs over those rows.
        The calls run on this thread alone (graphc's pool splits the rows): the
        program's entry sets OpenBLAS to one thread around its kernels
        (``render.render_program``), and the setting is made here too, for a build
        where it is per thread (it is one process-wide value in numpy's wheels, so the
        kernels running at once cannot each save and restore it)."""
        b, kf, k = self.b, self.kf, self.k
        (trans_a, lda), (trans_b, ldb) = blas_layout(k, self.blas.index_bits)
        index = ir.IntType(self.blas.index_bits)
        gemm = declare(b.module, self.blas.gemm[k.dtype.name], VOID,
                       [I32, I32, I32, index, index, index, self.vt, PTR, index, PTR, index,
                        self.vt, PTR, index])
        b.call(declare(b.module, LOCAL_THREADS, I32, [I32]), [ir.Constant(I32, 1)])
        with self._each_group() as (row0, lo, hi, a_base, b_base):
            a_at = b.add(a_base, b.mul(lo, i64(self.a_row_stride)))
            c_row = b.add(row0, lo)
            rows = b.sub(hi, lo)
            b.call(gemm, [ir.Constant(I32, ROW_MAJOR), ir.Constant(I32, trans_a),
                          ir.Constant(I32, trans_b), b.trunc(rows, index) if index != I64
                          else rows, ir.Constant(index, k.n), ir.Constant(index, k.k),
                          ir.Constant(self.vt, 1.0), self._at(kf.pointer(k.a.buffer), a_at),
                          ir.Constant(index, lda), self._at(kf.pointer(k.b.buffer), b_base),
                          ir.Constant(index, ldb), ir.Constant(self.vt, 0.0),
                          self._at(kf.pointer(self.partial), b.mul(c_row, i64(k.n))),
                          ir.Constant(index, k.n)])
            if self.epilogue:
                self._tile_epilogue(None, c_row, i64(0), rows, i64(k.n))

    def _bases(self, g):
        b, k = self.b, self.k
        a_base, b_base = i64(k.a.offset), i64(k.b.offset)
        for d in reversed(range(self.outer)):
            bd = b.srem(g, i64(k.batch[d]))
            g = b.sdiv(g, i64(k.batch[d]))
            a_base = b.add(a_base, b.mul(bd, i64(k.a.batch_strides[d])))
            b_base = b.add(b_base, b.mul(bd, i64(k.b.batch_strides[d])))
        return a_base, b_base

    def _gemm(self, a_pack, b_pack, tile, row0, lo, hi, a_base, b_base):
        b, k = self.b, self.k
        micro = micro_kernel(b.module, self.vec, self.mr, self.nr)
        with for_range(b, 0, k.n, self.nc, name="jc") as jc:
            nc = imin(b, i64(self.nc), b.sub(i64(k.n), jc))
            with for_range(b, 0, k.k, self.kc, name="pc") as pc:
                kc = imin(b, i64(self.kc), b.sub(i64(k.k), pc))
                self._pack(b_pack, k.b.buffer, self._offset(b_base, pc, k.b.row_stride, jc,
                                                            k.b.col_stride),
                           kc, nc, self.nr, k.b.row_stride, k.b.col_stride)
                with for_range(b, lo, hi, self.mc, name="ic") as ic:
                    mc = imin(b, i64(self.mc), b.sub(hi, ic))
                    self._pack(a_pack, k.a.buffer, self._offset(a_base, ic, self.a_row_stride,
                                                                pc, k.a.col_stride),
                               kc, mc, self.mr, k.a.col_stride, self.a_row_stride)
                    with for_range(b, 0, nc, self.nr, name="jr") as jr, \
                            for_range(b, 0, mc, self.mr, name="ir") as ir_:
                        b.call(micro, [self._at(a_pack, b.mul(ir_, kc)),
                                       self._at(b_pack, b.mul(jr, kc)), kc, tile])
                        row = b.add(row0, b.add(ic, ir_))
                        col = b.add(jc, jr)
                        mr = imin(b, i64(self.mr), b.sub(mc, ir_))
                        nr = imin(b, i64(self.nr), b.sub(nc, jr))
                        self._finish_tile(tile, row, col, mr, nr, pc, kc)

    def _offset(self, base, i, i_stride, j, j_stride):
        b = self.b
        return b.add(base, b.add(b.mul(i, i64(i_stride)), b.mul(j, i64(j_stride))))

    def _at(self, ptr, offset):
        return self.b.gep(ptr, [offset], inbounds=True, source_etype=self.vt)

    def _pack(self, dst, buffer, base, depth, count, width, depth_stride, stride):
        """Copy ``count`` (<= block) vectors of length ``depth`` into panels of ``width``:
        ``dst[(q // width) * depth * width + p * width + q % width] = src[base + p *
        depth_stride + q * stride]``; the last panel is padded with zeros."""
        b = self.b
        full = b.sdiv(count, i64(width))
        with for_range(b, 0, full, name="panel") as panel:
            self._pack_panel(dst, buffer, base, depth, panel, width, depth_stride, stride, None)
        rest = b.sub(count, b.mul(full, i64(width)))
        with b.if_then(b.icmp_signed(">", rest, i64(0))):
            self._pack_panel(dst, buffer, base, depth, full, width, depth_stride, stride, rest)

    def _pack_panel(self, dst, buffer, base, depth, panel, width, depth_stride, stride, valid):
        """One panel, depth-major: the inner loop over the panel's width has a constant
        trip count, so it unrolls into straight vector or scalar copies."""
        b, src = self.b, self.kf.pointer(buffer)
        start = b.add(base, b.mul(panel, i64(width * stride)))
        out = b.mul(b.mul(panel, depth), i64(width))
        with for_range(b, 0, depth, name="p") as p, for_range(b, 0, width, name="q") as q:
            qq = q if valid is None else imin(b, q, b.sub(valid, i64(1)))
            at = b.add(start, b.add(b.mul(p, i64(depth_stride)), b.mul(qq, i64(stride))))
            value = b.load(self._at(src, at), typ=self.vt)
            if valid is not None:
                value = b.select(b.icmp_signed("<", q, valid), value, ir.Constant(self.vt, 0))
            b.store(value, self._at(dst, b.add(out, b.add(b.mul(p, i64(width)), q))))

    def _finish_tile(self, tile, row, col, mr, nr, pc, kc):
        """Add the tile to the partial sums; run the epilogue after the last block."""
        b = self.b
        if self.partial is not None:
            first = b.icmp_signed("==", pc, i64(0))
            with b.if_else(first) as (then, otherwise):
                with then:
                    self._write_tile(tile, row, col, mr, nr, accumulate=False)
                with otherwise:
                    self._write_tile(tile, row, col, mr, nr, accumulate=True)
        if self.epilogue:
            last = b.icmp_signed("==", b.add(pc, kc), i64(self.k.k))
            with b.if_then(last):
                self._tile_epilogue(tile, row, col, mr, nr)

    def _write_tile(self, tile, row, col, mr, nr, accumulate):
        b = self.b
        with for_range(b, 0, mr, name="r") as r, for_range(b, 0, nr, name="c") as c:
            value = b.load(self._at(tile, b.add(b.mul(r, i64(self.nr)), c)), typ=self.vt)
            at = b.add(b.mul(b.add(row, r), i64(self.k.n)), b.add(col, c))
            self.kf.emit.store(value, self.partial, at, self.dtype, accumulate)

    def _tile_epilogue(self, tile, row, col, mr, nr):
        b, emit = self.b, self.kf.emit
        with for_range(b, 0, mr, name="r") as r:
            out_row = b.add(row, r)
            with self._row(out_row), for_range(b, 0, nr, name="c") as c:
                out_col = b.add(col, c)
                with emit.bind("j", out_col):
                    if self.partial is not None:
                        at = b.add(b.mul(out_row, i64(self.k.n)), out_col)
                        acc = b.load(emit.address(self.partial, at, self.dtype), typ=self.vt)
                    else:
                        acc = b.load(self._at(tile, b.add(b.mul(r, i64(self.nr)), c)),
                                     typ=self.vt)
                    self._store_epilogue(self.epilogue, out_row, out_col, acc)


def micro_kernel(module, vec, mr, nr) -> ir.Function:
    """``tile[mr][nr] = sum_p a[p][mr] (outer) b[p][nr]`` over packed panels, the tile
    held in mr * nr / lanes vector registers; fn(a panel, b panel, depth >= 1, tile)."""
    name = f"graphc.micro.{mr}x{nr}.{_suffix(vec.element)}"
    if name in module.globals:
        return module.globals[name]
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, PTR, I64, PTR]), name)
    fn.linkage = "internal"
    a, bp, depth, tile = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    loop, done = fn.append_basic_block("loop"), fn.append_basic_block("done")
    lanes, et = vec.count, vec.element
    nv = nr // lanes
    b.branch(loop)
    b.position_at_end(loop)
    p = b.phi(I64, name="p")
    p.add_incoming(i64(0), fn.entry_basic_block)
    accs = [[b.phi(vec, name=f"c{r}_{v}") for v in range(nv)] for r in range(mr)]
    for row in accs:
        for acc in row:
            acc.add_incoming(ir.Constant(vec, None), fn.entry_basic_block)
    b_row = b.mul(p, i64(nr))
    align = vector_bytes()          # panels and the tile are 64-byte aligned, rows vector-wide
    bs = [b.load(b.gep(bp, [b.add(b_row, i64(v * lanes))], inbounds=True, source_etype=et),
                 typ=vec, align=align) for v in range(nv)]
    a_row = b.mul(p, i64(mr))
    zeros = ir.Constant(ir.VectorType(I32, lanes), None)
    news = [[None] * nv for _ in range(mr)]
    for r in range(mr):
        x = b.load(b.gep(a, [b.add(a_row, i64(r))], inbounds=True, source_etype=et), typ=et)
        x = b.shuffle_vector(b.insert_element(ir.Constant(vec, ir.Undefined), x,
                                              ir.Constant(I32, 0)),
                             ir.Constant(vec, ir.Undefined), zeros)
        for v in range(nv):
            news[r][v] = (intrinsic(b, "fma", x, bs[v], accs[r][v]) if et in (F32, F64)
                          else b.add(b.mul(x, bs[v]), accs[r][v]))
            accs[r][v].add_incoming(news[r][v], loop)
    following = b.add(p, i64(1))
    p.add_incoming(following, loop)
    b.cbranch(b.icmp_signed("<", following, depth), loop, done)
    b.position_at_end(done)
    for r in range(mr):
        for v in range(nv):
            ptr = b.gep(tile, [i64(r * nr + v * lanes)], inbounds=True, source_etype=et)
            b.store(news[r][v], ptr, align=align)
    b.ret_void()
    return fn


# ---- programs --------------------------------------------------------------------------------
