"""SparseAdam, which graphc cannot offer: it has no sparse gradients."""
from __future__ import annotations

from graphc.optim.optimizer import Optimizer


class SparseAdam(Optimizer):
    """``torch.optim.SparseAdam`` updates only the rows a sparse gradient touches; graphc
    has no sparse tensors (``nn.Embedding`` gives dense gradients), so constructing one
    raises ``NotImplementedError`` pointing to ``Adam``, which is its dense equivalent
    but for the moment updates of untouched rows."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, maximize=False):
        raise NotImplementedError(
            "graphc.optim.SparseAdam: graphc has no sparse gradients (nn.Embedding and "
            "F.embedding give dense ones); use graphc.optim.Adam(params, lr=lr, "
            "betas=betas, eps=eps) instead")
