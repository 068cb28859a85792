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
    args = parser.parse_args(argv)
    if args.command == "ir":
        os.environ["GRAPHC_PRINT_IR"] = "1"
        sys.argv = [args.script] + args.args
        runpy.run_path(args.script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
