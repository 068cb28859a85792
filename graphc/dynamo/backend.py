"""graphc as a TorchDynamo backend: ``torch.compile(model, backend="graphc")``.

Dynamo hands ``backend`` an FX graph of torch functions.  AOTAutograd traces it to ATen
(functional: in-place updates become outputs that AOTAutograd writes back), splits
forward from backward, and hands each graph to ``compile_graph``.  There, the nodes
graphc can run (an ATen op with a lowering in ``graphc.dynamo.aten``) are grouped into
partitions; each partition becomes a function that runs its nodes' lowerings on graphc
tensors, compiled by ``graphc.compile``; the other nodes stay in PyTorch.  At run time
PyTorch's tensors go in and come out without copies (both sides view the same memory
through numpy arrays).
"""
from __future__ import annotations

import functools
import itertools
import operator
import warnings

import ml_dtypes
import numpy as np
import torch
from torch._dynamo.backends.common import aot_autograd
from torch._dynamo.utils import counters
from torch._functorch.aot_autograd import make_boxed_func
from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
from torch.fx.passes.operator_support import OperatorSupportBase

import graphc
from graphc import logs, targets
from graphc.compiler.compiled import MODES
from graphc.dynamo import aten

OPTIONS = ("backend", "fuse", "dump")

_log = logs.logger("graph_breaks")
_warned: set[str] = set()           # the ops already named in a warning (once per process)
_graph_ids = itertools.count()      # numbers the graphs compiled, to name their partitions


def backend(gm: torch.fx.GraphModule, example_inputs, *, options=None, mode=None):
    """The Dynamo backend: compile ``gm`` (forward and backward) with graphc.

    ``options`` (``torch.compile(..., options={...})``): ``backend`` (a graphc backend
    name, default "cpu"), ``fuse`` (default True), ``dump`` (a folder for each
    partition's fusion report, loop IR and generated code).  ``mode`` is accepted for
    PyTorch programs: graphc has one mode.  Tensors off the CPU are refused."""
    if mode not in MODES:
        raise RuntimeError(f"graphc backend: unrecognized mode={mode!r}, should be one of: "
                           f"{', '.join(m for m in MODES if m)}")
    settings = _settings(options, example_inputs)
    if any(_symbolic(node.meta.get("example_value")) for node in gm.graph.nodes
           if node.op == "placeholder"):
        return torch._dynamo.disable(Specialised(gm, settings),
                                     reason="graphc compiles each call's sizes itself")
    return _aot(gm, example_inputs, settings)


def _aot(gm: torch.fx.GraphModule, example_inputs, settings: dict):
    """AOTAutograd with graphc compiling both graphs.  A graph without autograd (an
    optimizer's step) keeps its updates of inputs as ``copy_`` nodes, which graphc writes
    into the inputs' memory: no fresh outputs for PyTorch to copy back."""
    compiler = functools.partial(compile_graph, settings=settings)
    return aot_autograd(fw_compiler=compiler, bw_compiler=compiler,
                        decompositions=aten.DECOMPOSITIONS,
                        keep_inference_input_mutations=True)(gm, example_inputs)


def _symbolic(value) -> bool:
    """Whether a placeholder's example is a symbolic size or has one in its shape."""
    if isinstance(value, torch.SymInt):
        return True
    return isinstance(value, torch.Tensor) and \
        any(not isinstance(d, int) for d in (*value.shape, *value.stride()))


class Specialised:
    """A Dynamo graph with symbolic sizes (after a shape change, Dynamo's automatic
    dynamic shapes recompile with them; ``torch.compile(dynamic=True)`` from the start),
    compiled through AOTAutograd once per combination of concrete sizes it is called
    with: graphc compiles static shapes, and a symbolic graph would leave every op to
    PyTorch.  Dynamo then still compiles one graph for all sizes."""

    def __init__(self, gm: torch.fx.GraphModule, settings: dict):
        self.gm, self.settings, self.by_sizes = gm, settings, {}

    def __call__(self, *args):
        key = (torch.is_grad_enabled(), *((x.shape, x.stride()) if isinstance(x, torch.Tensor)
                                          else x for x in args))
        compiled = self.by_sizes.get(key)
        if compiled is None:
            compiled = self.by_sizes[key] = _aot(self.gm, list(args), self.settings)
        return compiled(*args)


def _settings(options, example_inputs) -> dict:
    """graphc.compile's settings from the backend's options, checked."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise RuntimeError(f"graphc backend: unexpected option {unknown[0]!r}, known options "
                           f"are {list(OPTIONS)}")
    name = options.get("backend", "cpu")
    if name not in targets.NAMES:
        raise RuntimeError(f"graphc backend: unknown backend {name!r}; available: "
                           f"{', '.join(targets.NAMES)}")
    devices = sorted({str(x.device) for x in example_inputs
                      if isinstance(x, torch.Tensor) and x.device.type != "cpu"})
    if devices:
        raise RuntimeError(f"graphc backend: inputs on {', '.join(devices)}: graphc runs "
                           f"PyTorch's tensors in place only on the CPU; move the model "
                           f"and its inputs to the CPU, or port the program to graphc "
                           f"(import graphc as torch) to use graphc's cuda backend")
    return dict(backend=name, fuse=bool(options.get("fuse", True)),
                dump=options.get("dump"))


def compile_graph(gm: torch.fx.GraphModule, example_inputs, settings: dict):
    """One ATen graph from AOTAutograd -> the same graph with each partition of nodes
    graphc supports replaced by a graphc-compiled ``Partition``."""
    partitioner = CapabilityBasedPartitioner(gm, _Support(), allows_single_node_partition=True)
    partitions = partitioner.propose_partitions()
    _report(gm, {node for p in partitions for node in p.nodes})
    split = partitioner.fuse_partitions(partitions)
    graph_id = next(_graph_ids)
    for node in split.graph.nodes:
        if node.op == "call_module":
            name = f"graph{graph_id}_{node.target}"
            setattr(split, node.target, Partition(getattr(split, node.target), name, settings))
    return make_boxed_func(split)


def _report(gm: torch.fx.GraphModule, in_graphc: set) -> None:
    """Count where the graph's nodes run (``torch._dynamo.utils.counters["graphc"]``:
    ``graphc nodes``, and ``pytorch <op>`` per op left to PyTorch) and name each op
    graphc cannot run: on the ``graph_breaks`` log channel, and in a warning once."""
    ran = counters["graphc"]
    ran["graphc nodes"] += len(in_graphc)
    for node in gm.graph.nodes:
        if node.op != "call_function" or node in in_graphc or \
                node.target is operator.getitem or \
                not isinstance(node.meta.get("val"), (torch.Tensor, list, tuple)):
            continue                # placeholders, items of tuples, size arithmetic
        name, why = str(node.target), _why_not(node)
        ran[f"pytorch {name}"] += 1
        _log.debug("graphc cannot run %s (%s): it runs in PyTorch", name, why)
        if name not in _warned:
            _warned.add(name)
            warnings.warn(f"graphc cannot run {name} ({why}); it runs in PyTorch and the "
                          f"rest of the graph in graphc", stacklevel=2)


def _why_not(node) -> str | None:
    """Why graphc cannot run ``node`` (a reason to name), or None when it can."""
    if node.target is operator.getitem:         # an item of a supported op's tuple
        return None if _supported(node.args[0]) else "its tuple comes from PyTorch"
    return aten.unsupported(node)


def _supported(node) -> bool:
    return node.op == "call_function" and _why_not(node) is None


class _Support(OperatorSupportBase):
    """The partitioner's question: can graphc run this node?"""

    def is_node_supported(self, submodules, node) -> bool:
        return _supported(node)


def _run_nodes(graph: torch.fx.Graph, *args):
    """Run a partition's nodes on graphc tensors: each ATen op by its lowering."""
    env = {}
    inputs = iter(args)
    for node in graph.nodes:
        if node.op == "placeholder":
            env[node] = next(inputs)
        elif node.op == "call_function":
            fn = aten.LOWERINGS[node.target]
            node_args, node_kwargs = torch.fx.node.map_arg((node.args, node.kwargs),
                                                           env.__getitem__)
            env[node] = fn(*node_args, **node_kwargs)
            _check_dtypes(node, env[node])
        else:                           # the output node, last (a partition holds no other)
            result = torch.fx.node.map_arg(node.args[0], env.__getitem__)
            return tuple(result) if isinstance(result, (list, tuple)) else result


def _check_dtypes(node, result) -> None:
    """A lowering's results must have PyTorch's dtypes: checked as a partition is traced
    (once per compile, not per call), so a lowering that got one wrong fails loudly."""
    expected = node.meta.get("val")
    pairs = zip(expected, result) if isinstance(expected, (list, tuple)) else \
        [(expected, result)]
    for want, got in pairs:
        if isinstance(want, torch.Tensor) and isinstance(got, graphc.Tensor) and \
                got.dtype.name != str(want.dtype).removeprefix("torch."):
            raise RuntimeError(f"graphc backend: the lowering of {node.target} gave "
                               f"{got.dtype.name} where PyTorch gives {want.dtype}")


class Partition(torch.nn.Module):
    """Nodes graphc runs, as one ``graphc.compile``d function called on torch tensors
    (its graph has static shapes: ``Specialised`` sees to that)."""

    def __init__(self, part: torch.fx.GraphModule, name: str, settings: dict):
        super().__init__()
        self.part = part
        run = functools.partial(_run_nodes, part.graph)
        run.__name__ = name             # names its compile logs and dump files
        self.compiled = graphc.compile(run, backend=settings["backend"], fuse=settings["fuse"],
                                       dump=settings["dump"], dynamic=False)

    def forward(self, *args):
        result = self.compiled(*map(to_graphc, args))
        return tuple(map(to_torch, result)) if isinstance(result, tuple) else to_torch(result)


# Tensors cross between the two libraries as numpy arrays: as zero-copy as DLPack
# (``graphc.from_dlpack``/``torch.from_dlpack``) and 4-8x cheaper per tensor (measured:
# 2.4 vs 11.5 us into graphc, 1.3 vs 10.4 us back), which counts on every partition call.
def to_graphc(x):
    """A torch tensor -> a graphc tensor on the same memory (other values unchanged)."""
    if not isinstance(x, torch.Tensor):
        return x
    x = x.detach()
    if x.dtype == torch.bfloat16:       # numpy has no bfloat16: view the bits
        return graphc.from_numpy(x.view(torch.int16).numpy().view(ml_dtypes.bfloat16))
    return graphc.from_numpy(x.numpy())


def to_torch(t):
    """A graphc tensor -> a torch tensor on the same memory."""
    if not isinstance(t, graphc.Tensor):
        return t
    array = t.detach().numpy()
    if array.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(array)
