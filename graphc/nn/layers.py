"""Layers with parameters or settings: Linear, LazyLinear, Bilinear, Flatten, Unflatten,
Identity (normalization, dropout and embedding layers have modules of their own, and so
have convolution, pooling, padding and resampling: ``conv``, ``pooling``, ``padding``,
``vision``).

Each layer holds PyTorch's attributes under PyTorch's names (``in_features``,
``kernel_size``, ...), initialises its parameters as PyTorch does,
and computes its forward with one ``nn.functional`` call.
"""
from __future__ import annotations

import math

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
