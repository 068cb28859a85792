"""``nn.utils.rnn``: padding a list of sequences, and packing padded sequences for the
recurrent layers, as ``torch.nn.utils.rnn``.

A ``PackedSequence`` holds the time steps of a batch sorted by decreasing length, step
after step: ``data`` is (sum(lengths), *), ``batch_sizes[t]`` how many sequences are
still running at step t.  Lengths are host values (a list or a CPU tensor) as in
PyTorch, so packing works eagerly and traced (the lengths become part of the program).
"""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from graphc import dtypes
from graphc import functional as F
from graphc.tensor import Tensor


def _host_ints(values) -> np.ndarray:
    """Lengths or batch sizes as host integers; a traced tensor of them is a graph break
    (the shapes of what follows depend on its values)."""
    if isinstance(values, Tensor):
        return np.asarray(values.tolist(), dtype=np.int64).reshape(-1)
    return np.asarray(list(values), dtype=np.int64).reshape(-1)


def _index(values) -> Tensor:
    return Tensor._wrap(np.asarray(values, dtype=np.int64), dtypes.int64)


class PackedSequence(namedtuple("PackedSequence",
                                ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """What ``pack_padded_sequence`` returns and the recurrent layers accept."""

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if unsorted_indices is None and sorted_indices is not None:
            unsorted_indices = _index(np.argsort(_host_ints(sorted_indices)))
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    def to(self, *args, **kwargs):
        return type(self)(self.data.to(*args, **kwargs), self.batch_sizes,
                          self.sorted_indices, self.unsorted_indices)

    @property
    def is_cuda(self) -> bool:
        return self.data.is_cuda


def pad_sequence(sequences, batch_first=False, padding_value=0.0, padding_side="right"):
    """Stack sequences of different lengths (L_i, *) into (L_max, B, *), or (B, L_max, *)
    when ``batch_first``, filling with ``padding_value`` on ``padding_side``."""
    if padding_side not in ("left", "right"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got "
                         f"{padding_side}.")
    if isinstance(sequences, Tensor):
        sequences = list(F.unbind(sequences, 0))
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        gap = longest - s.shape[0]
        widths = [(0, gap, 0) if padding_side == "right" else (gap, 0, 0)] + \
            [(0, 0, 0)] * (s.dim() - 1)
        padded.append(F._pad(s, widths, padding_value) if gap else s)
    return F.stack(padded, 0 if batch_first else 1)


def _batch_sizes(lengths: np.ndarray) -> np.ndarray:
    return np.array([(lengths > t).sum() for t in range(int(lengths.max()))], np.int64)


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch (T, B, *) (or (B, T, *)) whose sequence b has ``lengths[b]``
    steps."""
    lengths = _host_ints(lengths)
    if enforce_sorted:
        if np.any(lengths[:-1] < lengths[1:]):
            raise RuntimeError("`lengths` array must be sorted in decreasing order when "
                               "`enforce_sorted` is True. You can pass `enforce_sorted=False` "
                               "to pack_padded_sequence and/or pack_sequence to sidestep "
                               "this requirement if you do not need ONNX exportability.")
        order = None
    else:
        order = np.argsort(-lengths, kind="stable")
        lengths = lengths[order]
    if lengths.size and lengths[-1] <= 0:
        raise RuntimeError("Length of all samples has to be greater than 0, but found an "
                           "element in 'lengths' that is <= 0")
    if batch_first:
        input = F.transpose(input, 0, 1)
    if order is not None:
        input = F.index_select(input, 1, _index(order))
    if int(lengths[0]) > input.shape[0]:
        raise RuntimeError(f"pack_padded_sequence: a length ({int(lengths[0])}) is longer "
                           f"than the input's {input.shape[0]} steps")
    sizes = _batch_sizes(lengths)
    data = F.cat([input[t, :int(n)] for t, n in enumerate(sizes)], 0)
    return PackedSequence(data, _index(sizes), None if order is None else _index(order))


def pack_sequence(sequences, enforce_sorted=True):
    """Pack a list of sequences (L_i, *)."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths,
                                enforce_sorted=enforce_sorted)


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """The padded batch (T, B, *) (or (B, T, *)) and the lengths (an int64 tensor) of a
    packed sequence, in the batch order it was packed from."""
    sizes = _host_ints(sequence.batch_sizes)
    batch, steps = int(sizes[0]), len(sizes)
    if total_length is not None:
        if total_length < steps:
            raise ValueError(f"Expected total_length to be at least the length of the "
                             f"longest sequence in input, but got total_length="
                             f"{total_length} and max sequence length being {steps}")
        steps = total_length
    data, rows, start = sequence.data, [], 0
    tail = [(0, 0, 0)] * (data.dim() - 1)
    for n in sizes:
        n = int(n)
        step = data[start:start + n]
        rows.append(F._pad(step, [(0, batch - n, 0)] + tail, padding_value)
                    if n < batch else step)
        start += n
    padded = F.stack(rows, 0)
    if steps > len(sizes):
        padded = F._pad(padded, [(0, steps - len(sizes), 0), (0, 0, 0)] + tail, padding_value)
    lengths = np.array([(sizes > b).sum() for b in range(batch)], np.int64)
    if sequence.unsorted_indices is not None:
        padded = F.index_select(padded, 1, sequence.unsorted_indices)
        lengths = lengths[_host_ints(sequence.unsorted_indices)]
    if batch_first:
        padded = F.transpose(padded, 0, 1)
    return padded, _index(lengths)


def unpad_sequence(padded_sequences, lengths, batch_first=False):
    """The list of sequences (L_i, *) of a padded batch, the inverse of ``pad_sequence``.
    (PyTorch also transposes a time-first ``padded_sequences`` in place; graphc leaves
    the argument as it is.)"""
    lengths = _host_ints(lengths)
    if not batch_first:
        padded_sequences = F.transpose(padded_sequences, 0, 1)
    if len(lengths) != padded_sequences.shape[0]:
        raise ValueError("zip() argument 2 is shorter than argument 1"
                         if len(lengths) < padded_sequences.shape[0] else
                         "zip() argument 2 is longer than argument 1")
    return [padded_sequences[b, :int(n)] for b, n in enumerate(lengths)]


def unpack_sequence(packed_sequences):
    """The list of sequences of a ``PackedSequence``, in the order they were packed from."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
