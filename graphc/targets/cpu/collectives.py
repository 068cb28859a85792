"""Collectives in generated code: the program's ``entry`` calls the MPI library itself.

A ``loops.Collective`` becomes ``MPI_Iallreduce(send, recv, count, datatype, op, comm,
&requests[slot])`` (a broadcast: ``recv`` = ``send``, then ``MPI_Ibcast(recv, count,
datatype, root, comm, &requests[slot])``) and its ``loops.Wait`` ``MPI_Wait(&requests[slot],
&status)``; the
kernels between them run while the data travels.  MPI moves a nonblocking collective on
only inside its calls (MPICH has no progress thread by default), so after each kernel the
entry calls ``MPI_Test`` once, on the oldest request it has not seen complete, and the
reduction advances while the backward goes on instead of all at the wait.

The generated code depends on the MPI library only through the sizes of its handle,
request and status types (``World.abi``: MPICH's handles are 4-byte ints, Open MPI's
pointers), so the object code is cached on disk like any other.  Handle values are read
at run time from ``graphc_mpi_handles``, an int64 table this module owns and fills from
the attached world (``graphc.distributed.native.World.handles``), whose layout is fixed:
the communicator, one datatype per ``collective.DTYPES``, one operation per
``collective.MPI_OPS``.  An MPI call that returns an error is recorded in the program's
error record (``loops.MPI_ERROR``), so the call raises instead of going on.
"""
from __future__ import annotations

import ctypes

import llvmlite.ir as ir

from graphc.codegen import loops as L
from graphc.ops import collective
from graphc.targets.cpu.kernel import I8, I32, I64, PTR, VOID, declare, i64, raise_flag

I1 = ir.IntType(1)

HANDLES_SYMBOL = "graphc_mpi_handles"
_OPS_AT = 1 + len(collective.DTYPES)
HANDLES = (ctypes.c_int64 * (_OPS_AT + len(collective.MPI_OPS)))()


def register_symbols(world) -> None:
    """Fill the handle table from ``world`` and make it and the MPI functions visible to
    the JIT's linker (called before linking a program with collectives)."""
    import llvmlite.binding as llvm
    for i, handle in enumerate(world.handles):
        HANDLES[i] = handle
    llvm.add_symbol(HANDLES_SYMBOL, ctypes.addressof(HANDLES))
    for name, address in world.functions.items():
        llvm.add_symbol(name, address)


def uses_mpi(program: L.Program) -> bool:
    return any(isinstance(k, L.Collective) for k in program.kernels)


def signature(program: L.Program) -> str:
    """What every rank must agree on before a call: the program's collectives in order."""
    return f"compiled program {program.name} with " + ", ".join(
        k.describe() for k in program.kernels if isinstance(k, L.Collective))


class MPICalls:
    """The MPI calls of one program's ``entry``: ``start`` and ``wait`` for its
    collectives, ``progress`` after each kernel."""

    def __init__(self, module, allocas, program: L.Program, abi):
        handle_bytes, request_bytes, status_bytes = abi
        self.handle = ir.IntType(8 * handle_bytes)
        handle = self.handle
        self.iallreduce = declare(module, "MPI_Iallreduce", I32,
                                  [PTR, PTR, I32, handle, handle, handle, PTR])
        self.ibcast = declare(module, "MPI_Ibcast", I32, [PTR, I32, handle, I32, handle, PTR])
        self.wait_fn = declare(module, "MPI_Wait", I32, [PTR, PTR])
        self.test_fn = declare(module, "MPI_Test", I32, [PTR, PTR, PTR])
        self.table = ir.GlobalVariable(module, ir.ArrayType(I64, len(HANDLES)), HANDLES_SYMBOL)
        slots = sum(isinstance(k, L.Collective) for k in program.kernels)
        self.request_type = ir.IntType(8 * request_bytes)
        self.requests = allocas.alloca(ir.ArrayType(self.request_type, slots), name="requests")
        self.status = allocas.alloca(ir.ArrayType(I8, status_bytes), name="status")
        self.status.align = 8
        # done[slot]: what MPI_Test last said of the request (set to 0 when it starts)
        self.done = allocas.alloca(ir.ArrayType(I32, max(slots, 1)), name="done")
        self.flying: list = []             # slots started and not yet waited for

    def _handle(self, b, index: int):
        value = b.load(b.gep(self.table, [i64(0), i64(index)], inbounds=True), typ=I64)
        return value if self.handle.width == 64 else b.trunc(value, self.handle)

    def _request(self, b, slot: int):
        return b.gep(self.requests, [i64(0), i64(slot)], inbounds=True)

    def _done(self, b, slot: int):
        return b.gep(self.done, [i64(0), i64(slot)], inbounds=True)

    def _checked(self, b, rc, flag) -> None:
        failed = b.icmp_signed("!=", rc, ir.Constant(I32, 0))
        with b.if_then(failed, likely=False):
            raise_flag(b, flag, L.MPI_ERROR, b.sext(rc, I64))

    def start(self, b, kernel: L.Collective, send, recv, flag) -> None:
        if kernel.count >= 2 ** 31:
            raise ValueError(f"{kernel.name}: MPI takes at most 2**31 - 1 elements, this "
                             f"{kernel.call} has {kernel.count}")
        count = ir.Constant(I32, kernel.count)
        datatype = self._handle(b, 1 + collective.DTYPES.index(kernel.dtype))
        request = self._request(b, kernel.slot)
        if kernel.call == "broadcast":      # in place in recv, which starts as send
            intrinsic = declare(b.module, "llvm.memcpy.p0.p0.i64", VOID, [PTR, PTR, I64, I1])
            b.call(intrinsic, [recv, send, i64(kernel.count * kernel.dtype.itemsize),
                               ir.Constant(I1, 0)])
            rc = b.call(self.ibcast, [recv, count, datatype, ir.Constant(I32, kernel.root),
                                      self._handle(b, 0), request])
        else:
            op = self._handle(b, _OPS_AT + collective.MPI_OPS.index(
                collective.mpi_op(kernel.op, kernel.dtype)))
            rc = b.call(self.iallreduce, [send, recv, count, datatype, op, self._handle(b, 0),
                                          request])
        self._checked(b, rc, flag)
        b.store(ir.Constant(I32, 0), self._done(b, kernel.slot))
        self.flying.append(kernel.slot)

    def wait(self, b, kernel: L.Wait, flag) -> None:
        rc = b.call(self.wait_fn, [self._request(b, kernel.slot), self.status])
        self._checked(b, rc, flag)
        self.flying.remove(kernel.slot)

    def progress(self, b) -> None:
        """Let MPI move the collectives in flight on: one ``MPI_Test`` of the oldest
        request not yet seen complete (MPI's progress engine is global, so one call moves
        every request on; a completed request is null, and testing it would not)."""
        if not self.flying:
            return
        after = b.append_basic_block("progressed")
        for slot in self.flying:
            pending = b.icmp_signed("==", b.load(self._done(b, slot), typ=I32),
                                    ir.Constant(I32, 0))
            test, skip = b.append_basic_block(f"test{slot}"), b.append_basic_block()
            b.cbranch(pending, test, skip)
            b.position_at_end(test)
            b.call(self.test_fn, [self._request(b, slot), self._done(b, slot), self.status])
            b.branch(after)
            b.position_at_end(skip)
        b.branch(after)
        b.position_at_end(after)
