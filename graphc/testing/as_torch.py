"""Run a PyTorch program unchanged with graphc in place of ``torch``.

    python -m graphc.testing.as_torch train.py --max_iters=20     # any script and its args

``install()`` makes every ``import torch...`` import graphc's module of the same path
(``torch.nn.functional`` is ``graphc.nn.functional``, ``torch.utils.data.dataloader``
is ``graphc.utils.data.dataloader``) through an import hook, so a program's own imports
need no edit.  A path graphc does not have fails as ``import torch.X`` would fail on a
PyTorch without it: ``ModuleNotFoundError`` naming ``torch.X``.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import runpy
import sys


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``torch`` and ``torch.X`` as graphc's modules of the same path."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torch" and not fullname.startswith("torch."):
            return None
        real = "graphc" + fullname[len("torch"):]
        try:
            importlib.import_module(real)
        except ModuleNotFoundError as e:
            if e.name is not None and real.startswith(e.name):
                return None          # graphc has no such module: the import fails as usual
            raise
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return sys.modules["graphc" + spec.name[len("torch"):]]

    def exec_module(self, module):
        """The graphc module has run already."""


@contextlib.contextmanager
def installed():
    """``torch`` is graphc inside the block; what was imported as torch before comes back
    after it."""
    saved = {n: m for n, m in sys.modules.items() if n == "torch" or n.startswith("torch.")}
    for name in saved:
        del sys.modules[name]
    finder = _Alias()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if n == "torch" or n.startswith("torch.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return
    sys.argv = list(argv)
    with installed():
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
