"""``graphc.cpu``: the host device, always present, and PyTorch's ``torch.cpu.amp``
spelling of autocast and GradScaler."""
from graphc.amp import cpu_amp as amp  # noqa: F401


def is_available() -> bool:
    return True


def device_count() -> int:
    return 1
