"""``graphc.utils``: ``graphc.utils.data`` (datasets and the DataLoader)."""
from graphc.utils import data

__all__ = ["data"]
