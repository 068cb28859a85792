"""The cpu backend's threads: compiled programs give the same numbers at any thread count,
the count is a runtime setting (``graphc.set_num_threads``, ``GRAPHC_NUM_THREADS``), and
without libgomp kernels run serially."""
import logging
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import graphc
from graphc.targets.cpu import render, threads

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COUNTS = (1, 2, 7)                     # 7: more threads than most machines have cores


@pytest.fixture
def thread_count():
    """Set the thread count for a test, restoring it (and OpenBLAS's) afterwards."""
    before = graphc.get_num_threads()
    yield graphc.set_num_threads
    graphc.set_num_threads(before)


def at_each_count(set_count, call):
    results = {}
    for n in COUNTS:
        set_count(n)
        results[n] = call()
    return results


def assert_identical(results):
    first, *rest = results.values()
    for other in rest:
        for a, b in zip(first, other):
            np.testing.assert_array_equal(a, b)


def native_program(compiled_fn):
    """The cpu program of a compiled function's one specialisation (its forward)."""
    (program,) = compiled_fn.programs()
    return program.forward


def test_the_pool_is_libgomp():
    assert threads.openmp() is not None
    assert graphc.backends.openmp.is_available()


def test_elementwise_and_reductions_are_identical_at_any_thread_count(thread_count):
    x = graphc.tensor(np.random.default_rng(0).standard_normal((512, 1000), np.float32))

    def fn(x):
        y = (x * 1.5 + 0.25).tanh()
        return y, y.sum(1), y.amax(0), x.argmax(1), y.sum()

    compiled = graphc.compile(fn, backend="cpu")
    results = at_each_count(thread_count, lambda: [t.numpy() for t in compiled(x)])
    assert_identical(results)
    expected = [t.numpy() for t in fn(x)]
    for got, want in zip(results[1], expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_matmul_rows_are_split_and_identical_at_any_thread_count(thread_count):
    rng = np.random.default_rng(1)
    a = graphc.tensor(rng.standard_normal((3, 200, 150), np.float32))
    b = graphc.tensor(rng.standard_normal((150, 90), np.float32))
    compiled = graphc.compile(lambda a, b: (a @ b).relu(), backend="cpu")
    results = at_each_count(thread_count, lambda: [compiled(a, b).numpy()])
    assert_identical(results)
    np.testing.assert_allclose(results[2][0], np.maximum(a.numpy() @ b.numpy(), 0),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_a_training_step_is_identical_at_any_thread_count(thread_count):
    rng = np.random.default_rng(2)
    x = graphc.tensor(rng.standard_normal((128, 300), np.float32))
    y = graphc.tensor(rng.integers(0, 10, 128))

    def train(count):
        thread_count(count)
        graphc.manual_seed(0)
        model = graphc.nn.Sequential(graphc.nn.Linear(300, 256), graphc.nn.ReLU(),
                                     graphc.nn.Linear(256, 10))
        opt = graphc.optim.SGD(model.parameters(), lr=0.1)

        def step(x, y):
            loss = graphc.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss

        compiled = graphc.compile(step, backend="cpu")
        losses = [compiled(x, y).item() for _ in range(3)]
        return [np.array(losses)] + [p.detach().numpy().copy() for p in model.parameters()]

    assert_identical({n: train(n) for n in COUNTS})


def test_the_thread_count_is_read_at_run_time_not_compiled_in(thread_count):
    """One compiled program (one object code) serves every setting."""
    x = graphc.ones(1 << 18)
    compiled = graphc.compile(lambda x: x * 2 + 1, backend="cpu")
    thread_count(2)
    compiled(x)
    program = native_program(compiled)
    text = program.llvm_ir()
    assert "GOMP_parallel" in text and f'@"{threads.NUM_THREADS_SYMBOL}"' in text
    thread_count(1)
    assert compiled(x).tolist() == [3.0] * (1 << 18)
    assert native_program(compiled) is program


def test_small_kernels_stay_on_the_calling_thread():
    compiled = graphc.compile(lambda x: (x * 2).sum(), backend="cpu")
    compiled(graphc.ones(1000))
    assert not any(render.runs_threaded(k) for k in native_program(compiled).program.kernels)
    assert "GOMP_parallel" not in native_program(compiled).llvm_ir()


def test_the_team_size_is_capped_by_work_and_extent():
    per = threads.MIN_WORK_PER_THREAD["loops"]
    assert threads.team_size_cap(extent=4, work=100 * per, kind="loops") == 4
    assert threads.team_size_cap(extent=1000, work=3 * per, kind="loops") == 3
    assert threads.team_size_cap(extent=1000, work=per - 1, kind="loops") == 1


def test_set_num_threads_checks_as_pytorch_does(thread_count):
    for bad, message in ((0, "expects a positive integer"), (-2, "expects a positive integer"),
                         (2.0, "expects an int, but got float"),
                         (True, "expects an int, but got bool")):
        with pytest.raises(RuntimeError, match=f"^set_num_threads {message}$"):
            graphc.set_num_threads(bad)
    thread_count(np.int64(3))
    assert graphc.get_num_threads() == 3


def test_numpys_openblas_follows_the_setting(thread_count):
    if threads.openblas_num_threads() is None:
        pytest.skip("numpy is not built with OpenBLAS")
    thread_count(1)
    assert threads.openblas_num_threads() == 1
    thread_count(2)
    assert threads.openblas_num_threads() == 2


def run_python(code, **env):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": REPO, **env}, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def test_the_environment_sets_the_count():
    code = ("import graphc; from graphc.targets.cpu import threads; "
            "print(graphc.get_num_threads(), threads.openblas_num_threads())")
    out = run_python(code, GRAPHC_NUM_THREADS="3").stdout.split()
    assert out[0] == "3" and out[1] in ("3", "None")
    bad = run_python(code, GRAPHC_NUM_THREADS="zero")
    assert bad.stdout.split()[0] == str(len(os.sched_getaffinity(0)))
    assert "GRAPHC_NUM_THREADS='zero' is not a positive integer" in bad.stderr


def test_without_libgomp_kernels_run_serially(monkeypatch, caplog):
    def missing(name, *args, **kwargs):
        raise OSError(f"{name}: cannot open shared object file")

    threads.openmp.cache_clear()
    monkeypatch.setattr(threads.ctypes, "CDLL", missing)
    try:
        with caplog.at_level(logging.INFO, logger="graphc.perf_hints"):
            compiled = graphc.compile(lambda x: (x * 2 + 1).exp(), backend="cpu")
            x = graphc.ones(1 << 18)
            assert compiled(x).tolist() == [float(np.exp(np.float32(3)))] * (1 << 18)
            compiled(x + 1)
            assert not graphc.backends.openmp.is_available()
        assert "GOMP_parallel" not in native_program(compiled).llvm_ir()
        hints = [r.getMessage() for r in caplog.records if "no OpenMP runtime" in r.message]
        assert len(hints) == 1 and "run serially" in hints[0]
    finally:
        monkeypatch.undo()
        threads.openmp.cache_clear()
    assert threads.openmp() is not None


def test_a_forked_child_runs_serially(thread_count):
    """libgomp's pool does not survive fork: a child that used it would hang."""
    thread_count(2)
    compiled = graphc.compile(lambda x: x * 2 + 1, backend="cpu")
    x = graphc.ones(1 << 18)
    compiled(x)                                        # the parent's pool now exists
    assert "GOMP_parallel" in native_program(compiled).llvm_ir()
    pid = os.fork()
    if pid == 0:
        ok = graphc.get_num_threads() == 1 and compiled(x).tolist() == [3.0] * (1 << 18)
        os._exit(0 if ok else 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung")


def test_idle_workers_spin_briefly_unless_the_environment_says():
    code = ("import os; from graphc.targets.cpu import threads; lib = threads.openmp(); "
            "lib.omp_display_env(1); print('GOMP_SPINCOUNT' in os.environ)")
    short = run_python(code)
    assert f"GOMP_SPINCOUNT = '{threads.SPIN_COUNT}'" in short.stderr
    assert short.stdout.split()[-1] == "False"          # children do not inherit it
    chosen = run_python(code, OMP_WAIT_POLICY="active")
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in chosen.stderr
    assert f"GOMP_SPINCOUNT = '{threads.SPIN_COUNT}'" not in chosen.stderr


def test_a_long_sum_to_one_value_is_split_between_threads(thread_count):
    x = graphc.tensor(np.random.default_rng(3).standard_normal(1 << 20, np.float32))
    compiled = graphc.compile(lambda x: (x.sum(), x.amax(), x.exp().mean()), backend="cpu")
    results = at_each_count(thread_count, lambda: [t.numpy() for t in compiled(x)])
    assert_identical(results)
    kernels = native_program(compiled).program.kernels
    assert any(k.name.endswith("_partial") and render.runs_threaded(k) for k in kernels)
    a = x.numpy().astype(np.float64)
    np.testing.assert_allclose(results[2], [a.sum(), a.max(), np.exp(a).mean()], rtol=1e-6)


def test_leading_parallel_loops_are_joined_into_the_threads_range(thread_count):
    """A softmax over (2, 512, 512) splits its 1024 rows, not its 2 batches."""
    x = graphc.tensor(np.random.default_rng(4).standard_normal((2, 512, 512), np.float32))
    compiled = graphc.compile(lambda x: (graphc.softmax(x, dim=2), x.permute(0, 2, 1) * 2),
                              backend="cpu")
    results = at_each_count(thread_count, lambda: [t.numpy() for t in compiled(x)])
    assert_identical(results)
    kernels = native_program(compiled).program.kernels
    assert [render.kernel_extent(k) for k in kernels] == [1024, 1024]
    assert all(render.team_size_cap(k) > 2 for k in kernels)
    e = np.exp(x.numpy() - x.numpy().max(2, keepdims=True))
    np.testing.assert_allclose(results[7][0], e / e.sum(2, keepdims=True), rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_array_equal(results[7][1], x.numpy().transpose(0, 2, 1) * 2)


@pytest.mark.slow
def test_the_scaling_benchmark_runs_as_a_script():
    """``python benchmarks/threads.py`` (not a package import: the script finds the
    repository itself) prints one row per workload."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = subprocess.run([sys.executable, os.path.join(repo, "benchmarks", "threads.py"),
                          "--threads", "1", "--repeat", "1", "--min-time", "0"],
                         cwd=os.path.dirname(repo), capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    for workload in ("elementwise", "softmax", "sgemm", "mlp_train"):
        assert workload in run.stdout
