"""``repr`` of tensors, character for character as PyTorch prints them.

The rules follow ``torch/_tensor_str.py``: one formatter per tensor decides, from the
nonzero finite values that will be shown, between integer mode (``1.``), fixed mode
(``0.1961``) and scientific mode (``1.0000e-05``), and pads every element to one width
so columns line up.  Rows wrap at ``linewidth`` columns, and tensors with more than
``threshold`` elements are summarised with ``...`` keeping ``edgeitems`` at each end.

>>> graphc.tensor([[0.1961, -0.0348]])
tensor([[ 0.1961, -0.0348]])
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from graphc import dtypes


@dataclasses.dataclass
class _PrintOptions:
    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: bool | None = None


PRINT_OPTS = _PrintOptions()

_PROFILES = {
    "default": dict(precision=4, threshold=1000, edgeitems=3, linewidth=80),
    "short": dict(precision=2, threshold=1000, edgeitems=2, linewidth=80),
    "full": dict(precision=4, threshold=math.inf, edgeitems=3, linewidth=80),
}


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None,
                     profile=None, sci_mode=None):
    """PyTorch's ``set_printoptions``; as there, ``sci_mode`` is reset to automatic
    (None) by any call that does not pass it.

    >>> graphc.set_printoptions(precision=2)
    >>> graphc.tensor([1.12345])
    tensor([1.12])
    """
    if profile is not None:
        for name, value in _PROFILES[profile].items():
            setattr(PRINT_OPTS, name, value)
    for name, value in [("precision", precision), ("threshold", threshold),
                        ("edgeitems", edgeitems), ("linewidth", linewidth)]:
        if value is not None:
            setattr(PRINT_OPTS, name, value)
    PRINT_OPTS.sci_mode = sci_mode


def get_printoptions() -> dict:
    """The current options, as keyword arguments for ``set_printoptions``."""
    return dataclasses.asdict(PRINT_OPTS)


class _Formatter:
    """Chooses the number format and the common width from the values to be shown."""

    def __init__(self, values: np.ndarray):
        self.floating = values.dtype.kind == "f"
        self.int_mode = True
        self.sci_mode = False
        self.max_width = 1
        if not self.floating:
            for v in values.tolist():
                self.max_width = max(self.max_width, len(f"{v}"))
            return
        shown = values[np.isfinite(values) & (values != 0)]
        if shown.size == 0:
            return
        magnitudes = np.abs(shown).astype(np.float64)
        smallest, largest = magnitudes.min(), magnitudes.max()
        self.int_mode = bool(np.all(shown == np.ceil(shown)))
        if PRINT_OPTS.sci_mode is None:
            self.sci_mode = bool(largest / smallest > 1000.0 or largest > 1.0e8
                                 or smallest < 1.0e-4)
        else:
            self.sci_mode = PRINT_OPTS.sci_mode
        p = PRINT_OPTS.precision
        for v in shown.tolist():
            if self.sci_mode:
                width = len(f"{v:.{p}e}")
            elif self.int_mode:
                width = len(f"{v:.0f}") + 1        # the trailing "." of "1."
            else:
                width = len(f"{v:.{p}f}")
            self.max_width = max(self.max_width, width)

    def format(self, value) -> str:
        p = PRINT_OPTS.precision
        if not self.floating:
            text = f"{value}"
        elif self.sci_mode:
            text = f"{value:{self.max_width}.{p}e}"
        elif self.int_mode:
            text = f"{value:.0f}" + ("" if math.isinf(value) or math.isnan(value) else ".")
        else:
            text = f"{value:.{p}f}"
        return text.rjust(self.max_width)


def _summarized(data: np.ndarray) -> np.ndarray:
    """The elements a summarised print shows, flattened (PyTorch sizes its formatter
    from these alone)."""
    edge = PRINT_OPTS.edgeitems
    if data.ndim == 0:
        return data.reshape(1)
    if data.ndim == 1:
        if data.shape[0] > 2 * edge:
            return np.concatenate((data[:edge], data[data.shape[0] - edge:]))
        return data
    if not edge:
        return data.reshape(-1)[:0]
    parts = [_summarized(data[i]) for i in _shown_rows(data.shape[0], True)]
    return np.concatenate(parts)


def _shown_rows(n: int, summarize: bool) -> list:
    edge = PRINT_OPTS.edgeitems
    if summarize and n > 2 * edge:
        return list(range(edge)) + list(range(n - edge, n))
    return list(range(n))


def _vector_str(data, indent, summarize, formatter) -> str:
    edge = PRINT_OPTS.edgeitems
    per_line = max(1, math.floor((PRINT_OPTS.linewidth - indent) / (formatter.max_width + 2)))
    if summarize and not edge:
        items = ["..."]
    elif summarize and data.shape[0] > 2 * edge:
        items = ([formatter.format(v) for v in data[:edge].tolist()] + [" ..."]
                 + [formatter.format(v) for v in data[data.shape[0] - edge:].tolist()])
    else:
        items = [formatter.format(v) for v in data.tolist()]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nested_str(data, indent, summarize, formatter) -> str:
    if data.ndim == 0:
        return formatter.format(data.item())
    if data.ndim == 1:
        return _vector_str(data, indent, summarize, formatter)
    n, edge = data.shape[0], PRINT_OPTS.edgeitems
    rows = [_nested_str(data[i], indent + 1, summarize, formatter)
            for i in _shown_rows(n, summarize)]
    if summarize and n > 2 * edge:
        rows.insert(edge, "...")
    separator = "," + "\n" * (data.ndim - 1) + " " * (indent + 1)
    return "[" + separator.join(rows) + "]"


def _body_str(data: np.ndarray, indent: int) -> str:
    summarize = data.size > PRINT_OPTS.threshold
    formatter = _Formatter(_summarized(data) if summarize else data.reshape(-1))
    return _nested_str(data, indent, summarize, formatter)


def _add_suffixes(text: str, suffixes: list, indent: int) -> str:
    """Append ``, suffix`` items, moving one to a new line when it would pass the
    line width (PyTorch's arithmetic, including its +1 on the last line's length)."""
    pieces = [text]
    last_line_len = len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last_line_len + len(suffix) + 2 > PRINT_OPTS.linewidth:
            pieces.append(",\n" + " " * indent + suffix)
            last_line_len = indent + len(suffix)
        else:
            pieces.append(", " + suffix)
            last_line_len += len(suffix) + 2
    return "".join(pieces) + ")"


def tensor_repr(t) -> str:
    """``repr(t)``: ``tensor(<values>[, size=...][, dtype=...][, grad_fn=<...>])``.

    Printing needs values, so under tracing it is a graph break, as ``.item()`` is."""
    data = t._concrete("printing a tensor")
    if t.dtype in dtypes.HALF:          # formatted from their exact float32 values
        data = data.astype(np.float32)
    prefix = "tensor("
    indent = len(prefix)
    suffixes = []
    if data.size == 0:
        # An empty tensor shows no values to infer the dtype from: any non-float32
        # dtype is printed, int64 included.
        if data.ndim != 1:
            suffixes.append(f"size={tuple(data.shape)}")
        if t.dtype != dtypes.default_float:
            suffixes.append(f"dtype={t.dtype!r}")
        body = "[]"
    else:
        if not PRINT_OPTS.edgeitems:
            suffixes.append(f"size={tuple(data.shape)}")
        if t.dtype not in (dtypes.default_float, dtypes.int64, dtypes.bool_):
            suffixes.append(f"dtype={t.dtype!r}")
        body = _body_str(data, indent)
    if t.grad_fn is not None:
        suffixes.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t.requires_grad:
        suffixes.append("requires_grad=True")
    return _add_suffixes(prefix + body, suffixes, indent)
