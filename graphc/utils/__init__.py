"""``graphc.utils``: ``graphc.utils.data`` (datasets and the DataLoader)."""
from graphc.utils import data
from graphc.utils import hooks

__all__ = ["data", "hooks"]
