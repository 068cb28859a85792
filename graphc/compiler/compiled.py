"""The compiled callable: guards, the program cache, graph-break fallback, running a
program, and the autograd node that runs its compiled backward.

A compiled callable keeps a cache of programs keyed by guards (input shapes, dtypes,
requires_grad, train/eval mode of the modules involved, grad mode, optimizer
hyperparameters); a call that fails every guard captures and builds again
(``capture`` -> ``differentiate`` -> ``optimise`` -> ``build``).  In-place updates made
by the traced code are written back after each run.  Code that cannot be traced raises
(``fullgraph=True``) or runs eagerly for that call with a one-time warning.
"""
from __future__ import annotations

import functools
import os
import warnings

import numpy as np

from graphc import backends, context, residency
from graphc.compiler.build import Program, build, differentiate
from graphc.compiler.capture import (ArgInput, LiftedInput, RetraceLater, capture, state_roots,
                                     state_tensors)
from graphc.context import GraphBreak
from graphc.ir import Graph
from graphc.nn import Module
from graphc.tensor import Tensor
from graphc.tracing.trace import unflatten_tensors

_EAGER = "eager"          # cache entry: this guard key runs eagerly (after a graph break)


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
        for i, type_ in zip(self.program.grad_outputs, self.program.cotangent_types):
            g = grads[i] if i < len(grads) else None
            cotangents.append(np.zeros(type_.shape, type_.dtype.np) if g is None else g._data)
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


def _hyperparameters(optimizer) -> tuple:
    return tuple(tuple((k, v) for k, v in sorted(group.items())
                       if k != "params" and isinstance(v, (int, float, bool, str, tuple)))
                 for group in optimizer.param_groups)


class CompiledFunction:
    """What ``graphc.compile`` returns: call it like the original function."""

    def __init__(self, fn, backend="cpu", fuse=True, dump=None, fullgraph=False):
        self.fn = fn
        self.backend = backend
        self.compile_backend = backends.get(backend)
        self.fuse = fuse
        self.dump = dump if dump is not None else os.environ.get("GRAPHC_DUMP")
        self.fullgraph = fullgraph
        self.roots = state_roots(fn)
        # Walked on every call by the guards, so listed once (a module that gains
        # submodules or parameters after compile() is not seen: compile it again).
        self.root_modules = [(r, list(r.modules())) if hasattr(r, "modules") else (r, None)
                             for r in self.roots]
        self.params = state_tensors(self.roots)
        self.cache: dict = {}
        self.compile_count = 0
        self._warned: set = set()
        self.grad_sensitive = False     # a trace touched .grad: guard on which grads exist
        self.name = getattr(fn, "__name__", type(fn).__name__)

    def guard_key(self, args) -> tuple:
        key = [context.grad_enabled]
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
            program = self._build(args)
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
        if program is not _EAGER and program.capture.touches_grads \
                and not self.grad_sensitive:
            self.grad_sensitive = True
            key = key + (presence,)
        self.cache[key] = program
        return program

    def _build(self, args) -> Program:
        """capture -> differentiate -> optimise -> build."""
        cap = capture(self.fn, args, self.roots, self.params, self.name)
        self._dump("traced", cap.graph)

        def input_requires_grad(i):
            source = cap.sources[i]
            if isinstance(source, ArgInput):
                return args[source.index]._requires_grad
            return isinstance(source, LiftedInput) and source.tensor._requires_grad

        diff = differentiate(cap, input_requires_grad, context.grad_enabled)
        program = build(cap, diff, self._backend, self._dump)
        self.compile_count += 1
        return program

    def _backend(self, graph, stage):
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
        cap = program.capture
        # A device-resident backend reads the arrays' device copies itself
        # (graphc.residency); any other reads the host arrays, brought up to date (they
        # are, when no device copies exist).
        host = ("_array" if not residency.records or hasattr(program.forward, "call_resident")
                else "_data")
        arrays = [source.array(args, host) for source in cap.sources]
        self._release_replaced_grads(cap)
        outs = _owned(_call(program.forward, arrays))
        writes = cap.writebacks + [(args[i], k) for i, k in cap.arg_writebacks]
        for t, k in writes:
            residency.assign(t._array, outs[k])
            t._version[0] += 1
        for p, k in cap.grad_effects:
            p.grad = None if k is None else Tensor._wrap(outs[k], p.dtype)
        outputs = cap.graph.outputs
        results = [Tensor._wrap(outs[k], outputs[k].type.dtype) for k in range(cap.n_results)]
        if program.backward is not None:
            saved = outs[len(outs) - program.n_saved:] if program.n_saved else []
            inputs = [cap.sources[i].tensor_of(args) for i in program.wrt]
            node = CompiledNode(program, inputs, saved, cap.n_results)
            for k in program.grad_outputs:
                r = results[k]
                r._requires_grad, r.grad_fn, r._output_nr = True, node, k
        return unflatten_tensors(cap.result_tree, results)

    @staticmethod
    def _release_replaced_grads(cap):
        """Drop the ``.grad`` tensors the program replaces without reading them (a step
        that starts with ``zero_grad()``) before it runs, as the traced code did: a
        device backend then need not save the old gradients' values from the buffers
        the call overwrites."""
        if not cap.grad_effects:
            return
        read = {id(s.tensor) for s in cap.sources if isinstance(s, LiftedInput)}
        for p, k in cap.grad_effects:
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
    options = dict(backend=backend, fuse=fuse, dump=dump, fullgraph=fullgraph)
    if isinstance(fn_or_module, Module):
        return CompiledModule(fn_or_module, **options)
    return CompiledFunction(fn_or_module, **options)
