"""conv2d lowered as im2col + the matmul kernel: the kernels it makes (the fast path is
taken, the epilogue fused, 1x1 convolutions read their input in place, small output
planes are one product over all samples, the input gradient is col2im), the loop IR
against the interpreter, and forward and backward against PyTorch on the code
generators for stride, dilation, padding, 1x1, kernel == input, batch 1, many channels,
odd shapes and float64; a small CNN trains as in PyTorch."""
import numpy as np
import pytest

import graphc
from graphc.codegen import loops as L
from graphc.codegen.evaluate import run_program
from graphc.codegen.lower import lower
from graphc.passes import run_pipeline
from graphc.targets.interpreter import compile_graph
from harness import check_function, check_module

F = graphc.nn.functional
rng = np.random.default_rng(0)


def r(*shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def lowered(fn, *arrays):
    """The loop IR program of ``fn`` traced on ``arrays``, checked against the graph
    interpreter by the loop IR evaluator."""
    graph = run_pipeline(graphc.trace(fn, *(graphc.tensor(a) for a in arrays)), check=True)
    program, _ = lower(graph)
    for got, want in zip(run_program(program, arrays), compile_graph(graph)(list(arrays))):
        np.testing.assert_allclose(got.reshape(np.shape(want)), want, rtol=1e-5, atol=1e-5)
    return program


def test_conv_bias_relu_is_im2col_then_one_matmul_with_the_epilogue():
    program = lowered(lambda x, w, b: F.conv2d(x, w, b, padding=1).relu(),
                      r(2, 3, 10, 8), r(4, 3, 3, 3), r(4))
    im2col, product = program.kernels                  # im2col reads through the padding
    assert im2col.name.startswith("im2col_") and im2col.inputs == program.inputs[:1]
    assert isinstance(product, L.MatmulKernel)
    assert (product.batch, product.m, product.n, product.k) == ((2,), 4, 80, 27)
    assert product.outputs == program.outputs           # bias and relu in the epilogue
    assert program.buffers[product.b.buffer].kind == "temp"
    assert product.b.buffer in program.arena            # the columns live in the arena


def test_one_by_one_convolution_reads_its_input_in_place():
    program = lowered(lambda x, w: F.conv2d(x, w), r(2, 5, 8, 9), r(6, 5, 1, 1))
    [product] = program.kernels
    assert isinstance(product, L.MatmulKernel)
    assert product.b.buffer == program.inputs[0]
    assert (product.b.batch_strides, product.b.row_stride, product.b.col_stride) == \
        ((360,), 72, 1)


def test_small_output_planes_are_one_product_over_all_samples():
    """A weight gradient's output plane is the kernel's (3x3): one product (O x N*P*Q)
    of all samples' columns, then a loop kernel that transposes it to NCHW, with the
    group's epilogue (here the bias and relu)."""
    program = lowered(lambda x, w, b: F.conv2d(x, w, b).relu(),
                      r(4, 3, 6, 5), r(2, 3, 3, 3), r(2))
    im2col, product, stores = program.kernels
    assert isinstance(product, L.MatmulKernel)
    assert (product.batch, product.m, product.n, product.k) == ((), 2, 4 * 4 * 3, 27)
    assert product.outputs[0] in stores.inputs and stores.outputs == program.outputs
    assert isinstance(stores, L.LoopKernel) and im2col.outputs == [product.b.buffer]


def test_strided_and_transposed_one_by_one_convolutions_go_through_im2col():
    for fn, x in ((lambda x, w: F.conv2d(x, w, stride=2), r(2, 5, 17, 16)),
                  (lambda x, w: F.conv2d(x.transpose(2, 3), w), r(2, 5, 9, 8))):
        program = lowered(fn, x, r(6, 5, 1, 1))
        assert [type(k) for k in program.kernels] == [L.LoopKernel, L.MatmulKernel]
        assert program.kernels[0].inputs == program.inputs[:1]    # reads x's own buffer


def test_weight_gradient_reuses_the_copy_of_a_computed_input():
    """The input of the second convolution is a pooling's gather: copied once, and the
    weight gradient's transposed input reads that copy through strides."""
    def grads(x, w1, w2):
        y = F.conv2d(F.max_pool2d(F.conv2d(x, w1).relu(), 2), w2)
        return graphc.autograd.grad(y.square().sum(), (w1, w2))
    arrays = [r(2, 1, 10, 10), r(3, 1, 3, 3), r(4, 3, 2, 2)]
    tensors = [graphc.tensor(a, requires_grad=True) for a in arrays]
    graph = run_pipeline(graphc.trace(grads, *tensors), check=True)
    program, _ = lower(graph)
    readers = {c.outputs[0]: [k.name for k in program.kernels if k.name.startswith("im2col_")
                              and c.outputs[0] in k.inputs]
               for c in program.kernels if c.name.startswith("copy_")}
    assert max(len(names) for names in readers.values()) == 2
    for got, want in zip(run_program(program, arrays), compile_graph(graph)(arrays)):
        np.testing.assert_allclose(got.reshape(np.shape(want)), want, rtol=1e-5, atol=1e-5)


CONVS = {
    "stride padding dilation": ((2, 3, 9, 8), (4, 3, 3, 2), dict(stride=2, padding=1,
                                                                dilation=(1, 2))),
    "1x1": ((2, 5, 6, 7), (3, 5, 1, 1), {}),
    "1x1 strided": ((2, 3, 7, 7), (4, 3, 1, 1), dict(stride=2)),
    "kernel is the input": ((3, 4, 5, 5), (2, 4, 5, 5), {}),
    "batch 1": ((1, 3, 6, 6), (5, 3, 3, 3), dict(padding=1)),
    "many channels": ((2, 64, 5, 5), (48, 64, 3, 3), dict(padding=1)),
    "odd shapes": ((3, 2, 11, 4), (7, 2, 2, 3), dict(stride=(3, 1), padding=(0, 2))),
    "stride 2 dilation 3": ((2, 2, 13, 12), (3, 2, 3, 3), dict(stride=2, dilation=3,
                                                               padding=2)),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(CONVS))
def test_conv2d_values_and_gradients_match_pytorch(case, dtype, backend):
    xs, ws, kw = CONVS[case]
    tol = dict(rtol=1e-4, atol=1e-4) if dtype is np.float32 else dict(rtol=1e-10, atol=1e-10)
    check_function(lambda lib, x, w, b: lib.nn.functional.conv2d(x, w, b, **kw).relu(),
                   r(*xs, dtype=dtype), r(*ws, dtype=dtype), r(ws[0], dtype=dtype),
                   modes=("interpreter", backend), **tol)


@pytest.mark.slow
def test_small_cnn_trains_as_in_pytorch():
    check_module(lambda lib: lib.nn.Sequential(
        lib.nn.Conv2d(1, 4, 3), lib.nn.ReLU(), lib.nn.MaxPool2d(2),
        lib.nn.Conv2d(4, 6, 3, padding=1), lib.nn.ReLU(), lib.nn.MaxPool2d(2),
        lib.nn.Flatten(), lib.nn.Linear(6 * 3 * 3, 5)),
        r(3, 1, 14, 14), rtol=1e-4, atol=1e-5, steps=3)


def test_input_gradient_is_col2im_not_a_convolution_of_the_padded_gradient():
    """dx is w^T @ g per sample and a sum of padded planes: no conv2d of a padded,
    zero-interleaved gradient, and no column buffer for it."""
    def dx(x, w):
        return graphc.autograd.grad(F.conv2d(x, w, stride=2).square().sum(), x)
    arrays = [r(2, 3, 9, 8), r(4, 3, 3, 3)]
    graph = run_pipeline(graphc.trace(dx, *(graphc.tensor(a, requires_grad=True)
                                            for a in arrays)), check=True)
    assert [op.name for op in graph.ops].count("conv2d") == 1       # the forward's
    assert "matmul" in [op.name for op in graph.ops]
    program, _ = lower(graph)
    for got, want in zip(run_program(program, arrays), compile_graph(graph)(arrays)):
        np.testing.assert_allclose(got.reshape(np.shape(want)), want, rtol=1e-5, atol=1e-5)
