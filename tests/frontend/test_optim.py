"""graphc.optim against the update formulas written out in numpy, and against parameter
values produced by PyTorch 2.13 for the same inputs (hard-coded below)."""
import io
import math

import numpy as np
import pytest

import graphc
from graphc import optim
from graphc.optim import lr_scheduler
from graphc.serialization import load, save

P0 = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -0.25]])
GRADS = [np.array([[0.5, -1.0, 2.0], [0.1, 0.0, -0.3]]),
         np.array([[-0.2, 0.4, 1.0], [0.3, -0.5, 0.0]]),
         np.array([[1.5, 0.1, -0.7], [-0.2, 0.25, 0.6]]),
         np.array([[0.05, -0.8, 0.3], [0.9, -0.1, -0.4]])]


# ---- the update rules, written out independently in float64 numpy -----------------------
def _decayed(g, p, o):
    g = -g if o.get("maximize") else g
    return g + o.get("weight_decay", 0) * p


def ref_sgd(p, grads, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False,
            maximize=False):
    o = dict(weight_decay=weight_decay, maximize=maximize)
    buf, out = None, []
    for g in grads:
        g = _decayed(g, p, o)
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
        out.append(p)
    return out


def ref_adam(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
             amsgrad=False, decoupled=False):
    b1, b2 = betas
    m, v, vmax, out = 0 * p, 0 * p, 0 * p, []
    for t, g in enumerate(grads, 1):
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        vhat = (vmax if amsgrad else v) / (1 - b2 ** t)
        p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(vhat) + eps)
        out.append(p)
    return out


def ref_rmsprop(p, grads, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                centered=False):
    v, mean, buf, out = 0 * p, 0 * p, 0 * p, []
    for g in grads:
        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        mean = alpha * mean + (1 - alpha) * g
        denom = np.sqrt(v - mean ** 2 if centered else v) + eps
        if momentum:
            buf = momentum * buf + g / denom
            p = p - lr * buf
        else:
            p = p - lr * g / denom
        out.append(p)
    return out


def ref_adagrad(p, grads, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                eps=1e-10):
    acc, out = np.full_like(p, initial_accumulator_value), []
    for t, g in enumerate(grads, 1):
        g = g + weight_decay * p
        acc = acc + g * g
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(acc) + eps)
        out.append(p)
    return out


def ref_adamw(p, grads, weight_decay=1e-2, **kw):
    return ref_adam(p, grads, weight_decay=weight_decay, decoupled=True, **kw)


REFERENCES = {"SGD": ref_sgd, "Adam": ref_adam, "AdamW": ref_adamw, "RMSprop": ref_rmsprop,
              "Adagrad": ref_adagrad}

# (optimizer, options, final float64 parameter after the four GRADS steps in PyTorch 2.13)
CASES = [
    ("SGD", dict(lr=0.1), [0.815, -1.87, 0.24, -0.11, 3.035, -0.24]),
    ("SGD", dict(lr=0.1, momentum=0.9),
     [0.59225, -1.7035, -0.3558, -0.16769, 3.098, -0.22083]),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1),
     [0.61583, -1.69876, -0.339, -0.15436, 3.0882, -0.21343]),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
     [0.343409125126, -1.382727250252, -0.5412998935695, -0.256562165979, 2.764852651063,
      -0.18810577106825]),
    ("SGD", dict(lr=0.1, momentum=0.5, maximize=True),
     [1.28875, -2.1825, 0.975, 0.13125, 2.94, -0.25625]),
    ("Adam", dict(lr=0.1),
     [0.7378503626776542, -1.7965432302022715, 0.20938208654409873, -0.2793395603688075,
      3.1259554051308123, -0.11113886111133812]),
    ("Adam", dict(lr=0.1, weight_decay=0.1),
     [0.7083876249069212, -1.7359821974109912, 0.2054983299181029, -0.27312466788536777,
      2.7680839792736567, -0.10010186872933673]),
    ("Adam", dict(lr=0.1, betas=(0.5, 0.9), amsgrad=True),
     [0.7491948154606539, -1.8332157539212635, 0.28050933966164143, -0.2868828441442827,
      3.1103393870442044, -0.1607699501446061]),
    ("Adam", dict(lr=0.1, betas=(0.3, 0.9)),
     [0.7555038783758339, -1.8448671823784646, 0.3181665755700997, -0.29618285763980357,
      3.101614782439021, -0.17934432351974997]),
    ("AdamW", dict(lr=0.1),
     [0.7342942954361578, -1.788944698425376, 0.2079207883537587, -0.27883060548198074,
      3.1138017761501198, -0.11054000139412301]),
    ("AdamW", dict(lr=0.1, weight_decay=0.1, amsgrad=True),
     [0.7027961828393754, -1.7216000009609955, 0.19500183901913676, -0.2742851725275508,
      3.006033962525109, -0.10528418932838657]),
    ("RMSprop", dict(lr=0.01),
     [0.8399272441383986, -1.8866184620552906, 0.3723541122848179, -0.23371158709890544,
      3.072862582336983, -0.18814112916713555]),
    ("RMSprop", dict(lr=0.01, centered=True),
     [0.838856319704657, -1.8859025356838204, 0.37150882457705015, -0.23549571771563058,
      3.073355808829138, -0.18772707155241927]),
    ("RMSprop", dict(lr=0.01, momentum=0.9),
     [0.5750143135269552, -1.7148998306296572, 0.07878273951681007, -0.5916203594680293,
      3.2034513624390284, -0.024900317283393925]),
    ("RMSprop", dict(lr=0.01, alpha=0.9, centered=True, momentum=0.5, weight_decay=0.1),
     [0.8963246601549991, -1.9195568564258954, 0.41805979804614624, -0.12362013912641157,
      2.9168600564533382, -0.208303407080826]),
    ("Adagrad", dict(lr=0.1),
     [0.8398849606559469, -1.8869205392161745, 0.3724538997405902, -0.23375413298504244,
      3.072887658561416, -0.18822796715339057]),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1, weight_decay=0.1, initial_accumulator_value=0.5),
     [0.8680490846245844, -1.8775982251778758, 0.37794262391221417, -0.0851383151764221,
      2.921807946582246, -0.22466916597963413]),
]
CASE_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for name, kw, _ in CASES]


def _run(name, kw, dtype=graphc.float64, grads=GRADS):
    p = graphc.tensor(P0, dtype=dtype, requires_grad=True)
    opt = getattr(optim, name)([p], **kw)
    trajectory = []
    for g in grads:
        p.grad = graphc.tensor(g, dtype=dtype)
        opt.step()
        trajectory.append(p.detach().numpy().copy())
    return p, opt, trajectory


@pytest.mark.parametrize("name,kw,torch_final", CASES, ids=CASE_IDS)
def test_update_matches_formula_and_pytorch(name, kw, torch_final):
    _, _, trajectory = _run(name, kw)
    expected = REFERENCES[name](P0, GRADS, **kw)
    for step, (got, want) in enumerate(zip(trajectory, expected)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=f"step {step}")
    np.testing.assert_allclose(trajectory[-1].ravel(), torch_final, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name,kw,torch_final", CASES, ids=CASE_IDS)
def test_float32_update_stays_float32(name, kw, torch_final):
    p, opt, trajectory = _run(name, kw, dtype=graphc.float32)
    assert p.dtype == graphc.float32 and trajectory[-1].dtype == np.float32
    for state in opt.state.values():
        for key, value in state.items():
            assert value.dtype == graphc.float32, key
    np.testing.assert_allclose(trajectory[-1].ravel(), torch_final, rtol=0, atol=5e-7)


def test_step_updates_in_place_and_bumps_version():
    p = graphc.tensor(P0, requires_grad=True)
    storage, version = p._data, p._version[0]
    opt = optim.Adam([p], lr=0.1)
    p.grad = graphc.ones(2, 3)
    opt.step()
    assert p._data is storage and p._version[0] == version + 1
    assert p.is_leaf and p.requires_grad and p.grad_fn is None


def test_step_between_forward_and_backward_is_caught_by_autograd():
    w = graphc.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    w.grad = graphc.ones(2)
    optim.SGD([w], lr=0.1).step()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_params_without_grad_are_skipped():
    p = graphc.tensor([1.0, 2.0], requires_grad=True)
    q = graphc.tensor([3.0], requires_grad=True)
    opt = optim.Adam([p, q], lr=0.1)
    p.grad = graphc.tensor([1.0, -1.0])
    opt.step()
    assert q.tolist() == [3.0] and q not in opt.state
    assert list(opt.state_dict()["state"]) == [0]
    np.testing.assert_allclose(p.detach().numpy(), [0.9, 2.1], rtol=1e-6)


def test_sgd_without_momentum_keeps_no_state():
    p = graphc.tensor([1.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.5)
    p.grad = graphc.tensor([2.0])
    opt.step()
    assert p.tolist() == [0.0]
    assert opt.state_dict()["state"] == {}


def test_grad_is_not_modified_by_weight_decay_or_maximize():
    p = graphc.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.5, maximize=True)
    p.grad = graphc.tensor([1.0, 1.0])
    opt.step()
    opt.step()
    assert p.grad.tolist() == [1.0, 1.0]


def test_zero_grad_sets_none_by_default():
    p = graphc.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    (p * 3).sum().backward()
    opt.zero_grad()
    assert p.grad is None


def test_zero_grad_without_set_to_none_zeroes_in_place():
    p = graphc.tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    (p * 3).sum().backward()
    grad = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is grad and grad.tolist() == [0.0, 0.0]
    (p * 2).sum().backward()
    assert p.grad.tolist() == [2.0, 2.0]


def test_closure_runs_with_grad_enabled_and_returns_loss():
    p = graphc.tensor([3.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with graphc.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 9.0 and p.tolist() == [1.5]


def test_training_linear_regression_with_autograd():
    """Autograd's gradients drive the optimizer: the trajectory is full-batch gradient
    descent with momentum on the mean squared error, computed here by hand."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3
    Xt, yt = graphc.tensor(X, dtype=graphc.float64), graphc.tensor(y, dtype=graphc.float64)
    w = graphc.zeros(3, dtype=graphc.float64, requires_grad=True)
    b = graphc.zeros(1, dtype=graphc.float64, requires_grad=True)
    opt = optim.SGD([w, b], lr=0.1, momentum=0.9)
    wr, br, bufs = np.zeros(3), np.zeros(1), None
    for _ in range(60):
        opt.zero_grad()
        loss = ((Xt @ w + b - yt) ** 2).mean()
        loss.backward()
        opt.step()
        r = X @ wr + br - y
        grads = [2 * X.T @ r / len(y), np.array([2 * r.mean()])]
        bufs = grads if bufs is None else [0.9 * m + g for m, g in zip(bufs, grads)]
        wr, br = wr - 0.1 * bufs[0], br - 0.1 * bufs[1]
    np.testing.assert_allclose(w.detach().numpy(), wr, rtol=1e-10)
    np.testing.assert_allclose(b.detach().numpy(), br, rtol=1e-10)
    assert ((X @ wr + br - y) ** 2).mean() < 1e-3 * (y ** 2).mean()


# ---- parameter groups -------------------------------------------------------------------
def test_param_groups_take_defaults_and_per_group_options():
    p, q = graphc.ones(2, requires_grad=True), graphc.ones(1, requires_grad=True)
    opt = optim.SGD([{"params": [p]}, {"params": q, "lr": 1.0}], lr=0.1, momentum=0.5)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0]
    assert all(g["momentum"] == 0.5 for g in opt.param_groups)
    assert opt.param_groups[1]["params"][0] is q
    p.grad, q.grad = graphc.ones(2), graphc.ones(1)
    opt.step()
    np.testing.assert_allclose(p.detach().numpy(), [0.9, 0.9])
    np.testing.assert_allclose(q.detach().numpy(), [0.0])


def test_add_param_group():
    p, q = graphc.ones(1, requires_grad=True), graphc.ones(1, requires_grad=True)
    opt = optim.Adagrad([p], lr=0.1)
    opt.add_param_group({"params": [q], "lr": 0.5})
    assert opt.param_groups[1]["lr_decay"] == 0 and opt.param_groups[1]["lr"] == 0.5
    assert opt.state[q]["sum"].tolist() == [0.0]
    q.grad = graphc.tensor([2.0])
    opt.step()
    np.testing.assert_allclose(q.detach().numpy(), [0.5], rtol=1e-6)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [p]})


def test_named_parameters_are_accepted():
    p = graphc.ones(1, requires_grad=True)
    opt = optim.SGD([("w", p)], lr=0.1)
    assert opt.param_groups[0]["params"] == [p]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["w"]


@pytest.mark.parametrize("params,error,match", [
    ([], ValueError, "empty parameter list"),
    (graphc.ones(1), TypeError, "iterable of Tensors or dicts, but got graphc.FloatTensor"),
    ([1.0], TypeError, "can only optimize Tensors, but one of the params is float"),
    ({graphc.ones(1)}, TypeError, "ordered collections"),
])
def test_bad_params(params, error, match):
    with pytest.raises(error, match=match):
        optim.SGD([{"params": params}] if isinstance(params, set) else params, lr=0.1)


def test_non_leaf_cannot_be_optimized():
    x = graphc.ones(2, requires_grad=True) * 2
    with pytest.raises(ValueError, match="can't optimize a non-leaf Tensor"):
        optim.SGD([x], lr=0.1)


@pytest.mark.parametrize("make,match", [
    (lambda p: optim.SGD(p, lr=-1), "Invalid learning rate: -1"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "Nesterov momentum requires"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.9)), "Invalid beta parameter at index 0: 1.0"),
    (lambda p: optim.RMSprop(p, alpha=-0.5), "Invalid alpha value: -0.5"),
    (lambda p: optim.Adagrad(p, eps=-1), "Invalid epsilon value: -1"),
    (lambda p: optim.Adam(p, differentiable=True), "differentiable=True"),
])
def test_invalid_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make([graphc.ones(1, requires_grad=True)])


def test_repr_matches_pytorch():
    opt = optim.SGD([graphc.ones(1, requires_grad=True)], lr=0.01, momentum=0.9)
    assert repr(opt) == ("SGD (\nParameter Group 0\n    dampening: 0\n"
                         "    differentiable: False\n    foreach: None\n    fused: None\n"
                         "    lr: 0.01\n    maximize: False\n    momentum: 0.9\n"
                         "    nesterov: False\n    weight_decay: 0\n)")


# ---- state dicts ------------------------------------------------------------------------
def test_state_dict_layout_matches_pytorch():
    p, q = graphc.ones(2, requires_grad=True), graphc.ones(1, requires_grad=True)
    opt = optim.Adam([{"params": [p]}, {"params": [q], "lr": 0.5}], lr=0.1)
    p.grad = graphc.ones(2)
    opt.step()
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert list(sd["state"]) == [0]
    assert list(sd["state"][0]) == ["step", "exp_avg", "exp_avg_sq"]
    step = sd["state"][0]["step"]
    assert step.dtype == graphc.float32 and step.dim() == 0 and step.item() == 2.0
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1]]
    assert list(sd["param_groups"][0]) == [
        "lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach", "capturable",
        "differentiable", "fused", "decoupled_weight_decay", "params"]
    assert sd["param_groups"][1]["lr"] == 0.5 and sd["param_groups"][0]["betas"] == (0.9, 0.999)


def test_adagrad_state_exists_from_construction():
    sd = optim.Adagrad([graphc.ones(2, requires_grad=True)], initial_accumulator_value=0.25
                       ).state_dict()
    assert sd["state"][0]["step"].item() == 0.0
    assert sd["state"][0]["sum"].tolist() == [0.25, 0.25]


def _roundtrip(obj):
    buffer = io.BytesIO()
    save(obj, buffer)
    buffer.seek(0)
    return load(buffer)


@pytest.mark.parametrize("name,kw", [
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("Adam", dict(lr=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.1)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01)),
])
def test_state_dict_round_trip_resumes_identically(name, kw):
    _, _, straight = _run(name, kw)
    first, opt, _ = _run(name, kw, grads=GRADS[:2])
    saved = _roundtrip(opt.state_dict())
    resumed = graphc.tensor(first.detach().numpy(), dtype=graphc.float64, requires_grad=True)
    opt2 = getattr(optim, name)([resumed], lr=123.0)
    opt2.load_state_dict(saved)
    assert opt2.param_groups[0]["lr"] == kw["lr"] and opt2.param_groups[0]["params"] == [resumed]
    for g in GRADS[2:]:
        resumed.grad = graphc.tensor(g, dtype=graphc.float64)
        opt2.step()
    np.testing.assert_array_equal(resumed.detach().numpy(), straight[-1])


def test_load_state_dict_casts_floating_state_to_param_dtype():
    p = graphc.ones(2, dtype=graphc.float64, requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    state = {"state": {0: {"momentum_buffer": graphc.tensor([1.0, 2.0])}},
             "param_groups": [dict(opt.state_dict()["param_groups"][0])]}
    opt.load_state_dict(state)
    assert opt.state[p]["momentum_buffer"].dtype == graphc.float64


def test_load_state_dict_rejects_mismatched_groups():
    p, q = graphc.ones(1, requires_grad=True), graphc.ones(1, requires_grad=True)
    sd = optim.SGD([p, q], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        optim.SGD([p], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.SGD([{"params": [p]}, {"params": [q]}], lr=0.1).load_state_dict(sd)


def test_adamw_stays_decoupled_after_loading_adam_state():
    p = graphc.ones(1, requires_grad=True)
    sd = optim.Adam([p], lr=0.1).state_dict()
    opt = optim.AdamW([p], lr=0.1)
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["decoupled_weight_decay"] is True


# ---- schedulers (expected values printed by PyTorch 2.13) -------------------------------
def _schedule(make, epochs):
    p, q = graphc.zeros(1, requires_grad=True), graphc.zeros(1, requires_grad=True)
    opt = optim.SGD([{"params": [p]}, {"params": [q], "lr": 0.5}], lr=0.1)
    sched = make(opt)
    lrs = [sched.get_last_lr()]
    for _ in range(epochs):
        opt.step()
        sched.step()
        lrs.append(sched.get_last_lr())
        assert [g["lr"] for g in opt.param_groups] == lrs[-1]
    return lrs


def test_step_lr_schedule():
    lrs = _schedule(lambda o: lr_scheduler.StepLR(o, step_size=3, gamma=0.5), 10)
    assert lrs == [[0.1, 0.5]] * 3 + [[0.05, 0.25]] * 3 + [[0.025, 0.125]] * 3 + \
        [[0.0125, 0.0625]] * 2


def test_multistep_lr_schedule():
    lrs = _schedule(lambda o: lr_scheduler.MultiStepLR(o, [2, 5, 5, 8], 0.1), 10)
    sched = lr_scheduler.MultiStepLR(optim.SGD([graphc.zeros(1, requires_grad=True)], lr=1),
                                     [2, 5, 5, 8])
    assert _roundtrip(sched.state_dict())["milestones"] == {2: 1, 5: 2, 8: 1}
    assert lrs == [[0.1, 0.5]] * 2 + [[0.010000000000000002, 0.05]] * 3 + \
        [[0.00010000000000000005, 0.0005000000000000001]] * 3 + \
        [[1.0000000000000006e-05, 5.0000000000000016e-05]] * 3


def test_exponential_lr_schedule():
    lrs = _schedule(lambda o: lr_scheduler.ExponentialLR(o, 0.9), 4)
    assert lrs == [[0.1, 0.5], [0.09000000000000001, 0.45], [0.08100000000000002, 0.405],
                   [0.07290000000000002, 0.36450000000000005],
                   [0.06561000000000002, 0.32805000000000006]]


def test_lambda_lr_schedule():
    lrs = _schedule(lambda o: lr_scheduler.LambdaLR(o, lambda e: 1 / (e + 1)), 4)
    assert lrs == [[0.1, 0.5], [0.05, 0.25], [0.03333333333333333, 0.16666666666666666],
                   [0.025, 0.125], [0.020000000000000004, 0.1]]
    lrs = _schedule(lambda o: lr_scheduler.LambdaLR(o, [lambda e: 0.5 ** e, lambda e: e]), 3)
    assert lrs == [[0.1, 0.0], [0.05, 0.5], [0.025, 1.0], [0.0125, 1.5]]


def test_scheduler_records_initial_lr_and_state_dict():
    opt = optim.SGD([graphc.zeros(1, requires_grad=True)], lr=0.1)
    sched = lr_scheduler.StepLR(opt, 3, 0.5)
    for _ in range(7):
        sched.step()
    assert opt.param_groups[0]["initial_lr"] == 0.1
    sd = sched.state_dict()
    assert "optimizer" not in sd
    assert (sd["step_size"], sd["gamma"], sd["base_lrs"], sd["last_epoch"],
            sd["_last_lr"]) == (3, 0.5, [0.1], 7, [0.025])
    fresh = lr_scheduler.StepLR(optim.SGD([graphc.zeros(1, requires_grad=True)], lr=0.1), 3)
    fresh.load_state_dict(_roundtrip(sd))
    assert fresh.last_epoch == 7 and fresh.gamma == 0.5 and fresh.get_last_lr() == [0.025]


def test_scheduler_step_with_epoch_uses_closed_form():
    opt = optim.SGD([graphc.zeros(1, requires_grad=True)], lr=0.1)
    sched = lr_scheduler.StepLR(opt, 3, 0.5)
    with pytest.warns(UserWarning, match="epoch parameter"):
        sched.step(7)
    assert sched.get_last_lr() == [0.025] and sched.last_epoch == 7


def test_scheduler_resume_needs_initial_lr():
    opt = optim.SGD([graphc.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(opt, 3, last_epoch=4)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        lr_scheduler.StepLR("sgd", 3)


def test_lambda_lr_state_dict_keeps_callable_objects_attributes():
    class Warmup:
        def __init__(self, steps):
            self.steps = steps

        def __call__(self, epoch):
            return min(1.0, (epoch + 1) / self.steps)

    opt = optim.SGD([graphc.zeros(1, requires_grad=True)], lr=1.0)
    sched = lr_scheduler.LambdaLR(opt, Warmup(4))
    sd = sched.state_dict()
    assert sd["lr_lambdas"] == [{"steps": 4}]
    other = lr_scheduler.LambdaLR(optim.SGD([graphc.zeros(1, requires_grad=True)], lr=1.0),
                                  Warmup(10))
    other.load_state_dict(sd)
    assert other.lr_lambdas[0].steps == 4
    assert math.isclose(other.get_lr()[0], 0.25)
