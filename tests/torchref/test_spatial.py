"""Spatial layers against PyTorch (graphc.spatial and the nn modules in conv, pooling,
padding and vision): outputs, input and weight gradients, eagerly and compiled; errors,
reprs and default initialisation.  Cases are grouped into few compiled functions, since
compiling costs far more than running."""
import math
import warnings

import numpy as np
import pytest

import graphc
from harness import check_function, check_module, torch

rng = np.random.default_rng(0)


def r(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def distinct(*shape):
    """Distinct values (max pooling has no ties to split)."""
    return (rng.permutation(math.prod(shape)).reshape(shape) / 7 - 3).astype(np.float32)


# ---- convolution -----------------------------------------------------------------------------
def test_conv2d_stride_padding_dilation_groups_and_unbatched():
    check_function(lambda lib, x, w, b, xg, wg, bg, xd, wd, xs, ws, xu, wu: (
        lib.nn.functional.conv2d(x, w, b, stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
        lib.nn.functional.conv2d(xg, wg, bg, stride=2, padding=1, groups=2),
        lib.nn.functional.conv2d(xd, wd, None, 1, "same", dilation=2, groups=3),
        lib.nn.functional.conv2d(xs, ws, stride=3),
        lib.nn.functional.conv2d(xu, wu, padding="valid")),
        r(2, 3, 7, 8), r(4, 3, 3, 2), r(4), r(1, 4, 6, 5), r(6, 2, 3, 3), r(6),
        r(2, 3, 6, 5), r(3, 1, 3, 2), r(1, 2, 7, 7), r(2, 2, 2, 2), r(2, 5, 5), r(3, 2, 3, 3))


def test_conv1d_stride_padding_dilation_groups_and_unbatched():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")     # PyTorch: 'same' with an even kernel
        check_function(lambda lib, x, w, b, xg, wg, xu, wu: (
            lib.nn.functional.conv1d(x, w, b, stride=2, padding=2, dilation=2),
            lib.nn.functional.conv1d(xg, wg, padding="same", groups=2),
            lib.nn.functional.conv1d(xu, wu)),
            r(2, 3, 9), r(4, 3, 3), r(4), r(1, 4, 7), r(4, 2, 4), r(3, 9), r(4, 3, 3))


def test_conv_transpose_output_padding_groups_dilation():
    check_function(lambda lib, x, w, b, xg, wg, xp, wp, x1, w1, b1, xu, wu: (
        lib.nn.functional.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
        lib.nn.functional.conv_transpose2d(xg, wg, stride=(2, 3), padding=(0, 2), groups=2,
                                           dilation=2, output_padding=(1, 0)),
        lib.nn.functional.conv_transpose2d(xp, wp, padding=2),
        lib.nn.functional.conv_transpose1d(x1, w1, b1, stride=3, padding=1, output_padding=2),
        lib.nn.functional.conv_transpose1d(xu, wu, groups=3, stride=2)),
        r(2, 3, 4, 5), r(3, 2, 3, 3), r(2), r(1, 4, 3, 4), r(4, 3, 2, 3), r(1, 2, 6, 6),
        r(2, 3, 3, 3), r(2, 3, 5), r(3, 2, 4), r(2), r(3, 5), r(3, 2, 3))


@pytest.mark.parametrize("mode", ["interpreter", pytest.param("cpu", marks=pytest.mark.slow)])
def test_three_d_convolution_pooling_padding_and_resampling(mode):
    """The 2-d building blocks with a third dim (the cpu compile of this many 5-D
    kernels is slow, so it runs with the slow tests)."""
    check_function(lambda lib, x, w, b, xg, wg, xt, wt, p, q: (
        lib.nn.functional.conv3d(x, w, b, stride=(1, 2, 1), padding=(1, 0, 1),
                                 dilation=(2, 1, 1)),
        lib.nn.functional.conv3d(xg, wg, padding="same", groups=2),
        lib.nn.functional.conv_transpose3d(xt, wt, stride=2, padding=1, output_padding=1),
        *lib.nn.functional.max_pool3d(p, 2, (1, 2, 2), 1, ceil_mode=True, return_indices=True),
        lib.nn.functional.avg_pool3d(p, (2, 3, 2), padding=(1, 1, 0), ceil_mode=True,
                                     count_include_pad=False),
        lib.nn.functional.adaptive_avg_pool3d(p, (2, None, 3)),
        *lib.nn.functional.adaptive_max_pool3d(q, 2, return_indices=True),
        lib.nn.functional.pad(q, (1, 0, 2, 1, 1, 1), mode="reflect"),
        lib.nn.functional.pad(q, (1, 2, 0, 1, 1, 0), mode="circular"),
        lib.nn.functional.interpolate(p, size=(2, 3, 2), mode="area")),
        r(1, 2, 5, 6, 4), r(3, 2, 2, 3, 2), r(3), r(1, 4, 3, 4, 3), r(4, 2, 3, 1, 3),
        r(1, 2, 2, 3, 2), r(2, 3, 3, 2, 3), distinct(1, 2, 3, 5, 4), distinct(2, 3, 4, 5),
        modes=(mode,))


def test_conv_modules_with_padding_modes_train():
    check_module(lambda lib: lib.nn.Sequential(
        lib.nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),
        lib.nn.Conv2d(4, 4, (3, 2), padding="same", dilation=(1, 2), groups=2,
                      padding_mode="replicate", bias=False),
        lib.nn.Conv2d(4, 2, 3, stride=2, padding=(2, 1), padding_mode="circular"),
        lib.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1, groups=1)),
        r(2, 3, 6, 5))


def test_conv1d_modules_train_and_transposed_output_size():
    check_module(lambda lib: lib.nn.Sequential(
        lib.nn.Conv1d(2, 4, 3, padding=2, padding_mode="circular"),
        lib.nn.Conv1d(4, 4, 2, stride=2, groups=4),
        lib.nn.ConvTranspose1d(4, 2, 3, stride=2, dilation=2, groups=2)),
        r(1, 2, 7))
    check_module(lambda lib: lib.nn.ConvTranspose2d(2, 3, 3, stride=2), r(1, 2, 3, 4),
                 forward=lambda m, x: m(x, output_size=[8, 9]), modes=())


def test_lazy_convolutions_take_in_channels_from_the_first_input():
    for make, shape in (
            (lambda lib: lib.nn.LazyConv2d(4, 3, padding=1, groups=2), (1, 2, 5, 4)),
            (lambda lib: lib.nn.LazyConvTranspose1d(4, 3, 2, groups=2, bias=False), (2, 6, 5)),
            (lambda lib: lib.nn.LazyConv3d(2, 2), (1, 3, 3, 3, 2))):
        want, got = make(torch), make(graphc)
        assert repr(got) == repr(want)
        want(torch.zeros(*shape)), got(graphc.zeros(*shape))
        assert repr(got) == repr(want) and type(got).__name__ == type(want).__name__
        assert list(got.state_dict()) == list(want.state_dict())
    check_module(lambda lib: _materialized(lib.nn.LazyConv1d(3, 2, stride=2), lib, (1, 2, 7)),
                 r(1, 2, 7), modes=("interpreter",))


def _materialized(module, lib, shape):
    module(lib.zeros(*shape))
    return module


def test_conv_default_init_bounds():
    """kaiming_uniform_(a=sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the bias too;
    fan_in is weight.shape[1] * kernel (out_channels / groups for the transposed)."""
    graphc.manual_seed(0)
    for layer, fan_in in ((graphc.nn.Conv2d(6, 8, (3, 2), groups=2), 3 * 6),
                          (graphc.nn.Conv1d(4, 2, 5), 4 * 5),
                          (graphc.nn.ConvTranspose2d(4, 6, 3, groups=2), 3 * 9)):
        bound = 1 / math.sqrt(fan_in)
        weight, bias = np.abs(layer.weight.detach().numpy()), np.abs(layer.bias.detach().numpy())
        assert weight.max() <= bound and bias.max() <= bound and weight.max() > 0.8 * bound
    assert tuple(graphc.nn.ConvTranspose1d(4, 6, 3, groups=2).weight.shape) == (4, 3, 3)


# ---- pooling ---------------------------------------------------------------------------------
def test_max_pool_ceil_mode_dilation_indices():
    check_function(lambda lib, a, b, c, d, e: (
        *lib.nn.functional.max_pool2d(a, 3, 2, 1, ceil_mode=True, return_indices=True),
        *lib.nn.functional.max_pool2d(b, (3, 2), (1, 3), (1, 1), dilation=(2, 1),
                                      return_indices=True),
        lib.nn.functional.max_pool2d(c, 2, 3),
        *lib.nn.functional.max_pool1d(d, 4, 3, 2, ceil_mode=True, return_indices=True),
        lib.nn.functional.max_pool1d(e, 3, 1, 1, dilation=2)),
        distinct(2, 3, 7, 6), distinct(1, 2, 7, 8), distinct(3, 8, 7), distinct(2, 3, 10),
        distinct(3, 9))


def test_avg_and_lp_pool_ceil_mode_count_include_pad_divisor():
    check_function(lambda lib, a, b, c, d, e, f: (
        lib.nn.functional.avg_pool2d(a, 3, 2, 1, ceil_mode=True, count_include_pad=False),
        lib.nn.functional.avg_pool2d(b, (3, 2), (2, 1), (1, 1), ceil_mode=True),
        lib.nn.functional.avg_pool2d(c, 2, divisor_override=3),
        lib.nn.functional.avg_pool1d(d, 3, 2, 1, ceil_mode=True, count_include_pad=False),
        lib.nn.functional.lp_pool2d(e, 2, 3, 2, ceil_mode=True),
        lib.nn.functional.lp_pool1d(f, 3, 2),
        lib.nn.functional.lp_pool3d(e.unsqueeze(2), 2, (1, 2, 2))),
        r(2, 3, 7, 6), r(1, 2, 6, 5), r(2, 6, 5), r(2, 3, 8), r(1, 2, 7, 6), r(1, 2, 7),
        rtol=1e-4, atol=1e-5)


def test_adaptive_pools():
    check_function(lambda lib, a, b, c, d, e: (
        lib.nn.functional.adaptive_avg_pool2d(a, (3, None)),
        lib.nn.functional.adaptive_avg_pool2d(b, 1),
        lib.nn.functional.adaptive_avg_pool1d(c, 4),
        *lib.nn.functional.adaptive_max_pool2d(d, (4, 3), return_indices=True),
        *lib.nn.functional.adaptive_max_pool1d(e, 5, True)),
        r(2, 3, 7, 6), r(1, 3, 5, 4), r(2, 3, 7), distinct(2, 3, 7, 5), distinct(3, 7))


def test_pooling_modules_train():
    check_module(lambda lib: lib.nn.Sequential(
        lib.nn.Conv2d(2, 3, 2),
        lib.nn.MaxPool2d(3, 1, 1, ceil_mode=True),
        lib.nn.AvgPool2d(2, 1, 1, count_include_pad=False),
        lib.nn.LPPool2d(2, 2, 1),
        lib.nn.AdaptiveMaxPool2d((3, 2)),
        lib.nn.AdaptiveAvgPool2d(1)), r(1, 2, 7, 6))
    check_module(lambda lib: lib.nn.Sequential(
        lib.nn.Conv1d(2, 2, 2), lib.nn.MaxPool1d(2, ceil_mode=True), lib.nn.AvgPool1d(2, 1, 1),
        lib.nn.LPPool1d(3, 2), lib.nn.AdaptiveMaxPool1d(2), lib.nn.AdaptiveAvgPool1d(1)),
        r(2, 2, 9), modes=("interpreter",))


def test_max_pool_return_indices_module_and_int_input():
    check_module(lambda lib: lib.nn.MaxPool2d(2, return_indices=True), distinct(1, 2, 5, 4),
                 modes=())
    check_function(lambda lib, x: lib.nn.functional.max_pool2d(x, 3, 2, 1),
                   rng.integers(-9, 9, (1, 2, 5, 5)), modes=())
    check_function(lambda lib, x: lib.nn.functional.max_pool1d(x, 2, 1, 1, 2,
                                                               return_indices=True),
                   r(1, 2, 1), modes=(), grad=False)    # windows entirely in padding
    low = np.full((1, 1, 4, 4), -np.inf, np.float32)       # windows of ties with padding
    low[0, 0, 3, 2] = np.nan
    check_function(lambda lib, x: lib.nn.functional.max_pool2d(x, 3, 2, 1, return_indices=True),
                   low, modes=(), grad=False)


def test_deprecated_upsample_functions_warn():
    with pytest.warns(UserWarning, match="upsample_bilinear` is deprecated"):
        check_function(lambda lib, x: lib.nn.functional.upsample_bilinear(x, scale_factor=2),
                       r(1, 1, 2, 3), modes=())


def test_max_unpool_including_windows_sharing_their_maximum():
    def unpool(lib, a, b, c):
        F = lib.nn.functional
        pooled, where = F.max_pool2d(a, 2, return_indices=True)
        shared, shared_where = F.max_pool2d(b, 3, 1, 1, return_indices=True)   # repeats
        line, line_where = F.max_pool1d(c, 2, return_indices=True)
        return (F.max_unpool2d(pooled, where, 2, output_size=(5, 5)),
                F.max_unpool2d(shared, shared_where, 3, 1, 1),
                lib.nn.MaxUnpool1d(2)(line, line_where))
    check_function(unpool, distinct(2, 3, 4, 5), distinct(1, 2, 4, 4), distinct(3, 6))


# ---- padding ---------------------------------------------------------------------------------
def test_pad_modes_with_negative_widths():
    check_function(lambda lib, a, b, c, d, e: tuple(
        lib.nn.functional.pad(x, widths, mode=mode) for x, widths, mode in (
            (a, (2, 1, 1, 3), "reflect"), (b, (-1, 2), "reflect"), (c, (2, 1, 1, 3), "replicate"),
            (b, (-1, 2), "replicate"), (a, (2, 1, 1, 3), "circular"), (b, (-1, 2), "circular"),
            (b, (2, -1), "circular"), (d, (1, 1, 2, 0, 0, 1), "replicate"),
            (e, (1, 2), "reflect"))) + (
        lib.nn.functional.pad(a, (-1, 2, 1, -2), value=2.5),
        lib.nn.functional.pad(b, (1, 1, 0, 0, 1, 0))),
        r(2, 3, 5, 4), r(2, 3, 5), r(3, 5, 4), r(1, 2, 3, 4, 3), r(3, 4))


def test_padding_modules():
    check_module(lambda lib: lib.nn.Sequential(
        lib.nn.ZeroPad2d((1, 0, 2, 1)), lib.nn.ConstantPad2d(1, -1.5),
        lib.nn.ReflectionPad2d((2, 1, 0, 2)), lib.nn.ReplicationPad2d(1),
        lib.nn.CircularPad2d((1, 2, 2, 0)), lib.nn.Conv2d(2, 1, 2)), r(1, 2, 4, 3))
    check_module(lambda lib: lib.nn.Sequential(
        lib.nn.ZeroPad1d(1), lib.nn.ConstantPad1d((0, 2), 3.0), lib.nn.ReflectionPad1d(2),
        lib.nn.ReplicationPad1d((1, 0)), lib.nn.CircularPad1d(3)), r(2, 3, 4), modes=())


# ---- fold, resampling, shuffles --------------------------------------------------------------
def test_unfold_fold():
    check_function(lambda lib, x, cols, u: (
        lib.nn.functional.unfold(x, (2, 3), dilation=(1, 2), padding=1, stride=(2, 1)),
        lib.nn.functional.fold(cols, (5, 6), (2, 3), dilation=(1, 2), padding=1,
                               stride=(2, 1)),
        lib.nn.Fold((3, 3), 2)(lib.nn.Unfold(2)(u))),
        r(2, 3, 5, 6), r(2, 18, 12), r(2, 3, 3))


def test_interpolate_modes():
    check_function(lambda lib, n, l, b, t: (
        lib.nn.functional.interpolate(n, size=(5, 9)),
        lib.nn.functional.interpolate(n, scale_factor=(1.7, 0.6)),
        lib.nn.functional.interpolate(n, scale_factor=2.3, mode="nearest-exact"),
        lib.nn.functional.interpolate(l, size=7, mode="linear"),
        lib.nn.functional.interpolate(l, scale_factor=1.5, mode="linear", align_corners=True),
        lib.nn.functional.interpolate(b, scale_factor=(1.5, 0.7), mode="bilinear"),
        lib.nn.functional.interpolate(b, scale_factor=(1.5, 0.7), mode="bilinear",
                                      recompute_scale_factor=True),
        lib.nn.functional.interpolate(b, size=(7, 3), mode="bilinear", align_corners=True),
        lib.nn.functional.interpolate(b, size=(7, 4), mode="bicubic"),
        lib.nn.functional.interpolate(b, scale_factor=1.3, mode="bicubic", align_corners=True),
        lib.nn.functional.interpolate(b, size=(3, 4), mode="area"),
        lib.nn.functional.interpolate(t, size=(3, 4, 2), mode="trilinear")),
        r(1, 2, 3, 4), r(2, 2, 4), r(1, 2, 5, 6), r(1, 2, 2, 3, 5))


def test_nearest_follows_each_kernel_on_sizes_left_or_doubled():
    """PyTorch's 2-d 'nearest' kernel copies an unchanged size and halves a doubled one
    whatever the scale_factor; its 1-d and 3-d kernels apply the scale."""
    check_function(lambda lib, a, b, c: (
        lib.nn.functional.interpolate(a, scale_factor=1.3),
        lib.nn.functional.interpolate(a, scale_factor=2.1),
        lib.nn.functional.interpolate(b, scale_factor=(1.3, 2.1)),
        lib.nn.functional.interpolate(b, scale_factor=(2.1, 1.3), mode="nearest-exact"),
        lib.nn.functional.interpolate(c, scale_factor=(1.0, 1.3, 2.1))),
        r(1, 2, 3), r(1, 2, 2, 3), r(1, 1, 2, 2, 3), modes=(), grad=False)


def test_upsampling_and_shuffle_modules_train():
    check_module(lambda lib: lib.nn.Sequential(
        lib.nn.Conv2d(2, 8, 1), lib.nn.PixelShuffle(2), lib.nn.Upsample(scale_factor=1.5,
                                                                        mode="bilinear"),
        lib.nn.UpsamplingNearest2d(size=(5, 7)), lib.nn.UpsamplingBilinear2d(scale_factor=2),
        lib.nn.PixelUnshuffle(2), lib.nn.ChannelShuffle(4)), r(1, 2, 2, 3))


def test_torch_namespace_spellings():
    check_function(lambda lib, x, w: (
        lib.conv2d(x, w, None, 1, 1), lib.conv_transpose2d(x, w.transpose(0, 1)),
        lib.max_pool2d(x, 2, 1), lib.avg_pool1d(x[0], 2), lib.adaptive_avg_pool1d(x[0], 2),
        lib.pixel_shuffle(x, 1), lib.channel_shuffle(x, 1), *lib.max_pool1d_with_indices(x[0], 2),
        *lib.adaptive_max_pool1d(x[0], 2), lib.constant_pad_nd(x, (1, -1), 2.5),
        *lib.nn.functional.max_pool2d_with_indices(x, 2),
        *lib.nn.functional.adaptive_max_pool2d_with_indices(x, 2)),
        r(1, 2, 4, 3), r(3, 2, 2, 2), modes=())


def test_pixel_shuffle_batchless():
    check_function(lambda lib, x: (lib.nn.functional.pixel_shuffle(x, 2),
                                   lib.nn.functional.pixel_unshuffle(x, 1)), r(8, 3, 2),
                   modes=())


@pytest.mark.slow
def test_cuda_emulator_runs_the_spatial_building_blocks():
    check_function(lambda lib, x, w, y: (
        lib.nn.functional.conv2d(x, w, padding=1, groups=2),
        *lib.nn.functional.max_pool2d(x, 3, 2, 1, return_indices=True, ceil_mode=True),
        lib.nn.functional.avg_pool2d(x, 2, count_include_pad=False, padding=1),
        lib.nn.functional.adaptive_max_pool2d(x, (3, 2)),
        lib.nn.functional.interpolate(x, scale_factor=1.5, mode="bicubic"),
        lib.nn.functional.pad(x, (1, 2, 2, 1), mode="reflect"),
        lib.nn.functional.conv_transpose2d(y, w.transpose(0, 1), stride=2, groups=2),
        lib.nn.functional.fold(lib.nn.functional.unfold(x, 2), (5, 4), 2)),
        r(1, 4, 5, 4), r(4, 2, 3, 3), r(1, 2, 3, 3), modes=("cuda-emulate",))


def test_every_layer_traces_into_one_graph():
    """No graph break: the compiled checks above would pass on an eager fallback too."""
    nn = graphc.nn
    model = nn.Sequential(
        nn.ReflectionPad2d(1), nn.Conv2d(2, 4, 3, groups=2, padding_mode="circular", padding=1),
        nn.MaxPool2d(2, ceil_mode=True), nn.ConvTranspose2d(4, 4, 2, stride=2),
        nn.AvgPool2d(3, 1, 1, count_include_pad=False), nn.Upsample(scale_factor=2,
                                                                    mode="bicubic"),
        nn.PixelUnshuffle(2), nn.ChannelShuffle(4), nn.Unfold(2, stride=2),
        nn.Fold((10, 12), 2, stride=2),
        nn.AdaptiveMaxPool2d((3, 2)), nn.AdaptiveAvgPool2d(1))
    x = graphc.randn(1, 2, 7, 9, requires_grad=True)
    compiled = graphc.compile(model, fullgraph=True, backend="interpreter")
    compiled(x).sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


# ---- errors and reprs ------------------------------------------------------------------------
def Z(lib, *shape):
    return lib.zeros(*shape)


ERRORS = [
    ("conv2d", lambda lib: lib.nn.functional.conv2d(Z(lib, 1, 3, 5, 5), Z(lib, 2, 4, 3, 3))),
    ("conv2d", lambda lib: lib.nn.functional.conv2d(Z(lib, 1, 3, 2, 2), Z(lib, 2, 3, 3, 3))),
    ("conv2d", lambda lib: lib.nn.functional.conv2d(Z(lib, 5, 5), Z(lib, 2, 3, 3, 3))),
    ("conv2d", lambda lib: lib.nn.functional.conv2d(Z(lib, 1, 3, 5, 5), Z(lib, 2, 3, 3, 3),
                                                    stride=2, padding="same")),
    ("conv2d", lambda lib: lib.nn.functional.conv2d(Z(lib, 1, 3, 5, 5), Z(lib, 2, 3, 3, 3),
                                                    padding="full")),
    ("conv2d", lambda lib: lib.nn.functional.conv2d(Z(lib, 1, 3, 5, 5), Z(lib, 4, 1, 3, 3),
                                                    groups=2)),
    ("conv2d", lambda lib: lib.nn.functional.conv2d(Z(lib, 1, 4, 5, 5), Z(lib, 3, 2, 3, 3),
                                                    groups=2)),
    ("conv2d", lambda lib: lib.nn.functional.conv2d(Z(lib, 1, 3, 5, 5), Z(lib, 2, 3, 3, 3),
                                                    stride=0)),
    ("conv2d", lambda lib: lib.nn.functional.conv2d(Z(lib, 1, 3, 5, 5), Z(lib, 2, 3, 3, 3),
                                                    Z(lib, 3))),
    ("conv2d", lambda lib: lib.nn.functional.conv2d(Z(lib, 1, 3, 5, 5), Z(lib, 2, 3, 3, 3),
                                                    lib.zeros(2, dtype=lib.float64))),
    ("conv2d", lambda lib: lib.nn.functional.conv2d(lib.zeros(1, 3, 5, 5, dtype=lib.int64),
                                                    Z(lib, 2, 3, 3, 3))),
    ("conv1d", lambda lib: lib.nn.functional.conv1d(Z(lib, 1, 3, 5), Z(lib, 2, 3, 7))),
    ("conv1d", lambda lib: lib.nn.functional.conv1d(Z(lib, 1, 3, 5, 5), Z(lib, 2, 3, 3))),
    ("conv_transpose2d", lambda lib: lib.nn.functional.conv_transpose2d(
        Z(lib, 1, 3, 5, 5), Z(lib, 2, 3, 3, 3))),
    ("conv_transpose2d", lambda lib: lib.nn.functional.conv_transpose2d(
        Z(lib, 1, 3, 5, 5), Z(lib, 3, 3, 3, 3), stride=2, output_padding=2)),
    ("conv_transpose2d", lambda lib: lib.nn.functional.conv_transpose2d(
        Z(lib, 1, 3, 2, 2), Z(lib, 3, 3, 3, 3), padding=3)),
    ("max_pool2d", lambda lib: lib.nn.functional.max_pool2d(Z(lib, 1, 3, 5, 5), 3, padding=2)),
    ("max_pool2d", lambda lib: lib.nn.functional.max_pool2d(Z(lib, 1, 3, 2, 2), 3)),
    ("max_pool2d", lambda lib: lib.nn.functional.max_pool2d(Z(lib, 3, 2), 1)),
    ("max_pool2d", lambda lib: lib.nn.functional.max_pool2d(Z(lib, 1, 3, 5, 5), 2, stride=0)),
    ("max_pool1d", lambda lib: lib.nn.functional.max_pool1d(Z(lib, 1, 3, 2), 3)),
    ("avg_pool2d", lambda lib: lib.nn.functional.avg_pool2d(Z(lib, 1, 3, 2, 2), 3)),
    ("avg_pool1d", lambda lib: lib.nn.functional.avg_pool1d(Z(lib, 1, 3, 2), 3)),
    ("max_unpool2d", lambda lib: lib.nn.functional.max_unpool2d(
        Z(lib, 1, 1, 2, 2), lib.full((1, 1, 2, 2), 16, dtype=lib.int64), 2)),
    ("max_unpool2d", lambda lib: lib.nn.functional.max_unpool2d(
        Z(lib, 1, 1, 2, 2), lib.zeros(1, 1, 2, 2, dtype=lib.int64), 2, output_size=(7, 7))),
    ("max_unpool2d", lambda lib: lib.nn.functional.max_unpool2d(
        Z(lib, 1, 1, 2, 2), lib.zeros(1, 1, 2, 1, dtype=lib.int64), 2)),
    ("max_unpool2d", lambda lib: lib.nn.functional.max_unpool2d(
        Z(lib, 2, 2), lib.zeros(2, 2, dtype=lib.int64), 2)),
    ("adaptive_avg_pool2d", lambda lib: lib.nn.functional.adaptive_avg_pool2d(Z(lib, 3), 3)),
    ("pad", lambda lib: lib.nn.functional.pad(Z(lib, 1, 3, 5, 5), (1, 1), mode="reflect")),
    ("pad", lambda lib: lib.nn.functional.pad(Z(lib, 2, 5), (5, 5), mode="reflect")),
    ("pad", lambda lib: lib.nn.functional.pad(Z(lib, 2, 2, 5), (6, 6), mode="circular")),
    ("pad", lambda lib: lib.nn.functional.pad(Z(lib, 2, 2, 5), (1, 2), mode="wrap")),
    ("pad", lambda lib: lib.nn.functional.pad(Z(lib, 2, 2, 5), (1, 2, 3))),
    ("pad", lambda lib: lib.nn.functional.pad(Z(lib, 2, 5), (1, 1), "reflect", 1.0)),
    ("pad", lambda lib: lib.nn.functional.pad(Z(lib, 2, 2, 5), (-2, -3), mode="replicate")),
    ("pad", lambda lib: lib.nn.functional.pad(Z(lib, 2, 2, 5), (-2, -4), mode="circular")),
    ("pad", lambda lib: lib.nn.functional.pad(Z(lib, 2, 2, 1), (-2, 2))),
    ("interpolate", lambda lib: lib.nn.functional.interpolate(Z(lib, 1, 2, 5), size=3,
                                                              mode="bilinear")),
    ("interpolate", lambda lib: lib.nn.functional.interpolate(Z(lib, 1, 2, 5), size=3,
                                                              scale_factor=2)),
    ("interpolate", lambda lib: lib.nn.functional.interpolate(Z(lib, 1, 2, 5), size=3,
                                                              align_corners=True)),
    ("interpolate", lambda lib: lib.nn.functional.interpolate(Z(lib, 1, 2, 5))),
    ("interpolate", lambda lib: lib.nn.functional.interpolate(
        lib.zeros(1, 2, 5, dtype=lib.int64), scale_factor=2)),
    ("interpolate", lambda lib: lib.nn.functional.interpolate(Z(lib, 1, 2, 5, 5), size=0)),
    ("interpolate", lambda lib: lib.nn.functional.interpolate(Z(lib, 1, 2, 5, 5), 2,
                                                              antialias=True)),
    ("interpolate", lambda lib: lib.nn.functional.interpolate(
        lib.zeros(1, 2, 5, 5, dtype=lib.int64), scale_factor=2, mode="area")),
    ("pixel_shuffle", lambda lib: lib.nn.functional.pixel_shuffle(Z(lib, 1, 3, 2, 2), 2)),
    ("pixel_unshuffle", lambda lib: lib.nn.functional.pixel_unshuffle(Z(lib, 1, 3, 3, 2), 2)),
    ("unfold", lambda lib: lib.nn.functional.unfold(Z(lib, 1, 3, 2, 2), 3)),
    ("fold", lambda lib: lib.nn.functional.fold(Z(lib, 1, 3, 4), (3, 3), 2)),
    ("fold", lambda lib: lib.nn.functional.fold(Z(lib, 1, 12, 5), (3, 3), 2)),
    ("channel_shuffle", lambda lib: lib.nn.ChannelShuffle(2)(Z(lib, 1, 3, 2, 2))),
    ("Conv2d", lambda lib: lib.nn.Conv2d(3, 4, 3, groups=2)),
    ("Conv2d", lambda lib: lib.nn.Conv2d(3, 4, 3, padding_mode="mirror")),
    ("Conv2d", lambda lib: lib.nn.Conv2d(3, 4, 3, stride=2, padding="same")),
    ("Conv2d", lambda lib: lib.nn.Conv2d(3, 4, 3)(Z(lib, 1, 2, 5, 5))),
    ("ConvTranspose2d", lambda lib: lib.nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect")),
    ("ConvTranspose2d", lambda lib: lib.nn.ConvTranspose2d(3, 4, 3, stride=2)(
        Z(lib, 1, 3, 2, 2), output_size=(9, 9))),
]


@pytest.mark.parametrize("op,call", ERRORS, ids=[f"{i}-{e[0]}" for i, e in enumerate(ERRORS)])
def test_errors_match_pytorch(op, call):
    with pytest.raises(Exception) as want:
        call(torch)
    with pytest.raises(Exception) as got:
        call(graphc)
    assert got.type is want.type, f"{got.type.__name__}: {got.value} (PyTorch: {want.value})"
    assert op.lower().replace("d", "") in str(got.value).lower().replace("d", "") or \
        str(got.value) == str(want.value), f"{got.value!r} does not name {op}"


MODULES = [
    lambda lib: lib.nn.Conv1d(2, 4, 3, stride=2, padding=1, dilation=2, groups=2, bias=False,
                              padding_mode="circular"),
    lambda lib: lib.nn.Conv2d(3, 4, (3, 2), padding="same", padding_mode="reflect"),
    lambda lib: lib.nn.ConvTranspose2d(4, 6, 3, stride=2, output_padding=1, groups=2),
    lambda lib: lib.nn.ConvTranspose1d(4, 6, 3),
    lambda lib: lib.nn.Conv3d(4, 6, (1, 2, 3), padding=1, groups=2, padding_mode="replicate"),
    lambda lib: lib.nn.ConvTranspose3d(4, 2, 2, stride=2),
    lambda lib: lib.nn.MaxPool3d(2, 1),
    lambda lib: lib.nn.AvgPool3d((1, 2, 3), divisor_override=2),
    lambda lib: lib.nn.AdaptiveAvgPool3d(2),
    lambda lib: lib.nn.AdaptiveMaxPool3d((2, 1, 3)),
    lambda lib: lib.nn.ZeroPad3d(1),
    lambda lib: lib.nn.ConstantPad3d((1, 2, 3, 4, 5, 6), 1.0),
    lambda lib: lib.nn.ReflectionPad3d(1),
    lambda lib: lib.nn.ReplicationPad3d(2),
    lambda lib: lib.nn.CircularPad3d(1),
    lambda lib: lib.nn.MaxPool1d(3, ceil_mode=True),
    lambda lib: lib.nn.MaxPool2d((3, 2), 1, 1, 2, True, True),
    lambda lib: lib.nn.AvgPool1d(3, padding=1),
    lambda lib: lib.nn.AvgPool2d(3, 2, 1, True, False, 2),
    lambda lib: lib.nn.LPPool2d(2, 3),
    lambda lib: lib.nn.LPPool1d(1.5, 3, 2, True),
    lambda lib: lib.nn.LPPool3d(2, 2),
    lambda lib: lib.nn.AdaptiveAvgPool2d((None, 3)),
    lambda lib: lib.nn.AdaptiveMaxPool1d(4, True),
    lambda lib: lib.nn.MaxUnpool2d(2),
    lambda lib: lib.nn.MaxUnpool3d(3, 1, 1),
    lambda lib: lib.nn.ZeroPad2d((1, 2, 3, 4)),
    lambda lib: lib.nn.ConstantPad1d(2, 3.5),
    lambda lib: lib.nn.ReflectionPad2d(1),
    lambda lib: lib.nn.ReplicationPad1d((1, 2)),
    lambda lib: lib.nn.CircularPad2d(2),
    lambda lib: lib.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
    lambda lib: lib.nn.Upsample(size=(3, 4)),
    lambda lib: lib.nn.UpsamplingNearest2d(scale_factor=3),
    lambda lib: lib.nn.UpsamplingBilinear2d(size=5),
    lambda lib: lib.nn.PixelShuffle(3),
    lambda lib: lib.nn.PixelUnshuffle(2),
    lambda lib: lib.nn.ChannelShuffle(2),
    lambda lib: lib.nn.Unfold((2, 3), padding=1),
    lambda lib: lib.nn.Fold(4, 2, stride=2),
]


def test_module_reprs_and_state_dicts_match():
    for make in MODULES:
        want, got = make(torch), make(graphc)
        assert repr(got) == repr(want)
        assert list(got.state_dict()) == list(want.state_dict())
        for name in ("kernel_size", "stride", "padding", "dilation", "output_padding",
                     "_reversed_padding_repeated_twice", "scale_factor", "output_size"):
            assert getattr(got, name, None) == getattr(want, name, None), (repr(want), name)
