"""The compiled callable: the program cache, guards and recompiles, graph-break
fallback, running a program, and the autograd node that runs its compiled backward.

A call flattens its arguments (nested tuples, lists, dicts, keyword arguments) and
looks up the programs compiled for their structure and metadata (shapes, dtypes,
requires_grad, Python number values, grad mode); the first whose guards
(``graphc.compiler.guards``) all pass runs.  When none does, the function is traced and
built again (``capture`` -> ``differentiate`` -> ``optimise`` -> ``build``), and the
``recompiles`` log says which guard failed.  A number argument whose value changed
becomes a runtime input ("automatic dynamic"), so a third value compiles nothing.
After ``recompile_limit`` recompiles, new cases run eagerly with one warning.

In-place updates made by the traced code are written back after each run.  Code that
cannot be traced raises (``fullgraph=True``) or runs eagerly with a one-time warning.
"""
from __future__ import annotations

import functools
import importlib
import operator
import os
import types
import warnings

import numpy as np

from graphc import amp, targets, context, dispatch, progress, residency
from graphc.compiler.build import Program, build, differentiate
from graphc.compiler.capture import (ArgInput, LiftedInput, RetraceLater, capture,
                                     flatten_args)
from graphc.compiler.guards import Guards
from graphc.context import GraphBreak
from graphc.ir import Graph
from graphc.logs import logger
from graphc.nn import Module
from graphc.nn.parallel import DistributedDataParallel
from graphc.ops import REGISTRY
from graphc.report import recorder_for
from graphc.tensor import Tensor
from graphc.tracing.trace import unflatten_tensors

EAGER = "eager"            # a cache entry's program after a graph break: run the function eagerly
RECOMPILE_LIMIT = int(os.environ.get("GRAPHC_RECOMPILE_LIMIT", "8"))
MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
OPTIONS = ("recompile_limit", "fuse", "dump", "report")


class CompiledNode:
    """The autograd node of a compiled call's outputs: runs the backward program, or
    under ``create_graph`` replays forward and backward graphs op by op, so the
    gradients it returns are themselves differentiable."""

    def __init__(self, program: Program, inputs, saved, n_outputs, call):
        self.program = program
        self.inputs = inputs                       # tensors that receive gradients
        self.saved = saved
        self.n_outputs = n_outputs
        self.call = call                           # (argument leaves, input arrays) of the call
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
            cotangents.append(Tensor._wrap(np.zeros(type_.shape, type_.dtype.np),
                                           type_.dtype) if g is None else g)
        if context.grad_enabled:                   # create_graph=True
            return self._replay(cotangents)
        results = _owned(_call(self.program.backward, [c._data for c in cotangents] +
                               self.saved))
        return [Tensor._wrap(r, t.dtype) for r, t in zip(results, self.inputs)]

    def _replay(self, cotangents):
        """Double backward: the forward graph re-run on the call's input tensors (so the
        saved values have a history), then the backward graph on those."""
        graphs = self.program.graphs
        cap, (leaves, arrays) = self.program.capture, self.call
        inputs = [s.tensor_of(leaves) if isinstance(s, (ArgInput, LiftedInput))
                  else Tensor._wrap(a, v.type.dtype)
                  for s, a, v in zip(cap.sources, arrays, cap.graph.inputs)]
        forward = replay(graphs["forward"], inputs)
        saved = forward[len(forward) - self.program.n_saved:] if self.program.n_saved else []
        return replay(graphs["backward"], list(cotangents) + saved)


def replay(graph: Graph, inputs: list) -> list:
    """Run ``graph`` op by op on tensors through the eager front end (so autograd
    records it): the reference semantics of a graph, used for double backward."""
    env = dict(zip(graph.inputs, inputs))
    for op in graph.ops:
        if op.name == "constant":
            value = op.attr_dict["value"].array
            env[op.out] = Tensor._wrap(np.array(value), op.out.type.dtype)
        else:
            env[op.out] = dispatch.bind(REGISTRY[op.name], *[env[v] for v in op.inputs],
                                        **op.attr_dict)
    return [env[v] for v in graph.outputs]


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


class CacheEntry:
    """One compiled specialisation: valid while ``guards`` pass.  ``plan``: its
    ``CallPlan``, made on the first call that can use one."""
    __slots__ = ("key", "guards", "program", "plan")

    def __init__(self, key, guards: Guards, program):
        self.key, self.guards, self.program = key, guards, program
        self.plan = None


# What the program key holds of each tensor argument (see ``CompiledFunction._key``).
_TENSOR_META = operator.attrgetter("_array.shape", "dtype", "_requires_grad")
_ARRAY = operator.attrgetter("_array")


class CallPlan:
    """Everything about calling one cached program with positional tensor arguments
    that does not change from call to call, worked out once: the key the arguments
    must match (``meta``: each tensor's shape, dtype and requires_grad; grad mode and
    autocast state), which graph inputs are arguments, and the backend's call plan
    (``BoundCall``) with the lifted tensors' arrays (parameters, optimizer state) as
    fixed inputs.  The plan is valid while those tensors keep the same arrays (checked
    by identity on each call; a replaced array binds the plan again)."""

    def __init__(self, entry: CacheEntry, key: tuple):
        program = self.program = entry.program
        cap = program.capture
        self.guards = entry.guards
        self.grad_enabled, self.amp, self.meta = key[0], key[2], tuple(key[3:])
        lifted = [(i, s.tensor) for i, s in enumerate(cap.sources)
                  if isinstance(s, LiftedInput)]
        self.lifted_positions = [i for i, _ in lifted]
        self.lifted = tuple(t for _, t in lifted)
        self.varying = [s for s in cap.sources if not isinstance(s, LiftedInput)]
        self.arg_indices = ([s.index for s in self.varying]
                            if all(isinstance(s, ArgInput) for s in self.varying) else None)
        self.bound, self.bound_ids = None, None
        self.in_place = [i for _, i in program.forward.in_place]
        self.written, self.written_roots = [], frozenset()
        self.results = [(k, v.type.dtype)
                        for k, v in enumerate(cap.graph.outputs[:cap.n_results])]
        self.single = isinstance(cap.result_tree, Tensor)
        # A pure function of its tensor arguments returning one tensor: the call is the
        # program's and a wrap, nothing more.
        pure = not (cap.writebacks or cap.arg_writebacks or cap.grad_effects or
                    cap.arg_grad_effects or program.backward is not None)
        self.only_result = self.results[0] if pure and self.single and \
            self.arg_indices is not None else None

    def bound_call(self):
        """The backend's call plan (``bind``) for the lifted tensors' current arrays."""
        if not self.lifted and self.bound is not None:
            return self.bound
        arrays = list(map(_ARRAY, self.lifted))
        ids = tuple(map(id, arrays))
        if ids != self.bound_ids:
            fixed = dict(zip(self.lifted_positions, arrays))
            private = {i for i in self.in_place
                       if any(np.may_share_memory(fixed[i], a) for j, a in fixed.items()
                              if j != i)}
            self.bound = self.program.forward.bind(fixed, private)
            self.written = [fixed[i] for i in self.in_place if i not in private]
            self.written_roots = frozenset(id(residency.root_of(a)) for a in self.written)
            self.bound_ids = ids
        return self.bound

    def apart(self, arrays) -> bool:
        """Whether ``arrays`` (the arguments' arrays) share no memory with the arrays
        the program updates in place (checked exactly only for a view, or an array
        that is the root of one of those)."""
        for a in arrays:
            if (a.base is not None or id(a) in self.written_roots) and \
                    any(np.may_share_memory(a, w) for w in self.written):
                return False
        return True


def _number_key(x):
    return x if x == x else "nan"          # NaN != NaN would miss the cache every time


class CompiledFunction:
    """What ``graphc.compile`` returns for a function: call it like the function."""

    def __init__(self, fn, backend="cpu", fuse=True, dump=None, fullgraph=False,
                 dynamic=None, recompile_limit=None, report=None):
        self.fn = fn
        self.backend = backend
        self.compile_backend = targets.get(backend)
        self.fuse = fuse
        self.dump = dump if dump is not None else os.environ.get("GRAPHC_DUMP")
        self.fullgraph = fullgraph
        self.dynamic = dynamic          # None: automatic; True: numbers always; False: never
        self.recompile_limit = RECOMPILE_LIMIT if recompile_limit is None else recompile_limit
        self.cache: dict = {}           # argument key -> [CacheEntry], newest first
        self.history: list = []         # every CacheEntry, oldest first
        self.dynamic_numbers: dict = {}  # argument structure -> number leaves read per call
        self.static_numbers: dict = {}   # argument structure -> leaves that must stay constant
        self.compile_count = 0
        self.recompiles = 0
        self._fast = None               # the CallPlan the last call ran, if one fits
        self._warned: set = set()
        self.name = getattr(fn, "__name__", type(fn).__name__)
        report = report if report is not None else os.environ.get("GRAPHC_REPORT")
        # graphc.report's view of this function's compiles, when a report is asked for
        self.reporter = (recorder_for(self.name, backend, report, fuse, self._where())
                         if report else None)
        functools.update_wrapper(self, fn, updated=())

    def __get__(self, obj, objtype=None):
        """``@graphc.compile`` on a method: bound, the instance is the first argument."""
        return self if obj is None else types.MethodType(self, obj)

    def __call__(self, *args, **kwargs):
        if context.traces:              # called from code being traced: trace through it
            return self.fn(*args, **kwargs)
        plan = self._fast
        if plan is not None and not kwargs and not residency.records:
            try:
                meta = tuple(map(_TENSOR_META, args))
            except AttributeError:      # an argument that is not a tensor
                meta = None
            if meta == plan.meta and context.grad_enabled is plan.grad_enabled and \
                    amp.state() == plan.amp and plan.guards.check():
                return self._run_planned(plan, plan.bound_call(), args)
        common = not kwargs and all(type(a) is Tensor for a in args)
        if common:
            leaves, spec = args, _all_tensors_spec(len(args))
        else:
            leaves = []
            spec = flatten_args((args, kwargs), leaves)
        key = self._key(spec, leaves)
        for entry in self.cache.get(key, ()):
            if entry.guards.check():
                break
        else:
            entry = self._miss(key, spec, leaves, args, kwargs)
        if entry is None or entry.program is EAGER:
            return self.fn(*args, **kwargs)
        if common:
            self._fast = self._plan_of(entry, key)
        return self._run(entry.program, leaves)

    def _plan_of(self, entry: CacheEntry, key) -> CallPlan | None:
        """The call plan of ``entry`` when the next call with the same key can take the
        fast path: ``entry`` is the first program tried for ``key`` (so the fast path
        picks what the lookup would), and its backend program can bind inputs."""
        if self.cache[key][0] is not entry or not hasattr(entry.program.forward, "bind"):
            return None
        if entry.plan is None:
            entry.plan = CallPlan(entry, key)
        return entry.plan

    def _key(self, spec, leaves) -> tuple:
        """What a program is specialised to, from the arguments alone: structure, each
        tensor's shape, dtype and requires_grad, each constant number's value; the grad
        mode and the autocast regions, which change what a trace records."""
        dynamic = self.dynamic_numbers.get(spec, ())
        key = [context.grad_enabled, spec, amp.state()]     # then one entry per leaf
        for i, x in enumerate(leaves):
            if isinstance(x, Tensor):
                key.append((x._array.shape, x.dtype, x._requires_grad))
            elif type(x) in (int, float):
                key.append(type(x) if i in dynamic else (type(x), _number_key(x)))
            else:
                key.append(id(x))        # an object: the same one (its guards check it lives)
        return tuple(key)

    # ---- a call no program fits ----------------------------------------------------------------
    def _miss(self, key, spec, leaves, args, kwargs):
        reason = self._why_miss(key, spec, leaves)
        if reason is not None and self._make_dynamic(key, spec, leaves):
            key = self._key(spec, leaves)
            for entry in self.cache.get(key, ()):
                if entry.guards.check():
                    return entry
        if reason is not None:
            if self.recompiles >= self.recompile_limit:
                self._warn_limit(reason)
                return None
            self.recompiles += 1
            logger("recompiles").info("Recompiling %s (%s): %s", self.name,
                                      self._where(), reason)
        return self._compile(key, spec, leaves, args, kwargs, reason)

    def _where(self) -> str:
        code = getattr(getattr(self.fn, "__func__", self.fn), "__code__", None)
        if code is None:
            code = getattr(getattr(self.fn, "forward", None), "__code__", None)
        return f"{os.path.basename(code.co_filename)}:{code.co_firstlineno}" if code else "?"

    def _why_miss(self, key, spec, leaves) -> str | None:
        """Why no cached program fits (None for the first compile): the first failing
        guard of the newest program for these arguments, or what changed in them."""
        if not self.history:
            return None
        same = self.cache.get(key)
        if same:
            return same[0].guards.first_failure() or "guards changed while checking"
        similar = [e for e in self.history if e.key[1] == spec]
        if not similar:
            return "the structure of the arguments changed"
        old = similar[-1].key
        if old[0] != key[0]:
            return f"grad mode: {'enabled' if old[0] else 'disabled'} -> " \
                   f"{'enabled' if key[0] else 'disabled'}"
        if old[2] != key[2]:
            return f"autocast regions: {old[2]} -> {key[2]}"
        paths = _leaf_paths(spec)
        for path, a, b in zip(paths, old[3:], key[3:]):
            if a != b:
                return f"{path}: {_describe_leaf(a)} -> {_describe_leaf(b)}"
        return "the arguments changed"

    def _make_dynamic(self, key, spec, leaves) -> bool:
        """Automatic dynamic: number arguments whose value differs from the newest
        program for this structure become runtime inputs.  True when any did."""
        if self.dynamic is False:
            return False
        similar = [e for e in self.history if e.key[1] == spec]
        if not similar:
            return False
        old = similar[-1].key
        dynamic = self.dynamic_numbers.setdefault(spec, set())
        static = self.static_numbers.get(spec, set())
        changed = {i for i, (a, b) in enumerate(zip(old[3:], key[3:]))
                   if type(leaves[i]) in (int, float) and a != b and i not in static
                   and i not in dynamic and isinstance(a, tuple) and a[0] is type(leaves[i])}
        dynamic |= changed
        return bool(changed)

    def _warn_limit(self, reason):
        if "limit" not in self._warned:
            self._warned.add("limit")
            message = (f"graphc.compile({self.name}) reached its recompile limit "
                       f"({self.recompile_limit}); the last recompile was needed because "
                       f"{reason}. New cases run eagerly from now on (raise the limit with "
                       f"graphc.compile(..., options={{'recompile_limit': N}}))")
            logger("recompiles").warning(message)
            warnings.warn(message, stacklevel=4)

    # ---- compilation ---------------------------------------------------------------------------
    def _compile(self, key, spec, leaves, args, kwargs, reason=None):
        """Compile for these arguments; ``reason``: why, when it is a recompile."""
        dynamic = self.dynamic_numbers.get(spec, set())
        if self.dynamic is True and not dynamic:
            dynamic |= {i for i, x in enumerate(leaves) if type(x) in (int, float)}
            self.dynamic_numbers[spec] = dynamic
            key = self._key(spec, leaves)
        if self.reporter is not None:
            self.reporter.begin(reason)
        try:
            program = self._build(spec, leaves, args, kwargs, dynamic)
        except RetraceLater:
            if self.reporter is not None:
                self.reporter.end(None)
            return None               # expected warm-up, not cached: the next call traces
        except Exception as e:
            if dynamic:
                # The code uses a number as a Python value (range(n), if x > 1, math.exp):
                # keep those numbers constant, as PyTorch does when a symbol fails.
                logger("perf_hints").info(
                    "%s: number arguments %s stay constants (%s: %s); each new value "
                    "recompiles", self.name, [_leaf_paths(spec)[i] for i in sorted(dynamic)],
                    type(e).__name__, e)
                self.static_numbers.setdefault(spec, set()).update(dynamic)
                self.dynamic_numbers[spec] = set()
                return self._compile(self._key(spec, leaves), spec, leaves, args, kwargs,
                                     reason)
            if not isinstance(e, GraphBreak):
                raise
            if self.fullgraph:
                raise
            logger("graph_breaks").info("%s: %s", self.name, e)
            if (type(e), str(e)) not in self._warned:
                self._warned.add((type(e), str(e)))
                warnings.warn(f"graphc.compile({self.name}): running eagerly: {e}",
                              stacklevel=4)
            entry = CacheEntry(key, Guards([], []), EAGER)
            if self.reporter is not None:
                self.reporter.end(entry, str(e))
        else:
            entry = CacheEntry(key, program.capture.guards, program)
            log = logger("guards")
            if log.isEnabledFor(10):
                log.debug("%s: %d guards\n    %s", self.name, len(entry.guards),
                          "\n    ".join(map(str, entry.guards)))
            if self.reporter is not None:
                self.reporter.end(entry)
        self.cache.setdefault(key, []).insert(0, entry)
        self.history.append(entry)
        self._fast = None
        return entry

    def _build(self, spec, leaves, args, kwargs, dynamic) -> Program:
        """capture -> differentiate -> optimise -> build."""
        with progress.compiling(self.name):
            with progress.stage("trace"):
                cap = capture(self.fn, args, kwargs, leaves, spec, dynamic, self.name)
            self._dump("traced", cap.graph)
            with progress.stage("differentiate"):
                diff = differentiate(cap, context.grad_enabled)
            program = build(cap, diff, functools.partial(self._backend, in_place=_in_place(cap)),
                            self._dump)
        self.compile_count += 1
        return program

    def _backend(self, graph, stage, in_place=()):
        """Hand a graph to the backend; its stages (fusion report, loop IR, generated
        code) are dumped under ``stage``.  The cpu backend may compute the forward
        graph's write-backs of lifted tensors into their own arrays (``in_place``)."""
        extra = {"in_place": in_place} if stage == "forward" and in_place and \
            self.backend == "cpu" else {}
        return self.compile_backend(graph, fuse=self.fuse, **extra,
                                    dump=lambda name, text: self._dump(f"{stage}.{name}", text))

    def _dump(self, stage, content):
        """Print (GRAPHC_PRINT_IR), log (``output_code``) and/or write (dump dir) one
        stage's text: a graph, a report, or generated code (stages ending in ``ll``/``cu``
        keep that extension)."""
        if self.reporter is not None:
            self.reporter.stage(stage, content)
        if os.environ.get("GRAPHC_PRINT_IR") and isinstance(content, Graph):
            print(f"# graphc: {self.name}: {stage}\n{content}\n")
        code_stage = stage.endswith((".ll", ".cu"))
        if code_stage:
            logger("output_code").debug("%s: %s (compile %d):\n%s", self.name, stage,
                                        self.compile_count + 1, content)
        if self.dump:
            os.makedirs(self.dump, exist_ok=True)
            ext = stage.rsplit(".", 1)[-1] if code_stage else "txt"
            base = stage[: -len(ext) - 1] if ext != "txt" else stage
            path = os.path.join(self.dump, f"{_file_name(self.name)}.{self.compile_count}."
                                           f"{base}.{ext}")
            with open(path, "w") as f:
                f.write(str(content) + "\n")

    # ---- running -------------------------------------------------------------------------------
    def _run(self, program: Program, leaves):
        cap = program.capture
        # A device-resident backend reads the arrays' device copies itself
        # (graphc.residency); any other reads the host arrays, brought up to date (they
        # are, when no device copies exist).
        host = ("_array" if not residency.records or hasattr(program.forward, "call_resident")
                else "_data")
        arrays = [source.array(leaves, host) for source in cap.sources]
        for _, i in getattr(program.forward, "in_place", ()):
            # Updated in place during the call: pass a copy, so an argument or another
            # input sharing its memory reads the old value throughout, as in eager.
            arrays[i] = np.array(arrays[i], order="C")
        self._release_replaced_grads(cap)
        outs = _owned(_call(program.forward, arrays))
        writes = cap.writebacks + [(leaves[i], k) for i, k in cap.arg_writebacks]
        for t, k in writes:
            residency.assign(t._array, outs[k])
            t._version[0] += 1
        return self._finish(program, leaves, arrays, outs)

    def _run_planned(self, plan: CallPlan, bound, leaves):
        """``_run`` by the call plan: only the arguments' arrays are passed, the outputs
        need no ``_owned`` (a bound call's are fresh and distinct), and with no device
        copies anywhere a write-back is a plain copy."""
        if plan.only_result is not None:
            k, dtype = plan.only_result
            return Tensor._wrap(bound([leaves[i]._array for i in plan.arg_indices])[k], dtype)
        cap = plan.program.capture
        if plan.arg_indices is not None:
            varying = [leaves[i]._array for i in plan.arg_indices]
        else:
            varying = [s.array(leaves, "_array") for s in plan.varying]
        if plan.written and not plan.apart(varying):
            return self._run(plan.program, leaves)     # which copies what it updates
        if cap.grad_effects:
            self._release_replaced_grads(cap)
        outs = bound(varying)
        for t, k in cap.writebacks:
            if outs[k] is not t._array:        # not computed in place
                np.copyto(t._array, outs[k])
            t._version[0] += 1
        for i, k in cap.arg_writebacks:
            t = leaves[i]
            np.copyto(t._array, outs[k])
            t._version[0] += 1
        arrays = bound.all_inputs(varying) if plan.program.backward is not None else None
        return self._finish(plan.program, leaves, arrays, outs)

    def _finish(self, program: Program, leaves, arrays, outs):
        """After the program ran: ``.grad`` effects, the results as tensors, and the
        compiled backward node."""
        cap = program.capture
        for p, k in cap.grad_effects:
            p.grad = None if k is None else Tensor._wrap(outs[k], p.dtype)
        for i, k in cap.arg_grad_effects:      # backward reached an argument: accumulate
            x, g = leaves[i], Tensor._wrap(outs[k], leaves[i].dtype)
            if x.grad is None:
                x.grad = g
            else:
                with context.grad_mode(False):
                    x.grad.add_(g)
        outputs = cap.graph.outputs
        results = [Tensor._wrap(outs[k], outputs[k].type.dtype) for k in range(cap.n_results)]
        if program.backward is not None:
            saved = outs[len(outs) - program.n_saved:] if program.n_saved else []
            inputs = [cap.sources[i].tensor_of(leaves) for i in program.wrt]
            node = CompiledNode(program, inputs, saved, cap.n_results, (leaves, arrays))
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
        return [e.program.graphs for e in self.history if e.program is not EAGER]

    def programs(self) -> list:
        return [e.program for e in self.history if e.program is not EAGER]


def _in_place(cap) -> list:
    """(output, input) positions of the capture's write-backs to lifted tensors: the new
    value of a parameter or optimizer state may be computed into its own array."""
    position = {id(s.tensor): i for i, s in enumerate(cap.sources)
                if isinstance(s, LiftedInput)}
    return [(k, position[id(t)]) for t, k in cap.writebacks if id(t) in position]


@functools.lru_cache(maxsize=64)
def _all_tensors_spec(n: int):
    """What ``flatten_args((args, {}), ...)`` returns for ``n`` positional tensors."""
    return (tuple, ((tuple, ("tensor",) * n), (dict, (), ())))


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def _leaf_paths(spec) -> list:
    """Readable names of the leaves of an argument structure: ``args[0]``,
    ``kwargs['mask']``, ``args[1][0]``."""
    paths = []

    def walk(node, path):
        if node in ("tensor", "number", "object"):
            paths.append(path)
        elif node[0] != "constant":
            if issubclass(node[0], dict):
                for k, child in zip(node[1], node[2]):
                    walk(child, f"{path}[{k!r}]")
            else:
                for i, child in enumerate(node[1]):
                    walk(child, f"{path}[{i}]")
    args, kwargs = spec[1]
    walk(args, "args")
    walk(kwargs, "kwargs")
    del walk
    return paths


def _describe_leaf(key_part) -> str:
    if isinstance(key_part, tuple) and len(key_part) == 3:
        shape, dtype, requires_grad = key_part
        return f"Tensor(shape={list(shape)}, dtype={dtype}, requires_grad={requires_grad})"
    if isinstance(key_part, tuple):
        return repr(key_part[1])
    if isinstance(key_part, type):
        return f"any {key_part.__name__}"
    return f"<object at {key_part:#x}>"


class OptimizedModule(Module):
    """A compiled ``nn.Module``, like PyTorch's: an ``nn.Module`` whose forward runs the
    compiled program.  The original is its submodule ``_orig_mod``, so
    ``state_dict()`` keys start with ``_orig_mod.`` (as in PyTorch); parameters,
    ``train``/``eval`` and every other attribute reach the original.  ``run``, when
    given, calls the compiled forward: ``run(compiled, *args, **kwargs)`` (a wrapper
    whose own forward is Python bookkeeping around a compiled inner module)."""

    def __init__(self, module: Module, compiled: CompiledFunction, run=None):
        super().__init__()
        self._orig_mod = module
        object.__setattr__(self, "_compiled", compiled)
        object.__setattr__(self, "_run", run)

    def forward(self, *args, **kwargs):
        if self._run is not None:
            return self._run(self._compiled, *args, **kwargs)
        return self._compiled(*args, **kwargs)

    @property
    def training(self) -> bool:
        return self._modules["_orig_mod"].training if "_orig_mod" in self._modules else True

    @training.setter
    def training(self, value: bool) -> None:
        if "_orig_mod" in self.__dict__.get("_modules", ()):
            self._orig_mod.training = value

    def __getattr__(self, name):
        if name == "_orig_mod":
            return self._modules["_orig_mod"]
        return getattr(self._modules["_orig_mod"], name)

    def __setattr__(self, name, value):
        if name in ("_orig_mod", "training") or hasattr(type(self), name) \
                or "_orig_mod" not in self.__dict__.get("_modules", ()):
            return super().__setattr__(name, value)
        setattr(self._orig_mod, name, value)

    def __delattr__(self, name):
        if name in self.__dict__ or name in self._modules:
            return super().__delattr__(name)
        delattr(self._orig_mod, name)

    def __len__(self):
        return len(self._orig_mod)

    def __dir__(self):
        return sorted(set(dir(self._orig_mod)) | set(super().__dir__()))

    @property
    def compile_count(self) -> int:
        return self._compiled.compile_count

    def graphs(self) -> list:
        return self._compiled.graphs()


def compile(model=None, example_inputs=None, *, fullgraph=False, dynamic=None,
            backend="cpu", mode=None, options=None, disable=False, fuse=True, dump=None,
            report=None):
    """Compile a function, method or ``nn.Module``, as ``torch.compile`` does.

    Use it as a function, a decorator, or a decorator factory::

        model = graphc.compile(MyNet())           # an nn.Module wrapping MyNet

        @graphc.compile
        def step(x, y): ...

        @graphc.compile(fullgraph=True, backend="interpreter")
        def step(x, y): ...

    ``fullgraph`` raises on code that cannot be traced instead of running it eagerly.
    ``dynamic``: None makes a number argument a runtime input once its value changed,
    True from the first call, False never (shapes are always specialised).  ``mode``
    is accepted for PyTorch programs (graphc has one mode).  ``options``:
    ``recompile_limit`` (default 8, or ``GRAPHC_RECOMPILE_LIMIT``), ``fuse``, ``dump``,
    ``report``.  ``report="DIR"`` (or ``GRAPHC_REPORT=DIR``) writes an HTML report of
    every compile of this run into DIR when the process exits (``graphc.report``).
    ``disable=True`` returns ``model`` unchanged.

    Called as a TorchDynamo backend (``torch.compile(model, backend=graphc.compile)``
    calls it with a ``torch.fx.GraphModule`` and a list of example inputs), it is
    ``graphc.dynamo.backend``.
    """
    if example_inputs is not None or _is_fx_graph_module(model):
        return _dynamo_backend(model, example_inputs, mode=mode, options=options)
    if mode not in MODES:
        raise RuntimeError(f"Unrecognized mode={mode!r}, should be one of: "
                           f"{', '.join(m for m in MODES if m)}")
    if mode is not None and options is not None:
        raise RuntimeError("Either mode or options can be specified, but both can't be "
                           "specified at the same time.")
    options = dict(options or {})
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise RuntimeError(f"Unexpected optimization option {sorted(unknown)[0]}, known "
                           f"options are {list(OPTIONS)}")
    if dynamic not in (None, True, False):
        raise TypeError(f"graphc.compile: dynamic must be None, True or False, not "
                        f"{dynamic!r}")
    if not isinstance(backend, str):
        raise TypeError(f"graphc.compile: backend must be a name ({', '.join(targets.NAMES)}), "
                        f"not {type(backend).__name__}")
    settings = dict(backend=backend, fuse=options.get("fuse", fuse),
                    dump=options.get("dump", dump), fullgraph=fullgraph, dynamic=dynamic,
                    recompile_limit=options.get("recompile_limit"),
                    report=options.get("report", report))
    if model is None:
        return functools.partial(_compile_one, disable=disable, settings=settings)
    return _compile_one(model, disable=disable, settings=settings)


def _is_fx_graph_module(model) -> bool:
    """Whether ``model`` is a ``torch.fx.GraphModule``, found without importing torch."""
    return any(c.__name__ == "GraphModule" and c.__module__ == "torch.fx.graph_module"
               for c in type(model).__mro__)


def _dynamo_backend(gm, example_inputs, mode, options):
    if not _is_fx_graph_module(gm) or not isinstance(example_inputs, (list, tuple)):
        raise TypeError(f"graphc.compile: called with two arguments it is a TorchDynamo "
                        f"backend and takes a torch.fx.GraphModule and a list of example "
                        f"inputs, not {type(gm).__name__} and "
                        f"{type(example_inputs).__name__}")
    # graphc.dynamo is a client of the compiler (it compiles through graphc.compile), so
    # it is found by name when called, as PyTorch finds it through its entry point.
    dynamo = importlib.import_module("graphc.dynamo")
    return dynamo.backend(gm, example_inputs, mode=mode, options=options)


def _compile_one(model, disable, settings):
    if not callable(model):
        raise RuntimeError(f"graphc.compile: model must be callable, not "
                           f"{type(model).__name__}")
    if disable:
        return model
    if isinstance(model, DistributedDataParallel):
        # Its forward's bookkeeping (broadcast the buffers, decide whether this backward
        # averages) must run on every call, so only the wrapped module is compiled, as
        # PyTorch's compiler leaves DDP's own forward to Python.
        return OptimizedModule(model, CompiledFunction(model.module, **settings), model.run)
    if isinstance(model, Module):
        return OptimizedModule(model, CompiledFunction(model, **settings))
    return CompiledFunction(model, **settings)
