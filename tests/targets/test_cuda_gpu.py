"""The cuda backend on a real GPU (PyCUDA) against the interpreter; skipped where
``graphc.cuda.is_available()`` is False.  Run them with ``pytest -m gpu``."""
import numpy as np
import pytest

import graphc
import graphc.composite as C
from graphc import targets
from graphc.targets.cuda import compile_graph_cuda, compile_graph_cuda_emulated
from graphc.targets.interpreter import compile_graph
from cuda_samples import SAMPLES, _train, assert_same, graph_inputs, tensor, traced

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not graphc.cuda.is_available(),
                                 reason=f"no CUDA here: {graphc.cuda.unavailable_reason()}"),
              pytest.mark.filterwarnings("ignore::UserWarning")]


def check_gpu(fn, *inputs):
    graph = traced(fn, *inputs)
    arrays = graph_inputs(graph, inputs)
    got = compile_graph_cuda(graph)(arrays)
    for g, e in zip(got, compile_graph(graph)(arrays), strict=True):
        assert_same(g, e)
    return graph, arrays, got


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_gpu_matches_interpreter(name):
    fn, inputs = SAMPLES[name]
    check_gpu(fn, *inputs)


def test_gpu_large_shapes_use_full_blocks_and_many_of_them():
    rng = np.random.default_rng(0)
    x = tensor(rng.standard_normal((3000, 700)), np.float32)
    check_gpu(lambda x: (C.softmax(x, 1), x.sum(0), x.argmax(1)), x)
    a = tensor(rng.standard_normal((300, 257)), np.float32)
    b = tensor(rng.standard_normal((257, 129)), np.float32)
    check_gpu(lambda a, b: C.relu(a @ b), a, b)
    check_gpu(lambda x: (x * 2).exp(), tensor(rng.standard_normal(3_000_000), np.float32))


def test_gpu_and_emulator_draw_the_same_bits():
    fn, inputs = SAMPLES["dropout"]
    graph, arrays, got = check_gpu(fn, *inputs)
    np.testing.assert_array_equal(got[0], compile_graph_cuda_emulated(graph)(arrays)[0])


def test_gpu_out_of_range_index_raises():
    graph = traced(lambda x, i: x[i], tensor(np.ones(3), np.float32), tensor([0], np.int64))
    with pytest.raises(IndexError, match="index out of bounds in CUDA kernel"):
        compile_graph_cuda(graph)([np.ones(3, np.float32), np.array([5])])


def test_gpu_training_keeps_values_on_the_device_and_the_host_sees_them():
    from residency_training import assert_same_history, train_with_host_interactions
    assert_same_history(train_with_host_interactions("cuda"),
                        train_with_host_interactions("interpreter"))


@pytest.fixture
def gpu_backend(monkeypatch):
    """backend="cuda" for graphc.compile (whether or not it is registered)."""
    get = targets.get
    monkeypatch.setattr(targets, "get", lambda name: compile_graph_cuda if name == "cuda"
                        else get(name))
    return "cuda"


def test_gpu_training_steps_match_interpreter(gpu_backend):
    from graphc import nn
    rng = np.random.default_rng(2)

    def make():
        return nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))
    x = tensor(rng.standard_normal((64, 6)), np.float32)
    target = tensor(rng.integers(0, 3, 64), np.int64)
    expected_losses, expected = _train(make, x, target, "interpreter")
    losses, params = _train(make, x, target, gpu_backend)
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-5, atol=1e-6)
    for p, e in zip(params, expected, strict=True):
        np.testing.assert_allclose(p, e, rtol=1e-5, atol=1e-5)
