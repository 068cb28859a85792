"""``graphc.backends`` is PyTorch's ``torch.backends``: the flags programs set for the
libraries PyTorch calls (``torch.backends.cudnn.benchmark = True``,
``torch.backends.cuda.matmul.allow_tf32 = True``) and what they ask of the machine.

graphc calls none of those libraries: its code generators (``graphc.targets``) emit
their own kernels, which never use TF32 or reduced-precision reductions and are
deterministic.  The flags are therefore kept as PyTorch keeps them, so programs that
set or read them run, and they change nothing in graphc's numbers.
"""
from graphc.backends import cpu, cuda, cudnn, mkl, mkldnn, mps, openmp, opt_einsum

__all__ = ["cpu", "cuda", "cudnn", "mkl", "mkldnn", "mps", "openmp", "opt_einsum"]
