"""``graphc.nn``: modules, parameters, containers, layers, losses, ``functional`` and
``init``, with PyTorch's names and behaviour (``import graphc.nn as nn``)."""
from graphc.nn import functional, init
from graphc.nn.module import Module, Parameter
from graphc.nn.containers import Sequential, ModuleList, ModuleDict
from graphc.nn.layers import Identity, Linear, Conv2d, MaxPool2d, AvgPool2d, Flatten
from graphc.nn.layers import Bilinear, Unflatten, LazyLinear
from graphc.nn.dropout import (Dropout, Dropout1d, Dropout2d, Dropout3d, AlphaDropout,
                               FeatureAlphaDropout)
from graphc.nn.sparse import Embedding, EmbeddingBag
from graphc.nn.normalization import (LayerNorm, BatchNorm1d, BatchNorm2d, BatchNorm3d,
                                     InstanceNorm1d, InstanceNorm2d, InstanceNorm3d,
                                     GroupNorm, RMSNorm, LocalResponseNorm)
from graphc.nn.activations import (ReLU, Sigmoid, Tanh, GELU, SiLU, LeakyReLU, ELU, Softplus,
                                   Hardswish, Softmax, LogSoftmax)
from graphc.nn.activations import (ReLU6, SELU, Mish, Hardsigmoid, LogSigmoid, Softsign,
                                   Tanhshrink, Softmax2d, Hardtanh, CELU, Threshold, RReLU,
                                   Hardshrink, Softshrink, GLU, Softmin, PReLU)
from graphc.nn.losses import (MSELoss, L1Loss, SmoothL1Loss, NLLLoss, CrossEntropyLoss,
                              BCELoss, BCEWithLogitsLoss)
from graphc.nn.losses import (KLDivLoss, HuberLoss, SoftMarginLoss, MultiLabelSoftMarginLoss,
                              MultiMarginLoss, MultiLabelMarginLoss, MarginRankingLoss,
                              HingeEmbeddingLoss, CosineEmbeddingLoss, TripletMarginLoss,
                              TripletMarginWithDistanceLoss, PoissonNLLLoss, GaussianNLLLoss,
                              CTCLoss)
from graphc.nn.distance import PairwiseDistance, CosineSimilarity
from graphc.nn import utils, parallel  # noqa: E402
from graphc.nn.rnn import (RNNBase, RNN, LSTM, GRU, RNNCellBase, RNNCell, LSTMCell,  # noqa: E402
                           GRUCell)
from graphc.nn.attention import MultiheadAttention  # noqa: E402
from graphc.nn.transformer import (TransformerEncoderLayer, TransformerDecoderLayer,  # noqa: E402
                                   TransformerEncoder, TransformerDecoder, Transformer)
