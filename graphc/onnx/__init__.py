"""``graphc.onnx`` (``torch.onnx``): ``export`` writes a model as an ONNX file.

The model's forward is traced in eval mode without grad, the way ``graphc.trace``
records a function; graphc's graph passes optimise the graph, and each op of the
result becomes one or a few standard ONNX nodes (``graphc/onnx/lowering.py``).
Parameters and buffers become initializers named by their state_dict names.  The model
is validated by ``onnx.checker.check_model(model, full_check=True)`` before it is
written.  ``onnx`` is an optional dependency (``pip install graphc[onnx]``), imported
only when exporting; see ``docs/onnx.md``.
"""
from __future__ import annotations

import os

from graphc.context import GraphBreak, no_grad, tracing
from graphc.onnx import errors
from graphc.onnx.errors import OnnxExporterError, UnsupportedOperatorError
from graphc.dtypes import TensorType
from graphc.ops import REGISTRY
from graphc.tensor import Tensor

__all__ = ["OnnxExporterError", "UnsupportedOperatorError", "errors", "export",
           "is_in_onnx_export"]

MIN_OPSET = 17
DEFAULT_OPSET = 18


_exporting = False


def is_in_onnx_export() -> bool:
    """Whether an ``export`` is tracing the model now (PyTorch's spelling)."""
    return _exporting


def _import_onnx():
    try:
        import onnx
    except ImportError as e:
        raise ImportError("graphc.onnx.export needs the onnx package: pip install "
                          "graphc[onnx] (or pip install onnx)") from e
    return onnx


def export(model, args=(), f=None, *, kwargs=None, export_params=True, verbose=None,
           input_names=None, output_names=None, opset_version=None, dynamic_axes=None,
           do_constant_folding=True):
    """Export ``model`` (an ``nn.Module`` or a function of tensors) called on ``args``
    (a tuple, or one tensor) and ``kwargs`` to ONNX; writes it to ``f`` (a path or a
    binary file object) when given and returns the ``onnx.ModelProto``.

    PyTorch's keywords: ``input_names``/``output_names`` name the graph's tensor inputs
    and outputs (default ``input0``..., ``output0``...); ``opset_version`` (17 or newer,
    default 18); ``dynamic_axes`` ({name: {axis: dim name}} or {name: [axis]}) makes one
    dimension shared by the inputs (the batch, usually) dynamic; ``export_params=False``
    makes parameters and buffers graph inputs instead of initializers;
    ``do_constant_folding=False`` exports the graph as traced, without graphc's passes;
    ``verbose`` prints the graphc graph and the ONNX graph."""
    onnx = _import_onnx()
    from graphc.passes import run_pipeline
    opset = DEFAULT_OPSET if opset_version is None else opset_version
    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ValueError(f"graphc.onnx.export: opset_version {opset_version!r} is not "
                         f"supported; graphc exports opsets {MIN_OPSET} to {newest} (the "
                         f"installed onnx's newest); the default is {DEFAULT_OPSET}")
    args = (args,) if isinstance(args, Tensor) else tuple(args)
    kwargs = dict(kwargs or {})
    positions = [("arg", i) for i, a in enumerate(args) if isinstance(a, Tensor)] + \
        [("kwarg", k) for k, a in kwargs.items() if isinstance(a, Tensor)]
    names = _names(input_names, [f"input{i}" for i in range(len(positions))], "input")
    dynamic = _Dynamic.parse(dynamic_axes, names, args, kwargs, positions)
    graph, lifted = _trace_eval(model, args, kwargs, positions)
    if do_constant_folding:
        graph = run_pipeline(graph)
    shapes, attrs = _static_shapes(graph)
    if dynamic is not None:
        other, _ = _trace_eval(model, *dynamic.resized(args, kwargs, positions), positions)
        if do_constant_folding:
            other = run_pipeline(other)
        shapes, attrs = _symbolic(graph, other, dynamic)
    outputs = _names(output_names, [f"output{i}" for i in range(len(graph.outputs))],
                     "output")
    model_proto = _to_onnx(onnx, graph, lifted, shapes, attrs, names, outputs, opset,
                           export_params, dynamic)
    onnx.checker.check_model(model_proto, full_check=True)
    if verbose:
        print(graph)
        print(onnx.printer.to_text(model_proto.graph))
    if isinstance(f, (str, os.PathLike)):
        onnx.save_model(model_proto, os.fspath(f))
    elif f is not None:
        f.write(model_proto.SerializeToString())
    return model_proto


def _names(given, default, what) -> list:
    if given is None:
        return default
    given = list(given)
    names = given + default[len(given):]
    if len(given) > len(default) or len(set(names)) != len(names):
        raise ValueError(f"graphc.onnx.export: {what}_names {given} must be distinct "
                         f"(from the default names of the others too), at most one per "
                         f"{what} tensor ({len(default)})")
    return names


def _trace_eval(model, args, kwargs, positions):
    """Trace ``model(*args, **kwargs)`` in eval mode without grad; returns the graph
    (tensor arguments first, then lifted parameters and buffers) and, per lifted
    input value, its array."""
    global _exporting
    from graphc.compiler.capture import module_names, state_roots
    from graphc.ir import verify
    from graphc.nn import Module
    from graphc.tracing.trace import Trace, flatten_tensors
    roots = [r for _, r in state_roots(model)]
    modes = [(m, m.training) for r in roots if isinstance(r, Module) for m in r.modules()]
    tr = Trace(getattr(model, "__name__", type(model).__name__), module_names(*roots))
    args, kwargs = list(args), dict(kwargs)
    for i, (kind, key) in enumerate(positions):
        holder = args if kind == "arg" else kwargs
        x = holder[key]
        holder[key] = tr.input_tensor(TensorType(tuple(x.shape), x.dtype), f"input{i}")
    try:
        _exporting = True
        for m, _ in modes:
            m.training = False
        with no_grad(), tracing(tr):
            result = model(*args, **kwargs)
            outs = [tr.value_of(t) for t in flatten_tensors(result)]
    except GraphBreak as e:
        raise OnnxExporterError(f"graphc.onnx.export: the model cannot be traced into one "
                                f"graph: {e}") from e
    finally:
        _exporting = False
        for m, training in modes:
            m.training = training
        mutated = tr.restore()
    if mutated:
        raise OnnxExporterError(f"graphc.onnx.export: the model writes to "
                                f"{len(mutated)} of its tensors (buffers or parameters) "
                                f"when called in eval mode; an ONNX model has no state")
    if not outs:
        raise OnnxExporterError("graphc.onnx.export: the model returns no tensor")
    graph = verify(tr.graph(outs))
    draws = [op for op in graph.ops if op.name == "uniform"]
    if draws:
        raise UnsupportedOperatorError(
            f"graphc.onnx.export: the model draws random numbers (uniform, at "
            f"{draws[0].source}), which ONNX cannot reproduce: graphc's generator has no "
            f"ONNX operator; a module in eval mode (as export sets) draws nothing in "
            f"dropout, a function must not draw either")
    collectives = [op for op in graph.ops
                   if op.name in REGISTRY and REGISTRY[op.name].kind == "collective"]
    if collectives:
        raise UnsupportedOperatorError(
            f"graphc.onnx.export: the model communicates with other processes "
            f"({collectives[0].name}, at {collectives[0].source}), which ONNX has no "
            f"operator for: export the model of one process")
    lifted = {v: original for _, original, v in tr.lifted.values()}
    return graph, lifted


class _Dynamic:
    """The one dynamic dimension: its name, the (input index, axis) pairs that have
    it, and the sizes of the example (``size``) and of the second trace (``other``)."""

    def __init__(self, name, axes, size, outputs):
        self.name, self.axes, self.size, self.outputs = name, axes, size, outputs
        self.other = size + 1

    @classmethod
    def parse(cls, dynamic_axes, names, args, kwargs, positions):
        if not dynamic_axes:
            return None
        per_name = {}
        for key, axes in dynamic_axes.items():
            if not isinstance(axes, dict):
                axes = {a: f"{key}_dynamic_axes_{i + 1}" for i, a in enumerate(axes)}
            per_name[key] = {int(a): str(n) for a, n in axes.items()}
        dims = {n for axes in per_name.values() for n in axes.values()}
        if not dims:
            return None
        if len(dims) > 1:
            raise NotImplementedError(
                f"graphc.onnx.export: dynamic_axes names {sorted(dims)}; graphc exports one "
                f"dynamic dimension (a batch size shared by inputs and outputs), the others "
                f"are fixed at the example's sizes")
        name = dims.pop()
        axes, sizes = [], set()
        tensors = [(args if kind == "arg" else kwargs)[key] for kind, key in positions]
        for key, dims_of in per_name.items():
            if key not in names:
                continue
            i = names.index(key)
            for axis in dims_of:
                if not 0 <= axis < tensors[i].dim():
                    raise ValueError(f"graphc.onnx.export: dynamic axis {axis} of input "
                                     f"{key!r} is out of range for shape "
                                     f"{list(tensors[i].shape)}")
                axes.append((i, axis))
                sizes.add(tensors[i].shape[axis])
        if not axes:
            raise ValueError(f"graphc.onnx.export: dynamic_axes names no input among "
                             f"{names}")
        if len(sizes) != 1 or 0 in sizes:
            raise ValueError(f"graphc.onnx.export: the inputs' dynamic dimension "
                             f"{name!r} must have one non-zero size in the example, not "
                             f"{sorted(sizes)}")
        outputs = {k: v for k, v in per_name.items() if k not in names}
        return cls(name, axes, sizes.pop(), outputs)

    def resized(self, args, kwargs, positions):
        """The example arguments with the dynamic dimension resized to ``other``
        (cycling through the example's entries, so indices stay valid)."""
        import numpy as np
        from graphc.creation import tensor
        args, kwargs = list(args), dict(kwargs)
        for i, axis in self.axes:
            kind, key = positions[i]
            holder = args if kind == "arg" else kwargs
            x = holder[key]
            picked = np.take(x.detach().numpy(), np.arange(self.other) % self.size, axis)
            holder[key] = tensor(picked, dtype=x.dtype)
        return tuple(args), kwargs


def _static_shapes(graph):
    shapes = {v: v.type.shape for v in graph.inputs}
    shapes.update({op.out: op.out.type.shape for op in graph.ops})
    return shapes, {op: op.attr_dict for op in graph.ops}


def _symbolic(graph, other, dynamic):
    """Shapes and attributes of ``graph`` with every integer that scales with the
    dynamic dimension between the two traces replaced by a ``Dim``; anything else that
    differs (the graph's structure, a constant) means the model cannot have it dynamic."""
    from graphc.ir import Constant
    from graphc.onnx.lowering import Dim

    def fail(what):
        hint = (" (an example of size 1 traces broadcasting that a larger one does not: "
                "give an example of size 2 or more)" if dynamic.size == 1 else "")
        return OnnxExporterError(
            f"graphc.onnx.export: the model's graph depends on the dynamic dimension "
            f"{dynamic.name!r} beyond its size ({what}){hint}; export it with fixed shapes")

    def merge(a, b, where):
        if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b):
            return type(a)(merge(x, y, where) for x, y in zip(a, b))
        if type(a) is int and type(b) is int and a != b:
            if a % dynamic.size == 0 and a * dynamic.other == b * dynamic.size:
                return Dim(a // dynamic.size)
            raise fail(f"{a} becomes {b} in {where}")
        if isinstance(a, Constant) and a != b:
            raise fail(f"a constant changes in {where}")
        if a != b:
            raise fail(f"{a!r} becomes {b!r} in {where}")
        return a

    if [op.name for op in graph.ops] != [op.name for op in other.ops] or \
            len(graph.inputs) != len(other.inputs):
        raise fail("different ops are traced")
    shapes = {v: merge(v.type.shape, w.type.shape, f"the shape of input %{v.name}")
              for v, w in zip(graph.inputs, other.inputs)}
    attrs = {}
    for op, twin in zip(graph.ops, other.ops):
        where = f"{op.name} %{op.out.name} ({op.source})"
        shapes[op.out] = merge(op.out.type.shape, twin.out.type.shape, where)
        if op.name == "constant" and op.attrs != twin.attrs:
            # A constant filled with one value (an LSTM's zero state) may have the
            # dynamic dimension: it is exported as that value expanded to its shape.
            value = _splat_value(op.attr_dict["value"].array, twin.attr_dict["value"].array)
            if value is None:
                raise fail(f"a constant changes in {where}")
            attrs[op] = {"value": Constant(value)}
        else:
            attrs[op] = {k: merge(v, twin.attr_dict[k], where) for k, v in op.attrs}
    return shapes, attrs


def _splat_value(a, b):
    """The one value both arrays are filled with (a 0-d array), or None."""
    import numpy as np
    if a.dtype != b.dtype or a.size == 0 or b.size == 0:
        return None
    first = a.reshape(-1)[:1].reshape(())
    for x in (a, b):
        if x.tobytes() != np.full_like(x, first).tobytes():
            return None
    return first


def _to_onnx(onnx, graph, lifted, shapes, attrs, input_names, output_names, opset,
             export_params, dynamic):
    from graphc.onnx.lowering import EMITTERS, Dim, Emitter, onnx_dtype
    from graphc.ops import REGISTRY
    helper = onnx.helper
    n_args = len(graph.inputs) - len(lifted)
    names = {v: input_names[i] for i, v in enumerate(graph.inputs[:n_args])}
    names.update({v: v.name for v in graph.inputs[n_args:]})
    dyn = None if dynamic is None else (input_names[dynamic.axes[0][0]], dynamic.axes[0][1])
    e = Emitter(opset, dyn)

    def info(name, v):
        dims = [(dynamic.name if d.factor == 1 else f"{d.factor}*{dynamic.name}")
                if isinstance(d, Dim) else d for d in shapes[v]]
        return helper.make_tensor_value_info(name, onnx_dtype(v.type.dtype), dims)

    inputs = [info(names[v], v) for v in graph.inputs[:n_args]]
    for v in graph.inputs[n_args:]:
        if export_params:
            e.initializer(lifted[v], v.name)
        else:
            inputs.append(info(v.name, v))
    for op in graph.ops:
        if op.name == "constant":
            value = attrs[op]["value"].array
            names[op.out] = e.initializer(value) if value.shape == shapes[op.out] else \
                e.node("Expand", [e.initializer(value), e.ints(shapes[op.out])])
            continue
        prim = REGISTRY[op.name]
        view = _OpView(op, attrs[op])
        try:
            names[op.out] = EMITTERS[prim.kind](e, view, [names[v] for v in op.inputs],
                                                [shapes[v] for v in op.inputs])
        except UnsupportedOperatorError:
            raise
        except Exception as exc:
            raise OnnxExporterError(f"graphc.onnx.export: cannot export {op.name} "
                                    f"%{op.out.name} ({op.source}): {exc}") from exc
    outputs = []
    for name, v in zip(output_names, graph.outputs):
        e.nodes.append(helper.make_node("Identity", [names[v]], [name]))
        outputs.append(info(name, v))
    if dynamic is not None:
        _check_dynamic_outputs(dynamic, output_names, graph.outputs, shapes)
    taken = [i.name for i in inputs] + [i.name for i in e.initializers] + output_names
    if len(set(taken)) != len(taken):
        clash = sorted({n for n in taken if taken.count(n) > 1})
        raise ValueError(f"graphc.onnx.export: the names {clash} are given to more than "
                         f"one of the inputs, outputs and parameters")
    onnx_graph = helper.make_graph(e.nodes, graph.name, inputs, outputs,
                                   initializer=e.initializers)
    from graphc.version import __version__
    return helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", opset)],
                             producer_name="graphc", producer_version=__version__)


def _check_dynamic_outputs(dynamic, output_names, values, shapes):
    from graphc.onnx.lowering import Dim
    for key, axes in dynamic.outputs.items():
        if key not in output_names:
            raise ValueError(f"graphc.onnx.export: dynamic_axes names {key!r}, which is "
                             f"neither an input nor an output ({output_names})")
        shape = shapes[values[output_names.index(key)]]
        for axis in axes:
            if not 0 <= axis < len(shape) or not isinstance(shape[axis], Dim):
                raise ValueError(f"graphc.onnx.export: dimension {axis} of output {key!r} "
                                 f"(shape {[str(d) for d in shape]}) does not follow the "
                                 f"dynamic dimension {dynamic.name!r}")


class _OpView:
    """An op with its attributes replaced by their symbolic form (``Dim`` entries)."""

    def __init__(self, op, attrs):
        self.name, self.inputs, self.out, self.source = op.name, op.inputs, op.out, op.source
        self.attr_dict = attrs
