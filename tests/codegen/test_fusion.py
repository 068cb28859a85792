"""Fusion and lowering: kernel counts for known patterns, the report, and the lowered
loop IR (run by the reference loop IR evaluator) against the graph interpreter."""
import numpy as np
import pytest

import graphc as torch
from graphc import nn
from graphc.targets.interpreter import compile_graph
from graphc.codegen.evaluate import run_program
from graphc.codegen.loops import format_program
from graphc.codegen.lower import lower
from graphc.passes import run_pipeline
from graphc.codegen.fusion import fuse
from graphc.codegen.memory import peak_bytes


def traced(fn, *args):
    return run_pipeline(torch.trace(fn, *args), check=True)


def kernels(fn, *args, fuse_ops=True):
    return fuse(traced(fn, *args), fuse_ops)


def test_elementwise_chain_is_one_kernel():
    x = torch.randn(8, 16)
    f = kernels(lambda x: (x * 0.8 + 0.1).tanh() * x.sigmoid() + x.exp(), x)
    assert len(f.groups) == 1
    assert f.boundaries == []


def test_softmax_and_layer_norm_are_one_kernel_each():
    x = torch.randn(8, 16)
    assert len(kernels(lambda x: torch.softmax(x, 1), x).groups) == 1
    assert len(kernels(lambda x: torch.softmax(x, 0), x).groups) == 1
    assert len(kernels(lambda x: nn.functional.layer_norm(x, (16,)), x).groups) == 1


def test_matmul_bias_relu_is_one_kernel():
    f = kernels(nn.Sequential(nn.Linear(4, 8), nn.ReLU()), torch.randn(5, 4))
    assert len(f.groups) == 1
    assert f.groups[0].kind == "matmul"
    assert [op.name for op in f.groups[0].ops][:2] == ["matmul", "add"]


def test_unfused_edges_are_explained():
    f = kernels(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), torch.randn(5, 4))
    assert len(f.groups) == 2
    assert len(f.boundaries) == 1
    value, op, reason = f.boundaries[0]
    assert op.name == "matmul" and "not fused" in reason
    report = f.report()
    assert "2 kernels" in report and "unfused edges" in report and reason in report


def test_fuse_false_gives_one_kernel_per_op():
    x = torch.randn(8, 16)
    g = traced(lambda x: torch.softmax(x, 1), x)
    f = fuse(g, False)
    assert len(f.groups) == len([op for op in g.ops if op.name != "constant"])
    assert all("fuse=False" in reason for _, _, reason in f.boundaries)


def test_a_reduction_over_other_axes_starts_a_new_kernel():
    x = torch.randn(8, 16)
    f = kernels(lambda x: x.sum(1, keepdim=True) + x.sum(0, keepdim=True), x)
    assert len(f.groups) >= 2
    assert [reason for _, _, reason in f.boundaries] == [
        "the op was fused with another of its producers instead"]


def test_fusion_never_creates_a_cycle():
    # b = f(a) is computed in another kernel, then a kernel reads both a and b.
    x = torch.randn(4, 6)

    def fn(x):
        a = x.exp()
        b = a.sum(1, keepdim=True)
        return a * b + a.t().sum(0).reshape(4, 1)
    f = kernels(fn, x)
    import networkx as nx
    dag = nx.DiGraph()
    for v, op, _ in f.boundaries:
        dag.add_edge(f.group_of[v].index, f.group_of[op.out].index)
    assert nx.is_directed_acyclic_graph(dag)
    # Kernels are ordered so that every kernel runs after those it reads.
    assert all(a < b for a, b in dag.edges)


def _differential(fn, *args, fuse_ops=True):
    compiled = torch.compile(fn)
    compiled(*args)
    entry = (compiled._compiled if hasattr(compiled, "_compiled")
             else compiled).programs()[0]
    graph = entry.graphs["forward"]
    arrays = []
    for source in entry.capture.sources:
        tensor = source.tensor_of(args)
        arrays.append(np.array(1234, np.int64) if tensor is None else tensor.detach().numpy())
    expected = compile_graph(graph)(arrays)
    program, _ = lower(graph, fuse_ops)
    got = run_program(program, arrays)
    assert len(got) == len(expected)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g.reshape(np.shape(e)), e, rtol=1e-5, atol=1e-6)
    return program


CASES = {
    "softmax rows": (lambda x: torch.softmax(x, 1), (4, 6)),
    "softmax cols": (lambda x: torch.softmax(x, 0), (4, 6)),
    "layer norm": (lambda x: nn.functional.layer_norm(x, (6,)), (4, 6)),
    "transcendental chain": (lambda x: (x * 0.8 + 0.1).tanh() * x.sigmoid(), (4, 6)),
    "views": (lambda x: x.t()[1:3] * 2 + x.sum(), (4, 6)),
    "max/argmax": (lambda x: x.max(1).values + x.argmax(0).float().sum(), (4, 6)),
    "cat/flip/step": (lambda x: torch.cat([x, x * 2], 1).flip(0)[:, ::2], (4, 6)),
    "pad": (lambda x: nn.functional.pad(x, (1, 2, 0, 1), value=3.0).exp(), (4, 6)),
    "cross entropy": (lambda x: nn.functional.cross_entropy(
        x, torch.tensor([0, 2, 1, 5])), (4, 6)),
    "scatter/index_add": (lambda x: torch.zeros(4, 6).scatter_add(
        1, torch.tensor([[0, 1, 1, 2, 3, 5]] * 4), x) + torch.zeros(4, 6).index_add(
        0, torch.tensor([1, 1, 3]), x[:3]), (4, 6)),
    "dropout": (lambda x: nn.functional.dropout(x, 0.5), (4, 6)),
    "matmuls": (lambda x: (x @ x.t()).sum(0) + torch.bmm(
        x.reshape(2, 2, 6), x.reshape(2, 6, 2)).reshape(8)[:4], (4, 6)),
    "zero-size": (lambda x: (x[:, :0].exp().sum(1) + 1), (4, 6)),
    "size-1 dims": (lambda x: (x.reshape(4, 1, 6) * x.reshape(1, 4, 6)).amax(1), (4, 6)),
}


@pytest.mark.parametrize("fuse_ops", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_lowered_program_matches_interpreter(name, fuse_ops):
    fn, shape = CASES[name]
    torch.manual_seed(0)
    _differential(fn, torch.randn(*shape), fuse_ops=fuse_ops)


@pytest.mark.slow
def test_models_lower_correctly():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    _differential(mlp, torch.randn(4, 6))
    cnn = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(12, 4))
    _differential(cnn, torch.randn(2, 2, 4, 4))


def test_memory_plan_reuses_dead_buffers():
    x = torch.randn(4, 6)

    def chain(x):   # three kernels in a row: the first temp is dead when the third runs
        a = x.sum(1, keepdim=True) * x
        b = a.sum(0, keepdim=True) * a
        c = b.sum(1, keepdim=True) * b
        return c.sum(0)
    program = _differential(chain, x)
    temps = [n for n, b in program.buffers.items() if b.kind == "temp"]
    assert len(temps) >= 2
    total = sum(program.buffers[n].size for n in temps)
    assert sum(program.arena_sizes.values()) < total
    assert peak_bytes(program) == 4 * sum(program.arena_sizes.values())


def test_loop_ir_prints():
    program, _ = lower(traced(lambda x: torch.softmax(x, 1), torch.randn(8, 16)))
    text = format_program(program)
    # float32 sums accumulate in float64 (lower.accumulator_dtype)
    assert "for p0 in 0..8:" in text and "max(" in text and "sum(cast<f64>(exp(" in text


@pytest.mark.slow
def test_generated_code_is_the_same_in_every_process():
    # Buffers are numbered in program order, not set order, so the LLVM IR (the disk
    # cache key) does not change from one process to the next.
    import subprocess
    import sys
    script = ("import hashlib, graphc as g; from graphc.codegen.lower import lower; "
              "from graphc.codegen.loops import format_program; "
              "from graphc.passes import run_pipeline; from graphc import nn; "
              "g.manual_seed(0); m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)); "
              "x = g.randn(5, 4); gr = run_pipeline(g.trace(lambda x: m(x).softmax(1), x)); "
              "print(hashlib.sha256(format_program(lower(gr)[0]).encode()).hexdigest())")
    runs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True).stdout for _ in range(2)}
    assert len(runs) == 1


def test_a_reduced_value_broadcast_along_another_axis_is_not_fused():
    """x.sum(1) of shape (n,) against x of (n, n) broadcasts along rows: the reduction
    kernel holds the sums per row, so the consumer needs its own kernel."""
    x = torch.randn(4, 4)
    f = kernels(lambda x: x.sum(1) - x, x)
    assert len(f.groups) == 2
    assert any("broadcasts the reduced value" in reason for _, _, reason in f.boundaries)
    kept = kernels(lambda x: x.sum(1, keepdim=True) - x, x)
    assert len(kept.groups) == 1
    same = kernels(lambda x: x.sum(0) - x, x)       # sums per column, read per column
    assert len(same.groups) == 1
