"""Tensor ``repr`` against PyTorch's output, character for character.

Every expected string below was printed by PyTorch 2.x for the same tensor (with
"torch." spelled "graphc."), so a change to the formatter shows up as a diff to
PyTorch's text.
"""
import numpy as np
import pytest

import graphc


@pytest.fixture(autouse=True)
def default_print_options():
    graphc.set_printoptions(profile="default")
    yield
    graphc.set_printoptions(profile="default")


CASES = [
    ('integral floats',
     lambda: graphc.tensor([1., 2., 3.]),
     None,
     'tensor([1., 2., 3.])'),
    ('fixed point, signs aligned',
     lambda: graphc.tensor([[0.1961, -0.0348], [1.5, 2.25]]),
     None,
     ('tensor([[ 0.1961, -0.0348],\n'
      '        [ 1.5000,  2.2500]])')),
    ('zero-dim float',
     lambda: graphc.tensor(3.5),
     None,
     'tensor(3.5000)'),
    ('zero-dim int',
     lambda: graphc.tensor(7),
     None,
     'tensor(7)'),
    ('zero-dim bool',
     lambda: graphc.tensor(True),
     None,
     'tensor(True)'),
    ('zero-dim float64',
     lambda: graphc.tensor(2.5, dtype=graphc.float64),
     None,
     'tensor(2.5000, dtype=graphc.float64)'),
    ('sci mode: small value',
     lambda: graphc.tensor([1e-5, 1.]),
     None,
     'tensor([1.0000e-05, 1.0000e+00])'),
    ('sci mode: large value',
     lambda: graphc.tensor([1e9, 1.]),
     None,
     'tensor([1.0000e+09, 1.0000e+00])'),
    ('sci mode: ratio above 1000',
     lambda: graphc.tensor([1.5, 1001.]),
     None,
     'tensor([   1.5000, 1001.0000])'),
    ('integral floats with ratio above 1000',
     lambda: graphc.tensor([1., 1001.]),
     None,
     'tensor([1.0000e+00, 1.0010e+03])'),
    ('integral floats above 1e8',
     lambda: graphc.tensor([123456789., 1.]),
     None,
     'tensor([1.2346e+08, 1.0000e+00])'),
    ('nan and inf in integer mode',
     lambda: graphc.tensor([float('nan'), 1., float('inf'), -float('inf')]),
     None,
     'tensor([nan, 1., inf, -inf])'),
    ('nan in fixed mode',
     lambda: graphc.tensor([float('nan'), 1.5]),
     None,
     'tensor([   nan, 1.5000])'),
    ('all zeros',
     lambda: graphc.zeros(2, 3),
     None,
     ('tensor([[0., 0., 0.],\n'
      '        [0., 0., 0.]])')),
    ('negative zero',
     lambda: graphc.tensor([-0., 1.]),
     None,
     'tensor([-0., 1.])'),
    ('int widths',
     lambda: graphc.tensor([1, -20, 300]),
     None,
     'tensor([  1, -20, 300])'),
    ('bools',
     lambda: graphc.tensor([[True, False], [False, True]]),
     None,
     ('tensor([[ True, False],\n'
      '        [False,  True]])')),
    ('int32 suffix',
     lambda: graphc.tensor([[1, 2], [3, 4]], dtype=graphc.int32),
     None,
     ('tensor([[1, 2],\n'
      '        [3, 4]], dtype=graphc.int32)')),
    ('float64 suffix',
     lambda: graphc.tensor([1., 2.], dtype=graphc.float64),
     None,
     'tensor([1., 2.], dtype=graphc.float64)'),
    ('empty 1-D',
     lambda: graphc.zeros(0),
     None,
     'tensor([])'),
    ('empty 2-D',
     lambda: graphc.zeros(2, 0),
     None,
     'tensor([], size=(2, 0))'),
    ('empty int64',
     lambda: graphc.zeros(0, dtype=graphc.int64),
     None,
     'tensor([], dtype=graphc.int64)'),
    ('empty float64 with size',
     lambda: graphc.zeros(0, 3, dtype=graphc.float64),
     None,
     'tensor([], size=(0, 3), dtype=graphc.float64)'),
    ('2-D float32',
     lambda: graphc.tensor(np.sin(np.arange(20)).reshape(4, 5).astype(np.float32)),
     None,
     ('tensor([[ 0.0000,  0.8415,  0.9093,  0.1411, -0.7568],\n'
      '        [-0.9589, -0.2794,  0.6570,  0.9894,  0.4121],\n'
      '        [-0.5440, -1.0000, -0.5366,  0.4202,  0.9906],\n'
      '        [ 0.6503, -0.2879, -0.9614, -0.7510,  0.1499]])')),
    ('3-D float64',
     lambda: graphc.tensor(np.cos(np.arange(24)).reshape(2, 3, 4) * 3),
     None,
     ('tensor([[[ 3.0000,  1.6209, -1.2484, -2.9700],\n'
      '         [-1.9609,  0.8510,  2.8805,  2.2617],\n'
      '         [-0.4365, -2.7334, -2.5172,  0.0133]],\n'
      '\n'
      '        [[ 2.5316,  2.7223,  0.4102, -2.2791],\n'
      '         [-2.8730, -0.8255,  1.9810,  2.9661],\n'
      '         [ 1.2242, -1.6432, -2.9999, -1.5985]]], dtype=graphc.float64)')),
    ('4-D blank lines',
     lambda: graphc.arange(16.).reshape(2, 2, 2, 2),
     None,
     ('tensor([[[[ 0.,  1.],\n'
      '          [ 2.,  3.]],\n'
      '\n'
      '         [[ 4.,  5.],\n'
      '          [ 6.,  7.]]],\n'
      '\n'
      '\n'
      '        [[[ 8.,  9.],\n'
      '          [10., 11.]],\n'
      '\n'
      '         [[12., 13.],\n'
      '          [14., 15.]]]])')),
    ('non-contiguous transpose',
     lambda: graphc.arange(6).reshape(2, 3).t(),
     None,
     ('tensor([[0, 3],\n'
      '        [1, 4],\n'
      '        [2, 5]])')),
    ('wraps at 80 columns',
     lambda: graphc.arange(30.) / 7,
     None,
     ('tensor([0.0000, 0.1429, 0.2857, 0.4286, 0.5714, 0.7143, 0.8571, 1.0000, 1.1429,\n'
      '        1.2857, 1.4286, 1.5714, 1.7143, 1.8571, 2.0000, 2.1429, 2.2857, 2.4286,\n'
      '        2.5714, 2.7143, 2.8571, 3.0000, 3.1429, 3.2857, 3.4286, 3.5714, 3.7143,\n'
      '        3.8571, 4.0000, 4.1429])')),
    ('wrapped rows in 2-D',
     lambda: graphc.arange(40).reshape(2, 20) * 1000,
     None,
     ('tensor([[    0,  1000,  2000,  3000,  4000,  5000,  6000,  7000,  8000,  9000,\n'
      '         10000, 11000, 12000, 13000, 14000, 15000, 16000, 17000, 18000, 19000],\n'
      '        [20000, 21000, 22000, 23000, 24000, 25000, 26000, 27000, 28000, 29000,\n'
      '         30000, 31000, 32000, 33000, 34000, 35000, 36000, 37000, 38000, 39000]])')),
    ('summarised 1-D',
     lambda: graphc.arange(2000),
     None,
     'tensor([   0,    1,    2,  ..., 1997, 1998, 1999])'),
    ('summarised 3-D',
     lambda: graphc.arange(1200.).reshape(2, 3, 200),
     None,
     ('tensor([[[0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9700e+02,\n'
      '          1.9800e+02, 1.9900e+02],\n'
      '         [2.0000e+02, 2.0100e+02, 2.0200e+02,  ..., 3.9700e+02,\n'
      '          3.9800e+02, 3.9900e+02],\n'
      '         [4.0000e+02, 4.0100e+02, 4.0200e+02,  ..., 5.9700e+02,\n'
      '          5.9800e+02, 5.9900e+02]],\n'
      '\n'
      '        [[6.0000e+02, 6.0100e+02, 6.0200e+02,  ..., 7.9700e+02,\n'
      '          7.9800e+02, 7.9900e+02],\n'
      '         [8.0000e+02, 8.0100e+02, 8.0200e+02,  ..., 9.9700e+02,\n'
      '          9.9800e+02, 9.9900e+02],\n'
      '         [1.0000e+03, 1.0010e+03, 1.0020e+03,  ..., 1.1970e+03,\n'
      '          1.1980e+03, 1.1990e+03]]])')),
    ('summarised every dim',
     lambda: graphc.arange(5000).reshape(10, 10, 50),
     None,
     ('tensor([[[   0,    1,    2,  ...,   47,   48,   49],\n'
      '         [  50,   51,   52,  ...,   97,   98,   99],\n'
      '         [ 100,  101,  102,  ...,  147,  148,  149],\n'
      '         ...,\n'
      '         [ 350,  351,  352,  ...,  397,  398,  399],\n'
      '         [ 400,  401,  402,  ...,  447,  448,  449],\n'
      '         [ 450,  451,  452,  ...,  497,  498,  499]],\n'
      '\n'
      '        [[ 500,  501,  502,  ...,  547,  548,  549],\n'
      '         [ 550,  551,  552,  ...,  597,  598,  599],\n'
      '         [ 600,  601,  602,  ...,  647,  648,  649],\n'
      '         ...,\n'
      '         [ 850,  851,  852,  ...,  897,  898,  899],\n'
      '         [ 900,  901,  902,  ...,  947,  948,  949],\n'
      '         [ 950,  951,  952,  ...,  997,  998,  999]],\n'
      '\n'
      '        [[1000, 1001, 1002,  ..., 1047, 1048, 1049],\n'
      '         [1050, 1051, 1052,  ..., 1097, 1098, 1099],\n'
      '         [1100, 1101, 1102,  ..., 1147, 1148, 1149],\n'
      '         ...,\n'
      '         [1350, 1351, 1352,  ..., 1397, 1398, 1399],\n'
      '         [1400, 1401, 1402,  ..., 1447, 1448, 1449],\n'
      '         [1450, 1451, 1452,  ..., 1497, 1498, 1499]],\n'
      '\n'
      '        ...,\n'
      '\n'
      '        [[3500, 3501, 3502,  ..., 3547, 3548, 3549],\n'
      '         [3550, 3551, 3552,  ..., 3597, 3598, 3599],\n'
      '         [3600, 3601, 3602,  ..., 3647, 3648, 3649],\n'
      '         ...,\n'
      '         [3850, 3851, 3852,  ..., 3897, 3898, 3899],\n'
      '         [3900, 3901, 3902,  ..., 3947, 3948, 3949],\n'
      '         [3950, 3951, 3952,  ..., 3997, 3998, 3999]],\n'
      '\n'
      '        [[4000, 4001, 4002,  ..., 4047, 4048, 4049],\n'
      '         [4050, 4051, 4052,  ..., 4097, 4098, 4099],\n'
      '         [4100, 4101, 4102,  ..., 4147, 4148, 4149],\n'
      '         ...,\n'
      '         [4350, 4351, 4352,  ..., 4397, 4398, 4399],\n'
      '         [4400, 4401, 4402,  ..., 4447, 4448, 4449],\n'
      '         [4450, 4451, 4452,  ..., 4497, 4498, 4499]],\n'
      '\n'
      '        [[4500, 4501, 4502,  ..., 4547, 4548, 4549],\n'
      '         [4550, 4551, 4552,  ..., 4597, 4598, 4599],\n'
      '         [4600, 4601, 4602,  ..., 4647, 4648, 4649],\n'
      '         ...,\n'
      '         [4850, 4851, 4852,  ..., 4897, 4898, 4899],\n'
      '         [4900, 4901, 4902,  ..., 4947, 4948, 4949],\n'
      '         [4950, 4951, 4952,  ..., 4997, 4998, 4999]]])')),
    ('summarised formatter sees only shown values',
     lambda: graphc.cat([graphc.tensor([1e-6]), graphc.ones(1000) / 3, graphc.tensor([2.])]),
     None,
     ('tensor([1.0000e-06, 3.3333e-01, 3.3333e-01,  ..., 3.3333e-01, 3.3333e-01,\n'
      '        2.0000e+00])')),
    ('requires_grad leaf',
     lambda: graphc.tensor([1., 2.], requires_grad=True),
     None,
     'tensor([1., 2.], requires_grad=True)'),
    ('grad_fn',
     lambda: graphc.tensor([1., 2.], requires_grad=True) * 2,
     None,
     'tensor([2., 4.], grad_fn=<MulBackward0>)'),
    ('grad_fn on a scalar',
     lambda: (graphc.tensor([[1., 2.]], requires_grad=True) + 1).sum(),
     None,
     'tensor(5., grad_fn=<SumBackward0>)'),
    ('suffix moves to a new line',
     lambda: graphc.tensor(np.linspace(0, 1, 25).astype(np.float32), requires_grad=True),
     None,
     ('tensor([0.0000, 0.0417, 0.0833, 0.1250, 0.1667, 0.2083, 0.2500, 0.2917, 0.3333,\n'
      '        0.3750, 0.4167, 0.4583, 0.5000, 0.5417, 0.5833, 0.6250, 0.6667, 0.7083,\n'
      '        0.7500, 0.7917, 0.8333, 0.8750, 0.9167, 0.9583, 1.0000],\n'
      '       requires_grad=True)')),
    ('float64 suffix stays on the line',
     lambda: graphc.tensor(np.linspace(0, 1, 12), requires_grad=True),
     None,
     ('tensor([0.0000, 0.0909, 0.1818, 0.2727, 0.3636, 0.4545, 0.5455, 0.6364, 0.7273,\n'
      '        0.8182, 0.9091, 1.0000], dtype=graphc.float64, requires_grad=True)')),
    ('precision=2',
     lambda: graphc.tensor([1.12345, -2.5]),
     {'precision': 2},
     'tensor([ 1.12, -2.50])'),
    ('sci_mode=True',
     lambda: graphc.tensor([1.5, 2.25]),
     {'sci_mode': True},
     'tensor([1.5000e+00, 2.2500e+00])'),
    ('sci_mode=False',
     lambda: graphc.tensor([1e-5, 1.]),
     {'sci_mode': False},
     'tensor([0.0000, 1.0000])'),
    ('threshold=5',
     lambda: graphc.arange(10),
     {'threshold': 5},
     'tensor([0, 1, 2,  ..., 7, 8, 9])'),
    ('edgeitems=1',
     lambda: graphc.arange(30.).reshape(5, 6),
     {'threshold': 10, 'edgeitems': 1},
     ('tensor([[ 0.,  ...,  5.],\n'
      '        ...,\n'
      '        [24.,  ..., 29.]])')),
    ('linewidth=40',
     lambda: graphc.arange(20.) / 3,
     {'linewidth': 40},
     ('tensor([0.0000, 0.3333, 0.6667, 1.0000,\n'
      '        1.3333, 1.6667, 2.0000, 2.3333,\n'
      '        2.6667, 3.0000, 3.3333, 3.6667,\n'
      '        4.0000, 4.3333, 4.6667, 5.0000,\n'
      '        5.3333, 5.6667, 6.0000, 6.3333])')),
    ('profile short',
     lambda: graphc.arange(10.) / 3,
     {'profile': 'short'},
     'tensor([0.00, 0.33, 0.67, 1.00, 1.33, 1.67, 2.00, 2.33, 2.67, 3.00])'),
]


@pytest.mark.parametrize("make, options, expected", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_repr_matches_pytorch(make, options, expected):
    if options:
        graphc.set_printoptions(**options)
    assert repr(make()) == expected


def test_str_is_repr():
    t = graphc.tensor([[0.5, -1.25]])
    assert str(t) == repr(t) == "tensor([[ 0.5000, -1.2500]])"


def test_print_does_not_record_autograd_history():
    x = graphc.tensor([1.0, 2.0], requires_grad=True)
    repr(x)
    assert x.grad_fn is None and x.grad is None and x._version_count == 0


def test_set_printoptions_resets_sci_mode_when_not_given():
    graphc.set_printoptions(sci_mode=True)
    graphc.set_printoptions(precision=4)
    assert repr(graphc.tensor([1.5, 2.25])) == "tensor([1.5000, 2.2500])"


def test_get_printoptions_round_trip():
    graphc.set_printoptions(precision=3, threshold=7, edgeitems=2, linewidth=60)
    saved = graphc.get_printoptions()
    graphc.set_printoptions(profile="default")
    graphc.set_printoptions(**saved)
    assert saved == {"precision": 3, "threshold": 7, "edgeitems": 2, "linewidth": 60,
                     "sci_mode": None}
    assert repr(graphc.arange(10) / 3) == \
        "tensor([0.000, 0.333,  ..., 2.667, 3.000])"


def test_full_profile_never_summarises():
    graphc.set_printoptions(profile="full")
    text = repr(graphc.arange(1001))
    assert "..." not in text and text.endswith("999, 1000])")


def test_float64_column_view():
    x = graphc.tensor(np.arange(6.0)).reshape(2, 3)[:, 1]
    assert repr(x) == "tensor([1., 4.], dtype=graphc.float64)"


def test_printing_a_traced_tensor_is_a_graph_break():
    def show(x):
        return repr(x * 2)

    with pytest.raises(RuntimeError, match="cannot trace printing a tensor"):
        graphc.trace(show, graphc.ones(2))
