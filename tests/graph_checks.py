"""Checks every IR-producing test runs on its graphs.

``check_graph`` verifies a graph and checks that its text form parses back to a graph that
prints the same and has the same structure; ``check_programs`` runs it on every graph of
every program a ``graphc.compile`` result has cached.
"""
from graphc import ir
from graphc.ir import Graph


def check_graph(g: Graph) -> Graph:
    """Verify ``g``; assert ``str(parse(str(g))) == str(g)`` and that the parsed graph has
    the same inputs, ops (names, operands, attributes, types) and outputs, and that it
    compares equal to ``g``.  Returns the parsed graph."""
    ir.verify(g)
    text = str(g)
    parsed = ir.parse(text)
    assert str(parsed) == text
    ir.verify(parsed)
    assert parsed.name == g.name
    assert [(v.name, v.type) for v in parsed.inputs] == [(v.name, v.type) for v in g.inputs]
    assert [v.name for v in parsed.outputs] == [v.name for v in g.outputs]
    for a, b in zip(parsed.ops, g.ops, strict=True):
        assert (a.name, a.out.name, a.out.type, a.source) == \
            (b.name, b.out.name, b.out.type, b.source)
        assert [v.name for v in a.inputs] == [v.name for v in b.inputs]
        assert a.attrs == b.attrs
    assert parsed == g and g == parsed
    return parsed


def check_programs(compiled):
    """check_graph on every graph of every cached program of ``compiled``."""
    fn = getattr(compiled, "_compiled", compiled)
    programs = fn.graphs()
    assert programs
    for stages in programs:
        for graph in stages.values():
            check_graph(graph)
    return programs
