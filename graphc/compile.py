"""``graphc.compile``: trace, differentiate, optimise and hand a graph to a backend.

A compiled callable keeps a cache of programs keyed by guards (input shapes, dtypes,
requires_grad, train/eval mode of the modules involved, grad mode, optimizer
hyperparameters); a call that fails every guard traces and compiles again.  Module
parameters, buffers, optimizer state and gradients are lifted to graph inputs, so
updates are seen without recompiling; in-place updates made by the traced code are
written back after each run.  Code that cannot be traced raises (``fullgraph=True``) or
runs eagerly for that call with a one-time warning.
"""
from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from graphc import autograd, backends, creation, residency
from graphc.dtypes import TensorType
from graphc.ir import Graph
from graphc.passes import run_pipeline
from graphc.passes.autodiff import autodiff
from graphc.tensor import Tensor
from graphc.trace import (GraphBreak, Trace, flatten_tensors, module_names, tracing,
                          unflatten_tensors)

_EAGER = "eager"          # cache entry: this guard key runs eagerly (after a graph break)


class RetraceLater(GraphBreak):
    """The trace would capture state that does not exist yet (an optimizer's first
    step creates its state): run this call eagerly and trace the next one."""


@dataclass
class Program:
    """One compiled specialisation of the user's function."""
    forward: object                 # backend program: list of arrays -> list of arrays
    sources: list                   # per graph input: ("arg", i) | ("seed",) |
    #                                 ("lifted", t, t.requires_grad when traced)
    result_tree: object             # the traced return value (for its structure)
    n_results: int                  # how many leading outputs are the user's tensors
    writebacks: list                # (tensor, output index): copy the output into tensor
    arg_writebacks: list            # (argument index, output index): the same, for arguments
    grad_effects: list              # (tensor, output index or None): set tensor.grad
    touches_grads: bool             # the traced code read or set some parameter's .grad
    backward: object = None         # backend program of the backward graph, if any
    grad_outputs: list = field(default_factory=list)
    wrt: list = field(default_factory=list)     # graph input indices that get gradients
    n_saved: int = 0
    graphs: dict = field(default_factory=dict)  # stage name -> Graph, for printing
    lifted: list = field(default_factory=list)  # (tensor, shape, requires_grad) as traced


class CompiledNode:
    """The autograd node of a compiled call's outputs: runs the backward program."""

    def __init__(self, program: Program, inputs, saved, n_outputs):
        self.program = program
        self.inputs = inputs                       # tensors that receive gradients
        self.saved = saved
        self.n_outputs = n_outputs
        self.versions = [t._version[0] for t in inputs]
        self.freed = False
        self.retained = None

    def name(self):
        return "CompiledFunctionBackward"

    def apply(self, grads):
        if self.freed:
            raise RuntimeError("Trying to backward through the graph a second time; specify "
                               "retain_graph=True if you need to.")
        for t, v in zip(self.inputs, self.versions):
            if t._version[0] != v:
                raise RuntimeError("one of the variables needed for gradient computation has "
                                   "been modified by an inplace operation (an input of a "
                                   "compiled program changed between forward and backward)")
        cotangents = []
        for k, i in enumerate(self.program.grad_outputs):
            g = grads[i] if i < len(grads) else None
            shape = self.program.graphs["backward"].inputs[k].shape
            dtype = self.program.graphs["backward"].inputs[k].type.dtype
            cotangents.append(np.zeros(shape, dtype.np) if g is None else g._data)
        results = _owned(_call(self.program.backward, cotangents + self.saved))
        return [Tensor._wrap(r, t.dtype) for r, t in zip(results, self.inputs)]


def _call(program, arrays) -> list:
    """Run a backend program; a device backend's outputs stay on the device until read."""
    return getattr(program, "call_resident", program)(arrays)


def _owned(arrays) -> list:
    """Program outputs as arrays a tensor may own: a constant or a broadcast view comes
    out read-only, and the user may write to what they get (``p.grad.zero_()``); an
    array that is two outputs (CSE merged equal values) is copied for the second, so the
    two tensors do not share storage as they would not in eager mode."""
    seen, owned = set(), []
    for a in arrays:
        if not a.flags.writeable or id(a) in seen:
            residency.claim(a)
            a = np.array(a)
        seen.add(id(a))
        owned.append(a)
    return owned


def _state_roots(fn) -> list:
    """Modules and optimizers a function can reach: itself, its bound ``self``, its
    closure and the globals it names."""
    from graphc.nn import Module
    roots = [fn, getattr(fn, "__self__", None)]
    code = getattr(fn, "__code__", None)
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            roots.append(cell.cell_contents)
        except ValueError:
            pass
    if code is not None:
        g = getattr(fn, "__globals__", {})
        roots += [g[n] for n in code.co_names if n in g]
    return [r for r in roots if isinstance(r, Module) or _is_optimizer(r)]


def _is_optimizer(obj) -> bool:
    return hasattr(obj, "param_groups") and hasattr(obj, "state") and hasattr(obj, "step")


def _hyperparameters(optimizer) -> tuple:
    return tuple(tuple((k, v) for k, v in sorted(group.items())
                       if k != "params" and isinstance(v, (int, float, bool, str, tuple)))
                 for group in optimizer.param_groups)


def _state_tensors(roots) -> list:
    """Parameters whose ``.grad`` the traced code may set or clear."""
    from graphc.nn import Module
    seen, out = set(), []
    for r in roots:
        params = r.parameters() if isinstance(r, Module) else \
            [p for g in r.param_groups for p in g["params"]]
        for p in params:
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


class CompiledFunction:
    """What ``graphc.compile`` returns: call it like the original function."""

    def __init__(self, fn, backend="cpu", fuse=True, dump=None, fullgraph=False):
        self.fn = fn
        self.backend = backend
        self.compile_backend = backends.get(backend)
        self.fuse = fuse
        self.dump = dump if dump is not None else os.environ.get("GRAPHC_DUMP")
        self.fullgraph = fullgraph
        self.roots = _state_roots(fn)
        # Walked on every call by the guards, so listed once (a module that gains
        # submodules or parameters after compile() is not seen: compile it again).
        self.root_modules = [(r, list(r.modules())) if hasattr(r, "modules") else (r, None)
                             for r in self.roots]
        self.params = _state_tensors(self.roots)
        self.cache: dict = {}
        self.compile_count = 0
        self._warned: set = set()
        self.grad_sensitive = False     # a trace touched .grad: guard on which grads exist
        self.name = getattr(fn, "__name__", type(fn).__name__)

    def guard_key(self, args) -> tuple:
        key = [autograd.is_grad_enabled()]
        for a in args:
            if isinstance(a, Tensor):
                key.append((a._array.shape, a.dtype, a._requires_grad))
            else:
                key.append(("const", a))
        for r, modules in self.root_modules:
            if modules is not None:
                key.append(tuple(m.training for m in modules))
            else:
                key.append(_hyperparameters(r))
        if self.grad_sensitive:
            key.append(self._grad_presence())
        return tuple(key)

    def _grad_presence(self) -> tuple:
        """Which parameters have no ``.grad`` now.  Code that touches gradients
        (``loss.backward()`` accumulates into an existing grad, or creates it) traces
        differently for each, so once a trace touches them this is part of the key."""
        return tuple(p.grad is None for p in self.params)

    def __call__(self, *args):
        key = self.guard_key(args)
        program = self.cache.get(key)
        if program is None:
            program = self._compile(args, key)
        if program is _EAGER:
            return self.fn(*args)
        if not self._inputs_still_match(program):
            del self.cache[key]
            return self(*args)
        return self._run(program, args)

    # ---- compilation -------------------------------------------------------------------------
    def _compile(self, args, key):
        presence = self._grad_presence()
        try:
            program = self._trace_and_build(args)
        except RetraceLater:
            return _EAGER              # expected warm-up, not cached: the next call traces
        except GraphBreak as e:
            if self.fullgraph:
                raise
            if (type(e), str(e)) not in self._warned:
                self._warned.add((type(e), str(e)))
                warnings.warn(f"graphc.compile({self.name}): running eagerly: {e}",
                              stacklevel=3)
            program = _EAGER
        if program is not _EAGER and program.touches_grads and not self.grad_sensitive:
            self.grad_sensitive = True
            key = key + (presence,)
        self.cache[key] = program
        return program

    def _trace_and_build(self, args) -> Program:
        names = module_names(*self.roots)
        tr = Trace(self.name, names)
        sources, tracers = [], []
        for i, a in enumerate(args):
            if isinstance(a, Tensor):
                tracers.append(tr.input_tensor(TensorType(tuple(a.shape), a.dtype),
                                               f"input{i}", a._requires_grad))
                sources.append(("arg", i))
            else:
                tracers.append(a)
        arg_inputs = {i: tracers[i]._array for _, i in sources}    # to spot in-place writes
        params = self.params
        grads_before = [(p, p.grad) for p in params]
        optim_state = [(o, {p: dict(s) for p, s in o.state.items()})
                       for o in self.roots if _is_optimizer(o)]
        ok = False
        try:
            with tracing(tr):
                result = self.fn(*tracers)
                outs = flatten_tensors(result)
                result_values = [tr.value_of(t) for t in outs]
                arg_writes = [(i, tracers[i]._array) for i, v in arg_inputs.items()
                              if tracers[i]._array is not v]
                grads_after = [(p, p.grad) for p in params]
                grad_values = {id(p): tr.value_of(g) for p, g in grads_after
                               if g is not None and (g._serial >= tr.start_serial or
                                                     type(g._array) is not np.ndarray)}
            self._check_no_escapes(optim_state)
            ok = True
        finally:
            mutated = tr.restore()
            for p, g in grads_before:
                p.grad = g
            if not ok:
                for o, state in optim_state:
                    o.state.clear()
                    o.state.update(state)
        lifted_by_value = {v: t for t, _, v in tr.lifted.values()}
        seeds = set(tr.seeds)
        for v in tr.inputs[len(sources):]:
            if v in seeds:
                sources.append(("seed",))
            else:
                t = lifted_by_value[v]
                sources.append(("lifted", t, t._requires_grad))
        outputs = list(result_values)
        writebacks = []
        for t, v in mutated:
            writebacks.append((t, len(outputs)))
            outputs.append(v)
        arg_writebacks = []
        for i, v in arg_writes:                 # in-place writes to the arguments
            arg_writebacks.append((i, len(outputs)))
            outputs.append(v)
        grad_effects = []
        for (p, g), (_, before) in zip(grads_after, grads_before):
            if g is None and before is not None:
                grad_effects.append((p, None))
            elif id(p) in grad_values:
                grad_effects.append((p, len(outputs)))
                outputs.append(grad_values[id(p)])
        graph = tr.graph(outputs)
        graphs = {"traced": graph}
        self._dump("traced", graph)
        needs_backward = (autograd.is_grad_enabled() and not grad_effects
                          and any(t._requires_grad for t in outs))
        backward_graph = None
        grad_outputs, wrt, n_saved = [], [], 0
        if needs_backward:
            wrt = [i for i, v in enumerate(graph.inputs) if self._input_requires_grad(
                sources[i], args)]
            bwd = autodiff(graph, wrt)
            wrt = bwd.wrt
            grad_outputs = [i for i in bwd.grad_outputs if i < len(result_values)]
            if len(grad_outputs) == len(bwd.grad_outputs):
                n_saved = len(bwd.saved)
                graph = Graph(graph.inputs, graph.ops, graph.outputs + bwd.saved, graph.name)
                backward_graph = bwd.graph
                self._dump("backward", backward_graph)
                graphs["backward"] = backward_graph
            else:
                wrt, grad_outputs = [], []
        graph = run_pipeline(graph, dump=self._dump)
        graphs["forward"] = graph
        backward = None
        if backward_graph is not None:
            backward = self._backend(run_pipeline(
                backward_graph, dump=lambda stage, g: self._dump(f"backward.{stage}", g)))
        forward = self._backend(graph, "forward")
        self.compile_count += 1
        return Program(
            forward=forward, sources=sources, result_tree=result,
            n_results=len(result_values), writebacks=writebacks,
            arg_writebacks=arg_writebacks, grad_effects=grad_effects,
            touches_grads=bool(grad_effects) or any(id(g) in tr.lifted
                                                    for _, g in grads_before),
            backward=backward, grad_outputs=grad_outputs, wrt=wrt, n_saved=n_saved,
            graphs=graphs, lifted=[(s[1], tuple(s[1]._array.shape), s[2]) for s in sources
                                   if s[0] == "lifted"])

    @staticmethod
    def _input_requires_grad(source, args) -> bool:
        if source[0] == "arg":
            return args[source[1]]._requires_grad
        return source[0] == "lifted" and source[1]._requires_grad

    @staticmethod
    def _check_no_escapes(optim_state):
        for o, before in optim_state:
            for p, state in o.state.items():
                for k, v in state.items():
                    if isinstance(v, Tensor) and type(v._array) is not np.ndarray and (
                            p not in before or before[p].get(k) is not v):
                        raise RetraceLater("the optimizer creates its state on its first "
                                           "step; tracing from the next call")

    def _backend(self, graph, stage="backward"):
        """Hand a graph to the backend; its stages (fusion report, loop IR, generated
        code) are dumped under ``stage``."""
        return self.compile_backend(graph, fuse=self.fuse,
                                    dump=lambda name, text: self._dump(f"{stage}.{name}", text))

    def _dump(self, stage, content):
        """Print (GRAPHC_PRINT_IR) and/or write (dump dir) one stage's text: a graph, a
        report, or generated code (stages ending in ``ll``/``cu`` keep that extension)."""
        if os.environ.get("GRAPHC_PRINT_IR") and isinstance(content, Graph):
            print(f"# graphc: {self.name}: {stage}\n{content}\n")
        if self.dump:
            os.makedirs(self.dump, exist_ok=True)
            ext = stage.rsplit(".", 1)[-1] if stage.endswith((".ll", ".cu")) else "txt"
            base = stage[: -len(ext) - 1] if ext != "txt" else stage
            path = os.path.join(self.dump, f"{self.name}.{self.compile_count}.{base}.{ext}")
            with open(path, "w") as f:
                f.write(str(content) + "\n")

    # ---- running -------------------------------------------------------------------------------
    @staticmethod
    def _inputs_still_match(program) -> bool:
        """A lifted tensor replaced by one of another shape (p.data = ...), or frozen or
        unfrozen (requires_grad_), needs a recompile; the guard key cannot see it."""
        return all(t._array.shape == shape and t._requires_grad == requires_grad
                   for t, shape, requires_grad in program.lifted)

    def _run(self, program: Program, args):
        # A device-resident backend reads the arrays' device copies itself
        # (graphc.residency); any other reads the host arrays, brought up to date (they
        # are, when no device copies exist).
        host = ("_array" if not residency.records or hasattr(program.forward, "call_resident")
                else "_data")
        arrays = []
        for source in program.sources:
            if source[0] == "arg":
                arrays.append(getattr(args[source[1]], host))
            elif source[0] == "lifted":
                arrays.append(getattr(source[1], host))
            else:
                arrays.append(creation.next_seed()._data)
        self._release_replaced_grads(program)
        outs = _owned(_call(program.forward, arrays))
        writes = program.writebacks + [(args[i], k) for i, k in program.arg_writebacks]
        for t, k in writes:
            residency.assign(t._array, outs[k])
            t._version[0] += 1
        for p, k in program.grad_effects:
            p.grad = None if k is None else Tensor._wrap(outs[k], p.dtype)
        results = [Tensor._wrap(outs[k], program.graphs["traced"].outputs[k].type.dtype)
                   for k in range(program.n_results)]
        if program.backward is not None:
            n = program.n_results
            saved = outs[len(outs) - program.n_saved:] if program.n_saved else []
            inputs = []
            for i in program.wrt:
                kind = program.sources[i]
                inputs.append(args[kind[1]] if kind[0] == "arg" else kind[1])
            node = CompiledNode(program, inputs, saved, n)
            for k in program.grad_outputs:
                r = results[k]
                r._requires_grad, r.grad_fn, r._output_nr = True, node, k
        return unflatten_tensors(program.result_tree, results)

    @staticmethod
    def _release_replaced_grads(program):
        """Drop the ``.grad`` tensors the program replaces without reading them (a step
        that starts with ``zero_grad()``) before it runs, as the traced code did: a
        device backend then need not save the old gradients' values from the buffers
        the call overwrites."""
        if not program.grad_effects:
            return
        read = {id(s[1]) for s in program.sources if s[0] == "lifted"}
        for p, k in program.grad_effects:
            if k is not None and p.grad is not None and id(p.grad) not in read:
                p.grad = None

    # ---- inspection ----------------------------------------------------------------------------
    def graphs(self) -> list:
        """The graphs of every cached program: [{stage: Graph}, ...]."""
        return [p.graphs for p in self.cache.values() if p is not _EAGER]


class CompiledModule:
    """A compiled ``nn.Module``: calls run the compiled program; everything else
    (parameters, train/eval, state_dict, ...) is the original module's."""

    def __init__(self, module, **options):
        object.__setattr__(self, "_orig_mod", module)
        object.__setattr__(self, "_compiled", CompiledFunction(module, **options))

    def __call__(self, *args):
        return self._compiled(*args)

    def __getattr__(self, name):
        attr = getattr(self._orig_mod, name)
        if callable(attr) and getattr(attr, "__self__", None) is self._orig_mod:
            return functools.partial(self._call_method, attr)
        return attr

    def _call_method(self, method, *args, **kwargs):
        """Methods that return the module (``train``, ``eval``, ``to``) return the
        compiled module, as PyTorch's do: ``model = graphc.compile(net).to(device)``."""
        result = method(*args, **kwargs)
        return self if result is self._orig_mod else result

    def __setattr__(self, name, value):
        setattr(self._orig_mod, name, value)

    @property
    def compile_count(self) -> int:
        return self._compiled.compile_count

    def __repr__(self):
        return f"Compiled({self._orig_mod!r})"


def compile(fn_or_module, backend="cpu", fuse=True, dump=None, fullgraph=False):
    """Compile a function or ``nn.Module``; returns a callable with the same signature.

    Example::

        model = graphc.compile(MyNet())
        loss = loss_fn(model(x), y)
        loss.backward()          # runs the compiled backward graph
    """
    from graphc.nn import Module
    options = dict(backend=backend, fuse=fuse, dump=dump, fullgraph=fullgraph)
    if isinstance(fn_or_module, Module):
        return CompiledModule(fn_or_module, **options)
    return CompiledFunction(fn_or_module, **options)


def explain(fn_or_module, *example_inputs, fuse=True) -> str:
    """The fusion report for ``fn_or_module`` on ``example_inputs``: the kernels, the ops
    in each, why each unfused edge is a kernel boundary, and the peak bytes of
    intermediate buffers.  Example::

        print(graphc.explain(lambda x: x.softmax(1), graphc.randn(8, 16)))
    """
    from graphc.codegen.lower import lower
    from graphc.codegen.memory import peak_bytes
    from graphc.trace import trace
    graph = run_pipeline(trace(fn_or_module, *example_inputs))
    program, fusion = lower(graph, fuse)
    return fusion.report() + f"\npeak intermediate bytes: {peak_bytes(program)}"
