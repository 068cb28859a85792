"""Recurrent layers: RNN (tanh/relu), LSTM (with proj_size), GRU and their cells, with
PyTorch's constructor arguments, parameter names (``weight_ih_l0``,
``bias_hh_l1_reverse``, ``weight_hr_l0``...), gate order (LSTM i f g o, GRU r z n),
initialisation U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) and outputs.

The time loop is a Python loop, so a compiled layer is unrolled over the traced length.
Each layer and direction projects the whole input at once (one matmul), then steps.
A ``PackedSequence`` input runs the same loop with the batch shrinking to the sequences
still running at each step (they are sorted by length), so every sequence's final state
is its own last step.  Dropout between layers draws from graphc's generator.
"""
from __future__ import annotations

import math
import numbers
import warnings

from graphc import functional as F
from graphc.composite import dropout, linear
from graphc.creation import zeros
from graphc.nn import init
from graphc.nn.layers import _new_parameter
from graphc.nn.module import Module
from graphc.nn.utils.rnn import PackedSequence, _host_ints

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


# ---- one step of each cell kind ---------------------------------------------------------------
def _rnn_step(activation):
    def step(gi, state, w_hh, b_hh, w_hr=None):
        return activation(gi + linear(state, w_hh, b_hh))
    return step


def _lstm_step(gi, state, w_hh, b_hh, w_hr=None):
    h, c = state
    i, f, g, o = F.chunk(gi + linear(h, w_hh, b_hh), 4, -1)
    c = F.sigmoid(f) * c + F.sigmoid(i) * F.tanh(g)
    h = F.sigmoid(o) * F.tanh(c)
    return (h if w_hr is None else linear(h, w_hr)), c


def _gru_step(gi, h, w_hh, b_hh, w_hr=None):
    ir, iz, in_ = F.chunk(gi, 3, -1)
    hr, hz, hn = F.chunk(linear(h, w_hh, b_hh), 3, -1)
    r, z = F.sigmoid(ir + hr), F.sigmoid(iz + hz)
    n = F.tanh(in_ + r * hn)
    return (1 - z) * n + z * h


_STEPS = {"RNN_TANH": _rnn_step(F.tanh), "RNN_RELU": _rnn_step(F.relu), "LSTM": _lstm_step,
          "GRU": _gru_step}


def _rows(state, stop):
    """The first ``stop`` batch rows of a state (a tensor or an LSTM (h, c) pair)."""
    return tuple(s[:stop] for s in state) if isinstance(state, tuple) else state[:stop]


def _join(new, old, stop):
    """``new`` rows followed by the rows of ``old`` past ``stop`` (sequences that ended)."""
    if isinstance(new, tuple):
        return tuple(_join(n, o, stop) for n, o in zip(new, old))
    return new if stop == old.shape[0] else F.cat([new, old[stop:]], 0)


def _output(state):
    return state[0] if isinstance(state, tuple) else state


class RNNBase(Module):
    """What RNN, LSTM and GRU share: the weights per layer and direction, the checks, and
    the loop over layers, directions and steps."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None):
        super().__init__()
        if (not isinstance(dropout, numbers.Number) or isinstance(dropout, bool)
                or not 0 <= dropout <= 1):
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             "probability of an element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"dropout option adds dropout after all but last recurrent layer, "
                          f"so non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={dropout} and num_layers={num_layers}")
        if not isinstance(hidden_size, int):
            raise TypeError(f"hidden_size should be of type int, got: "
                            f"{type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable "
                             "projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if mode not in _GATES:
            raise ValueError(f"Unrecognized RNN mode: {mode}")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional = float(dropout), bidirectional
        self.proj_size = proj_size
        directions = 2 if bidirectional else 1
        out_size = proj_size or hidden_size
        gates = _GATES[mode] * hidden_size
        self._flat_weights_names, self._all_weights = [], []
        for layer in range(num_layers):
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = {"weight_ih": (gates, input_size if layer == 0
                                        else out_size * directions),
                          "weight_hh": (gates, out_size)}
                if bias:
                    shapes.update(bias_ih=(gates,), bias_hh=(gates,))
                if proj_size:
                    shapes["weight_hr"] = (proj_size, hidden_size)
                names = [name + suffix for name in shapes]
                for name, shape in zip(names, shapes.values()):
                    setattr(self, name, _new_parameter(*shape, device=device, dtype=dtype))
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    @property
    def _flat_weights(self) -> list:
        return [getattr(self, name) for name in self._flat_weights_names]

    @property
    def all_weights(self) -> list:
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def flatten_parameters(self) -> None:
        """PyTorch packs the weights into one cuDNN buffer; graphc keeps them apart, so
        there is nothing to do (programs call it anyway)."""

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s

    # ---- forward ----
    def _state_shapes(self, batch):
        layers = self.num_layers * (2 if self.bidirectional else 1)
        shapes = [(layers, batch, self.proj_size or self.hidden_size)]
        if self.mode == "LSTM":
            shapes.append((layers, batch, self.hidden_size))
        return shapes

    def _check_hidden(self, hx, shapes):
        given = list(hx) if self.mode == "LSTM" else [hx]
        for i, (h, shape) in enumerate(zip(given, shapes)):
            if tuple(h.shape) != shape:
                what = f"hidden[{i}]" if self.mode == "LSTM" else "hidden"
                raise RuntimeError(f"Expected {what} size {shape}, got {list(h.shape)}")

    def forward(self, input, hx=None):
        packed = isinstance(input, PackedSequence)
        if packed:
            sizes = [int(n) for n in _host_ints(input.batch_sizes)]
            data, batch, unbatched = input.data, sizes[0], False
            if data.dim() != 2:
                raise ValueError(f"{type(self).__name__}: Expected packed data to be 2D, "
                                 f"got {data.dim()}D instead")
        else:
            if input.dim() not in (2, 3):
                raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got "
                                 f"{input.dim()}D instead")
            unbatched = input.dim() == 2
            data = input.unsqueeze(1) if unbatched else (
                F.transpose(input, 0, 1) if self.batch_first else input)
            batch, sizes = data.shape[1], [data.shape[1]] * data.shape[0]
        if data.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {data.shape[-1]}")
        shapes = self._state_shapes(batch)
        if hx is None:
            hx = [zeros(*shape, dtype=data.dtype) for shape in shapes]
        else:
            states = list(hx) if self.mode == "LSTM" else [hx]
            if unbatched:
                if any(h.dim() != 2 for h in states):
                    raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but "
                                       f"got {states[0].dim()}-D tensor")
                states = [h.unsqueeze(1) for h in states]
            elif any(h.dim() != 3 for h in states):
                raise RuntimeError(f"For batched 3-D input, hx should also be 3-D but got "
                                   f"{states[0].dim()}-D tensor")
            if packed and input.sorted_indices is not None:
                states = [F.index_select(h, 1, input.sorted_indices) for h in states]
            self._check_hidden(tuple(states) if self.mode == "LSTM" else states[0], shapes)
            hx = states
        output, finals = self._layers(data, hx, sizes, packed)
        finals = [F.stack(f, 0) for f in zip(*finals)] if self.mode == "LSTM" \
            else [F.stack(finals, 0)]
        if packed:
            if input.unsorted_indices is not None:
                finals = [F.index_select(h, 1, input.unsorted_indices) for h in finals]
            output = PackedSequence(output, input.batch_sizes, input.sorted_indices,
                                    input.unsorted_indices)
        elif unbatched:
            output, finals = output.squeeze(1), [h.squeeze(1) for h in finals]
        elif self.batch_first:
            output = F.transpose(output, 0, 1)
        return output, (tuple(finals) if self.mode == "LSTM" else finals[0])

    def _layers(self, data, hx, sizes, packed):
        """Every layer over ``data`` (steps stacked on dim 0: (T, B, I), or packed
        (sum(sizes), I)); returns the last layer's output and each layer and direction's
        final state."""
        step, directions = _STEPS[self.mode], 2 if self.bidirectional else 1
        finals = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                weights = self.all_weights[layer * directions + direction]
                index = layer * directions + direction
                state = tuple(h[index] for h in hx) if self.mode == "LSTM" else hx[0][index]
                out, final = self._direction(step, data, state, weights, sizes, packed,
                                             reverse=direction == 1)
                outputs.append(out)
                finals.append(final)
            data = outputs[0] if directions == 1 else F.cat(outputs, -1)
            if layer < self.num_layers - 1 and self.dropout > 0:
                data = dropout(data, self.dropout, self.training)
        return data, finals

    def _direction(self, step, data, state, weights, sizes, packed, reverse):
        w_ih, w_hh = weights[0], weights[1]
        b_ih, b_hh = (weights[2], weights[3]) if self.bias else (None, None)
        w_hr = weights[-1] if self.proj_size else None
        projected = linear(data, w_ih, b_ih)
        starts = [sum(sizes[:t]) for t in range(len(sizes))]
        outputs = [None] * len(sizes)
        order = range(len(sizes) - 1, -1, -1) if reverse else range(len(sizes))
        for t in order:
            n = sizes[t]
            gi = projected[starts[t]:starts[t] + n] if packed else projected[t]
            new = step(gi, _rows(state, n), w_hh, b_hh, w_hr)
            outputs[t] = _output(new)
            state = _join(new, state, n)
        return F.cat(outputs, 0) if packed else F.stack(outputs, 0), state


class RNN(RNNBase):
    """Elman RNN: h' = act(W_ih x + b_ih + W_hh h + b_hh), act tanh or relu.  RNN and GRU
    take ``proj_size`` only to refuse it, as PyTorch does."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None,
                 *, proj_size: int = 0):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             f"'relu'.")
        super().__init__(f"RNN_{nonlinearity.upper()}", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, proj_size, device=device,
                         dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory; ``proj_size`` > 0 projects h to that size."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, device=device, dtype=dtype)


class GRU(RNNBase):
    """Gated recurrent unit (PyTorch's variant: r gates W_hn h + b_hn)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None, *, proj_size: int = 0):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, device=device, dtype=dtype)


# ---- cells ------------------------------------------------------------------------------------
class RNNCellBase(Module):
    """One step of a recurrent layer over (N, input_size) or unbatched (input_size,)
    input; parameters ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, gates: int,
                 device=None, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = _new_parameter(gates * hidden_size, input_size, device=device,
                                        dtype=dtype)
        self.weight_hh = _new_parameter(gates * hidden_size, hidden_size, device=device,
                                        dtype=dtype)
        if bias:
            self.bias_ih = _new_parameter(gates * hidden_size, device=device, dtype=dtype)
            self.bias_hh = _new_parameter(gates * hidden_size, device=device, dtype=dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for weight in self.parameters():
            init.uniform_(weight, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _run(self, step, input, states):
        """Checks the input and states (None: zeros), runs ``step`` batched, and returns
        the new states unbatched when the input was."""
        name = type(self).__name__
        if input.dim() not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.dim()}D "
                             f"instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.shape[-1]} "
                               f"expected {self.input_size}")
        unbatched = input.dim() == 1
        batch = input.unsqueeze(0) if unbatched else input
        full = []
        for h in states:
            if h is None:
                h = zeros(batch.shape[0], self.hidden_size, dtype=input.dtype)
            elif h.dim() != input.dim():
                raise RuntimeError(f"{name}: Expected hidden to be {input.dim()}D, got "
                                   f"{h.dim()}D instead")
            else:
                h = h.unsqueeze(0) if unbatched else h
            if tuple(h.shape) != (batch.shape[0], self.hidden_size):
                raise RuntimeError(f"hidden has inconsistent hidden_size: got "
                                   f"{list(h.shape)} expected "
                                   f"{[batch.shape[0], self.hidden_size]}")
            full.append(h)
        gi = linear(batch, self.weight_ih, self.bias_ih)
        new = step(gi, tuple(full) if len(full) > 1 else full[0], self.weight_hh, self.bias_hh)
        if unbatched:
            new = tuple(s.squeeze(0) for s in new) if isinstance(new, tuple) else new.squeeze(0)
        return new


class RNNCell(RNNCellBase):
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__(input_size, hidden_size, bias, 1, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        return self._run(_STEPS[f"RNN_{self.nonlinearity.upper()}"], input, [hx])


class LSTMCell(RNNCellBase):
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        return self._run(_lstm_step, input, [None, None] if hx is None else list(hx))


class GRUCell(RNNCellBase):
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        return self._run(_gru_step, input, [hx])
