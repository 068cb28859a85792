"""The cuda backend on a machine without a GPU.

- The generated CUDA C of every kind of kernel compiles with nvcc (skipped without nvcc).
- The same CUDA C, compiled for the CPU against shim.h (backend ``cuda-emulate``), gives
  the interpreter's results: every scalar op and dtype, every accumulator, the fused
  composites, training graphs from ``graphc.compile``, dropout bit for bit.
- The emulator itself: barriers, warp shuffles, a deadlock reported, the disk cache.
- The PyCUDA runtime, run against a stand-in driver whose kernels are the emulator's
  (``fake_cuda.py``), and ``compile_graph_cuda``'s error where PyCUDA or a GPU is
  missing.
"""
import ctypes
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import graphc
import graphc.composite as C
from graphc import targets, dtypes, nn
from graphc.targets.cuda import compile_graph_cuda, compile_graph_cuda_emulated, emulate, \
    render
from graphc.targets.interpreter import compile_graph
from graphc.codegen.lower import lower
from graphc.dispatch import bind
from graphc.ops import REGISTRY as P
from graphc.ops.random import _uniform_impl
from graphc.passes import run_pipeline

from cuda_samples import F32, SAMPLES, _train, assert_same, graph_inputs, tensor, traced

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def check_emulated(fn, *inputs, fuse=True):
    """fn traced on inputs: emulated CUDA == interpreter, output by output."""
    graph = traced(fn, *inputs)
    arrays = graph_inputs(graph, inputs)
    expected = compile_graph(graph)(arrays)
    got = compile_graph_cuda_emulated(graph, fuse=fuse)(arrays)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert_same(g, e)
    return got


# ---- nvcc ------------------------------------------------------------------------------------
def one_translation_unit(sources) -> str:
    """Several programs' kernels behind one prelude, renamed apart: one nvcc call."""
    parts = [render.prelude()]
    for k, source in enumerate(sources):
        for launch, text in zip(source.launches, source.kernels):
            parts.append(text.replace(f" void {launch.kernel}(", f" void p{k}_{launch.kernel}("))
    return "\n\n".join(parts)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_generated_cuda_compiles_with_nvcc(tmp_path):
    sources = []
    for fn, inputs in SAMPLES.values():
        program, _ = lower(traced(fn, *inputs), True, "sample")
        sources.append(render.render_program(program, render.GPU))
    text = one_translation_unit(sources)
    for construct in ("gc::block_reduce", "gc::ArgBest<true>", "gc::checked_index", "_partial",
                      "reinterpret_cast<const float4 *>", "reinterpret_cast<double2 *>",
                      "reinterpret_cast<uchar4 *>",
                      "gc::uniform_f32", "a_tile", "+=", "gridDim.x * blockDim.x"):
        assert construct in text, construct
    path = tmp_path / "samples.cu"
    path.write_text(text)
    done = subprocess.run(["nvcc", "-cubin", "-arch=sm_80", "-o", str(tmp_path / "samples.o"),
                           str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_elementwise_kernels_use_vector_memory_instructions(tmp_path):
    """Contiguous elementwise kernels index with ``item`` (no division into loop
    variables), and the PTX nvcc makes of them has 16-byte loads and stores."""
    fn = lambda x, y: ((x * y).exp(), x.double() * 2, x > y)            # noqa: E731
    program, _ = lower(traced(fn, tensor(np.ones((64, 100)), np.float32),
                              tensor(np.ones((64, 100)), np.float32)), True, "vectorised")
    source = render.render_program(program, render.GPU)
    code = [line for kernel in source.kernels for line in kernel.splitlines()
            if not line.lstrip().startswith("//")]
    assert not any("/" in line or "%" in line for line in code)
    path = tmp_path / "vectorised.cu"
    path.write_text(source.text)
    done = subprocess.run(["nvcc", "-ptx", "-arch=sm_80", "-o", str(tmp_path / "v.ptx"),
                           str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    ptx = (tmp_path / "v.ptx").read_text()
    for instruction in (r"ld\.global(\.nc)?\.v4\.f32", r"st\.global\.v4\.f32",
                        r"st\.global\.v2\.f64", r"st\.global\.v4\.u8"):
        assert re.search(instruction, ptx), instruction


def test_flat_positions_are_recognised_in_lowered_kernels():
    from graphc.targets.cuda.render import is_flat, loads_of
    x, b = tensor(np.ones((3, 1, 8)), np.float32), tensor(np.ones(8), np.float32)
    y = tensor(np.ones((8, 3)), np.float32)
    program, _ = lower(traced(lambda x, b, y: (x * 2 + b, y.t() + 1), x, b, y), True)
    flat = {}
    for kernel in program.kernels:
        for stmt in kernel.body:
            flat[stmt.buffer] = is_flat(stmt.offset, kernel.parallel)
            for load in loads_of(stmt.value, set()):
                flat[(kernel.name, load.buffer)] = is_flat(load.offset, kernel.parallel)
    first, second = [k.name for k in program.kernels]
    x_name, b_name, y_name = program.inputs
    assert all(flat[o] for o in program.outputs)                     # every store contiguous
    assert flat[(first, x_name)] and not flat[(first, b_name)]       # b is broadcast
    assert not flat[(second, y_name)]                                # read transposed


# ---- the emulator against the interpreter ----------------------------------------------------
# About a second or more each in the emulator: marked slow.
SLOW_SAMPLES = {"long_reductions"} | {name for name in SAMPLES if name.startswith("reductions_")}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_SAMPLES
                                  else n for n in sorted(SAMPLES)])
def test_emulated_cuda_matches_interpreter(name):
    fn, inputs = SAMPLES[name]
    check_emulated(fn, *inputs)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["softmax", "conv_pool", "gather_scatter", "float32_ops"])
def test_emulated_cuda_unfused_matches_interpreter(name):
    fn, inputs = SAMPLES[name]
    check_emulated(fn, *inputs, fuse=False)


def test_dropout_and_uniform_are_bit_exact():
    fn, inputs = SAMPLES["dropout"]
    (got,) = check_emulated(fn, *inputs)
    expected = compile_graph(traced(fn, *inputs))(graph_inputs(traced(fn, *inputs), inputs))
    np.testing.assert_array_equal(got, expected[0])
    for seed in (0, -1, 2 ** 62 + 12345, -(2 ** 63)):
        graph = traced(lambda s: bind(P["uniform"], s, shape=(3, 333), dtype=dtypes.float32),
                       tensor(seed, np.int64))
        (got,) = compile_graph_cuda_emulated(graph)([np.array(seed, np.int64)])
        np.testing.assert_array_equal(got, _uniform_impl(seed, (3, 333), dtypes.float32))


def test_many_rows_and_long_rows_use_every_block_and_warp():
    """More rows than the emulated grid has blocks, rows longer than a block."""
    x = tensor(np.random.default_rng(1).standard_normal((37, 300)), np.float32)
    check_emulated(lambda x: (x.sum(1), x.amax(1), x.argmin(1), C.softmax(x, 1)), x)
    check_emulated(lambda x: x.sum(), tensor(np.arange(5000) % 7, np.int64))


def test_out_of_range_index_raises_and_reads_in_bounds():
    graph = traced(lambda x, i: x.index_select(1, i) * 2, tensor(np.ones((3, 4)), np.float32),
                   tensor([0, 1], np.int64))
    program = compile_graph_cuda_emulated(graph)
    with pytest.raises(IndexError, match=r"^take: index 7 is out of bounds for "
                                         r"dimension 1 with size 4 \(test_cuda.py:\d+\)$"):
        program([np.ones((3, 4), np.float32), np.array([0, 7])])
    (ok,) = program([np.ones((3, 4), np.float32), np.array([3, 0])])
    np.testing.assert_array_equal(ok, np.full((3, 2), 2, np.float32))


def test_inputs_may_be_views_and_outputs_have_graph_shapes():
    graph = traced(lambda x, y: (x + y, y), tensor(np.ones((3, 4)), np.float32),
                   tensor(np.ones(4), np.float32))
    program = compile_graph_cuda_emulated(graph)
    x = np.arange(48, dtype=np.float32).reshape(6, 8)[1:4, ::2]     # strided
    y = np.arange(8.0)[::2]                        # float64, strided: converted
    s, same = program([x, y])
    np.testing.assert_array_equal(s, x + y.astype(np.float32))
    np.testing.assert_array_equal(same, y.astype(np.float32))
    with pytest.raises(ValueError, match="needs 12 elements"):
        program([np.ones(5, np.float32), y])


# ---- graphc.compile with the emulated backend: training graphs -------------------------------
@pytest.fixture
def emulated(monkeypatch):
    """backend="cuda-emulate" for graphc.compile (whether or not it is registered)."""
    get = targets.get
    monkeypatch.setattr(targets, "get", lambda name: compile_graph_cuda_emulated
                        if name == "cuda-emulate" else get(name))
    return "cuda-emulate"


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mlp", "conv"])
def test_training_steps_match_interpreter(model, emulated):
    rng = np.random.default_rng(2)
    if model == "mlp":
        def make():
            return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.LayerNorm(16),
                                 nn.Linear(16, 3))
        x = tensor(rng.standard_normal((10, 6)), np.float32)
    else:
        def make():
            return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Flatten(), nn.Linear(3 * 3 * 3, 3))
        x = tensor(rng.standard_normal((4, 2, 6, 6)), np.float32)
    target = tensor(rng.integers(0, 3, len(x)), np.int64)
    expected_losses, expected = _train(make, x, target, "interpreter")
    losses, params = _train(make, x, target, emulated)
    np.testing.assert_allclose(losses, expected_losses, **F32)
    for p, e in zip(params, expected, strict=True):
        np.testing.assert_allclose(p, e, rtol=1e-5, atol=1e-5)


def test_compiled_dropout_draws_what_the_interpreter_draws(emulated):
    x = graphc.ones(64, 9)
    results = []
    for backend in ("interpreter", emulated):
        graphc.manual_seed(3)
        f = graphc.compile(lambda x: C.dropout(x, 0.5, True), backend=backend)
        results.append([f(x).numpy() for _ in range(2)])
    np.testing.assert_array_equal(results[0], results[1])
    assert not np.array_equal(results[1][0], results[1][1])     # a new seed per call


def test_dump_writes_fusion_loops_and_cuda_text():
    stages = {}
    graph = traced(lambda x: C.softmax(x, 1), tensor(np.ones((2, 3)), np.float32))
    compile_graph_cuda_emulated(graph, dump=stages.__setitem__)
    assert set(stages) == {"fusion", "loops", "cu"}
    cu = stages["cu"]
    assert 'extern "C" __global__ void k0_amax_sub_exp_sum(const float *' in cu
    assert "//   %0 = amax(" in cu and "__shfl_down_sync" in cu


# ---- the emulator itself ---------------------------------------------------------------------
SHUFFLE_KERNEL = r"""
extern "C" __global__ void shuffles(int *out, int *error_flag) {
    __shared__ int seen[64];
    const int t = threadIdx.x;
    seen[t] = t * 10;
    __syncthreads();
    out[t] = seen[(t + 1) % blockDim.x];             // written by another thread
    out[64 + t] = __shfl_down_sync(0xffffffffu, t, 5);
    out[128 + t] = __shfl_down_sync(0xffffffffu, t, 3, 8);
}
extern "C" __global__ void diverges(int *out, int *error_flag) {
    if (threadIdx.x == 3) return;
    __syncthreads();
    out[threadIdx.x] = 1;
}
extern "C" int run(void **buffers, int *error) { return 0; }
static void body_shuffles(void *p) { shuffles(*(int **)((void **)p)[0], nullptr); }
static void body_diverges(void *p) { diverges(*(int **)((void **)p)[0], nullptr); }
extern "C" int launch(int which, unsigned block, int *out) {
    void *args[] = {&out};
    return graphc_emu::launch(dim3(2), dim3(block), which ? body_diverges : body_shuffles, args);
}
"""


def test_emulator_barriers_shuffles_and_deadlocks():
    lib = emulate.load_library(SHUFFLE_KERNEL)
    lib.launch.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
    out = np.zeros(192, np.int32)
    assert lib.launch(0, 64, out.ctypes.data) == 0
    t = np.arange(64)
    np.testing.assert_array_equal(out[:64], (t + 1) % 64 * 10)
    lane = t % 32
    np.testing.assert_array_equal(out[64:128], np.where(lane + 5 < 32, t + 5, t))
    np.testing.assert_array_equal(out[128:], np.where(lane % 8 + 3 < 8, t + 3, t))
    assert lib.launch(1, 32, out.ctypes.data) == 1              # a deadlock, reported


def test_compiled_libraries_are_cached_and_a_corrupt_entry_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    graph = traced(lambda x: x * 3 + 1, tensor(np.ones(5), np.float32))
    assert compile_graph_cuda_emulated(graph)([np.ones(5, np.float32)])[0][0] == 4
    (entry,) = [p for p in tmp_path.iterdir() if p.suffix == ".so"]
    data = entry.read_bytes()
    entry.unlink()                       # (the loaded library keeps its own mapping)
    entry.write_bytes(data[:100])                                # truncated
    assert compile_graph_cuda_emulated(graph)([np.full(5, 2, np.float32)])[0][0] == 7
    assert len(entry.read_bytes()) > 100
    monkeypatch.setenv("GRAPHC_CACHE_DIR", "")                   # off
    assert compile_graph_cuda_emulated(graph)([np.ones(5, np.float32)])[0][0] == 4


# ---- the GPU runtime -------------------------------------------------------------------------
def test_compile_graph_cuda_says_what_is_missing():
    reason = graphc.cuda.unavailable_reason()
    if reason is None:
        pytest.skip("CUDA is available here")
    graph = traced(lambda x: x + 1, tensor(np.ones(2), np.float32))
    with pytest.raises(RuntimeError, match="needs PyCUDA and a CUDA GPU") as info:
        compile_graph_cuda(graph)
    assert reason in str(info.value)
    assert "pycuda" not in sys.modules or graphc.cuda.is_available()


@pytest.mark.parametrize("name", ["softmax", "gather_scatter", "matmul_epilogue",
                                  "zero_and_one_sized", "cross_entropy",
                                  "constants_and_copies"])
def test_gpu_runtime_on_a_stand_in_driver(name, fake_gpu, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    fn, inputs = SAMPLES[name]
    graph = traced(fn, *inputs)
    arrays = graph_inputs(graph, inputs)
    program = compile_graph_cuda(graph)
    for g, e in zip(program(arrays), compile_graph(graph)(arrays), strict=True):
        assert_same(g, e)
    assert any(p.suffix == ".cubin" for p in tmp_path.iterdir())


def test_gpu_runtime_raises_for_an_out_of_range_index(fake_gpu):
    graph = traced(lambda x, i: x[i], tensor(np.ones(3), np.float32), tensor([0], np.int64))
    with pytest.raises(IndexError, match=r"take: index 5 is out of bounds for dimension 0 "
                                         r"with size 3 \(test_cuda.py:\d+\)"):
        compile_graph_cuda(graph)([np.ones(3, np.float32), np.array([5])])


def test_compile_with_cuda_fails_at_once_without_a_gpu():
    if graphc.cuda.is_available():
        pytest.skip("a GPU is here")
    with pytest.raises(RuntimeError, match="PyCUDA"):
        graphc.compile(lambda x: x * 2, backend="cuda")
