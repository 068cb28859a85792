"""Command line: ``python -m graphc ir SCRIPT.py [ARGS...]`` runs a script and prints the
traced, backward and optimised graphs of every program it compiles."""
from __future__ import annotations

import argparse
import os
import runpy
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m graphc")
    sub = parser.add_subparsers(dest="command", required=True)
    ir = sub.add_parser("ir", help="run a script and print the IR of what it compiles")
    ir.add_argument("script")
    ir.add_argument("args", nargs=argparse.REMAINDER)
    from graphc import bench
    bench.add_arguments(sub.add_parser("bench", help="run the compiled-graph benchmarks"))
    args = parser.parse_args(argv)
    if args.command == "bench":
        return bench.main(args)
    if args.command == "ir":
        if not os.path.isfile(args.script):
            parser.error(f"can't open file {args.script!r}: no such file")
        os.environ["GRAPHC_PRINT_IR"] = "1"
        sys.argv = [args.script] + args.args
        # As `python SCRIPT.py` does: the script's folder first on the import path.
        sys.path.insert(0, os.path.dirname(os.path.abspath(args.script)))
        runpy.run_path(args.script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
