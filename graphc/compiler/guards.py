"""Guards: the conditions under which a compiled program is still the program to run.

A trace follows Python: it reads globals, closure variables and module attributes,
takes branches on them, and bakes what it read into the graph.  So, as PyTorch's
compiler does, every such read becomes a guard checked before each call; when one
fails, the function is traced again (and the ``recompiles`` log says which guard).

- Python constants (numbers, bools, strings, enums, None, tuples of them) read from a
  global, a closure cell or a module's ``__dict__`` are guarded by value;
- anything else read from a global or a closure cell (a module, a tensor, a function)
  by identity;
- each module the function reaches by the identity of its submodules, parameters and
  buffers; each optimizer by its parameter groups and state tensors;
- each lifted tensor by its shape and ``requires_grad``.

Which globals a trace read is found by watching the frames it ran (``sys.setprofile``:
the ``LOAD_GLOBAL`` names of each user frame); which module attributes, by a
``Module.__getattribute__`` that records reads while a trace runs.  The checks on
modules run again only after some module changed (``graphc.nn.module.changes()``), so a
call on an unchanged model pays for none of them.

The checks made on every call are folded (``Guards``): the identity guards are read
together and compared as one tuple of ids, the guards on scalar constants as one tuple
of values (and one of their types); only when such a comparison fails are the guards
checked one by one, so each keeps its exact meaning (``same_constant``: NaN equals NaN).
"""
from __future__ import annotations

import dis
import enum
import functools
import itertools
import operator
import os
import sys
import sysconfig

from graphc.dtypes import DType
from graphc.nn import Module
from graphc.nn import module as module_state
from graphc.tensor import Tensor

MISSING = object()          # what a read returns for a name that no longer exists

_CONSTANT_TYPES = (int, float, bool, str, bytes, complex, type(None), enum.Enum, DType)


def _scalar_constant(value) -> bool:
    """A constant that ``==`` compares as ``same_constant`` does once the types are
    equal (not a tuple, whose items may differ in type)."""
    return is_constant(value) and not isinstance(value, (tuple, frozenset))


def is_constant(value) -> bool:
    """A value a trace may bake in, guarded by equality."""
    if isinstance(value, (tuple, frozenset)):
        return all(is_constant(v) for v in value)
    return isinstance(value, _CONSTANT_TYPES)


def same_constant(a, b) -> bool:
    """Equal and of the same type (1 and 1.0 and True trace differently); NaN equals NaN."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if type(a) is tuple:
        return len(a) == len(b) and all(map(same_constant, a, b))
    return a == b or (a != a and b != b)


def show(value) -> str:
    if value is MISSING:
        return "<missing>"
    if isinstance(value, Tensor):
        return f"Tensor(shape={tuple(value.shape)}, dtype={value.dtype}) at {id(value):#x}"
    if is_constant(value):
        return repr(value)
    return f"<{type(value).__name__} object at {id(value):#x}>"


class Guard:
    """``read()`` must still give ``expected`` (by identity when ``identity``)."""
    __slots__ = ("source", "read", "expected", "identity")

    def __init__(self, source: str, read, expected, identity: bool = False):
        self.source, self.read, self.expected, self.identity = source, read, expected, identity

    def check(self) -> bool:
        now = self.read()
        return now is self.expected if self.identity else same_constant(now, self.expected)

    def failure(self) -> str:
        return f"{self.source}: {show(self.expected)} -> {show(self.read())}"

    def __str__(self):
        return f"{self.source} {'is' if self.identity else '=='} {show(self.expected)}"


class LiftedGuard(Guard):
    """The lifted tensors (parameters, buffers, optimizer state) keep the shape and
    ``requires_grad`` they were traced with (``p.data = ...`` or ``requires_grad_()``
    change them without any other trace): one guard for all, checked on every call."""
    __slots__ = ("names",)

    def __init__(self, tensors: list, names: list):
        super().__init__("lifted tensors: shape, requires_grad",
                         functools.partial(_shapes_and_flags, tensors),
                         _shapes_and_flags(tensors))
        self.names = names

    def check(self) -> bool:
        return self.read() == self.expected

    def __str__(self):
        return f"{len(self.names)} lifted tensors keep their shape and requires_grad"

    def failure(self) -> str:
        for name, old, new in zip(self.names, self.expected, self.read()):
            if old != new:
                return (f"{name}: shape {list(old[0])}, requires_grad={old[1]} -> "
                        f"shape {list(new[0])}, requires_grad={new[1]}")
        return f"{self.source}: unchanged"


_SHAPE_AND_FLAG = operator.attrgetter("_array.shape", "_requires_grad")


def _shapes_and_flags(tensors) -> tuple:
    return tuple(map(_SHAPE_AND_FLAG, tensors))


_CALL = operator.methodcaller("__call__")


class Guards:
    """The guards of one program.  ``on_modules`` only read module state: they are
    skipped while no module has changed since they last passed."""

    def __init__(self, always: list, on_modules: list):
        self.always = always
        self.on_modules = on_modules
        self.passed_at = -1        # module_state.changes() when on_modules last passed
        same = [g for g in always if type(g) is Guard and g.identity]
        equal = [g for g in always if type(g) in (Guard, ZeroGuard) and not g.identity
                 and _scalar_constant(g.expected)]
        folded = {id(g) for g in same + equal}
        # A guard holds what it expects, so equal ids mean the very same objects.
        self._same_reads = tuple(g.read for g in same)
        self._same_ids = tuple(id(g.expected) for g in same)
        self._equal = equal
        self._equal_reads = tuple(g.read for g in equal)
        self._equal_values = tuple(g.expected for g in equal)
        self._equal_types = tuple(map(type, self._equal_values))
        self._others = [g for g in always if id(g) not in folded]

    def check(self) -> bool:
        if self._same_reads and \
                tuple(map(id, map(_CALL, self._same_reads))) != self._same_ids:
            return False
        if self._equal_reads:
            values = tuple(map(_CALL, self._equal_reads))
            if tuple(map(type, values)) != self._equal_types or values != self._equal_values:
                for g in self._equal:       # exactly: NaN, or a value of another type
                    if not g.check():
                        return False
        for g in self._others:
            if not g.check():
                return False
        if not self.on_modules:
            return True
        changes = module_state.changes()
        if changes != self.passed_at:
            for g in self.on_modules:
                if not g.check():
                    return False
            self.passed_at = changes
        return True

    def first_failure(self) -> str | None:
        for g in self.always + self.on_modules:
            if not g.check():
                return g.failure()
        return None

    def __iter__(self):
        return iter(self.always + self.on_modules)

    def __len__(self):
        return len(self.always) + len(self.on_modules)


# ---- recording what a trace reads ------------------------------------------------------------
_GRAPHC_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LIBRARY_DIRS = tuple({sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]})
_recorders: list = []


@functools.lru_cache(maxsize=4096)
def global_names(code) -> tuple:
    """The globals a code object reads (``LOAD_GLOBAL``), or () for graphc's own code
    and the standard library's, whose globals are not the user's to change."""
    path = os.path.abspath(code.co_filename)
    if path.startswith(_GRAPHC_DIR) or path.startswith(_LIBRARY_DIRS) \
            or code.co_filename.startswith("<frozen "):
        return ()
    return tuple(dict.fromkeys(i.argval for i in dis.get_instructions(code)
                               if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")))


def _library_globals(g: dict) -> bool:
    """Globals of graphc, the standard library, or a namedtuple's generated methods."""
    module = str(g.get("__name__", ""))
    top = module.split(".")[0]
    return top == "graphc" or top in _STDLIB or module.startswith("namedtuple_")


_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ()))


def _recording_getattribute(self, name):
    value = object.__getattribute__(self, name)
    if _recorders and is_constant(value) and name in object.__getattribute__(self, "__dict__"):
        recorder = _recorders[-1]
        if (id(self), name) not in recorder.written:
            recorder.attributes.setdefault((id(self), name), (self, name, value))
    return value


def _recording_setattr(self, name, value):
    """An attribute the trace sets before it reads it (a flag a module sets in forward
    and reads in a backward hook) depends on nothing from before the call: no guard."""
    if _recorders:
        _recorders[-1].written.add((id(self), name))
    _module_setattr(self, name, value)


_module_setattr = Module.__setattr__


class Recorder:
    """``with Recorder() as r:`` notes the globals every user frame read
    (``r.frames``: code -> its globals) and the constant attributes read from modules
    (``r.attributes``), less those the trace set first (``r.written``)."""

    def __init__(self):
        self.frames: dict = {}
        self.attributes: dict = {}
        self.written: set = set()

    def _profile(self, frame, event, arg):
        if event == "call":
            self.frames.setdefault(frame.f_code, frame.f_globals)

    def __enter__(self):
        self._previous = sys.getprofile()
        _recorders.append(self)
        sys.setprofile(self._profile)
        if len(_recorders) == 1:
            Module.__getattribute__ = _recording_getattribute
            Module.__setattr__ = _recording_setattr
        return self

    def __exit__(self, *exc):
        if self._previous is None or callable(self._previous):
            sys.setprofile(self._previous)
        else:       # a profiler in C (cProfile's): sys.setprofile cannot take it back
            self._previous.enable()
        _recorders.pop()
        if not _recorders:
            del Module.__getattribute__
            Module.__setattr__ = _module_setattr
        return False


# ---- building the guards of one capture ------------------------------------------------------
def _value_guard(source, read, value) -> Guard:
    return Guard(source, read, value, identity=not is_constant(value))


def global_guards(recorder: Recorder) -> list:
    guards, seen = [], set()
    for code, g in recorder.frames.items():
        if _library_globals(g):
            continue
        for name in global_names(code):
            if name in g and (id(g), name) not in seen:
                seen.add((id(g), name))
                guards.append(_value_guard(f"global {name}",
                                           functools.partial(g.get, name, MISSING), g[name]))
    return guards


def closure_guards(fn) -> list:
    """The closure cells of ``fn`` (of the function under a bound method)."""
    fn = getattr(fn, "__func__", fn)
    code, cells = getattr(fn, "__code__", None), getattr(fn, "__closure__", None) or ()
    if code is None:
        return []
    guards = []
    for name, cell in zip(code.co_freevars, cells):
        try:
            value = cell.cell_contents
        except ValueError:                       # not assigned yet
            continue
        guards.append(_value_guard(f"closure variable {name}",
                                   functools.partial(_cell_value, cell), value))
    return guards


def _cell_value(cell):
    try:
        return cell.cell_contents
    except ValueError:
        return MISSING


def attribute_guards(recorder: Recorder, names: dict) -> list:
    """One value guard per constant attribute the trace read from a module;
    ``names`` maps id(module) to a readable path."""
    return [Guard(f"{names.get(id(m), type(m).__name__)}.{name}",
                  functools.partial(_instance_attribute, m, name), value)
            for m, name, value in recorder.attributes.values()]


def _instance_attribute(obj, name):
    return obj.__dict__.get(name, MISSING)


def members(module: Module) -> tuple:
    """(dotted name, type, id) of every submodule, parameter and buffer of ``module``."""
    out = []
    for prefix, m in module.named_modules(remove_duplicate=False):
        out.append((prefix, type(m), id(m)))
        for table in (m._parameters, m._buffers):
            out.extend((f"{prefix}.{n}" if prefix else n, type(t), id(t))
                       for n, t in table.items())
    return tuple(out)


class MembersGuard(Guard):
    """The submodules, parameters and buffers of a module are the same objects."""
    __slots__ = ()

    def __init__(self, label: str, module: Module):
        super().__init__(f"{label} (submodules, parameters, buffers)",
                         functools.partial(members, module), members(module))

    def check(self) -> bool:
        return self.read() == self.expected

    def __str__(self):
        return f"{self.source} are the same {len(self.expected)} objects"

    def failure(self) -> str:
        before = {name: (t, i) for name, t, i in self.expected}
        now = {name: (t, i) for name, t, i in self.read()}
        changed = [n or "<root>" for n in before.keys() | now.keys()
                   if before.get(n) != now.get(n)]
        return f"{self.source}: replaced or added/removed: {', '.join(sorted(changed))}"


class LayoutGuard(Guard):
    """An optimizer's groups, parameters and state tensors are the same objects."""
    __slots__ = ()

    def check(self) -> bool:
        return self.read() == self.expected

    def __str__(self):
        return f"{self.source} are the same objects"

    def failure(self) -> str:
        return f"{self.source}: replaced (load_state_dict, add_param_group, or new state)"


_PARAMS = operator.itemgetter("params")


def optimizer_layout(opt) -> tuple:
    """The identity of an optimizer's parameter groups, their parameters and its state
    tensors (``load_state_dict`` replaces them all)."""
    params = list(map(_PARAMS, opt.param_groups))
    groups = (tuple(map(id, opt.param_groups)), tuple(map(len, params)),
              tuple(map(id, itertools.chain.from_iterable(params))))
    state = tuple([(id(p), k, id(v)) for p, s in opt.state.items() for k, v in s.items()
                   if isinstance(v, Tensor)])
    return groups, state


_GRAD = operator.attrgetter("grad")
_DICT = operator.attrgetter("__dict__")


class GradPresenceGuard(Guard):
    """Which parameters have no ``.grad``, and their gradient hooks (``presence(params)``
    gives both): code that touches gradients traces differently for each.  Checked
    first by the ``.grad``s alone when no parameter had hooks and none has any
    attribute of its own now (hooks live in the tensor's ``__dict__``)."""
    __slots__ = ("params", "no_grads", "hookless")

    def __init__(self, params: list, presence):
        super().__init__("which parameters have a .grad, and their gradient hooks",
                         functools.partial(presence, params), presence(params))
        self.params = params
        self.no_grads = tuple(none for none, _ in self.expected)
        self.hookless = all(hooks == ((), ()) for _, hooks in self.expected)

    def check(self) -> bool:
        if self.hookless and not any(map(len, map(_DICT, self.params))):
            return tuple(map(operator.is_, map(_GRAD, self.params),
                             itertools.repeat(None))) == self.no_grads
        return self.read() == self.expected


def optimizer_guards(label: str, opt, dynamic: set) -> list:
    """The layout of ``opt``, and each hyperparameter: exact, or when it is a runtime
    input of the program (``dynamic`` holds (id(group), key)), only whether it is 0,
    which is all the update rules branch on."""
    guards = [LayoutGuard(f"{label} (parameter groups and state)",
                          functools.partial(optimizer_layout, opt), optimizer_layout(opt))]
    for i, group in enumerate(opt.param_groups):
        for key, value in group.items():
            if key in ("params", "param_names"):
                continue
            source = f"{label}.param_groups[{i}][{key!r}]"
            if (id(group), key) in dynamic:
                guards.append(ZeroGuard(source, functools.partial(_is_zero, group, key),
                                        _is_zero(group, key)))
            else:
                guards.append(_value_guard(source, functools.partial(group.get, key, MISSING),
                                           value))
    return guards


class ZeroGuard(Guard):
    """A runtime-input hyperparameter is still zero, or still not (all the update rules
    branch on)."""
    __slots__ = ()

    def __str__(self):
        if isinstance(self.expected, tuple):
            return f"{self.source}: which are 0 == {self.expected}"
        return f"{self.source} {'==' if self.expected else '!='} 0"

    def failure(self) -> str:
        return f"{str(self)} no longer holds"


def _is_zero(group, key):
    value = group.get(key)
    if isinstance(value, tuple):
        return tuple(v == 0 for v in value)
    return value == 0
