"""graphc's static SSA IR: graph structure, text form (printer + parser), verifier."""
from graphc.ir.graph import Constant, Graph, Namer, Op, Value
from graphc.ir.text import IRParseError, parse, parse_type, print_graph
from graphc.ir.verify import IRVerifyError, verify

__all__ = ["Constant", "Graph", "Namer", "Op", "Value", "IRParseError", "IRVerifyError",
           "parse", "parse_type", "print_graph", "verify"]
