"""``graphc.nn``: modules, parameters, containers, layers, losses, ``functional`` and
``init``, with PyTorch's names and behaviour (``import graphc.nn as nn``)."""
from graphc.nn import functional, init
from graphc.nn.module import Module, Parameter
from graphc.nn.containers import Sequential, ModuleList, ModuleDict
from graphc.nn.layers import (Identity, Linear, Conv2d, MaxPool2d, AvgPool2d, Flatten,
                              Dropout, Embedding, LayerNorm, BatchNorm1d, BatchNorm2d)
from graphc.nn.activations import (ReLU, Sigmoid, Tanh, GELU, SiLU, LeakyReLU, ELU, Softplus,
                                   Hardswish, Softmax, LogSoftmax)
from graphc.nn.losses import (MSELoss, L1Loss, SmoothL1Loss, NLLLoss, CrossEntropyLoss,
                              BCELoss, BCEWithLogitsLoss)
from graphc.nn import utils, parallel  # noqa: E402
