"""Layers with parameters or settings: Linear, LazyLinear, Bilinear, Conv2d, pooling, Flatten,
Unflatten, Identity (normalization, dropout and embedding layers have modules of their
own).

Each layer holds PyTorch's attributes under PyTorch's names (``in_features``,
``kernel_size``, ...), initialises its parameters as PyTorch does,
and computes its forward with one ``nn.functional`` call.
"""
from __future__ import annotations

import math

from graphc.composite import _pair
from graphc.creation import empty
from graphc.nn import functional as F
from graphc.nn import init
from graphc.nn.module import Module, Parameter


def _new_parameter(*shape, device=None, dtype=None) -> Parameter:
    return Parameter(empty(*shape, device=device, dtype=dtype))


def _init_fan_in_uniform(weight, bias) -> None:
    """PyTorch's default for Linear and Conv: kaiming_uniform_(a=sqrt(5)), which is
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(bias, -bound, bound)


class Identity(Module):
    """Returns its input; accepts and ignores any constructor arguments."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x W^T + b with W of shape (out_features, in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _new_parameter(out_features, in_features, device=device, dtype=dtype)
        if bias:
            self.bias = _new_parameter(out_features, device=device, dtype=dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _init_fan_in_uniform(self.weight, self.bias)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class LazyLinear(Linear):
    """A Linear whose ``in_features`` is the last dim of its first input: the weight
    and bias are made and initialised then, and the module becomes a ``Linear``, as in
    PyTorch.  graphc has no uninitialised parameters: before the first call the module
    holds no ``weight``/``bias`` (PyTorch holds placeholders), so run one batch before
    building an optimizer or loading a state_dict, as PyTorch recommends."""

    def __init__(self, out_features: int, bias: bool = True, device=None, dtype=None):
        Module.__init__(self)
        self.in_features, self.out_features = 0, out_features
        self._lazy_settings = (bias, device, dtype)
        self.register_parameter("weight", None)
        self.register_parameter("bias", None)

    def forward(self, input):
        bias, device, dtype = self._lazy_settings
        self.in_features = input.shape[-1]
        self.weight = _new_parameter(self.out_features, self.in_features, device=device,
                                     dtype=dtype)
        if bias:
            self.bias = _new_parameter(self.out_features, device=device, dtype=dtype)
        self.reset_parameters()
        del self._lazy_settings
        self.__class__ = Linear
        return self.forward(input)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self._lazy_settings[0]}")


class Bilinear(Module):
    """y = x1^T A x2 + b, with A of shape (out_features, in1_features, in2_features);
    weight and bias start U(-1/sqrt(in1_features), 1/sqrt(in1_features))."""

    def __init__(self, in1_features: int, in2_features: int, out_features: int,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in1_features, self.in2_features = in1_features, in2_features
        self.out_features = out_features
        self.weight = _new_parameter(out_features, in1_features, in2_features, device=device,
                                     dtype=dtype)
        if bias:
            self.bias = _new_parameter(out_features, device=device, dtype=dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.weight.shape[1])
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input1, input2):
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


_PADDING_STRINGS = ("same", "valid")
_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _set_text(names) -> str:
    """A tuple of names printed like PyTorch's set, in a fixed order."""
    return "{" + ", ".join(repr(n) for n in names) + "}"


class Conv2d(Module):
    """2-D cross-correlation over (N, C, H, W) or (C, H, W) input.  graphc supports
    groups=1 and padding_mode='zeros'."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.dilation, self.groups = _pair(dilation), groups
        self.output_padding, self.transposed = (0, 0), False
        self.padding_mode = padding_mode
        self._check_settings()
        self.weight = _new_parameter(out_channels, in_channels // groups, *self.kernel_size,
                                     device=device, dtype=dtype)
        if bias:
            self.bias = _new_parameter(out_channels, device=device, dtype=dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def _check_settings(self) -> None:
        if self.groups <= 0:
            raise ValueError("groups must be a positive integer")
        if self.in_channels % self.groups:
            raise ValueError("in_channels must be divisible by groups")
        if self.out_channels % self.groups:
            raise ValueError("out_channels must be divisible by groups")
        if isinstance(self.padding, str):
            if self.padding not in _PADDING_STRINGS:
                raise ValueError(f"Invalid padding string {self.padding!r}, should be one "
                                 f"of {_set_text(_PADDING_STRINGS)}")
            if self.padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
        if self.padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_set_text(_PADDING_MODES)}, but got "
                             f"padding_mode='{self.padding_mode}'")
        if self.groups != 1 or self.padding_mode != "zeros":
            raise NotImplementedError(f"graphc Conv2d supports groups=1 and "
                                      f"padding_mode='zeros' only, got groups={self.groups}, "
                                      f"padding_mode='{self.padding_mode}'")

    def reset_parameters(self) -> None:
        _init_fan_in_uniform(self.weight, self.bias)

    def forward(self, input):
        if input.dim() not in (3, 4):
            raise RuntimeError(f"Expected 3D (unbatched) or 4D (batched) input to conv2d, but "
                               f"got input of size: {list(input.shape)}")
        channels = input.shape[-3]
        if channels != self.in_channels:
            raise RuntimeError(f"Given groups={self.groups}, weight of size "
                               f"{list(self.weight.shape)}, expected input"
                               f"{list(input.shape)} to have {self.in_channels} channels, but "
                               f"got {channels} channels instead")
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding,
                        self.dilation, self.groups)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


def _check_pool_support(op: str, **options) -> None:
    """Raise for pooling options graphc's pooling composites do not implement; each
    option is given as (value, the one value graphc supports)."""
    bad = [f"{name}={value}" for name, (value, ok) in options.items() if value != ok]
    if bad:
        raise NotImplementedError(f"graphc {op} does not support " + ", ".join(bad))


class MaxPool2d(Module):
    """Max over kernel_size windows; stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode
        _check_pool_support("MaxPool2d", dilation=(_pair(dilation), (1, 1)),
                            return_indices=(return_indices, False),
                            ceil_mode=(ceil_mode, False))

    def forward(self, input):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, "
                f"ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Mean over kernel_size windows, zero padding counted (count_include_pad=True)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override
        _check_pool_support("AvgPool2d", ceil_mode=(ceil_mode, False),
                            count_include_pad=(count_include_pad, True),
                            divisor_override=(divisor_override, None))

    def forward(self, input):
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Flatten(Module):
    """Flattens dims start_dim..end_dim (by default all but the batch dim)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return F.flatten(input, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Splits dim ``dim`` into ``unflattened_size``."""

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        if not isinstance(unflattened_size, (tuple, list)):
            raise TypeError(f"unflattened_size must be a tuple of ints, but found type "
                            f"{type(unflattened_size).__name__}")
        for i, size in enumerate(unflattened_size):
            if not isinstance(size, int):
                raise TypeError(f"unflattened_size must be tuple of ints, but found element "
                                f"of type {type(size).__name__} at pos {i}")
        self.dim, self.unflattened_size = dim, unflattened_size

    def forward(self, input):
        return input.unflatten(self.dim, self.unflattened_size)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
