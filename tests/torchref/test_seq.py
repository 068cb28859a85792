"""Recurrent, attention and transformer layers against PyTorch (tests/torchref/harness.py):
state_dict layout, outputs, gradients and SGD steps, eagerly and compiled."""
import numpy as np
import pytest

import graphc
from harness import check_function, check_module

torch = pytest.importorskip("torch")
rng = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def fresh_inputs():
    """Each test draws the same inputs whichever tests ran before it."""
    global rng
    rng = np.random.default_rng(0)


def randn(*shape):
    return rng.standard_normal(shape).astype(np.float32)


# ---- scaled_dot_product_attention -------------------------------------------------------------
def test_sdpa_plain_and_scaled():
    check_function(lambda lib, q, k, v: lib.nn.functional.scaled_dot_product_attention(q, k, v),
                   randn(2, 3, 4), randn(2, 5, 4), randn(2, 5, 6))
    check_function(lambda lib, q, k, v: lib.nn.functional.scaled_dot_product_attention(
        q, k, v, scale=0.3), randn(2, 2, 3, 4), randn(2, 2, 5, 4), randn(2, 2, 5, 4), modes=())


def test_sdpa_causal_and_masks():
    q, k, v = randn(2, 2, 4, 3), randn(2, 2, 5, 3), randn(2, 2, 5, 3)
    check_function(lambda lib, q, k, v: lib.nn.functional.scaled_dot_product_attention(
        q, k, v, is_causal=True), q, k, v)
    keep = rng.random((4, 5)) > 0.4
    keep[2] = False                                   # a query row with no key: zeros
    check_function(lambda lib, q, k, v: lib.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=lib.tensor(keep)), q, k, v)
    bias = randn(2, 1, 4, 5)
    bias[0, 0, 1] = -np.inf
    check_function(lambda lib, q, k, v, b: lib.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=b), q, k, v, bias, modes=("interpreter",))


def test_sdpa_gqa_and_errors():
    check_function(lambda lib, q, k, v: lib.nn.functional.scaled_dot_product_attention(
        q, k, v, enable_gqa=True), randn(1, 4, 3, 2), randn(1, 2, 5, 2), randn(1, 2, 5, 2),
        modes=())
    F = graphc.nn.functional
    q = graphc.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match="Explicit attn_mask"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=graphc.ones(3, 3, dtype=graphc.bool),
                                       is_causal=True)
    with pytest.raises(RuntimeError, match="same dtype"):
        F.scaled_dot_product_attention(q, q.double(), q)


def test_sdpa_dropout_keeps_shape_and_scales():
    F = graphc.nn.functional
    graphc.manual_seed(0)
    q, k, v = graphc.randn(2, 3, 4), graphc.randn(2, 5, 4), graphc.ones(2, 5, 4)
    out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    # each output row is (sum of the kept weights) / 0.5 times a row of ones
    values = out.numpy()
    assert values.shape == (2, 3, 4) and np.allclose(values, values[..., :1])
    assert not np.allclose(values, 1.0)


def test_sdpa_fuses_into_three_kernels():
    F = graphc.nn.functional
    q, k, v = graphc.randn(2, 3, 4), graphc.randn(2, 5, 4), graphc.randn(2, 5, 4)
    mask = graphc.tensor(rng.random((3, 5)) > 0.3)
    report = graphc.explain(lambda q, k, v: F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask), q, k, v)
    assert "\n3 kernels" in str(report), report


# ---- recurrent layers -------------------------------------------------------------------------
EAGER = ()


@pytest.mark.parametrize("kind, options", [
    ("RNN", dict(nonlinearity="relu", bias=False)),
    ("RNN", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("LSTM", dict(num_layers=2, bidirectional=True)),
    ("LSTM", dict(proj_size=2, batch_first=True, bias=False)),
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True)),
    ("GRU", dict(bias=False)),
])
def test_recurrent_layers_eager(kind, options):
    x = randn(2, 3, 3)
    check_module(lambda lib: getattr(lib.nn, kind)(3, 4, **options), x, modes=EAGER)


def test_recurrent_initial_states_and_unbatched():
    x, h0, c0 = randn(3, 2, 3), randn(4, 2, 4), randn(4, 2, 4)
    check_module(lambda lib: lib.nn.LSTM(3, 4, num_layers=2, bidirectional=True), x, h0, c0,
                 forward=lambda m, x, h, c: m(x, (h, c)), modes=EAGER)
    check_module(lambda lib: lib.nn.GRU(3, 4, num_layers=2, bidirectional=True), x, h0,
                 modes=EAGER)
    check_module(lambda lib: lib.nn.RNN(3, 4, num_layers=2), randn(3, 3), randn(2, 4),
                 modes=EAGER)
    check_module(lambda lib: lib.nn.LSTM(3, 4, proj_size=2), randn(3, 3), randn(1, 2),
                 randn(1, 4), forward=lambda m, x, h, c: m(x, (h, c)), modes=EAGER)


def test_recurrent_dropout_between_layers():
    """Eval mode and dropout=0 in training are exact; training with dropout draws
    graphc's own masks, so only its shape and that it differs from eval are checked."""
    x = randn(3, 2, 3)
    check_module(lambda lib: lib.nn.LSTM(3, 4, num_layers=2, dropout=0.5), x, train=False,
                 modes=EAGER)
    check_module(lambda lib: lib.nn.GRU(3, 4, num_layers=2, dropout=0.0), x, modes=EAGER)
    graphc.manual_seed(0)
    m = graphc.nn.GRU(3, 4, num_layers=3, dropout=0.5)
    train_out = m(graphc.tensor(x))[0]
    eval_out = m.eval()(graphc.tensor(x))[0]
    assert train_out.shape == eval_out.shape == (3, 2, 4)
    assert not np.allclose(train_out.detach().numpy(), eval_out.detach().numpy())


def test_recurrent_compiled():
    """The cpu backend compiles an unrolled loop slowly: one small case here, the rest on
    the interpreter (and in the slow test below)."""
    x = randn(3, 2, 3)
    check_module(lambda lib: lib.nn.LSTM(3, 4, bidirectional=True, batch_first=True), x,
                 modes=("interpreter",))
    check_module(lambda lib: lib.nn.GRU(3, 4), x, modes=("interpreter",))
    check_module(lambda lib: lib.nn.RNN(3, 4), randn(2, 2, 3), modes=("cpu",))


@pytest.mark.slow
def test_recurrent_compiled_deep():
    check_module(lambda lib: lib.nn.LSTM(3, 4, bidirectional=True, batch_first=True),
                 randn(3, 2, 3), modes=("cpu",))
    check_module(lambda lib: lib.nn.LSTM(3, 4, num_layers=2, bidirectional=True,
                                         proj_size=2), randn(3, 2, 3))
    check_module(lambda lib: lib.nn.GRU(3, 4, num_layers=2, bidirectional=True,
                                        batch_first=True), randn(2, 3, 3))


@pytest.mark.parametrize("kind, options", [
    ("RNNCell", dict(nonlinearity="relu")), ("RNNCell", dict(bias=False)),
    ("LSTMCell", {}), ("LSTMCell", dict(bias=False)), ("GRUCell", {}),
])
def test_cells(kind, options):
    check_module(lambda lib: getattr(lib.nn, kind)(3, 4, **options), randn(2, 3), modes=EAGER)
    check_module(lambda lib: getattr(lib.nn, kind)(3, 4, **options), randn(3), modes=EAGER)


def test_cells_with_state_and_compiled():
    x, h, c = randn(2, 3), randn(2, 4), randn(2, 4)
    check_module(lambda lib: lib.nn.LSTMCell(3, 4), x, h, c,
                 forward=lambda m, x, h, c: m(x, (h, c)))
    check_module(lambda lib: lib.nn.GRUCell(3, 4), x, h, modes=("interpreter",))
    check_module(lambda lib: lib.nn.RNNCell(3, 4), x, h, modes=EAGER)


def test_recurrent_errors_match_pytorch():
    for lib in (torch, graphc):
        m = lib.nn.LSTM(3, 4, num_layers=2)
        with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size"):
            m(lib.zeros(2, 1, 5))
        with pytest.raises(RuntimeError, match="Expected hidden\\[0\\] size \\(2, 1, 4\\)"):
            m(lib.zeros(2, 1, 3), (lib.zeros(1, 1, 4), lib.zeros(2, 1, 4)))
        with pytest.raises(ValueError, match="Expected input to be 2D or 3D"):
            m(lib.zeros(1, 2, 1, 3))
        with pytest.raises(RuntimeError, match="hx should also be 2-D"):
            lib.nn.GRU(3, 4)(lib.zeros(2, 3), lib.zeros(1, 1, 4))
        with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM"):
            lib.nn.GRU(3, 4, proj_size=2)
        with pytest.raises(ValueError, match="proj_size has to be smaller"):
            lib.nn.LSTM(3, 4, proj_size=4)
        with pytest.raises(ValueError, match="Unknown nonlinearity"):
            lib.nn.RNN(3, 4, nonlinearity="gelu")


def test_recurrent_layout_and_flatten_parameters():
    for kind in ("RNN", "LSTM", "GRU"):
        t, g = getattr(torch.nn, kind)(3, 4, 2), getattr(graphc.nn, kind)(3, 4, 2)
        assert repr(g) == repr(t)
        assert {k: tuple(v.shape) for k, v in g.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in t.state_dict().items()}
        assert g._flat_weights_names == t._flat_weights_names
        g.flatten_parameters()
        bound = 1 / 2          # U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))
        values = np.concatenate([p.detach().numpy().ravel() for p in g.parameters()])
        assert values.min() >= -bound and values.max() <= bound and values.std() > 0.2


# ---- padding and packing -----------------------------------------------------------------------
def test_pad_sequence():
    a, b, c = randn(2, 3), randn(4, 3), randn(1, 3)
    check_function(lambda lib, a, b, c: lib.nn.utils.rnn.pad_sequence([a, b, c]), a, b, c)
    check_function(lambda lib, a, b, c: lib.nn.utils.rnn.pad_sequence(
        [a, b, c], batch_first=True, padding_value=-1.0, padding_side="left"), a, b, c,
        modes=())


def test_pack_and_pad_round_trip():
    x = randn(4, 3, 2)
    for lengths, sort in (([4, 2, 1], True), ([2, 4, 1], False)):
        check_function(lambda lib, x: lib.nn.utils.rnn.pad_packed_sequence(
            lib.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=sort),
            total_length=5), x, modes=("interpreter",))
        check_function(lambda lib, x: lib.nn.utils.rnn.pack_padded_sequence(
            x, lengths, batch_first=True, enforce_sorted=sort).data, x.transpose(1, 0, 2),
            modes=())
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order"):
        graphc.nn.utils.rnn.pack_padded_sequence(graphc.tensor(x), [2, 4, 1])


def test_packing_with_traced_lengths_is_a_graph_break():
    """Lengths given as a tensor argument decide the packed shapes: compiling breaks the
    graph there (fullgraph raises), and the default falls back to eager."""
    x = randn(4, 3, 2)
    check_function(lambda lib, x, n: lib.nn.utils.rnn.pack_padded_sequence(x, n).data, x,
                   np.array([4, 2, 1]), modes=())

    def pack(x, n):
        return graphc.nn.utils.rnn.pack_padded_sequence(x, n).data

    with pytest.raises(graphc.GraphBreak, match="tolist"):
        graphc.compile(pack, fullgraph=True)(graphc.tensor(x), graphc.tensor([4, 2, 1]))
    with pytest.warns(UserWarning):
        out = graphc.compile(pack)(graphc.tensor(x), graphc.tensor([4, 2, 1]))
    assert out.shape == (7, 2)


def test_unpad_and_unpack_sequence():
    x = randn(4, 3, 2)
    # x * 1: PyTorch transposes a time-first batch in place, which a leaf cannot take
    check_function(lambda lib, x: lib.nn.utils.rnn.unpad_sequence(x * 1,
                                                                  lib.tensor([2, 4, 1])),
                   x, modes=("interpreter",))
    check_function(lambda lib, x: lib.nn.utils.rnn.unpad_sequence(
        x, lib.tensor([2, 4, 1]), True),
                   x.transpose(1, 0, 2), modes=())
    check_function(lambda lib, x: lib.nn.utils.rnn.unpack_sequence(
        lib.nn.utils.rnn.pack_padded_sequence(x, [2, 4, 1], enforce_sorted=False)), x,
        modes=())


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_recurrent_on_packed_sequences(kind):
    x, h0 = randn(4, 3, 2), randn(4, 3, 3)
    state = (lambda h: (h, h * 0.5)) if kind == "LSTM" else (lambda h: h)

    def forward(m, x, h):
        lib = torch if isinstance(x, torch.Tensor) else graphc
        packed = lib.nn.utils.rnn.pack_padded_sequence(x, [2, 4, 1], enforce_sorted=False)
        out, final = m(packed, state(h))
        return lib.nn.utils.rnn.pad_packed_sequence(out)[0], final

    check_module(lambda lib: getattr(lib.nn, kind)(2, 3, num_layers=2, bidirectional=True),
                 x, h0, forward=forward, modes=("interpreter",) if kind == "GRU" else EAGER)


# ---- multi-head attention ---------------------------------------------------------------------
def lib_of(x):
    return torch if isinstance(x, torch.Tensor) else graphc


def _mha_forward(**options):
    """m(q, k, v, **options) with k = q and v = k when not given (self-attention keeps
    the identities PyTorch's packed projection looks for); numpy masks become tensors."""
    def forward(m, q, k=None, v=None):
        k = q if k is None else k
        v = k if v is None else v
        lib = lib_of(q)
        return m(q, k, v, **{name: lib.tensor(o) if isinstance(o, np.ndarray) else o
                             for name, o in options.items()})
    return forward


@pytest.mark.parametrize("make, options", [
    (dict(), dict()),
    (dict(bias=False, batch_first=True), dict(average_attn_weights=False)),
    (dict(add_bias_kv=True, add_zero_attn=True), dict(need_weights=False)),
    (dict(kdim=3, vdim=5), dict()),
])
def test_multihead_attention(make, options):
    q = randn(3, 2, 4)
    kv = (randn(5, 2, 3), randn(5, 2, 5)) if "kdim" in make else ()
    check_module(lambda lib: lib.nn.MultiheadAttention(4, 2, **make), q, *kv,
                 forward=_mha_forward(**options), modes=EAGER)


def test_multihead_attention_masks():
    q, kv = randn(3, 2, 4), randn(5, 2, 4)
    padded = np.zeros((2, 5), bool)
    padded[1, 3:] = True                                   # padding of the second sequence
    causal = np.triu(np.ones((3, 5), bool), 1)
    bias = randn(4, 3, 5)
    for need in (True, False):
        check_module(lambda lib: lib.nn.MultiheadAttention(4, 2), q, kv, forward=_mha_forward(
            key_padding_mask=padded, attn_mask=causal, need_weights=need), modes=EAGER)
    check_module(lambda lib: lib.nn.MultiheadAttention(4, 2), q, kv, bias,
                 forward=lambda m, q, kv, b: m(q, kv, kv, attn_mask=b), modes=EAGER)
    square = np.triu(np.full((3, 3), -np.inf, np.float32), 1)
    check_module(lambda lib: lib.nn.MultiheadAttention(4, 2), q, forward=_mha_forward(
        attn_mask=square, is_causal=True, need_weights=False),
        modes=EAGER)


def test_multihead_attention_unbatched_and_compiled():
    check_module(lambda lib: lib.nn.MultiheadAttention(4, 2), randn(3, 4), randn(5, 4),
                 forward=_mha_forward(), modes=EAGER)
    check_module(lambda lib: lib.nn.MultiheadAttention(4, 2, batch_first=True), randn(2, 3, 4),
                 forward=_mha_forward(need_weights=False))


def test_multi_head_attention_forward_function():
    q, w, b, ow = randn(3, 2, 4), randn(12, 4), randn(12), randn(4, 4)
    check_function(lambda lib, q, w, b, ow: lib.nn.functional.multi_head_attention_forward(
        q, q, q, 4, 2, w, b, None, None, False, 0.0, ow, None, training=False), q, w, b, ow,
        modes=(), rtol=1e-4, atol=1e-5)


def test_multihead_attention_layout_and_errors():
    for lib in (torch, graphc):
        with pytest.warns(UserWarning, match="mismatched key_padding_mask and attn_mask"):
            lib.nn.MultiheadAttention(4, 2)(*[lib.zeros(3, 1, 4)] * 3,
                                            key_padding_mask=lib.zeros(1, 3, dtype=lib.bool),
                                            attn_mask=lib.zeros(3, 3))
        m = lib.nn.MultiheadAttention(4, 2, add_bias_kv=True, kdim=3, vdim=5)
        assert "NonDynamicallyQuantizableLinear" in repr(m)
        with pytest.raises(AssertionError, match="embed_dim must be divisible by num_heads"):
            lib.nn.MultiheadAttention(5, 2)
        with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal"):
            lib.nn.MultiheadAttention(4, 2)(*[lib.zeros(3, 1, 4)] * 3, is_causal=True)
        with pytest.raises(RuntimeError, match="The shape of the 2D attn_mask is"):
            lib.nn.MultiheadAttention(4, 2)(*[lib.zeros(3, 1, 4)] * 3,
                                            attn_mask=lib.zeros(2, 3))
    t, g = torch.nn.MultiheadAttention(6, 2), graphc.nn.MultiheadAttention(6, 2)
    assert {k: tuple(v.shape) for k, v in g.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in t.state_dict().items()}
    assert not g.in_proj_bias.detach().numpy().any()
    bound = np.sqrt(6 / (6 + 18))                # xavier_uniform_ on (18, 6)
    w = g.in_proj_weight.detach().numpy()
    assert np.abs(w).max() <= bound and w.std() > bound / 3


# ---- transformer ------------------------------------------------------------------------------
LAYER = dict(dim_feedforward=8, dropout=0.0)
TOL = dict(rtol=1e-4, atol=1e-5)   # float32 rounding through stacked layer norms


@pytest.mark.parametrize("options", [
    dict(), dict(norm_first=True, activation="gelu", batch_first=True),
    dict(bias=False, layer_norm_eps=1e-3),
])
def test_encoder_layer(options):
    check_module(lambda lib: lib.nn.TransformerEncoderLayer(4, 2, **LAYER, **options),
                 randn(3, 2, 4), modes=EAGER, **TOL)


def test_encoder_layer_masks_callable_activation_and_eval():
    x = randn(3, 2, 4)
    padded = np.array([[False, False, True], [False, False, False]])
    causal = np.triu(np.ones((3, 3), bool), 1)

    def forward(m, x):
        lib = lib_of(x)
        return m(x, src_mask=lib.tensor(causal), src_key_padding_mask=lib.tensor(padded))

    check_module(lambda lib: lib.nn.TransformerEncoderLayer(
        4, 2, 8, activation=lib.nn.functional.silu), x, forward=forward, train=False,
        modes=EAGER, **TOL)
    check_module(lambda lib: lib.nn.TransformerEncoderLayer(4, 2, 8, dropout=0.3), x,
                 forward=lambda m, x: m(x, src_mask=lib_of(x).nn.Transformer
                                        .generate_square_subsequent_mask(3), is_causal=True),
                 train=False, modes=EAGER, **TOL)


@pytest.mark.parametrize("options", [dict(), dict(norm_first=True, batch_first=True)])
def test_decoder_layer(options):
    tgt, memory = randn(3, 2, 4), randn(5, 2, 4)
    if options.get("batch_first"):
        tgt, memory = tgt.transpose(1, 0, 2), memory.transpose(1, 0, 2)
    check_module(lambda lib: lib.nn.TransformerDecoderLayer(4, 2, **LAYER, **options),
                 tgt, memory, modes=EAGER, **TOL)


def test_decoder_layer_masks():
    tgt, memory = randn(3, 2, 4), randn(5, 2, 4)
    memory_padded = np.zeros((2, 5), bool)
    memory_padded[0, 4] = True

    def forward(m, tgt, memory):
        lib = lib_of(tgt)
        return m(tgt, memory, tgt_mask=lib.nn.Transformer.generate_square_subsequent_mask(3),
                 memory_key_padding_mask=lib.tensor(memory_padded), tgt_is_causal=True)

    check_module(lambda lib: lib.nn.TransformerDecoderLayer(4, 2, 8), tgt, memory,
                 forward=forward, train=False, modes=EAGER, **TOL)


def test_encoder_and_decoder_stacks():
    check_module(lambda lib: lib.nn.TransformerEncoder(
        lib.nn.TransformerEncoderLayer(4, 2, **LAYER), 2, norm=lib.nn.LayerNorm(4)),
        randn(3, 2, 4), modes=EAGER, **TOL)
    check_module(lambda lib: lib.nn.TransformerDecoder(
        lib.nn.TransformerDecoderLayer(4, 2, **LAYER), 2), randn(3, 2, 4), randn(2, 2, 4),
        modes=EAGER, **TOL)


def test_transformer():
    src, tgt = randn(4, 2, 4), randn(3, 2, 4)

    def forward(m, src, tgt):
        mask = lib_of(src).nn.Transformer.generate_square_subsequent_mask(3)
        return m(src, tgt, tgt_mask=mask)

    check_module(lambda lib: lib.nn.Transformer(4, 2, 1, 1, 8, dropout=0.0), src, tgt,
                 forward=forward, modes=EAGER, **TOL)
    check_module(lambda lib: lib.nn.Transformer(4, 2, 2, 1, 8, norm_first=True), src, tgt,
                 forward=forward, train=False, modes=EAGER, **TOL)


def test_transformer_compiled():
    padded = np.array([[False, False, True], [False, False, False]])
    check_module(lambda lib: lib.nn.TransformerEncoderLayer(4, 2, **LAYER, batch_first=True),
                 randn(2, 3, 4), padded, forward=lambda m, x, p: m(
                     x, src_mask=lib_of(x).nn.Transformer.generate_square_subsequent_mask(3),
                     src_key_padding_mask=p), **TOL)
    check_module(lambda lib: lib.nn.Transformer(4, 2, 1, 1, 8, dropout=0.0), randn(3, 2, 4),
                 randn(2, 2, 4), modes=("interpreter",), **TOL)


def test_transformer_api():
    for lib in (torch, graphc):
        class Small(lib.nn.Transformer):            # subclassable, as in PyTorch
            def __init__(self):
                super().__init__(4, 2, 1, 1, 8)
        m = Small()
        assert m.d_model == 4 and m.nhead == 2 and not m.batch_first
        with pytest.raises(RuntimeError, match="the batch number of src and tgt must be equal"):
            m(lib.zeros(3, 2, 4), lib.zeros(3, 1, 4))
        with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
            lib.nn.TransformerEncoderLayer(4, 2, activation="tanh")
    want = torch.nn.Transformer.generate_square_subsequent_mask(4)
    got = graphc.nn.Transformer.generate_square_subsequent_mask(4)
    assert got.dtype == graphc.float32
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    t, g = torch.nn.Transformer(4, 2, 1, 1, 8), graphc.nn.Transformer(4, 2, 1, 1, 8)
    assert list(g.state_dict()) == list(t.state_dict())


def test_pytorch_fast_path_matches_in_eval():
    """Under no_grad in eval mode PyTorch runs fused fast-path kernels (nested tensors for
    padded batches); graphc's slow path gives the same numbers within rounding."""
    torch.manual_seed(0)
    layer = torch.nn.TransformerEncoderLayer(4, 2, 8, batch_first=True)
    model = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=True).eval()
    x = randn(2, 3, 4)
    padded = np.array([[False, False, True], [False, False, False]])
    with torch.no_grad():
        want = model(torch.tensor(x), src_key_padding_mask=torch.tensor(padded))
    g = graphc.nn.TransformerEncoder(graphc.nn.TransformerEncoderLayer(4, 2, 8,
                                                                       batch_first=True), 2)
    g.load_state_dict({k: graphc.tensor(v.numpy()) for k, v in model.state_dict().items()})
    with graphc.no_grad():
        got = g.eval()(graphc.tensor(x), src_key_padding_mask=graphc.tensor(padded))
    keep = ~padded          # PyTorch's nested-tensor path leaves padded positions as 0
    np.testing.assert_allclose(got.numpy()[keep], want.numpy()[keep], rtol=1e-5, atol=1e-5)


def test_float64_layers():
    x = rng.standard_normal((3, 2, 3))
    check_module(lambda lib: lib.nn.LSTM(3, 4, proj_size=2, dtype=lib.float64), x,
                 modes=EAGER, rtol=1e-10, atol=1e-12)
    check_module(lambda lib: lib.nn.GRUCell(3, 4, dtype=lib.float64), x[0], modes=EAGER,
                 rtol=1e-10, atol=1e-12)
    check_module(lambda lib: lib.nn.MultiheadAttention(4, 2, dtype=lib.float64),
                 rng.standard_normal((3, 2, 4)), forward=_mha_forward(), modes=EAGER,
                 rtol=1e-10, atol=1e-12)


def test_projected_lstm_on_packed_sequences():
    def forward(m, x):
        lib = lib_of(x)
        out, (h, c) = m(lib.nn.utils.rnn.pack_padded_sequence(x, [3, 1, 2],
                                                              enforce_sorted=False))
        return out.data, h, c

    check_module(lambda lib: lib.nn.LSTM(2, 4, proj_size=3, bidirectional=True),
                 randn(3, 3, 2), forward=forward, modes=EAGER)


def test_recurrent_dropout_compiles():
    graphc.manual_seed(0)
    m = graphc.nn.GRU(3, 4, num_layers=2, dropout=0.5)
    run = graphc.compile(lambda x: m(x)[0], backend="interpreter", fullgraph=True)
    x = graphc.tensor(randn(2, 2, 3))
    first, second = run(x).detach().numpy(), run(x).detach().numpy()
    assert first.shape == (2, 2, 4) and not np.allclose(first, second)   # fresh masks


def test_transformer_custom_parts_and_init():
    for lib in (torch, graphc):
        encoder = lib.nn.TransformerEncoder(lib.nn.TransformerEncoderLayer(4, 2, 8), 1)
        m = lib.nn.Transformer(4, 2, 1, 1, 8, custom_encoder=encoder)
        assert m.encoder is encoder and m.encoder.norm is None
    g = graphc.nn.Transformer(8, 2, 1, 1, 16)
    w = g.encoder.layers[0].linear1.weight.detach().numpy()        # xavier_uniform_ (16, 8)
    assert np.abs(w).max() <= np.sqrt(6 / 24) and w.std() > np.sqrt(6 / 24) / 3


def test_sdpa_kernel_selects_flags_and_keeps_results():
    from graphc.nn.attention import SDPBackend, sdpa_kernel
    q = randn(1, 2, 3, 4)
    with sdpa_kernel(SDPBackend.MATH):
        assert graphc.backends.cuda.math_sdp_enabled()
        assert not graphc.backends.cuda.flash_sdp_enabled()
        check_function(lambda lib, q: lib.nn.functional.scaled_dot_product_attention(
            q, q, q, is_causal=True), q, modes=())
    assert graphc.backends.cuda.flash_sdp_enabled()
    assert {b.name: b.value for b in SDPBackend} == {
        name: int(b) for name, b in torch.nn.attention.SDPBackend.__members__.items()}
    with pytest.raises(AssertionError, match="Backend must be an instance of SDPBackend"):
        with sdpa_kernel("math"):
            pass
