"""What per-kernel profiling costs: the time per call of compiled programs with profiling
off, against another graphc checkout (the commit before profiling existed), and on.

    python benchmarks/profile_overhead.py --against ../graphc-before    # off vs before, on
    python benchmarks/profile_overhead.py                               # off vs on only

Three programs on the cpu backend: ``tiny`` (x + 1 over 16 floats: the call's own work
is all there is, so a cost per call shows most), the README tour's MLP training step
(1000-100-10, Adam) and a small GPT training step (examples/gpt.py, 2 layers of width
32, 182 kernels).  Each process measures every program (median over rounds of the mean
of many calls, off and on in alternating rounds); processes of the two checkouts
alternate, ``--rounds`` each, and the table gives the median of their medians (the machine may be shared: noise is larger
than the difference looked for, so compare the spread too).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(name: str):
    """(compiled step, its arguments) of a workload, compiled and warm (also the
    programs of tests/targets/test_profile.py)."""
    import graphc
    from graphc import nn
    graphc.manual_seed(0)
    if name == "tiny":
        step, args = graphc.compile(lambda x: x + 1), (graphc.randn(16),)
    elif name == "mlp":
        model = nn.Sequential(nn.Linear(1000, 100), nn.ReLU(), nn.Linear(100, 10))
        optimizer = graphc.optim.Adam(model.parameters(), lr=1e-4)

        def mlp_step(x, y):
            loss = nn.MSELoss(reduction="sum")(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return loss
        step, args = graphc.compile(mlp_step), (graphc.randn(64, 1000), graphc.randn(64, 10))
    else:
        sys.path.insert(0, os.path.join(ROOT, "examples"))
        import gpt
        model = gpt.GPT(vocab=32, block_size=16, width=32, heads=2, layers=2)
        fn = gpt.train_step(model, graphc.optim.AdamW(model.parameters(), lr=3e-3))
        args = (graphc.randint(0, 32, (4, 16)), graphc.randint(0, 32, (4, 16)))
        fn(*args)                    # AdamW's state exists before the compile
        step = graphc.compile(fn)
    for _ in range(5):
        step(*args)
    return step, args


CALLS = {"tiny": 10000, "mlp": 200, "gpt": 200}
WORKLOADS = list(CALLS)


def per_call(step, args, calls: int) -> float:
    """Seconds per call, the mean of ``calls`` calls."""
    start = time.perf_counter()
    for _ in range(calls):
        step(*args)
    return (time.perf_counter() - start) / calls


def child(rounds: int = 7) -> dict:
    """This process's seconds per call of each workload, off and (where this graphc can
    profile) on, in alternating rounds: the median of each."""
    import graphc
    out = {}
    for name in WORKLOADS:
        step, args = build(name)
        times = {"off": [], "on": []}
        for _ in range(rounds):
            times["off"].append(per_call(step, args, CALLS[name]))
            if hasattr(graphc, "profile"):
                with graphc.profile():
                    times["on"].append(per_call(step, args, CALLS[name]))
        out[name] = {mode: statistics.median(t) for mode, t in times.items() if t}
    return out


def run_child(checkout: str) -> dict:
    env = dict(os.environ, PYTHONPATH=checkout)
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child"], env=env,
                          capture_output=True, text=True, check=True, cwd=checkout)
    return json.loads(done.stdout.splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", metavar="CHECKOUT",
                        help="another graphc source checkout to time with profiling off")
    parser.add_argument("--rounds", type=int, default=3, help="processes per checkout")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child()))
        return
    checkouts = {"this": ROOT} | ({"before": os.path.abspath(args.against)}
                                  if args.against else {})
    results = {label: [] for label in checkouts}
    for _ in range(args.rounds):
        for label, checkout in checkouts.items():
            results[label].append(run_child(checkout))

    def median(label, name, mode):
        return statistics.median(r[name][mode] for r in results[label])

    def spread(label, name, mode):
        values = [r[name][mode] * 1e6 for r in results[label]]
        return f"{min(values):.2f}-{max(values):.2f}"

    print(f"us per call, median of {args.rounds} processes per checkout (min-max), "
          f"{os.cpu_count()} CPUs")
    for name in WORKLOADS:
        off, on = median("this", name, "off"), median("this", name, "on")
        line = f"{name:<6} off {off * 1e6:9.2f} ({spread('this', name, 'off')})"
        if "before" in results:
            before = median("before", name, "off")
            line += (f"   before {before * 1e6:9.2f} ({spread('before', name, 'off')})"
                     f"   off/before {off / before:6.3f}")
        line += f"   on {on * 1e6:9.2f}   on/off {on / off:6.3f}"
        print(line)


if __name__ == "__main__":
    main()
