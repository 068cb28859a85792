"""``graphc.utils``: ``graphc.utils.data`` (datasets and the DataLoader), ``hooks``,
``dlpack``."""
from graphc.utils import data
from graphc.utils import dlpack
from graphc.utils import hooks

__all__ = ["data", "dlpack", "hooks"]
