"""``python -m graphc bench``: the suite runs (tiny sizes, interpreter backend), its JSON
has the promised structure, and every workload's numpy, unfused and fused results equal
graphc eager's.  Timings are not asserted: they depend on the machine."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import graphc
from graphc import bench

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
suite = bench.load_suite()
MODES = ["numpy", "eager", "unfused", "fused"]
NO_NUMPY = {"gpt_train", "cnn_train"}       # no numpy step written by hand


def modes_of(name):
    return [m for m in MODES if not (m == "numpy" and name in NO_NUMPY)]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    code = bench.main(["--quick", "--backend", "interpreter", "--no-torch", "--json",
                       str(path)])
    assert code == 0
    with open(path) as f:
        return json.load(f)


def timed(report):
    return [w for w in report["workloads"] if "times_s" in w]


def test_report_header(report):
    assert report["backend"] == "interpreter"
    assert report["quick"] is True
    assert report["torch"] is None and report["torch_threads"] is None
    assert report["modes"] == MODES
    assert report["repeat"] == 3
    assert report["machine"]["cpus"] == os.cpu_count()
    assert 1 <= report["machine"]["usable_cpus"] <= os.cpu_count()
    assert report["options"]["only"] is None
    assert [w["name"] for w in report["workloads"]] == suite.NAMES


def test_every_result_matches_eager(report):
    for w in timed(report):
        assert sorted(w["checks"]) == sorted(set(modes_of(w["name"])) - {"eager"}), w["name"]
        for mode, c in w["checks"].items():
            assert c["ok"], (w["name"], mode, c)
            assert c["max_abs_err"] < 1e-3, (w["name"], mode, c)


def test_times_and_derived_numbers(report):
    for w in timed(report):
        times = w["times_s"]
        assert sorted(times) == sorted(modes_of(w["name"]))
        assert all(0 < t < 1 for t in times.values()), (w["name"], times)
        for mode, t in times.items():
            assert w["gbps"][mode] == pytest.approx(w["bytes"] / t / 1e9)
            if "numpy" in times:
                assert w["speedup_vs_numpy"][mode] == pytest.approx(times["numpy"] / t)
        if "numpy" not in times:
            assert w["speedup_vs_numpy"] == {}
        assert w["fused_vs_unfused"] == pytest.approx(times["unfused"] / times["fused"])
        assert w["copy_gbps"] > 0
        assert w["unit"] == ("us" if w["name"] in ("chain10", "quadrant") else "ms")


def test_bytes_and_flops(report):
    rows = {w["name"]: w for w in report["workloads"]}
    sizes = suite.QUICK
    assert rows["gelu_chain"]["bytes"] == 2 * 4 * sizes["elements"]
    assert rows["relu_chain"]["bytes"] == 2 * 4 * sizes["elements"]
    assert rows["softmax"]["bytes"] == 2 * 4 * sizes["rows"] * sizes["cols"]
    n = sizes["gemm"]
    assert rows["sgemm"]["bytes"] == 3 * 4 * n * n
    for mode, g in rows["sgemm"]["gflops"].items():
        assert g == pytest.approx(2 * n ** 3 / rows["sgemm"]["times_s"][mode] / 1e9)
    assert all("gflops" not in w for w in timed(report) if w["name"] != "sgemm")


def test_targets(report):
    rows = {w["name"]: w for w in report["workloads"]}
    with_goal = {"gelu_chain", "relu_chain", "softmax", "layer_norm", "sgemm", "mlp_train",
                 "quadrant", "chain10", "gpt_train", "cnn_train", "compile"}
    assert {n for n, w in rows.items() if "target" in w} == with_goal
    # Without PyTorch, a target measured against it is not measured.
    needs_torch = {"mlp_train", "gpt_train", "cnn_train"}
    for name in with_goal:
        assert (rows[name]["target"]["met"] is None) == (name in needs_torch), name
    for name in ("relu_chain", "softmax", "layer_norm"):
        r = rows[name]
        assert r["target"]["met"] == (r["gbps"]["fused"] >= 0.8 * r["copy_gbps"])
    r = rows["sgemm"]
    assert r["target"]["met"] == (r["gflops"]["fused"] >= 0.9 * r["gflops"]["numpy"])
    assert rows["quadrant"]["target"]["met"] == (rows["quadrant"]["times_s"]["fused"] <= 15e-6)
    assert rows["chain10"]["target"]["met"] == (rows["chain10"]["times_s"]["fused"] <= 3e-6)
    steps = rows["compile"]["compile_s"]
    assert list(steps) == ["mlp_train", "gpt_train", "cnn_train"]
    for name, t in steps.items():
        assert 0 < t["cold"] < 60 and 0 < t["cached"] < 60, name
    assert steps["gpt_train"]["met"] == (steps["gpt_train"]["cold"] < 3 and
                                         steps["gpt_train"]["cached"] < 0.3)
    assert steps["cnn_train"]["met"] == (steps["cnn_train"]["cold"] < 2)
    assert rows["compile"]["target"]["met"] == all(t["met"] for t in steps.values())


def test_targets_against_pytorch():
    """A target against PyTorch is met, missed, or (without its mode) not measured."""
    workload = {w.name: w for w in suite.WORKLOADS}["gpt_train"]
    row = {"times_s": {"fused": 1.0, "torch": 1.6, "torch_compile": 1.1}}
    assert workload.met(row) is True
    row["times_s"]["torch_compile"] = 0.9
    assert workload.met(row) is False
    del row["times_s"]["torch_compile"]
    assert workload.met(row) is None


def test_table_names_every_workload(report):
    text = bench.format_report(report)
    for w in timed(report):
        # A row in each table, and for sgemm a line of GFLOPS.
        expected = 3 if w["name"] == "sgemm" else 2
        assert sum(line.startswith(w["name"] + " ") for line in text.splitlines()) == expected
    for step in ("mlp_train", "gpt_train", "cnn_train"):
        assert f"compile time of the {step} step: cold" in text
    assert text.splitlines()[0].startswith(f"CPU: {report['machine']['processor']}, ")
    assert "no PyTorch" in text
    assert "CHECK FAILED" not in text


def test_table_with_pytorch_columns():
    """With PyTorch: its version and threads in the header, the torch.compile note above
    the tables, fused's speedup over each mode, and a target that could not be measured."""
    row = {"name": "gpt_train", "unit": "ms", "bytes": 8,
           "times_s": {"eager": 0.1, "unfused": 0.004, "fused": 0.002, "torch": 0.003,
                       "torch_compile": 0.0025},
           "gbps": {"fused": 4e-6}, "copy_gbps": 10.0,
           "target": {"goal": "fused >= 1.5x torch", "met": True}}
    cnn = {**row, "name": "cnn_train", "target": {"goal": "fused >= 1x torch", "met": None}}
    report = {"machine": {"processor": "CPU X", "cpus": 4, "usable_cpus": 3, "graphc": "0",
                          "numpy": "2", "python": "3"},
              "backend": "cpu", "repeat": 7, "torch": "2.13", "torch_threads": 3,
              "torch_compile_note": suite.TORCH_COMPILE_NOTE,
              "modes": ["eager", "unfused", "fused", "torch", "torch_compile"],
              "workloads": [row, cnn]}
    lines = bench.format_report(report).splitlines()
    assert lines[0] == "CPU: CPU X, 4 CPUs (3 usable)"
    assert "PyTorch 2.13 (3 threads)" in lines[1]
    assert lines[2] == suite.TORCH_COMPILE_NOTE
    ratios = [line for line in lines if line.startswith("gpt_train ")][1].split()
    assert ratios[1:7] == ["-", "50.00x", "2.00x", "1.50x", "1.25x", "0.00"]
    assert lines[-1].endswith("fused >= 1x torch: not measured")


@pytest.mark.parametrize("name", ["mlp_train", "gpt_train", "cnn_train"])
def test_training_steps_compile_whole(name):
    """Each training step the suite times compiled is one program, without a graph break
    (``fullgraph`` raises at one), so ``fused`` never times an eager fallback."""
    fn, x, y = suite.probe_step(name, suite.QUICK)
    fn(x, y)                                # the optimizer's state, as in compile_probe
    step = graphc.compile(fn, backend="interpreter", fullgraph=True)
    step(x, y)
    step(x, y)
    assert step.compile_count == 1


def test_check_catches_a_wrong_result():
    good = np.arange(4, dtype=np.float32)
    case = suite.Case(calls={}, bytes=0, results={
        "eager": lambda: [good], "fused": lambda: [good + 1e-3],
        "unfused": lambda: [good[:3]], "numpy": lambda: [good + 1e-7]})
    checks, left_out = suite.check(case)
    assert left_out == {}
    assert checks["numpy"]["ok"] and not checks["fused"]["ok"]
    assert checks["fused"]["max_abs_err"] == pytest.approx(1e-3, rel=1e-3)
    assert not checks["unfused"]["ok"] and math.isinf(checks["unfused"]["max_abs_err"])
    report = {"workloads": [{"name": "w", "checks": checks}]}
    assert [(n, m) for n, m, _ in bench.failed_checks(report)] == [("w", "fused"),
                                                                   ("w", "unfused")]


def test_check_leaves_out_a_failing_torch_mode_only():
    good = [np.ones(2, np.float32)]

    def broken():
        raise RuntimeError("no C++ compiler")
    case = suite.Case(calls={}, bytes=0, results={
        "eager": lambda: good, "fused": lambda: good, "torch_compile": broken})
    checks, left_out = suite.check(case)
    assert checks == {"fused": {"ok": True, "max_abs_err": 0.0}}
    assert left_out == {"torch_compile": "RuntimeError: no C++ compiler"}
    case.results["fused"] = broken
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler"):
        suite.check(case)


def test_numpy_references_by_hand():
    x = np.array([[0.0, 1.0, -2.0]], np.float32)
    e = np.exp(x - 1)
    np.testing.assert_allclose(suite.softmax_rows_numpy(x), e / e.sum(), rtol=1e-6)
    np.testing.assert_allclose(suite.relu_chain_numpy(x), [[0.5, 1.75, 0.5]], rtol=1e-6)
    # gelu_tanh(0.1) * sigmoid(0) for x = 0.
    u = 0.1
    gelu = 0.5 * u * (1 + math.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u ** 3)))
    assert suite.gelu_chain_numpy(np.zeros(1, np.float32))[0] == pytest.approx(gelu / 2)
    loss, grad = suite.cross_entropy_numpy(np.zeros((2, 4), np.float32), np.array([0, 3]))
    assert loss == pytest.approx(math.log(4))
    np.testing.assert_allclose(grad, [[-0.375, 0.125, 0.125, 0.125],
                                      [0.125, 0.125, 0.125, -0.375]])


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, "-m", "graphc", "bench", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)


def test_cli_runs_one_workload():
    done = run_cli("--quick", "--backend", "interpreter", "--no-torch", "--only", "chain10")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines if line.startswith("chain10")] == ["chain10"] * 2
    assert "compile time" not in done.stdout


def test_cli_per_kernel_prints_each_workloads_kernels():
    done = run_cli("--quick", "--no-torch", "--only", "softmax", "--per-kernel")
    assert done.returncode == 0, done.stderr
    table = done.stdout.split("per-kernel times of softmax (fused):\n", 1)[1].splitlines()
    assert table[0].startswith("program ") and "(cpu): 3 calls" in table[0]
    assert table[1].split()[:3] == ["kernel", "kind", "calls"]
    assert len(table) > 2 and table[2].split()[1:3] == ["loops", "3"]


def test_cli_rejects_an_unknown_workload():
    done = run_cli("--quick", "--backend", "interpreter", "--only", "nonesuch")
    assert done.returncode == 2
    assert "unknown workload(s) ['nonesuch']" in done.stderr


def test_plot_needs_matplotlib_or_draws(tmp_path, report):
    path = tmp_path / "speedups.png"
    if bench.matplotlib_pyplot() is None:
        assert bench.main(["--quick", "--plot", str(path)]) == 2
        assert not path.exists()
    else:
        bench.plot(report, str(path))
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_the_suite_runs_on_the_cuda_backend_with_a_device_copy_baseline(fake_gpu, tmp_path):
    """On the stand-in GPU driver (kernels run on the emulator): every mode's results
    equal eager's, and the copy baseline is a device-to-device copy."""
    path = tmp_path / "bench.json"
    assert bench.main(["--quick", "--backend", "cuda", "--no-torch", "--only", "relu_chain",
                       "softmax", "sgemm", "quadrant", "--json", str(path)]) == 0
    with open(path) as f:
        report = json.load(f)
    assert report["backend"] == "cuda"
    for w in timed(report):
        assert all(c["ok"] for c in w["checks"].values()), w["name"]
    assert fake_gpu.synchronized > 0       # the baseline: a device copy, waited for


@pytest.mark.slow
def test_kernel_times_lists_the_kernels_of_a_step():
    """``benchmarks/kernel_times.py`` profiles a compiled step: every kernel gets a
    time, and the kinds add up to the total it prints."""
    run = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "kernel_times.py"),
                          "cnn_train", "--quick", "--top", "100"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    kernels = int(lines[0].split(" kernels")[0].rsplit(" ", 1)[1])
    assert kernels == len(lines) - 2 and "matmul" in lines[1] and "im2col" in run.stdout


def test_alone_times_one_mode_of_a_workload():
    run = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", "alone.py"),
                          "chain10", "fused", "--quick"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("chain10 fused alone: ") and "ms a call" in run.stdout
