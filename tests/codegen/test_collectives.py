"""all_reduce and broadcast as ops of the IR, without MPI: how it prints, that passes keep it, where the
schedule and the lowering put its start and its wait, what the cpu backend renders for it,
and the reference evaluator against the interpreter.  A stand-in world (``Fake``) takes the
place of ``graphc.distributed``'s; tests/distributed runs the real thing under mpiexec."""
import numpy as np
import pytest

from graphc.codegen import loops as L
from graphc.codegen.evaluate import run_program
from graphc.codegen.fusion import fuse, schedule_collectives
from graphc.codegen.lower import lower
from graphc.ir import parse
from graphc.ops import collective
from graphc.passes.fold import fold_constants
from graphc.targets import interpreter

# The gradient of a layer (%g1) is ready early; the one of another (%g2) after a long
# chain.  The code asks for both all-reduces at the end, as DDP's hooks do.
TEXT = """graph step(%x: f32[64,64], %w1: f32[64,64], %w2: f32[64,64]) {
  %g1 = matmul(%x, %w1) : f32[64,64]
  %h = matmul(%g1, %w2) : f32[64,64]
  %t = tanh(%h) : f32[64,64]
  %g2 = matmul(%t, %w2) : f32[64,64]
  %r1 = all_reduce(%g1, op='sum') : f32[64,64]
  %r2 = all_reduce(%g2, op='max') : f32[64,64]
  %s = add(%r1, %r2) : f32[64,64]
  return %s, %t
}"""


# A buffer's broadcast before the forward (DDP's), read by the first op.
BROADCAST = """graph f(%x: f32[16], %b: f32[16]) {
  %c = broadcast(%b, src=1) : f32[16]
  %y = mul(%x, %c) : f32[16]
  return %y, %c
}"""


class Fake:
    """A world of one that says each reduction is 3 times the local value, and each
    broadcast the local value plus 1."""
    rank, size = 0, 1
    abi = (4, 4, 20)                  # MPICH's: int handles, int requests, 20-byte status
    handles = list(range(1, 2 + len(collective.DTYPES) + len(collective.MPI_OPS)))

    def all_reduce(self, array, op):
        return np.asarray(array) * 3

    def broadcast(self, array, src):
        return np.asarray(array) + 1


@pytest.fixture
def world():
    collective.attach(Fake())
    yield
    collective.attach(None)


def test_prints_and_parses_back():
    g = parse(TEXT)
    assert "%r1 = all_reduce(%g1, op='sum') : f32[64,64]" in str(g)
    assert parse(str(g)) == g


def test_refuses_what_mpi_cannot_reduce():
    from graphc.dtypes import TensorType, float16, float32
    with pytest.raises(RuntimeError, match="all_reduce: cannot reduce float16 across ranks"):
        collective.ALL_REDUCE.infer(TensorType((2,), float16), op="sum")
    with pytest.raises(RuntimeError, match=r"ReduceOp.BXOR needs an integer or bool tensor"):
        collective.ALL_REDUCE.infer(TensorType((2,), float32), op="bxor")
    with pytest.raises(RuntimeError, match="unknown reduction 'avg'"):
        collective.ALL_REDUCE.infer(TensorType((2,), float32), op="avg")


def test_never_folded():
    g = parse("""graph f() {
  %c = constant(value=[1.0, 2.0]) : f32[2]
  %r = all_reduce(%c, op='sum') : f32[2]
  return %r
}""")
    assert [op.name for op in fold_constants(g).ops] == ["constant", "all_reduce"]


def test_without_a_process_group_says_so():
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        interpreter.compile_graph(parse(TEXT))([np.ones((64, 64), np.float32)] * 3)


def test_the_schedule_starts_each_collective_once_its_operand_exists():
    order = [op.out.name for op in schedule_collectives(parse(TEXT)).ops]
    assert order.index("r1") == order.index("g1") + 1        # before %h, %t, %g2
    assert order.index("r2") == order.index("g2") + 1
    plain = parse(TEXT.replace("all_reduce", "neg").replace(", op='sum'", "").replace(
        ", op='max'", ""))
    assert schedule_collectives(plain) is plain       # nothing to move


def test_collectives_are_kernels_of_their_own():
    fusion = fuse(parse(TEXT))
    kinds = [g.kind for g in fusion.groups]
    assert kinds.count("collective") == 2
    assert all(len(g.ops) == 1 for g in fusion.groups if g.kind == "collective")


def test_each_wait_comes_before_the_first_reader_and_buffers_live_through_the_flight():
    program, _ = lower(parse(TEXT))
    kinds = [type(k).__name__ for k in program.kernels]
    first = kinds.index("Collective")
    # The first all-reduce is in flight while %h, %t and %g2 are computed.
    assert kinds[first + 1:first + 4].count("MatmulKernel") + \
        kinds[first + 1:first + 4].count("LoopKernel") >= 2, kinds
    waits = [i for i, k in enumerate(program.kernels) if isinstance(k, L.Wait)]
    reader = next(i for i, k in enumerate(program.kernels)
                  if isinstance(k, L.LoopKernel) and program.kernels[first].recv in k.inputs)
    assert waits[0] < reader and all(w < reader for w in waits)
    start = program.kernels[first]
    # No temporary written during the flight may share memory with its buffers.
    flight = program.kernels[first + 1:waits[0]]
    written = {n for k in flight for n in k.outputs if n in program.arena}
    mine = {n for n in (start.send, start.recv) if n in program.arena}

    def span(n):
        return range(program.arena[n], program.arena[n] + program.buffers[n].size)

    for a in mine:
        for b in written:
            assert not set(span(a)) & set(span(b)), (a, b)
    assert "start k" in L.format_program(program) and "wait wait_k" in \
        L.format_program(program)


@pytest.mark.parametrize("text, shapes", [(TEXT, [(64, 64)] * 3), (BROADCAST, [(16,)] * 2)])
def test_the_evaluator_and_the_interpreter_agree(world, text, shapes):
    g = parse(text)
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    want = interpreter.compile_graph(g)(inputs)
    got = run_program(lower(g)[0], inputs)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.reshape(b.shape), b, rtol=1e-4, atol=1e-3)
    assert not np.allclose(want[-1], inputs[-1] if text == BROADCAST else 0)


def test_the_cpu_entry_calls_mpi(world):
    from graphc.targets.cpu.render import render_program
    rendered = render_program(lower(parse(TEXT))[0])
    for entry in (rendered.entry, rendered.profiled):     # the same calls, timed
        # MPICH's handles are ints (Fake.abi): the declaration says so.
        assert 'declare i32 @"MPI_Iallreduce"(ptr %".1", ptr %".2", i32 %".3", i32 %".4", ' \
            'i32 %".5", i32 %".6", ptr %".7")' in entry
        assert entry.count("call i32 @\"MPI_Iallreduce\"") == 2
        assert entry.count("call i32 @\"MPI_Wait\"") == 2
        assert "call i32 @\"MPI_Test\"" in entry         # progress while in flight
        assert "@\"graphc_mpi_handles\" = external global [" in entry


def test_a_broadcast_copies_then_sends_in_place(world):
    from graphc.targets.cpu.render import render_program
    program = lower(parse(BROADCAST))[0]
    assert "start k0_broadcast: out_c = broadcast<src=1>(in1_b) [16 x float32]" in \
        L.format_program(program)
    entry = render_program(program).entry
    copy, send = entry.index('call void @"llvm.memcpy'), entry.index('call i32 @"MPI_Ibcast"')
    assert copy < send and ", i64 64, i1 0)" in entry          # 16 floats
    assert "i32 16, i32 %" in entry[send:] and ", i32 1, i32 %" in entry[send:]   # root 1


def test_the_cuda_backends_refuse_collectives_by_name():
    from graphc.targets.cuda import compile_graph_cuda_emulated
    with pytest.raises(NotImplementedError, match="cannot run collectives yet .all_reduce"):
        compile_graph_cuda_emulated(parse(TEXT))
