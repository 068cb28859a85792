"""``graphc.optim``: PyTorch's optimizers and learning-rate schedulers."""
from graphc.optim.optimizer import Optimizer
from graphc.optim.sgd import SGD
from graphc.optim.adam import Adam, AdamW
from graphc.optim.rmsprop import RMSprop
from graphc.optim.adagrad import Adagrad
from graphc.optim.adadelta import Adadelta
from graphc.optim.adamax import Adamax
from graphc.optim.nadam import NAdam
from graphc.optim.radam import RAdam
from graphc.optim.asgd import ASGD
from graphc.optim.rprop import Rprop
from graphc.optim.lbfgs import LBFGS
from graphc.optim.sparse_adam import SparseAdam
from graphc.optim.adafactor import Adafactor
from graphc.optim.muon import Muon
from graphc.optim import lr_scheduler
from graphc.optim import swa_utils

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler",
           "Adadelta", "Adamax", "NAdam", "RAdam", "ASGD", "Rprop", "LBFGS", "SparseAdam",
           "Adafactor", "Muon", "swa_utils"]
