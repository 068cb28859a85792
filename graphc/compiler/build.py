"""Differentiate, optimise, build: a :class:`~graphc.compiler.capture.Capture` becomes a
:class:`Program` the compiled callable runs.

- differentiate: when the results require grad, the autodiff pass derives the backward
  graph, and the forward graph also returns the values the backward reads (``saved``);
- optimise: the graph passes (``graphc.passes.PIPELINE``) on both graphs;
- build: the backend compiles each graph to a callable on arrays.

``dump(stage, content)`` receives every stage (graphs, reports, generated code).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from graphc import progress
from graphc.compiler.capture import Capture, LiftedInput
from graphc.context import GraphBreak
from graphc.ir import Graph
from graphc.passes import run_pipeline
from graphc.tracing.autodiff import autodiff


@dataclass
class Differentiated:
    """The forward graph (returning ``n_saved`` saved values after the capture's
    outputs) and, when a backward exists, its graph: (cotangents of the results listed
    in ``grad_outputs``, then the saved values) -> gradients of the inputs ``wrt``."""
    forward: Graph
    backward: Graph | None = None
    grad_outputs: list = field(default_factory=list)
    wrt: list = field(default_factory=list)
    n_saved: int = 0


@dataclass
class Program:
    """One compiled specialisation of the user's function."""
    capture: Capture
    forward: object                 # backend program: list of arrays -> list of arrays
    backward: object                # backend program of the backward graph, or None
    grad_outputs: list              # result indices that take a cotangent
    wrt: list                       # graph input indices that get gradients
    n_saved: int
    cotangent_types: list           # TensorType of each cotangent the backward takes
    graphs: dict                    # stage name -> Graph, for printing
    lifted: list                    # (tensor, shape, requires_grad) as traced


def differentiate(cap: Capture, grad_enabled: bool) -> Differentiated:
    """The backward graph of ``cap`` when grad mode is on and a result requires grad
    (and the traced code did not touch gradients itself: a whole training step, whose
    backward already ran inside it, has none), with respect to the graph inputs that
    required grad when traced."""
    graph = cap.graph
    if not (grad_enabled and cap.results_require_grad and not cap.touches_grads):
        return Differentiated(graph)
    wrt = [i for i, v in enumerate(graph.inputs) if v in cap.differentiable]
    bwd = autodiff(graph, wrt, cap.differentiable, cap.custom_vjps,
                   cap.grad_hooks)
    grad_outputs = [i for i in bwd.grad_outputs if i < cap.n_results]
    if len(grad_outputs) != len(bwd.grad_outputs):
        raise GraphBreak(f"graphc cannot compile {graph.name}: it writes a value that "
                         f"requires grad into a tensor that existed before the call (an "
                         f"in-place update of a buffer or parameter with grad enabled)")
    forward = Graph(graph.inputs, graph.ops, graph.outputs + bwd.saved, graph.name)
    return Differentiated(forward, bwd.graph, grad_outputs, bwd.wrt, len(bwd.saved))


def optimise(graph: Graph, dump, prefix="") -> Graph:
    """The graph passes, each stage dumped."""
    with progress.stage("passes"):
        return run_pipeline(graph, dump=lambda stage, g: dump(f"{prefix}{stage}", g))


def build(cap: Capture, diff: Differentiated, backend, dump) -> Program:
    """Optimise both graphs and compile them with ``backend(graph, dump)``."""
    graphs = {"traced": cap.graph}
    if diff.backward is not None:
        dump("backward", diff.backward)
        graphs["backward"] = diff.backward
    forward = optimise(diff.forward, dump)
    graphs["forward"] = forward
    backward = None
    if diff.backward is not None:
        backward = backend(optimise(diff.backward, dump, "backward."), "backward")
    return Program(
        capture=cap, forward=backend(forward, "forward"), backward=backward,
        grad_outputs=diff.grad_outputs, wrt=diff.wrt, n_saved=diff.n_saved,
        cotangent_types=[v.type for v in
                         diff.backward.inputs[:len(diff.grad_outputs)]] if backward else [],
        graphs=graphs,
        lifted=[(s.tensor, tuple(s.tensor._array.shape), s.requires_grad)
                for s in cap.sources if isinstance(s, LiftedInput)])
