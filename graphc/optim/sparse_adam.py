"""SparseAdam, which graphc refuses: it has no sparse gradients."""
from __future__ import annotations

from graphc.unsupported import refused

SparseAdam = refused(
    "torch.optim.SparseAdam",
    "graphc has no sparse gradients (nn.Embedding and F.embedding give dense ones), and "
    "SparseAdam updates only the rows a sparse gradient touches",
    "graphc.optim.Adam(params, lr=lr, betas=betas, eps=eps), its dense equivalent but for "
    "the moments of untouched rows")
