"""The loss functions and distances of torch.nn against PyTorch: values and gradients of
every reduction, eagerly and compiled (``check_function``), the modules
(``check_module``), signatures, errors and deprecated ``size_average``/``reduce``."""
import inspect
import warnings

import numpy as np
import pytest

import graphc
from harness import check_function, check_module, torch

rng = np.random.default_rng(0)
X = rng.standard_normal((4, 5)).astype(np.float32)
Y = rng.standard_normal((4, 5)).astype(np.float32)
POS = rng.uniform(0.1, 1, (4, 5)).astype(np.float32)
SIGN = np.where(rng.standard_normal((4, 5)) > 0, 1.0, -1.0).astype(np.float32)
CLS = np.array([1, 3, 4, 0])
# multilabel_margin_loss targets: classes up to the first -1 (what follows is ignored).
LABELS = np.array([[3, 0, -1, 1, 2], [1, 2, 3, 4, 0], [4, -1, -1, -1, -1], [-1, 3, 2, 0, 4]])
W5 = rng.uniform(0.5, 2, 5).astype(np.float32)
X4 = rng.standard_normal((3, 5, 2, 2)).astype(np.float32)
CLS4 = rng.integers(0, 5, (3, 2, 2))
CLS4[0, 0, 1] = -100


def F(lib):
    return lib.nn.functional


def _const(lib, a):
    """A tensor that does not require grad (a target PyTorch cannot differentiate)."""
    return lib.tensor(a)


FUNCTIONS = {
    "kl_div_batchmean": (lambda lib, a, b: F(lib).kl_div(a, b, reduction="batchmean"), X, POS),
    "kl_div_mean": (lambda lib, a, b: F(lib).kl_div(a, b), X, POS),
    "kl_div_log_target": (lambda lib, a, b: F(lib).kl_div(a, b, reduction="none",
                                                          log_target=True), X, Y),
    "kl_div_sum": (lambda lib, a, b: F(lib).kl_div(a, b, reduction="sum"), X, POS),
    "huber": (lambda lib, a, b: F(lib).huber_loss(a, b, delta=0.7), X, Y),
    "huber_weight_sum": (lambda lib, a, b, w: F(lib).huber_loss(a, b, reduction="sum",
                                                                 weight=w), X, Y, POS),
    "huber_none": (lambda lib, a, b: F(lib).huber_loss(a, b, reduction="none"), X, Y),
    "mse_weight": (lambda lib, a, b, w: F(lib).mse_loss(a, b, weight=w), X, Y, POS),
    "l1_weight_none": (lambda lib, a, b, w: F(lib).l1_loss(a, b, weight=w, reduction="none"),
                       X, Y, POS),
    "l1_weight_mean": (lambda lib, a, b, w: F(lib).l1_loss(a, b, weight=w), X, Y, POS),
    "soft_margin": (lambda lib, a: F(lib).soft_margin_loss(a, _const(lib, SIGN)), X),
    "soft_margin_none": (lambda lib, a: F(lib).soft_margin_loss(a, _const(lib, SIGN),
                                                                reduction="none"), X),
    "multilabel_soft_margin": (lambda lib, a, w: F(lib).multilabel_soft_margin_loss(
        a, _const(lib, (SIGN > 0).astype(np.float32)), weight=w), X, W5),
    "multilabel_soft_margin_none": (lambda lib, a, b: F(lib).multilabel_soft_margin_loss(
        a, b, reduction="none"), X, POS),
    "multi_margin": (lambda lib, a, t: F(lib).multi_margin_loss(a, t), X, CLS),
    "multi_margin_p2_weight": (lambda lib, a, t: F(lib).multi_margin_loss(
        a, t, p=2, margin=0.5, weight=_const(lib, W5), reduction="none"), X, CLS),
    "multi_margin_sum": (lambda lib, a, t: F(lib).multi_margin_loss(a, t, reduction="sum"),
                         X, CLS),
    "multi_margin_vector": (lambda lib, a, t: F(lib).multi_margin_loss(a, t, reduction="none"),
                            X[0], CLS[:1]),
    "multilabel_margin": (lambda lib, a, t: F(lib).multilabel_margin_loss(a, t), X, LABELS),
    "multilabel_margin_none": (lambda lib, a, t: F(lib).multilabel_margin_loss(
        a, t, reduction="none"), X, LABELS),
    "multilabel_margin_vector": (lambda lib, a, t: F(lib).multilabel_margin_loss(
        a, t, reduction="sum"), X[0], LABELS[0]),
    "margin_ranking": (lambda lib, a, b: F(lib).margin_ranking_loss(
        a, b, _const(lib, SIGN[:, 0]), margin=0.3), X[:, 0], Y[:, 0]),
    "margin_ranking_none": (lambda lib, a, b: F(lib).margin_ranking_loss(
        a, b, _const(lib, SIGN), reduction="none"), X, Y),
    "hinge_embedding": (lambda lib, a: F(lib).hinge_embedding_loss(
        a, _const(lib, SIGN), margin=0.5, reduction="sum"), X),
    "hinge_embedding_mean": (lambda lib, a: F(lib).hinge_embedding_loss(a, _const(lib, SIGN)),
                             X),
    "cosine_embedding": (lambda lib, a, b: F(lib).cosine_embedding_loss(
        a, b, _const(lib, SIGN[:, 0]), margin=0.1, reduction="none"), X, Y),
    "cosine_embedding_mean": (lambda lib, a, b: F(lib).cosine_embedding_loss(
        a, b, _const(lib, SIGN[:, 0])), X, Y),
    "cosine_embedding_vector": (lambda lib, a, b: F(lib).cosine_embedding_loss(
        a, b, _const(lib, np.ones((), np.float32))), X[0], Y[0]),
    "triplet": (lambda lib, a, p, n: F(lib).triplet_margin_loss(a, p, n, margin=2.0), X, Y, POS),
    "triplet_swap_p1": (lambda lib, a, p, n: F(lib).triplet_margin_loss(
        a, p, n, p=1, swap=True, reduction="none"), X, Y, POS),
    "triplet_with_distance": (lambda lib, a, p, n: F(lib).triplet_margin_with_distance_loss(
        a, p, n, distance_function=lambda u, v: 1 - F(lib).cosine_similarity(u, v), swap=True),
        X, Y, POS),
    "triplet_with_default_distance": (lambda lib, a, p, n: F(lib).triplet_margin_with_distance_loss(
        a, p, n, reduction="sum"), X, Y, POS),
    "poisson_nll": (lambda lib, a, b: F(lib).poisson_nll_loss(a, b), X, POS * 3),
    "poisson_nll_full": (lambda lib, a, b: F(lib).poisson_nll_loss(
        a, b, log_input=False, full=True, reduction="none"), POS, POS * 4),
    "gaussian_nll": (lambda lib, a, b, v: F(lib).gaussian_nll_loss(a, b, v), X, Y, POS),
    "gaussian_nll_full_eps": (lambda lib, a, b, v: F(lib).gaussian_nll_loss(
        a, b, v, full=True, eps=0.3, reduction="none"), X, Y, POS[:, 0]),
    "gaussian_nll_broadcast_var": (lambda lib, a, b, v: F(lib).gaussian_nll_loss(
        a, b, v, reduction="sum"), X, Y, POS[:, :1]),
    "gaussian_nll_float_var": (lambda lib, a, b: F(lib).gaussian_nll_loss(a, b, 0.5), X, Y),
    "pairwise_distance": (lambda lib, a, b: F(lib).pairwise_distance(a, b), X, Y),
    "pairwise_distance_p3_keepdim": (lambda lib, a, b: lib.pairwise_distance(
        a, b, p=3, keepdim=True), X, Y),
    "pairwise_distance_vector": (lambda lib, a, b: F(lib).pairwise_distance(a, b, p=1),
                                 X[0], Y[0]),
    "pairwise_distance_broadcast": (lambda lib, a, b: lib.pairwise_distance(a, b), X, Y[0]),
    "pdist": (lambda lib, a: F(lib).pdist(a), X),
    "pdist_p1": (lambda lib, a: lib.pdist(a, p=1), X),
    "pdist_inf": (lambda lib, a: lib.pdist(a, p=float("inf")), X),
    "cosine_similarity": (lambda lib, a, b: lib.cosine_similarity(a, b, dim=0), X, Y),
    # The losses that existed before: weight, ignore_index, label_smoothing, probabilities.
    "cross_entropy_weight_ignore_smoothing": (lambda lib, a, t: F(lib).cross_entropy(
        a, t, weight=_const(lib, W5), label_smoothing=0.2), X, np.array([1, -100, 4, 0])),
    "cross_entropy_none_smoothing": (lambda lib, a, t: F(lib).cross_entropy(
        a, t, weight=_const(lib, W5), label_smoothing=0.2, reduction="none"), X, CLS),
    "cross_entropy_4d_sum": (lambda lib, a, t: F(lib).cross_entropy(
        a, t, weight=_const(lib, W5), label_smoothing=0.1, reduction="sum"), X4, CLS4),
    "cross_entropy_4d_ignore_index": (lambda lib, a, t: F(lib).cross_entropy(
        a, t, ignore_index=3), X4, CLS4.clip(0)),
    "cross_entropy_probabilities": (lambda lib, a, t: F(lib).cross_entropy(
        a, t.softmax(1), weight=_const(lib, W5), label_smoothing=0.3), X, Y),
    "cross_entropy_probabilities_none": (lambda lib, a, t: F(lib).cross_entropy(
        a, t.softmax(1), reduction="none"), X, Y),
    "cross_entropy_unbatched": (lambda lib, a, t: F(lib).cross_entropy(
        a, t, label_smoothing=0.1), X[0], np.array(2)),
    "nll_weight_ignore": (lambda lib, a, t: F(lib).nll_loss(
        a, t, weight=_const(lib, W5)), X, np.array([1, -100, 4, 0])),
    "nll_4d_none": (lambda lib, a, t: F(lib).nll_loss(
        a, t, weight=_const(lib, W5), reduction="none"), X4, CLS4.clip(0)),
    "nll_ignore_sum": (lambda lib, a, t: F(lib).nll_loss(a, t, ignore_index=1, reduction="sum"),
                       X, CLS),
}
ON_CPU = {"kl_div_batchmean", "multilabel_margin", "multi_margin_p2_weight", "triplet",
          "gaussian_nll", "pdist", "cosine_embedding"}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_function_matches_pytorch(name):
    fn, *inputs = FUNCTIONS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # kl_div's 'mean' warning, on both sides
        check_function(fn, *inputs, rtol=1e-5, atol=1e-6,
                       modes=("cpu", "interpreter") if name in ON_CPU else ("interpreter",))


MODULES = [
    (lambda lib: lib.nn.KLDivLoss(reduction="batchmean"), X, POS),
    (lambda lib: lib.nn.KLDivLoss(reduction="sum", log_target=True), X, Y),
    (lambda lib: lib.nn.HuberLoss(delta=0.5), X, Y),
    (lambda lib: lib.nn.MultiLabelSoftMarginLoss(weight=lib.tensor(W5)), X, POS),
    (lambda lib: lib.nn.MultiMarginLoss(p=2, margin=0.7, weight=lib.tensor(W5)), X, CLS),
    (lambda lib: lib.nn.MultiLabelMarginLoss(), X, LABELS),
    (lambda lib: lib.nn.HingeEmbeddingLoss(margin=2.0), X, SIGN),
    (lambda lib: lib.nn.TripletMarginLoss(margin=0.5, p=1, swap=True), X, Y, POS),
    (lambda lib: lib.nn.TripletMarginWithDistanceLoss(margin=0.5), X, Y, POS),
    (lambda lib: lib.nn.PoissonNLLLoss(log_input=False, full=True), POS, POS * 4),
    (lambda lib: lib.nn.GaussianNLLLoss(full=True), X, Y, POS),
    (lambda lib: lib.nn.PairwiseDistance(p=1.5, keepdim=True), X, Y),
    (lambda lib: lib.nn.CosineSimilarity(dim=0, eps=1e-6), X, Y),
]


@pytest.mark.parametrize("case", range(len(MODULES)))
def test_module_matches_pytorch(case):
    make, *inputs = MODULES[case]
    check_module(make, *inputs, modes=("interpreter",))


def test_modules_with_targets_pytorch_does_not_differentiate():
    """SoftMarginLoss, MarginRankingLoss and CosineEmbeddingLoss take +-1 targets."""
    for make, inputs, target in [(lambda lib: lib.nn.SoftMarginLoss(reduction="sum"), [X], SIGN),
                                 (lambda lib: lib.nn.MarginRankingLoss(margin=0.2), [X, Y], SIGN),
                                 (lambda lib: lib.nn.CosineEmbeddingLoss(margin=0.3), [X, Y],
                                  SIGN[:, 0])]:
        check_module(make, *inputs, modes=("interpreter",),
                     forward=lambda m, *xs, t=target: m(*xs, _target(xs[0], t)))


def _target(like, array):
    lib = torch if isinstance(like, torch.Tensor) else graphc
    return lib.tensor(array)


LOSS_NAMES = ["kl_div", "huber_loss", "soft_margin_loss", "multilabel_soft_margin_loss",
              "multi_margin_loss", "multilabel_margin_loss", "margin_ranking_loss",
              "hinge_embedding_loss", "cosine_embedding_loss", "triplet_margin_loss",
              "triplet_margin_with_distance_loss", "poisson_nll_loss", "gaussian_nll_loss",
              "l1_loss", "mse_loss", "smooth_l1_loss", "nll_loss", "cross_entropy",
              "binary_cross_entropy", "binary_cross_entropy_with_logits", "ctc_loss"]
MODULE_NAMES = ["KLDivLoss", "HuberLoss", "SoftMarginLoss", "MultiLabelSoftMarginLoss",
                "MultiMarginLoss", "MultiLabelMarginLoss", "MarginRankingLoss",
                "HingeEmbeddingLoss", "CosineEmbeddingLoss", "TripletMarginLoss",
                "TripletMarginWithDistanceLoss", "PoissonNLLLoss", "GaussianNLLLoss",
                "CTCLoss", "PairwiseDistance", "CosineSimilarity"]


def _signature(fn):
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_functional_signature_is_pytorchs(name):
    assert _signature(getattr(graphc.nn.functional, name)) == \
        _signature(getattr(torch.nn.functional, name))


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_module_signature_repr_and_attributes_are_pytorchs(name):
    t, g = getattr(torch.nn, name), getattr(graphc.nn, name)
    assert _signature(g) == _signature(t)
    assert repr(g()) == repr(t())
    def attributes(module):
        return {k: v for k, v in vars(module).items() if not k.startswith("_")}
    assert attributes(g()) == attributes(t())


def test_legacy_size_average_and_reduce():
    for size_average, reduce in [(False, None), (None, False), (True, True)]:
        with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
            got = graphc.nn.functional.soft_margin_loss(
                graphc.tensor(X), graphc.tensor(SIGN), size_average=size_average, reduce=reduce)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = torch.nn.functional.soft_margin_loss(
                torch.tensor(X), torch.tensor(SIGN), size_average=size_average, reduce=reduce)
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = graphc.nn.functional.nll_loss(graphc.tensor(X), graphc.tensor(CLS), None, False)
        want = torch.nn.functional.nll_loss(torch.tensor(X), torch.tensor(CLS), None, False)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)


def test_kl_div_mean_warns_as_pytorch():
    with pytest.warns(UserWarning, match="'batchmean' divides only by the batch size"):
        graphc.nn.functional.kl_div(graphc.tensor(X), graphc.tensor(POS))


def test_kl_div_zero_target_contributes_zero():
    target = POS.copy()
    target[0, :2] = 0
    check_function(lambda lib, a, t: lib.nn.functional.kl_div(a, t, reduction="sum"), X, target,
                   grad=False, modes=())


ERRORS = [
    lambda lib: F(lib).multi_margin_loss(lib.tensor(X), lib.tensor(CLS), p=3),
    lambda lib: F(lib).multi_margin_loss(lib.tensor(X), lib.tensor(CLS),
                                         weight=lib.ones(5, 1)),
    lambda lib: F(lib).triplet_margin_loss(lib.tensor(X), lib.tensor(Y), lib.tensor(POS),
                                           margin=0),
    lambda lib: F(lib).triplet_margin_with_distance_loss(lib.tensor(X), lib.tensor(Y),
                                                         lib.tensor(POS), reduction="avg"),
    lambda lib: F(lib).triplet_margin_with_distance_loss(lib.tensor(X), lib.tensor(Y),
                                                         lib.tensor(POS[0])),
    lambda lib: F(lib).margin_ranking_loss(lib.tensor(X), lib.tensor(Y), lib.tensor(SIGN[0])),
    lambda lib: F(lib).gaussian_nll_loss(lib.tensor(X), lib.tensor(Y), lib.tensor(POS[:2])),
    lambda lib: F(lib).gaussian_nll_loss(lib.tensor(X), lib.tensor(Y), lib.tensor(-POS)),
    lambda lib: F(lib).gaussian_nll_loss(lib.tensor(X), lib.tensor(Y), -1.0),
    lambda lib: F(lib).gaussian_nll_loss(lib.tensor(X), lib.tensor(Y), 1.0, reduction="avg"),
    lambda lib: F(lib).poisson_nll_loss(lib.tensor(X), lib.tensor(Y), reduction="avg"),
    lambda lib: F(lib).huber_loss(lib.tensor(X), lib.tensor(Y), weight=lib.ones(5)),
    lambda lib: F(lib).mse_loss(lib.tensor(X), lib.tensor(Y), weight=lib.ones(5)),
    lambda lib: F(lib).pdist(lib.tensor(X[0])),
    lambda lib: F(lib).pdist(lib.tensor(X), p=-1),
    lambda lib: lib.nn.MultiMarginLoss(p=3),
    lambda lib: lib.nn.MultiMarginLoss(weight=lib.ones(5, 1)),
    lambda lib: lib.nn.TripletMarginLoss(margin=-1),
    lambda lib: lib.nn.TripletMarginWithDistanceLoss(margin=0),
]


@pytest.mark.parametrize("case", range(len(ERRORS)))
def test_errors_match_pytorch(case):
    with pytest.raises(Exception) as want:
        ERRORS[case](torch)
    with pytest.raises(type(want.value)) as got:
        ERRORS[case](graphc)
    assert str(got.value).replace("graphc.", "torch.") == str(want.value)


# ---- CTC ---------------------------------------------------------------------------------------
LOGITS = rng.standard_normal((7, 3, 5)).astype(np.float32)
PADDED = np.array([[1, 2, 2, 3], [3, 1, 0, 0], [4, 4, 4, 0]])
IN_LENS, TG_LENS = [7, 5, 6], [4, 2, 1]
CONCATENATED = np.concatenate([PADDED[i, :n] for i, n in enumerate(TG_LENS)])
LOG_PROBS = (LOGITS - np.log(np.exp(LOGITS).sum(2, keepdims=True))).astype(np.float32)

CTC = {
    "mean": (lambda lib, a: F(lib).ctc_loss(a.log_softmax(2), lib.tensor(PADDED),
                                            lib.tensor(IN_LENS), lib.tensor(TG_LENS)), LOGITS),
    "none_sequence_lengths": (lambda lib, a: F(lib).ctc_loss(
        a.log_softmax(2), lib.tensor(PADDED), tuple(IN_LENS), tuple(TG_LENS),
        reduction="none"), LOGITS),
    "sum_blank_2_concatenated_targets": (lambda lib, a: F(lib).ctc_loss(
        a.log_softmax(2), lib.tensor(CONCATENATED) % 5, IN_LENS, TG_LENS, blank=2,
        reduction="sum"), LOGITS),
    # PyTorch's gradient with respect to the log-probabilities themselves.
    "log_probs_gradient": (lambda lib, a: F(lib).ctc_loss(
        a, lib.tensor(PADDED), lib.tensor(IN_LENS), lib.tensor(TG_LENS), reduction="sum"),
        LOG_PROBS),
    "unbatched": (lambda lib, a: F(lib).ctc_loss(a.log_softmax(1), lib.tensor(PADDED[0]),
                                                 lib.tensor(7), lib.tensor(4), reduction="none"),
                  LOGITS[:, 0]),
    "impossible_zero_infinity": (lambda lib, a: F(lib).ctc_loss(
        a.log_softmax(2), lib.tensor(PADDED), lib.tensor([3, 5, 6]), lib.tensor(TG_LENS),
        reduction="none", zero_infinity=True), LOGITS),
    "empty_target": (lambda lib, a: F(lib).ctc_loss(
        a.log_softmax(2), lib.tensor(PADDED), lib.tensor(IN_LENS), lib.tensor([4, 0, 1]),
        reduction="none"), LOGITS),
    "module": (lambda lib, a: lib.nn.CTCLoss(reduction="sum", zero_infinity=True)(
        a.log_softmax(2), lib.tensor(PADDED), lib.tensor(IN_LENS), lib.tensor(TG_LENS)),
        LOGITS),
}


@pytest.mark.parametrize("name", sorted(CTC))
def test_ctc_loss_matches_pytorch(name):
    fn, logits = CTC[name]
    check_function(fn, logits, modes=("cpu", "interpreter") if name == "mean" else
                   ("interpreter",))


def test_ctc_loss_impossible_alignment_is_inf():
    def loss(lib):
        return F(lib).ctc_loss(lib.tensor(LOGITS).log_softmax(2), lib.tensor(PADDED),
                               lib.tensor([3, 5, 6]), lib.tensor(TG_LENS), reduction="none")
    np.testing.assert_allclose(loss(graphc).numpy(), loss(torch).numpy(), rtol=1e-5)
    assert np.isinf(loss(graphc).numpy()[0])


def test_ctc_loss_concatenated_targets_are_a_graph_break():
    step = graphc.compile(lambda lp, t: F(graphc).ctc_loss(lp, t, IN_LENS, TG_LENS),
                          fullgraph=True)
    with pytest.raises(graphc.GraphBreak, match="ctc_loss with 1-D concatenated targets"):
        step(graphc.tensor(LOG_PROBS), graphc.tensor(CONCATENATED))
