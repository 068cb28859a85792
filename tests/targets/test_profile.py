"""Per-kernel profiling (``graphc.profiling``): the kernels' times add up to the
program's measured time, the costs on paper are exact, profiling off records nothing,
``graphc.profile()`` blocks nest, and every native backend reports its kernels."""
import os
import subprocess
import sys

import pytest

import graphc
from graphc import nn
from graphc.profiling import program_time_of, stats_of

from benchmarks.profile_overhead import build

KEYS = {"name", "kind", "calls", "total_s", "median_s", "bytes", "flops", "share"}


def native(step):
    """The native program of a compiled function's last call."""
    return step.programs()[-1].forward


def check_sum(step, args, calls: int):
    """Profile ``calls`` calls of ``step``: the kernels' times add up to within 10% of
    the program's measured time (what remains is the call's own work: ctypes, pointer
    set-up, the clock reads)."""
    with graphc.profile() as profile:
        for _ in range(calls):
            step(*args)
    stats = profile.stats(native(step))
    whole = program_time_of(native(step))
    kernels = sum(row["total_s"] for row in stats)
    assert whole["calls"] == calls and all(row["calls"] == calls for row in stats)
    assert 0.9 * whole["total_s"] <= kernels <= whole["total_s"], (kernels, whole)
    assert abs(sum(row["share"] for row in stats) - kernels / whole["total_s"]) < 1e-9
    return stats


def test_mlp_step_kernels_add_up_to_the_program():
    """The README tour: a 1000-100-10 MLP, MSE, Adam, the whole step compiled."""
    stats = check_sum(*build("mlp"), 50)
    assert all(set(row) == KEYS for row in stats)
    matmuls = [row for row in stats if row["kind"] == "matmul"]
    assert matmuls and all(row["flops"] > 0 for row in matmuls)
    assert all(row["flops"] is None for row in stats if row["kind"] == "loops")
    assert all(row["bytes"] > 0 and row["median_s"] > 0 for row in stats)


def test_gpt_step_kernels_add_up_to_the_program():
    """examples/gpt.py's model, 2 layers of width 32, AdamW."""
    stats = check_sum(*build("gpt"), 20)
    assert len(stats) > 30


def test_matmul_costs_are_exact_and_nothing_is_recorded_when_off():
    step = graphc.compile(lambda a, b: a @ b)
    a, b = graphc.randn(8, 16), graphc.randn(16, 4)
    step(a, b)
    assert stats_of(native(step)) == [] and program_time_of(native(step)) is None
    with graphc.profile():
        step(a, b)
    [row] = stats_of(native(step))
    assert row["kind"] == "matmul" and row["calls"] == 1
    assert row["bytes"] == (8 * 16 + 16 * 4 + 8 * 4) * 4
    assert row["flops"] == 2 * 8 * 4 * 16
    step(a, b)                       # off again: nothing more recorded
    assert stats_of(native(step))[0]["calls"] == 1


def test_profile_blocks_nest_and_start_from_zero():
    step = graphc.compile(lambda a: (a * 2).sum())
    a = graphc.randn(100)
    step(a)
    program = native(step)
    with graphc.profile() as outer:
        step(a)
        with graphc.profile() as inner:
            step(a)
            step(a)
        step(a)
        assert outer.stats(program)[0]["calls"] == 4      # an open block counts so far
    step(a)                          # outside every block
    with graphc.profile() as later:
        step(a)
    assert inner.stats(program)[0]["calls"] == 2
    assert outer.stats(program)[0]["calls"] == 4
    assert later.stats(program)[0]["calls"] == 1
    assert stats_of(program)[0]["calls"] == 5
    assert not graphc.profiling.enabled
    table = str(outer)
    assert program.name in table and "4 calls" in table and "GB/s" in table


def test_emulated_cuda_reports_its_kernels():
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    f = graphc.compile(lambda x: model(x), backend="cuda-emulate")
    x = graphc.randn(8, 16)
    f(x)
    with graphc.profile() as profile:
        f(x)
        f(x)
    stats = profile.stats(native(f))
    assert [row["kind"] for row in stats] == ["matmul", "matmul"]
    assert stats[0]["flops"] == 2 * 8 * 32 * 16
    whole = program_time_of(native(f))
    assert all(row["calls"] == 2 for row in stats)
    assert sum(row["total_s"] for row in stats) <= whole["total_s"]
    assert "(cuda-emulate)" in profile.table()


def test_gpu_runtime_records_an_event_around_each_launch(fake_gpu):
    """The cuda backend on the stand-in driver (``tests/fake_cuda.py``), whose events
    read the host's clock: each launch gets its time, and they add up to the call's."""
    f = graphc.compile(lambda a, b: (a @ b).relu().sum(), backend="cuda")
    a, b = graphc.randn(8, 16), graphc.randn(16, 4)
    f(a, b)
    with graphc.profile() as profile:
        for _ in range(3):
            f(a, b)
    stats = profile.stats(native(f))
    assert stats[0]["kind"] == "matmul" and stats[0]["flops"] == 2 * 8 * 4 * 16
    assert all(row["calls"] == 3 and row["median_s"] > 0 for row in stats)
    assert sum(row["total_s"] for row in stats) <= program_time_of(native(f))["total_s"]
    assert "(cuda)" in profile.table()


def test_graphc_profile_environment_prints_the_table_at_exit(tmp_path):
    script = ("import graphc\n"
              "f = graphc.compile(lambda a: a.exp().sum())\n"
              "for _ in range(3): f(graphc.ones(10))\n")
    env = dict(os.environ, GRAPHC_PROFILE="1")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "3 calls" in done.stderr and "median us" in done.stderr
