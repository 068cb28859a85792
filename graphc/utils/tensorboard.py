"""``graphc.utils.tensorboard`` (``torch.utils.tensorboard``): ``SummaryWriter`` for
TensorBoard logs, from the tensorboardX package (the optional extra
``graphc[tensorboard]``), taking graphc tensors wherever it takes arrays.

As in PyTorch, importing it without the logging package installed raises ImportError.
"""
import functools

from graphc.tensor import Tensor
from graphc.unsupported import refused

try:
    import tensorboardX
except ImportError as e:
    raise ImportError("graphc.utils.tensorboard needs the tensorboardX package: "
                      "pip install 'graphc[tensorboard]'") from e


def _plain(value):
    """graphc tensors (also inside dicts, lists and tuples) as numpy arrays."""
    if isinstance(value, Tensor):
        return value.detach().numpy()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _taking_tensors(method):
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        return method(self, *map(_plain, args), **{k: _plain(v) for k, v in kwargs.items()})
    return call


class SummaryWriter(tensorboardX.SummaryWriter):
    """tensorboardX's writer; its ``add_*`` methods accept graphc tensors."""

    add_graph = refused("torch.utils.tensorboard.SummaryWriter.add_graph",
                        "graphc has no TorchScript graph to log",
                        "print(graphc.explain(model, *inputs)) for the compiled graph")


for _name in ("add_scalar", "add_scalars", "add_histogram", "add_image", "add_images",
              "add_embedding", "add_pr_curve", "add_hparams", "add_video", "add_audio",
              "add_mesh", "add_tensor"):
    if hasattr(tensorboardX.SummaryWriter, _name):
        setattr(SummaryWriter, _name,
                _taking_tensors(getattr(tensorboardX.SummaryWriter, _name)))
