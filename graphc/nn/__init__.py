"""``graphc.nn``: modules, parameters, containers, layers, losses, ``functional`` and
``init``, with PyTorch's names and behaviour (``import graphc.nn as nn``)."""
from graphc.nn import functional, init
from graphc.nn.module import Module, Parameter
from graphc.nn.containers import (Sequential, ModuleList, ModuleDict, ParameterList,
                                   ParameterDict)
from graphc.nn.layers import Identity, Linear, Flatten
from graphc.nn.layers import Bilinear, Unflatten, LazyLinear
from graphc.nn.dropout import (Dropout, Dropout1d, Dropout2d, Dropout3d, AlphaDropout,
                               FeatureAlphaDropout)
from graphc.nn.sparse import Embedding, EmbeddingBag
from graphc.nn.normalization import (LayerNorm, BatchNorm1d, BatchNorm2d, BatchNorm3d,
                                     InstanceNorm1d, InstanceNorm2d, InstanceNorm3d,
                                     GroupNorm, RMSNorm, LocalResponseNorm)
from graphc.nn.conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d
from graphc.nn.pooling import (MaxPool1d, MaxPool2d, AvgPool1d, AvgPool2d, LPPool1d, LPPool2d,
                               AdaptiveAvgPool1d, AdaptiveAvgPool2d, AdaptiveMaxPool1d,
                               AdaptiveMaxPool2d)
from graphc.nn.padding import (ZeroPad1d, ZeroPad2d, ConstantPad1d, ConstantPad2d,
                               ReflectionPad1d, ReflectionPad2d, ReplicationPad1d,
                               ReplicationPad2d, CircularPad1d, CircularPad2d)
from graphc.nn.vision import (Upsample, UpsamplingNearest2d, UpsamplingBilinear2d, PixelShuffle,
                              PixelUnshuffle, ChannelShuffle, Unfold, Fold)
from graphc.nn.conv import Conv3d, ConvTranspose3d
from graphc.nn.conv import (LazyConv1d, LazyConv2d, LazyConv3d, LazyConvTranspose1d,
                            LazyConvTranspose2d, LazyConvTranspose3d)
from graphc.nn.pooling import MaxPool3d, AvgPool3d, AdaptiveAvgPool3d, AdaptiveMaxPool3d
from graphc.nn.pooling import MaxUnpool1d, MaxUnpool2d, MaxUnpool3d
from graphc.nn.pooling import LPPool3d
from graphc.nn.padding import (ZeroPad3d, ConstantPad3d, ReflectionPad3d, ReplicationPad3d,
                               CircularPad3d)
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
from graphc.nn.parallel import DataParallel  # noqa: E402
from graphc.nn.rnn import (RNNBase, RNN, LSTM, GRU, RNNCellBase, RNNCell, LSTMCell,  # noqa: E402
                           GRUCell)
from graphc.nn.attention import MultiheadAttention  # noqa: E402
from graphc.nn.transformer import (TransformerEncoderLayer, TransformerDecoderLayer,  # noqa: E402
                                   TransformerEncoder, TransformerDecoder, Transformer)
