"""Command line: ``python -m graphc ir SCRIPT.py [ARGS...]`` runs a script and prints the
traced, backward and optimised graphs of every program it compiles; ``python -m graphc
report SCRIPT.py [ARGS...]`` runs it with the compile report on and prints the report's
path (``graphc.report``); ``python -m graphc bench`` runs the benchmarks; ``python -m
graphc cache info|clear`` shows or empties the disk cache of compiled code."""
from __future__ import annotations

import argparse
import contextlib
import os
import runpy
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m graphc")
    sub = parser.add_subparsers(dest="command", required=True)
    ir = sub.add_parser("ir", help="run a script and print the IR of what it compiles")
    ir.add_argument("script")
    ir.add_argument("args", nargs=argparse.REMAINDER)
    report = sub.add_parser("report", help="run a script and write the HTML report of what "
                                           "it compiles")
    report.add_argument("--out", default="graphc-report",
                        help="the folder the report is written to (default: graphc-report)")
    report.add_argument("script")
    report.add_argument("args", nargs=argparse.REMAINDER)
    from graphc import bench
    bench.add_arguments(sub.add_parser("bench", help="run the compiled-graph benchmarks"))
    disk = sub.add_parser("cache", help="the disk cache of compiled code")
    disk.add_argument("action", choices=["info", "clear"],
                      help="info: where it is, its entries, size and limit; clear: empty it")
    args = parser.parse_args(argv)
    if args.command == "bench":
        return bench.main(args)
    if args.command == "cache":
        return cache_command(parser, args.action)
    if args.command == "ir":
        os.environ["GRAPHC_PRINT_IR"] = "1"
        run_script(parser, args.script, args.args)
    if args.command == "report":
        os.environ["GRAPHC_REPORT"] = args.out
        from graphc import profiling
        # per-kernel times in the report's kernels, unless GRAPHC_PROFILE=0 says not to
        # (graphc.profiling read the variable when graphc was imported, before this ran)
        with (contextlib.nullcontext() if os.environ.get("GRAPHC_PROFILE") == "0"
              else profiling.profile()):
            run_script(parser, args.script, args.args)
        from graphc.report import write
        paths = write()
        print("\n".join(paths) if paths else "graphc report: the script compiled nothing")
    return 0


def run_script(parser, script: str, args: list) -> None:
    """Run ``script`` with ``args`` as ``python SCRIPT.py ARGS`` would."""
    if not os.path.isfile(script):
        parser.error(f"can't open file {script!r}: no such file")
    sys.argv = [script] + args
    # As `python SCRIPT.py` does: the script's folder first on the import path.
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")


def cache_command(parser, action: str) -> int:
    """``cache info`` prints where the cache is, its entries, size and limit; ``cache
    clear`` removes every entry."""
    from graphc.targets import cache
    try:
        info = cache.info()
    except ValueError as e:                     # a malformed GRAPHC_CACHE_SIZE
        parser.error(str(e))
    if action == "clear" and info.directory is not None:
        print(f"removed {cache.clear()} entries from {info.directory}")
    else:
        print(info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
