"""The differential fuzzer (``graphc.testing.fuzz``): its op table covers every primitive
and composite, programs are deterministic per seed, its comparison and printed
regression tests work, and a short fixed-seed run finds nothing."""
import inspect
import io
import re

import numpy as np
import pytest

import graphc
import graphc.nn.functional as F
from graphc import composite
from graphc.testing import fuzz
from graphc.testing.fuzz import Input, Program, Step


@pytest.mark.slow
def test_every_primitive_is_reached_by_a_fuzz_entry():
    """A new primitive fails here until an entry of fuzz.OPS reaches it."""
    assert fuzz.uncovered_primitives() == set()


def test_every_composite_has_a_fuzz_entry():
    used = set()
    for entry in fuzz.OPS.values():
        if isinstance(entry.template, str):
            used.update(re.findall(r"\b(?:ns|F)\.(\w+)\(", entry.template))
        used.add(entry.name.removeprefix("F."))
    public = {name for name, fn in inspect.getmembers(composite, inspect.isfunction)
              if not name.startswith("_") and fn.__module__ == composite.__name__}
    assert (public | set(F.__all__)) - used == set()


def test_programs_are_deterministic_per_seed():
    a, b = fuzz.draw_program(7, 3), fuzz.draw_program(7, 3)
    assert a.source() == b.source() and a.source() != fuzz.draw_program(7, 4).source()
    assert all(np.array_equal(x.data, y.data, equal_nan=True) and x.layout == y.layout
               for x, y in zip(a.inputs, b.inputs))


def test_inputs_pass_non_contiguous_views_of_their_leaves():
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    for layout in ("plain", "t", "step"):
        inp = Input(fuzz.layout_data(data, layout), layout)
        assert inp.shape == data.shape
        assert np.array_equal(inp.make(graphc)[1].numpy(), data)
    inp = Input(np.array([[1.0], [2.0]], np.float32), "expand", (2, 3), grad=True)
    leaf, view = inp.make(graphc)
    assert view.shape == (2, 3) and leaf.shape == (2, 1) and leaf.requires_grad


def test_close_treats_nan_as_equal_and_checks_dtype_shape_and_values():
    a = np.array([1.0, np.nan, np.inf, -0.0], np.float32)
    assert fuzz.close(a, a.copy()) is None
    assert fuzz.close(a + np.float32(1e-6), a) is None              # within float32 rtol
    assert "differ" in fuzz.close(np.array([1.0, 0.0, np.inf, 0.0], np.float32), a)
    assert "dtype" in fuzz.close(a.astype(np.float64), a)
    assert "shape" in fuzz.close(a[:2], a)
    assert "differ" in fuzz.close(np.array([1, 2]), np.array([1, 3]))


def test_compare_needs_the_same_error_and_agreeing_gradients():
    program = Program([Input(np.zeros(2, np.float32), grad=True)], [], [])
    ok = fuzz.Result(outs=[np.ones(2, np.float32)], grads=[np.ones(2, np.float32)])
    assert fuzz.compare(ok, ok, program) is None
    bad_grad = fuzz.Result(outs=ok.outs, grads=[np.zeros(2, np.float32)])
    assert fuzz.compare(bad_grad, ok, program).startswith("grad of x0")
    crash = fuzz.Result(RuntimeError("boom"), "forward")
    assert fuzz.compare(crash, ok, program).startswith("crash in forward")
    assert fuzz.compare(fuzz.Result(RuntimeError("x"), "forward"), crash, program) is None


def test_a_printed_regression_test_runs():
    program = Program([Input(np.array([[1.0, -2.0], [3.0, 0.5]], np.float32), "t", grad=True),
                       Input(np.array([0.5, 2.0], np.float32))],
                      [Step("mul", ("x0", "x1")), Step("sum", ("v0",), {"dim": 1,
                                                                      "keepdim": False})],
                      ["v1"])
    failure = fuzz.Failure(program, "interpreter", "made up")
    source = fuzz.regression_test(failure, "example")
    namespace = {}
    exec("import numpy as np\nfrom math import inf, nan\n"
         "from graphc.testing.fuzz import Input, assert_agrees, parse_program\n" + source,
         namespace)
    namespace["test_example"]()


def test_minimise_cuts_steps_and_simplifies_inputs(monkeypatch):
    """A planted bug (graphc's exp off by one) is minimised to the step that shows it."""
    torch = pytest.importorskip("torch")
    program = Program([Input(np.array([0.25, 3.5, -1.25], np.float32), "step", grad=True)],
                      [Step("sin", ("x0",)), Step("exp", ("v0",)), Step("neg", ("v1",))],
                      ["v2"])
    real_exp = graphc.exp
    monkeypatch.setattr(graphc, "exp", lambda x: real_exp(x) + 1)
    failure = fuzz.check([program], backends=(), torch=torch)[0]
    assert failure.config == "eager" and failure.why.startswith("output 0")
    small = fuzz.minimise(failure, backends=(), torch=torch, budget=30)
    assert [s.op for s in small.program.steps] == ["exp"]
    assert all(i.layout == "plain" and not i.grad for i in small.program.inputs)
    assert small.program.inputs[0].data.size == 1


def test_compare_reports_a_missing_or_different_exception():
    program = Program([Input(np.zeros(2, np.float32))], [], [])
    ok = fuzz.Result(outs=[np.ones(2, np.float32)], grads=[None])
    raised = fuzz.Result(ValueError("bad"), "forward")
    assert "reference raised ValueError" in fuzz.compare(ok, raised, program)
    assert "raised RuntimeError" in fuzz.compare(fuzz.Result(RuntimeError("x"), "forward"),
                                                 raised, program)


@pytest.mark.slow
def test_short_fuzz_run():
    """144 programs of a fixed seed, in batches of 24: eager and the interpreter on all,
    each code-generating config (cpu, cuda-emulate; fused, unfused) in turn on a batch."""
    torch = fuzz.torch_or_none()
    out = io.StringIO()
    failures = fuzz.fuzz(seed=1000, programs=144, batch=24, torch=torch, out=out,
                         minimise_budget=10)
    assert failures == [], out.getvalue()


def test_a_run_on_the_interpreter_alone():
    """Rotation over code-generating configs with none chosen checks eager and the
    interpreter only (it divided by zero)."""
    out = io.StringIO()
    assert fuzz.fuzz(seed=3, programs=12, batch=6, backends=("interpreter",),
                     torch=fuzz.torch_or_none(), out=out) == [], out.getvalue()


def test_without_torch_gradients_are_checked_by_finite_differences(monkeypatch):
    program = Program([Input(np.array([0.5, -1.25], np.float64), grad=True)],
                      [Step("tanh", ("x0",)), Step("exp", ("v0",))], ["v1"])
    assert fuzz.check([program], backends=(), torch=None) == []
    real_tanh = graphc.tanh         # a planted VJP bug: tanh's gradient is 1
    monkeypatch.setattr(graphc, "tanh", lambda x: real_tanh(x).detach() + x - x.detach())
    failures = fuzz.check([program], backends=(), torch=None)
    assert [f.config for f in failures] == ["eager grad vs finite differences"]
