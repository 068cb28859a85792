"""``graphc.optim``: PyTorch's optimizers and learning-rate schedulers."""
from graphc.optim.optimizer import Optimizer
from graphc.optim.sgd import SGD
from graphc.optim.adam import Adam, AdamW
from graphc.optim.rmsprop import RMSprop
from graphc.optim.adagrad import Adagrad
from graphc.optim import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
