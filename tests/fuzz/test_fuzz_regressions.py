"""Minimised programs the fuzzer (``python -m graphc.testing.fuzz``) found, as printed by
it.  Each runs in graphc eager and compiled (interpreter, cpu, cuda-emulate; fused and
unfused) and is compared with PyTorch (or graphc eager where PyTorch is missing).  Open
bugs are ``xfail(strict=True)``: the test fails once the bug is fixed, so the mark goes."""
from math import inf, nan  # noqa: F401  (printed inputs spell special values so)

import numpy as np
import pytest

from graphc.testing.fuzz import Input, assert_agrees, parse_program

needs_torch = pytest.mark.skipif(__import__("importlib").util.find_spec("torch") is None,
                                 reason="PyTorch is the reference")


@needs_torch
def test_std_gradient_at_zero_variance_is_zero():
    # found as: eager: grad of x0: 1 of 1 differ, at []: nan != 0.0 (sqrt'(0) = inf)
    program = parse_program('''
def program(ns, F, x0, x1):
    v0 = ns.std(x0, dim=None, unbiased=False, keepdim=True)
    v1 = ns.std(x1, dim=1, unbiased=True, keepdim=False)
    v2 = ns.tanh(v0)
    return [v2, v1]
''', [
        Input(np.array(0.0, dtype=np.float32).reshape(()), grad=True),
        Input(np.array([[2.0, 2.0], [1.0, 3.0]], dtype=np.float32).reshape((2, 2)),
              layout="t", grad=True)])
    assert_agrees(program)


@needs_torch
def test_binary_cross_entropy_gradient_at_probability_one():
    program = parse_program('''
def program(ns, F, x0, x1):
    v0 = F.binary_cross_entropy(ns.sigmoid(x1), ns.sigmoid(x0), reduction='sum')
    return [v0]
''', [
        Input(np.array([1.0, 1.0, 1.0], dtype=np.float32).reshape((3,))),
        Input(np.array([1.0, 1.0, 19.0], dtype=np.float32).reshape((3,)), grad=True)])
    assert_agrees(program, backends=())


@needs_torch
def test_cosine_similarity_broadcasts_before_the_norms():
    program = parse_program('''
def program(ns, F, x0, x1):
    v0 = F.cosine_similarity(x0, x1, dim=-1)
    return [v0]
''', [
        Input(np.array([1.0, 1.0, 1.0], dtype=np.float32).reshape((3,))),
        Input(np.array([1.0], dtype=np.float32).reshape((1,)))])
    assert_agrees(program, backends=())


@needs_torch
def test_cumsum_of_inf():
    program = parse_program('''
def program(ns, F, x0):
    v0 = ns.cumsum(x0, dim=0)
    return [v0]
''', [
        Input(np.array([1.0, -inf, 1.0, 2.0], dtype=np.float32).reshape((4,)))])
    assert_agrees(program, backends=())


@needs_torch
def test_batch_norm_training_on_an_empty_batch():
    # found as: eager: crash in forward: ValueError: Expected more than 1 value per channel
    # when training, got input size [0, 1, 1, 1]
    program = parse_program('''
def program(ns, F, x0, x1, x2):
    v0 = F.batch_norm(x0, None, None, x1, x2, training=True)
    return [v0]
''', [
        Input(np.array([], dtype=np.float32).reshape((0, 1, 1, 1)), grad=True),
        Input(np.array([1.0], dtype=np.float32).reshape((1,)), grad=True),
        Input(np.array([0.5], dtype=np.float32).reshape((1,)), grad=True)])
    assert_agrees(program)


def test_batch_norm_on_an_empty_batch_leaves_the_running_statistics():
    import graphc
    mean, var = graphc.zeros(2), graphc.ones(2)
    graphc.nn.functional.batch_norm(graphc.zeros(0, 2), mean, var, training=True)
    assert mean.tolist() == [0.0, 0.0] and var.tolist() == [1.0, 1.0]


@needs_torch
def test_sign_of_nan():
    program = parse_program('''
def program(ns, F, x0):
    v0 = ns.sign(x0)
    return [v0]
''', [
        Input(np.array([nan, -0.0, 2.0], dtype=np.float32).reshape((3,)))])
    assert_agrees(program, backends=())


@needs_torch
def test_detach_in_compiled_code_stops_the_gradient():
    program = parse_program('''
def program(ns, F, x0):
    v0 = x0 * x0.detach()
    v1 = F.hardtanh(x0, min_val=-0.5, max_val=2.0)
    return [v0, v1]
''', [
        Input(np.array([1.0, 3.0, 2.0, 0.0], dtype=np.float32).reshape((4,)), grad=True)])
    assert_agrees(program, backends=["interpreter"], fuse=True)


@needs_torch
def test_std_of_huge_float32_values():
    program = parse_program('''
def program(ns, F, x0):
    v0 = ns.std(x0, dim=(0,), unbiased=False, keepdim=False)
    return [v0]
''', [
        Input(np.array([[1.0, -1e30], [1.0, 1.0]], dtype=np.float32).reshape((2, 2)))])
    assert_agrees(program, backends=())


@needs_torch
def test_diag_of_an_empty_vector():
    program = parse_program('''
def program(ns, F, x0):
    v0 = ns.diag(x0, 0)
    v1 = ns.diag(x0, -2)
    return [v0, v1]
''', [
        Input(np.array([], dtype=np.float32).reshape((0,)), grad=True)])
    assert_agrees(program, backends=())


@needs_torch
def test_elu_gradient_of_a_large_input():
    # found as: eager: grad of x0: 1 of 1 differ, at []: nan != 1.1369616873214543
    # (exp(1e300) = inf in the branch not taken: 0 * inf)
    program = parse_program('''
def program(ns, F, x0):
    v0 = F.elu(x0, alpha=1.0)
    return [v0]
''', [
        Input(np.array([1e+300, 1000.0, -0.5, 0.5], dtype=np.float64).reshape((4,)), grad=True)])
    assert_agrees(program)


@needs_torch
@pytest.mark.xfail(strict=True, reason="conv2d computes the zeros of padding (and of "
                   "dilation) times the weights: inf * 0 = nan where PyTorch gives a number "
                   "here (but nan for 3x3 kernels: its own result is inconsistent, see "
                   "docs/fuzzing.md, Exclusions)")
def test_conv2d_padding_times_inf():
    program = parse_program('''
def program(ns, F, x0, x1):
    v0 = F.conv2d(x0, x1, None, stride=2, padding=1, dilation=1)
    return [v0]
''', [
        Input(np.array([[[[1.0]]], [[[1.0]]]], dtype=np.float32).reshape((2, 1, 1, 1))),
        Input(np.array([[[[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]], [[[0.0, 1.0], [1.0, 1.0],
                                                                 [inf, 1.0]]]],
                       dtype=np.float32).reshape((2, 1, 3, 2)))])
    assert_agrees(program, backends=())


@needs_torch
def test_index_add_into_bool_with_alpha():
    program = parse_program('''
def program(ns, F, x0, x1, x2):
    v0 = ns.index_add(x2, 0, x0, x1, alpha=2)
    return [v0]
''', [
        Input(np.array([0, 2, 3, 2], dtype=np.int64).reshape((4,))),
        Input(np.array([True, False, False, True], dtype=np.bool).reshape((4,))),
        Input(np.array([False, False, False, False], dtype=np.bool).reshape((4,)))])
    assert_agrees(program, backends=())


@needs_torch
def test_cuda_emulate_mv_select_defines_a_copy_kernel_twice():
    program = parse_program('''
def program(ns, F, x0, x1):
    v0 = ns.mv(x0, x1)
    v1 = ns.select(v0, -1, 1)
    return [v1]
''', [
        Input(np.array([[1.0, 1.0], [1.0, 1.0]], dtype=np.float64).reshape((2, 2)), grad=True),
        Input(np.array([1.0, 1.0], dtype=np.float64).reshape((2,)), grad=True)])
    assert_agrees(program, backends=["cuda-emulate"], fuse=True)


@needs_torch
def test_cross_entropy_ignores_an_infinite_row():
    program = parse_program('''
def program(ns, F, x0, x1):
    v0 = F.cross_entropy(x0, x1, reduction='sum', label_smoothing=0.0)
    return [v0]
''', [
        Input(np.array([[1.0, 2.0, 0.5], [1.0, 1.0, inf]], dtype=np.float32).reshape((2, 3))),
        Input(np.array([2, -100], dtype=np.int64).reshape((2,)))])
    assert_agrees(program, backends=())


@needs_torch
def test_norm_p3_gradient_at_zero():
    program = parse_program('''
def program(ns, F, x0):
    v0 = ns.norm(x0, p=3, dim=(0,), keepdim=False)
    return [v0]
''', [
        Input(np.array([[0.0, 1.0], [0.0, -2.0]], dtype=np.float32).reshape((2, 2)), grad=True)])
    assert_agrees(program, backends=())


@needs_torch
@pytest.mark.parametrize("backend", ["cpu", "cuda-emulate"])
def test_fused_reduction_broadcast_along_another_axis(backend):
    # found as: cpu, cuda-emulate: output 0: 1 of 9 differ: False != True, for
    # ns.le(ns.var(x0, dim=(1, 2)), x0) with x0 of shape (3, 1, 3, 1)
    program = parse_program('''
def program(ns, F, x0):
    v0 = ns.sum(x0, dim=1, keepdim=False)
    v1 = ns.sub(v0, x0)
    return [v1]
''', [
        Input(np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32).reshape((2, 2)), grad=True)])
    assert_agrees(program, backends=[backend], fuse=True)


@needs_torch
def test_softplus_of_a_large_negative_input_keeps_its_tiny_value():
    # found as: rsqrt(softplus(-22)): inf != 59874.14 (log(1 + e^-22) is 0 in float32)
    program = parse_program('''
def program(ns, F, x0):
    v0 = F.softplus(x0, beta=1.0, threshold=20.0)
    v1 = ns.rsqrt(v0)
    return [v1]
''', [
        Input(np.array([1.0, -22.0, 0.0, -100.0], dtype=np.float32).reshape((4,)), grad=True)])
    assert_agrees(program)


@needs_torch
def test_shrinks_and_threshold_keep_nan():
    # found as seed71_129: eager: output 0: 1 of 1 differ: 0.0 != nan (hardshrink(nan))
    program = parse_program('''
def program(ns, F, x0):
    v0 = F.hardshrink(x0, lambd=0.5)
    v1 = F.softshrink(x0, lambd=1.0)
    v2 = F.threshold(x0, threshold=0.5, value=2.0)
    return [v0, v1, v2]
''', [
        Input(np.array([nan, 0.25, -3.0, inf], dtype=np.float32).reshape((4,)), grad=True)])
    assert_agrees(program, backends=("interpreter",))


@needs_torch
def test_glu_and_group_norm_of_empty_dims_and_prelu_of_a_scalar():
    # glu split an empty dim into one chunk; group_norm reshaped an empty batch with -1;
    # prelu of a 0-d input kept the weight's shape (1,)
    program = parse_program('''
def program(ns, F, x0, x1, x2, x3):
    v0 = F.glu(x0, dim=1)
    v1 = F.group_norm(x1, 1)
    v2 = F.prelu(x2, x3)
    return [v0, v1, v2]
''', [
        Input(np.zeros((2, 0), dtype=np.float32)),
        Input(np.zeros((0, 1, 1), dtype=np.float32)),
        Input(np.array(-2.0, dtype=np.float32), grad=True),
        Input(np.array([0.25], dtype=np.float32), grad=True)])
    assert_agrees(program, backends=("interpreter",))


@needs_torch
def test_multi_margin_loss_counts_a_nan_term_zero():
    # found as seed71_97: PyTorch adds a class's term only when it is > 0, so nan adds 0
    program = parse_program('''
def program(ns, F, x0, x1):
    v0 = F.multi_margin_loss(x0, x1, p=2, margin=0.5, reduction='none')
    return [v0]
''', [
        Input(np.array([[1.0, 1.0, nan], [1.0, 0.0, -0.5]], dtype=np.float32), grad=True),
        Input(np.array([0, 2], dtype=np.int64))])
    assert_agrees(program, backends=("interpreter",))


@needs_torch
def test_embedding_bag_of_rows_with_inf():
    program = parse_program('''
def program(ns, F, x0, x1):
    v0 = F.embedding_bag(x1, x0, None, mode='mean')
    return [v0]
''', [
        Input(np.array([[inf, 1.0], [2.0, 3.0]], dtype=np.float32)),
        Input(np.array([[0], [1]], dtype=np.int64))])
    assert_agrees(program, backends=())


@needs_torch
def test_embedding_bag_max_of_no_lookups():
    # found as seed71_168
    program = parse_program('''
def program(ns, F, x0, x1, x2):
    v0 = F.embedding_bag(x0, x2, x1, mode='max')
    return [v0]
''', [
        Input(np.array([], dtype=np.int64).reshape((0,))),
        Input(np.array([0], dtype=np.int64).reshape((1,))),
        Input(np.array([[1.0]], dtype=np.float32).reshape((1, 1)))])
    assert_agrees(program, backends=())


@needs_torch
def test_multilabel_margin_loss_counts_a_nan_term_zero():
    # found as seed1000_43 (the short fuzz run)
    program = parse_program('''
def program(ns, F, x0, x1):
    v0 = F.multilabel_margin_loss(x0, x1, reduction='mean')
    return [v0]
''', [
        Input(np.array([[1.0, 1.0, 1.0, 1.0], [1.0, nan, 1.0, 1.0]], dtype=np.float32),
              grad=True),
        Input(np.array([[1, 1, -1, 0], [1, 1, 1, 2]], dtype=np.int64))])
    assert_agrees(program, backends=("interpreter",))


@needs_torch
def test_attention_mask_adds_minus_inf_so_a_nan_score_stays_nan():
    # PyTorch adds a boolean mask as a bias of 0 and -inf: a masked nan (or inf) score
    # still makes its row nan; graphc's where used to drop it
    program = parse_program('''
def program(ns, F, x0, x1, x2, x3):
    v0 = F.scaled_dot_product_attention(x0, x1, x2, attn_mask=x3, is_causal=False)
    return [v0]
''', [
        Input(np.array([[1.0], [-3.0]], dtype=np.float32).reshape((2, 1, 1))),
        Input(np.array([[1.0], [nan], [2.0], [1.0], [-inf], [0.5]],
                       dtype=np.float32).reshape((2, 3, 1))),
        Input(np.array([[0.0], [1.0], [2.0], [1.0], [1.0], [1.0]],
                       dtype=np.float32).reshape((2, 3, 1))),
        Input(np.array([[True, False, True]], dtype=np.bool_))])
    assert_agrees(program, backends=("interpreter",))


@needs_torch
def test_dropout_of_an_empty_bool_tensor():
    # found as seed71_136: PyTorch returns an empty input of any dtype as it is
    program = parse_program('''
def program(ns, F, x0):
    v0 = F.dropout(x0, p=0.5, training=True)
    return [v0]
''', [
        Input(np.array([[]], dtype=np.bool_).reshape((1, 0, 1)))])
    assert_agrees(program, backends=("interpreter",))
