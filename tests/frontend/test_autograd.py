"""Eager autograd semantics against PyTorch's: leaves, accumulation, graph freeing, grad
modes, detach/.data, ``autograd.grad`` and the in-place version checks.

Gradient values are checked against closed-form derivatives or float64 central
differences; error texts are PyTorch's.
"""
import math
import re

import numpy as np
import pytest

import graphc
from gradcheck import gradcheck

SECOND_BACKWARD = ("Trying to backward through the graph a second time (or directly access "
                   "saved tensors after they have already been freed). Saved intermediate "
                   "values of the graph are freed when you call .backward() or "
                   "autograd.grad(). Specify retain_graph=True if you need to backward "
                   "through the graph a second time or if you need to access saved tensors "
                   "after calling backward.")
INPLACE = "one of the variables needed for gradient computation has been modified by an " \
          "inplace operation"
LEAF_INPLACE = "a leaf Variable that requires grad is being used in an in-place operation."


def leaf(values, dtype=None):
    return graphc.tensor(values, dtype=dtype, requires_grad=True)


# ---- leaves, requires_grad and grad_fn -------------------------------------------------------
def test_leaves_and_non_leaves():
    x = leaf([1.0, 2.0])
    y = x * 2
    c = graphc.tensor([1.0])
    assert x.is_leaf and x.requires_grad and x.grad_fn is None and x.grad is None
    assert not y.is_leaf and y.requires_grad and y.grad_fn is not None
    assert c.is_leaf and not c.requires_grad
    assert (c * 2).is_leaf and not (c * 2).requires_grad and (c * 2).grad_fn is None


def test_requires_grad_propagates_through_any_input():
    x, c = leaf([1.0, 2.0]), graphc.tensor([3.0, 4.0])
    for out in (x + c, c * x, graphc.cat([c, x]), graphc.stack([x, c]), x[0], x.sum(),
                graphc.where(c > 3, x, c), x.view(2, 1), x.view(1, 2).t(), x.clone()):
        assert out.requires_grad and not out.is_leaf, out
    for out in (c + 1, c.sum(), graphc.where(c > 3, c, c)):
        assert not out.requires_grad and out.grad_fn is None


def test_integer_and_bool_results_do_not_require_grad():
    x = leaf([1.5, -2.5])
    for out in (x.long(), x > 0, x.argmax(), x.max(0).indices):
        assert not out.requires_grad and out.grad_fn is None


@pytest.mark.parametrize("make", [
    lambda: graphc.tensor([1, 2], requires_grad=True),
    lambda: graphc.tensor([1, 2]).requires_grad_(),
    lambda: setattr(graphc.tensor([True]), "requires_grad", True),
    lambda: graphc.zeros(2, dtype=graphc.int64, requires_grad=True),
])
def test_integer_tensors_cannot_require_grad(make):
    with pytest.raises(RuntimeError, match="Only Tensors of floating point and complex dtype "
                                           "can require gradients"):
        make()


def test_requires_grad_setters():
    x = graphc.ones(2)
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad = False
    assert not x.requires_grad
    x.requires_grad = True
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]
    with pytest.raises(RuntimeError, match="you can only change requires_grad flags of leaf "
                                           "variables"):
        (x * 2).requires_grad_(False)


def test_grad_fn_names_follow_pytorch_pattern():
    x = leaf([1.0, 2.0])
    assert (x * 2).grad_fn.name() == "MulBackward0"
    assert (x + 1).grad_fn.name() == "AddBackward0"
    assert x.exp().sum().grad_fn.name() == "SumBackward0"
    assert repr(x * 2) == "tensor([2., 4.], grad_fn=<MulBackward0>)"


def test_next_functions_point_at_inputs():
    x = leaf([1.0, 2.0])
    y = x * 2
    z = y + graphc.tensor([1.0, 1.0])
    (first, _), (second, _) = z.grad_fn.next_functions
    assert first is y.grad_fn and second is None
    ((acc, _), _) = y.grad_fn.next_functions
    assert acc.variable is x


# ---- backward and .grad ----------------------------------------------------------------------
def test_grad_accumulates_across_backward_calls():
    x = leaf([1.0, 2.0])
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]
    first = x.grad
    (x * 3).sum().backward()
    assert x.grad.tolist() == [5.0, 7.0]
    assert first is x.grad                    # accumulated in place, as PyTorch does


def test_grad_keeps_dtype_and_shape_under_broadcasting():
    x = leaf(np.ones((3, 1)))
    b = leaf([1.0, 2.0, 3.0, 4.0], dtype=graphc.float64)
    w = graphc.arange(12.0, dtype=graphc.float64).reshape(3, 4)
    (x * b * w).sum().backward()
    assert x.grad.dtype == graphc.float64 and x.grad.shape == (3, 1)
    np.testing.assert_allclose(x.grad.numpy(), (np.arange(12.0).reshape(3, 4) *
                                                np.arange(1.0, 5.0)).sum(1, keepdims=True))
    np.testing.assert_allclose(b.grad.numpy(), np.arange(12.0).reshape(3, 4).sum(0))


def test_diamond_graph_sums_both_paths():
    x = leaf(2.0)
    a = x * 3
    (a * a + a.exp()).backward()
    # d/dx [9x^2 + e^{3x}] = 18x + 3 e^{3x}
    assert x.grad.item() == pytest.approx(36 + 3 * math.exp(6), rel=1e-6)


def test_non_leaf_grad_is_none_unless_retained():
    x = leaf([1.0, 2.0])
    y = x * 2
    z = x * 3
    y.retain_grad()
    x.retain_grad()                           # no-op on a leaf
    ((y * y).sum() + z.sum()).backward()
    assert y.grad.tolist() == [4.0, 8.0] and z.grad is None
    assert x.grad.tolist() == [11.0, 19.0]
    assert y.retains_grad and not z.retains_grad and not x.retains_grad
    with pytest.raises(RuntimeError, match="can't retain_grad on Tensor that has "
                                           "requires_grad=False"):
        graphc.ones(1).retain_grad()


def test_backward_with_a_gradient_on_a_non_scalar():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).backward(graphc.tensor([1.0, 0.5, -1.0]))
    assert x.grad.tolist() == [2.0, 2.0, -6.0]


def test_backward_on_a_non_scalar_without_gradient_raises():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="grad can be implicitly created only for scalar "
                                           "outputs"):
        (x * 2).backward()


def test_backward_errors():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=re.escape(
            "Mismatch in shape: grad_output[0] has a shape of graphc.Size([3]) and output[0] "
            "has a shape of graphc.Size([2]).")):
        (x * 2).backward(graphc.tensor([1.0, 1.0, 1.0]))
    with pytest.raises(RuntimeError, match="element 0 of tensors does not require grad and "
                                           "does not have a grad_fn"):
        graphc.tensor([1.0]).sum().backward()


def test_one_element_non_scalar_backward_needs_no_gradient():
    x = leaf([[3.0]])
    (x * x).backward()
    assert x.grad.tolist() == [[6.0]]


def test_autograd_backward_takes_sequences_and_inputs():
    w, v = leaf([1.0]), leaf([2.0])
    graphc.autograd.backward([(w * 2).sum(), w * v], [None, graphc.tensor([10.0])])
    assert w.grad.tolist() == [22.0] and v.grad.tolist() == [10.0]
    (w * v).sum().backward(inputs=[w])
    assert w.grad.tolist() == [24.0] and v.grad.tolist() == [10.0]


def test_tutorial_style_manual_updates():
    w = leaf([1.0, -2.0])
    x, y = graphc.tensor([[1.0, 2.0], [3.0, 4.0]]), graphc.tensor([1.0, 0.0])
    for _ in range(3):
        loss = ((x @ w - y) ** 2).mean()
        loss.backward()
        with graphc.no_grad():
            w -= 0.01 * w.grad
        w.grad.zero_()
    v = graphc.autograd.Variable(graphc.tensor([1.0, -2.0]), requires_grad=True)
    for _ in range(2):
        (v * v).sum().backward()
        v.data -= 0.1 * v.grad.data
        v.grad.data.zero_()
    # Reference values printed by PyTorch for the same loops.
    np.testing.assert_allclose(w.detach().numpy(), [1.412784, -1.383132], rtol=1e-6)
    assert loss.item() == pytest.approx(5.966267, rel=1e-6)
    np.testing.assert_allclose(v.detach().numpy(), [0.64, -1.28], rtol=1e-6)
    assert v.grad.tolist() == [0.0, 0.0] and v.is_leaf


def test_norm_gradient_at_zero_is_zero():
    x = graphc.zeros(2, requires_grad=True)
    x.norm().backward()
    assert x.grad.tolist() == [0.0, 0.0]
    y = leaf([3.0, 4.0])
    y.norm().backward()
    np.testing.assert_allclose(y.grad.numpy(), [0.6, 0.8], rtol=1e-6)


# ---- retain_graph ----------------------------------------------------------------------------
def test_second_backward_raises_pytorch_error():
    x = leaf([1.0, 2.0])
    y = x.exp().sum()
    y.backward()
    with pytest.raises(RuntimeError, match=re.escape(SECOND_BACKWARD)):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [6.0, 12.0]
    with pytest.raises(RuntimeError, match=re.escape(SECOND_BACKWARD)):
        y.backward()


def test_graph_without_saved_tensors_can_be_walked_twice():
    x = leaf([1.0, 2.0])
    y = (x + 1).sum()                         # nothing saved: PyTorch allows this too
    y.backward()
    y.backward()
    assert x.grad.tolist() == [2.0, 2.0]


# ---- grad modes ------------------------------------------------------------------------------
def test_no_grad_and_enable_grad_nest_as_context_managers():
    x = leaf([1.0])
    with graphc.no_grad():
        a = x * 2
        assert not graphc.is_grad_enabled()
        with graphc.enable_grad():
            b = x * 2
            assert graphc.is_grad_enabled()
        c = x * 2
    assert graphc.is_grad_enabled()
    assert not a.requires_grad and a.is_leaf and a.grad_fn is None
    assert b.requires_grad and not c.requires_grad


def test_grad_mode_is_restored_after_an_exception():
    with pytest.raises(ValueError):
        with graphc.no_grad():
            raise ValueError
    assert graphc.is_grad_enabled()


def test_grad_mode_decorators():
    x = leaf([1.0])

    @graphc.no_grad()
    def called(t):
        return t * 2

    @graphc.no_grad
    def bare(t):
        return t * 2

    @graphc.enable_grad()
    def enabled(t):
        return t * 2

    assert not called(x).requires_grad and not bare(x).requires_grad
    with graphc.no_grad():
        assert enabled(x).requires_grad
        assert not graphc.is_grad_enabled()
    assert graphc.is_grad_enabled()


def test_recursive_decorated_function_restores_each_level():
    @graphc.no_grad()
    def depth(n):
        return 0 if n == 0 else 1 + depth(n - 1)

    assert depth(3) == 3 and graphc.is_grad_enabled()


def test_set_grad_enabled_as_call_and_context():
    x = leaf([1.0])
    with graphc.set_grad_enabled(False):
        a = x * 2
    b = x * 2
    try:
        graphc.set_grad_enabled(False)
        c = x * 2
    finally:
        graphc.set_grad_enabled(True)
    d = x * 2
    with graphc.no_grad():
        with graphc.set_grad_enabled(True):
            e = x * 2
        f = x * 2
    assert [t.requires_grad for t in (a, b, c, d, e, f)] == [False, True, False, True, True,
                                                            False]


# ---- detach and .data ------------------------------------------------------------------------
def test_detach_shares_storage_and_drops_history():
    x = leaf([1.0, 2.0])
    y = x * 2
    d = y.detach()
    assert d.is_leaf and not d.requires_grad and d.grad_fn is None
    d[0] = 10.0
    assert y.tolist() == [10.0, 4.0]
    assert y.requires_grad and y.grad_fn is not None


def test_detach_in_place():
    x = leaf([1.0, 2.0])
    y = x * 2
    assert y.detach_() is y
    assert y.is_leaf and not y.requires_grad and y.grad_fn is None


def test_data_shares_storage_without_history():
    x = leaf([1.0, 2.0])
    d = x.data
    assert d.is_leaf and not d.requires_grad
    d[0] = 5.0
    assert x.tolist() == [5.0, 2.0] and x.is_leaf and x.requires_grad
    x.data = graphc.tensor([3.0, 4.0])
    (x * x).sum().backward()
    assert x.grad.tolist() == [6.0, 8.0]


def test_clone_keeps_history():
    x = leaf([1.0, 2.0])
    c = x.clone()
    assert c.grad_fn is not None
    (c * c).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]


# ---- autograd.grad ---------------------------------------------------------------------------
def test_autograd_grad_returns_gradients_of_leaves_and_non_leaves():
    x = leaf([1.0, 2.0])
    y = x * 2
    z = (y ** 3).sum()
    gy, gx = graphc.autograd.grad(z, [y, x])
    assert gy.tolist() == [12.0, 48.0]                  # 3 y^2
    assert gx.tolist() == [24.0, 96.0]                  # 3 y^2 * 2
    assert x.grad is None and y.grad is None            # nothing accumulates


def test_autograd_grad_with_grad_outputs():
    x = leaf([1.0, 2.0])
    (g,) = graphc.autograd.grad(x * x, x, grad_outputs=graphc.tensor([1.0, -1.0]))
    assert g.tolist() == [2.0, -4.0]


def test_autograd_grad_unused_inputs():
    x, w = leaf([1.0, 2.0]), leaf([1.0])
    gx, gw = graphc.autograd.grad((x * 2).sum(), [x, w], allow_unused=True)
    assert gx.tolist() == [2.0, 2.0] and gw is None
    with pytest.raises(RuntimeError, match="The differentiated Tensor at index 1 appears to "
                                           "not have been used in the graph. Set "
                                           "allow_unused=True if this is the desired "
                                           "behavior."):
        graphc.autograd.grad((x * 2).sum(), [x, w])


def test_autograd_grad_of_an_input_that_does_not_require_grad_raises():
    w = leaf([1.0])
    with pytest.raises(RuntimeError, match="One of the differentiated Tensors does not "
                                           "require grad"):
        graphc.autograd.grad((w * 2).sum(), graphc.tensor([1.0]))


def test_create_graph_gives_second_derivatives():
    values = np.array([0.5, 2.0, -1.5])
    x = leaf(values, dtype=graphc.float64)
    y = (x ** 3 * x.sin()).sum()
    (g,) = graphc.autograd.grad(y, x, create_graph=True)
    assert g.requires_grad and g.grad_fn is not None
    np.testing.assert_allclose(g.detach().numpy(),
                               3 * values ** 2 * np.sin(values) + values ** 3 * np.cos(values))
    (h,) = graphc.autograd.grad(g.sum(), x)
    # d2/dx2 [x^3 sin x] = 6x sin x + 6x^2 cos x - x^3 sin x
    np.testing.assert_allclose(h.numpy(), 6 * values * np.sin(values)
                               + 6 * values ** 2 * np.cos(values)
                               - values ** 3 * np.sin(values), rtol=1e-12)


def test_backward_with_create_graph_records_the_gradient():
    x = leaf([0.5, 2.0], dtype=graphc.float64)
    (x.exp() * x).sum().backward(create_graph=True)
    grad = x.grad
    assert grad.requires_grad
    x.grad = None
    grad.sum().backward()
    # d/dx [(1 + x) e^x] = (2 + x) e^x
    np.testing.assert_allclose(x.grad.numpy(), (2 + np.array([0.5, 2.0])) *
                               np.exp([0.5, 2.0]))


# ---- in-place operations and the version check -----------------------------------------------
def test_inplace_on_a_saved_output_raises_on_backward():
    x = leaf([1.0, 2.0])
    y = x.exp()                                # exp saves its output
    y.add_(1)
    with pytest.raises(RuntimeError, match=re.escape(
            INPLACE + ": [graphc.FloatTensor [2]], which is output 0 of Exp, is at version 1; "
            "expected version 0 instead.")):
        y.sum().backward()


def test_inplace_on_a_saved_input_raises_on_backward():
    x = leaf([1.0, 2.0])
    a = x * 1
    y = a * a                                  # mul saves both inputs
    a.mul_(2)
    with pytest.raises(RuntimeError, match=re.escape(
            INPLACE + ": [graphc.FloatTensor [2]], which is output 0 of Mul, is at version 1; "
            "expected version 0 instead.")):
        y.sum().backward()


def test_inplace_on_a_saved_leaf_names_no_producer():
    w, c = leaf([1.0, 2.0]), graphc.tensor([1.0, 2.0])
    y = w * c                                  # c is saved for w's gradient
    c.add_(1)
    with pytest.raises(RuntimeError, match=re.escape(
            INPLACE + ": [graphc.FloatTensor [2]] is at version 1; expected version 0 "
            "instead.")):
        y.sum().backward()


@pytest.mark.parametrize("modify", [
    lambda y: y.sigmoid_(),
    lambda y: y.detach().zero_(),              # detach shares the version counter
    lambda y: y.__setitem__(0, 0.0),
])
def test_other_writes_to_saved_values_are_caught(modify):
    x = leaf([1.0, 2.0])
    y = x.sigmoid()
    with graphc.no_grad():                     # the counter moves in no_grad mode too
        modify(y)
    with pytest.raises(RuntimeError, match=re.escape(INPLACE)):
        y.sum().backward()


def test_writes_through_data_are_not_caught():
    x = leaf([1.0, 2.0])
    y = x.exp()
    y.data.zero_()
    y.sum().backward()                         # as in PyTorch: uses the modified output
    assert x.grad.tolist() == [0.0, 0.0]


def test_inplace_on_a_value_nothing_saved_is_fine():
    x = leaf([1.0, 2.0])
    y = x + 1                                  # add saves nothing
    y.add_(1)
    assert y.grad_fn.name() == "AddBackward0" and not y.is_leaf
    (y * y).sum().backward()
    assert x.grad.tolist() == [6.0, 8.0]       # 2 (x + 2)


def test_inplace_chain_gradients():
    x = leaf([1.0, 2.0])
    a = x * 3
    a.add_(1)
    a.mul_(x)                                  # a = (3x + 1) x
    a.sum().backward()
    assert a.tolist() == [4.0, 14.0] and x.grad.tolist() == [7.0, 13.0]   # 6x + 1


def test_earlier_uses_keep_their_history_after_an_inplace_op():
    x = leaf([1.0, 2.0])
    a = x + 1
    y = a + 0                                  # reads a before the in-place op
    a.add_(x)                                  # a = 2x + 1 afterwards
    (y.sum() + a.sum()).backward()
    assert x.grad.tolist() == [3.0, 3.0]       # 1 from y, 2 from the new a


def test_inplace_relu_and_augmented_assignment_gradients():
    x = leaf([-1.0, 2.0])
    a = x * 1
    a.relu_()
    b = x * 1
    b += x
    (a * 2 + b).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]


def test_inplace_on_a_leaf_that_requires_grad_raises():
    x = leaf([1.0, 2.0])
    for op in (lambda: x.add_(1), lambda: x.zero_(), lambda: x.__iadd__(1),
               lambda: x.__setitem__(0, 5.0)):
        with pytest.raises(RuntimeError, match=re.escape(LEAF_INPLACE)):
            op()
    assert x.tolist() == [1.0, 2.0] and x._version_count == 0


def test_inplace_on_a_leaf_is_allowed_under_no_grad():
    x = leaf([1.0, 2.0])
    with graphc.no_grad():
        x.add_(1)
        x -= 0.5
        x[0] = 0.0
    assert x.tolist() == [0.0, 2.5] and x.is_leaf and x.requires_grad
    (x * x).sum().backward()
    assert x.grad.tolist() == [0.0, 5.0]


def test_inplace_with_an_operand_that_requires_grad_gives_history():
    x = graphc.tensor([1.0, 2.0])
    w = leaf([3.0, 4.0])
    x.mul_(w)
    assert x.requires_grad and not x.is_leaf
    x.sum().backward()
    assert w.grad.tolist() == [1.0, 2.0]


# ---- gradient values against finite differences ----------------------------------------------
@pytest.mark.parametrize("fn, shapes", [
    (lambda x, y: (x * y + x.exp() / (1 + y * y)).sum(1), [(2, 3), (3,)]),
    (lambda x: x.t().reshape(3, 2)[1:, :] ** 3, [(2, 3)]),
    (lambda x: graphc.softmax(x, dim=1) * x.tanh(), [(2, 4)]),
    (lambda x, w: (x @ w).sigmoid().mean(0), [(3, 4), (4, 2)]),
    (lambda x: x.expand(3, 2, 2).sum(0) * x.clamp(-0.5, 0.5), [(2, 2)]),
    (lambda x: graphc.cat([x, x.flip(0)]).var(0) + x.max(0).values, [(3, 2)]),
])
def test_gradients_match_finite_differences(fn, shapes):
    rng = np.random.default_rng(7)
    gradcheck(fn, *[rng.uniform(-1, 1, s) for s in shapes])
