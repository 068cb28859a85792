"""graphc's static SSA IR: graph structure, text form (printer + parser), verifier."""
from graphc.ir.graph import Constant, Graph, Namer, Op, Value
from graphc.ir.text import IRParseError, parse, parse_type, print_graph
from graphc.ir.verify import IRVerifyError, verify

# The printer builds on graph.py (as the parser must), so graph.py does not import it;
# every import of graphc.ir.graph runs this package first, so every Graph prints.
Graph.__str__ = print_graph

__all__ = ["Constant", "Graph", "Namer", "Op", "Value", "IRParseError", "IRVerifyError",
           "parse", "parse_type", "print_graph", "verify"]
