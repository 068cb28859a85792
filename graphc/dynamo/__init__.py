"""graphc inside PyTorch: ``torch.compile(model, backend="graphc")``.

The backend is registered under the ``torch_dynamo_backends`` entry point as
``graphc.dynamo:backend``; this package imports PyTorch, so ``import graphc`` never
imports it (only code that asks for ``graphc.dynamo`` does).
"""
from graphc.dynamo.backend import backend

__all__ = ["backend"]
