"""``python -m graphc bench``: run the compiled-graph benchmark suite and print its table.

    python -m graphc bench                          # every workload, cpu backend
    python -m graphc bench --only softmax sgemm     # some of them
    python -m graphc bench --quick --backend interpreter --json out.json
    python -m graphc bench --plot speedups.png      # also a bar chart (needs matplotlib)
    python -m graphc bench --per-kernel --only gpt_train   # and each kernel's time

The suite itself is ``benchmarks/compiled.py`` in the source checkout (benchmarks are
not part of the installed package); this module finds it next to the package, runs it
and formats what it measured.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time

HEADERS = {"numpy": "numpy", "eager": "eager", "unfused": "unfused", "fused": "fused",
           "torch": "torch", "torch_compile": "torch.comp"}
SCALE = {"ms": 1e3, "us": 1e6, "s": 1.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="also draw the speedups over numpy (needs matplotlib)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run only these workloads (default: all)")
    parser.add_argument("--backend", default="cpu", help="graphc.compile backend (cpu)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and few repeats: checks that everything runs")
    parser.add_argument("--repeat", type=int, help="interleaved timing rounds (default 7)")
    parser.add_argument("--no-torch", action="store_true",
                        help="leave PyTorch out even where it is importable")
    parser.add_argument("--per-kernel", action="store_true",
                        help="also profile each workload's fused program and print its "
                             "per-kernel table (graphc.profile)")


def load_suite():
    """``benchmarks.compiled`` from the checkout this graphc package sits in."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.path.isfile(os.path.join(root, "benchmarks", "compiled.py")):
        raise SystemExit(f"python -m graphc bench: the suite (benchmarks/compiled.py) is not "
                         f"next to this graphc package ({root}); run it from a source "
                         f"checkout of graphc")
    if root not in sys.path:
        sys.path.insert(0, root)
    return importlib.import_module("benchmarks.compiled")


def matplotlib_pyplot():
    """pyplot with a file-only backend, or None where matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def main(args=None) -> int:
    """Run the suite; ``args`` is the parsed namespace (from ``python -m graphc``) or an
    argument list.  Returns 1 when a compiled result did not match eager, else 0."""
    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="python -m graphc bench")
        add_arguments(parser)
        args = parser.parse_args(args)
    if args.plot and matplotlib_pyplot() is None:
        print("python -m graphc bench: --plot needs matplotlib, which is not installed "
              "(pip install matplotlib); run without --plot, or install it", file=sys.stderr)
        return 2
    suite = load_suite()
    try:
        report = suite.run(args.only, backend=args.backend, quick=args.quick,
                           repeat=args.repeat, use_torch=not args.no_torch,
                           progress=progress_printer(), per_kernel=args.per_kernel)
    except ValueError as e:
        print(f"python -m graphc bench: {e}", file=sys.stderr)
        return 2
    report["options"] = {k: v for k, v in vars(args).items() if k != "command"}
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    if args.plot:
        plot(report, args.plot)
    return 1 if failed_checks(report) else 0


def progress_printer():
    start = time.perf_counter()

    def progress(row):
        print(f"[{time.perf_counter() - start:7.1f} s] {row['name']} done", file=sys.stderr,
              flush=True)
    return progress


def failed_checks(report) -> list:
    return [(row["name"], mode, c["max_abs_err"]) for row in report["workloads"]
            for mode, c in row.get("checks", {}).items() if not c["ok"]]


# ---- the table ----------------------------------------------------------------------------
def verdict(target) -> str:
    met = target["met"]
    return f"{target['goal']}: " + ("met" if met else "not measured" if met is None
                                     else "MISSED")


def format_report(report) -> str:
    m = report["machine"]
    threads = f"{m['usable_cpus']} usable" + (
        f", graphc {m['graphc_threads']} threads" if "graphc_threads" in m else "")
    torch = (f"PyTorch {report['torch']} ({report['torch_threads']} threads)"
             if report["torch"] else "no PyTorch")
    lines = [f"CPU: {m['processor']}, {m['cpus']} CPUs ({threads})",
             f"graphc {m['graphc']} ({report['backend']} backend), numpy {m['numpy']}, "
             f"{torch}, Python {m['python']}; load average {m.get('load_average', '?')} "
             f"before, {m.get('load_average_end', '?')} after; medians of "
             f"{report['repeat']} interleaved rounds"]
    rows = [r for r in report["workloads"] if "times_s" in r]
    if report.get("torch_compile_note") and any(
            "torch_compile" in r["times_s"] and r["name"].endswith("_train") for r in rows):
        lines.append(report["torch_compile_note"])
    lines.append("")
    if rows:
        lines += times_table(rows, report["modes"]) + [""] + ratios_table(rows) + [""]
    for row in rows:
        if "gflops" in row:
            lines.append(f"{row['name']} GFLOPS: " + ", ".join(
                f"{mode} {g:.1f}" for mode, g in row["gflops"].items()))
    for row in report["workloads"]:
        for step, t in row.get("compile_s", {}).items():
            lines.append(f"compile time of the {step} step: cold {t['cold']:.3f} s, cached "
                         f"{t['cached']:.3f} s (target {verdict(t)}); first on this host "
                         f"(matmul tuning measured too) {t['first']:.3f} s")
    for row in rows:
        for mode, error in row.get("left_out", {}).items():
            lines.append(f"{row['name']}: {HEADERS[mode]} left out ({error})")
    for row in report["workloads"]:
        if "per_kernel" in row:
            lines += ["", f"per-kernel times of {row['name']} (fused):", row["per_kernel"]]
    for name, mode, err in failed_checks(report):
        lines.append(f"CHECK FAILED: {name} {mode} differs from graphc eager "
                     f"(max abs error {err:.3g})")
    return "\n".join(lines)


def times_table(rows, modes) -> list:
    header = f"{'median time per call':<22}{'unit':>5}" + "".join(
        f"{HEADERS[m]:>11}" for m in modes)
    out = [header, "-" * len(header)]
    for row in rows:
        scale = SCALE[row["unit"]]
        out.append(f"{row['name']:<22}{row['unit']:>5}" + "".join(
            f"{row['times_s'][m] * scale:>11.3f}" if m in row["times_s"] else f"{'-':>11}"
            for m in modes))
    return out


RATIOS = [("fused/np", "numpy"), ("fused/eager", "eager"), ("fused/unf", "unfused"),
          ("fused/torch", "torch"), ("fused/t.comp", "torch_compile")]


def ratios_table(rows) -> list:
    """How many times faster fused runs than each other mode, its bandwidth next to the
    copy's, and the target."""
    header = (f"{'speedup of fused':<22}" + "".join(f"{name:>13}" for name, _ in RATIOS)
              + f"{'GB/s fused':>11}{'GB/s copy':>10}   target")
    out = [header, "-" * len(header)]
    for row in rows:
        t = row["times_s"]
        out.append(f"{row['name']:<22}" + "".join(
            f"{t[base] / t['fused']:>12.2f}x" if base in t else f"{'-':>13}"
            for _, base in RATIOS)
            + f"{row['gbps']['fused']:>11.2f}{row['copy_gbps']:>10.2f}   "
            + (verdict(row["target"]) if "target" in row else ""))
    return out


# ---- the plot -----------------------------------------------------------------------------
def plot(report, path) -> None:
    """Grouped bars: each mode's speedup over numpy, per workload, on a log scale."""
    plt = matplotlib_pyplot()
    rows = [r for r in report["workloads"] if "times_s" in r]
    modes = [m for m in report["modes"] if m != "numpy"]
    width = 0.8 / max(1, len(modes))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(rows)), 4.5))
    for k, mode in enumerate(modes):
        xs = [i + (k - (len(modes) - 1) / 2) * width for i in range(len(rows))]
        ys = [r["speedup_vs_numpy"].get(mode, math.nan) for r in rows]
        ax.bar(xs, ys, width, label=HEADERS[mode])
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(rows)), [r["name"] for r in rows], rotation=30, ha="right")
    ax.set_ylabel("speedup over numpy (higher is better)")
    ax.set_title(f"graphc {report['machine']['graphc']}, {report['backend']} backend")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
