"""``graphc.distributed`` (``torch.distributed``): importable, so single-process programs
that import it (nanoGPT's ``train.py``) run; multi-process training is not available yet.

``is_available()`` is False, as on a PyTorch built without distributed support, and
programs that check it (or ``is_initialized()``) take their single-process path; the
process-group calls are refused.
"""
from graphc.unsupported import refused

_WHY = "graphc has no multi-process training yet (graphc.distributed is planned on MPI)"
_INSTEAD = "run one process"


def is_available() -> bool:
    return False


def is_initialized() -> bool:
    return False


init_process_group = refused("torch.distributed.init_process_group", _WHY, _INSTEAD)
destroy_process_group = refused("torch.distributed.destroy_process_group", _WHY, _INSTEAD)
all_reduce = refused("torch.distributed.all_reduce", _WHY, _INSTEAD)
barrier = refused("torch.distributed.barrier", _WHY, _INSTEAD)
