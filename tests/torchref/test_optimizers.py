"""graphc.optim, optim.lr_scheduler and optim.swa_utils against PyTorch: every optimizer
and scheduler, eagerly and with the optimizer step compiled (``check_optimizer``), plus
defaults, errors, state dicts (resuming from PyTorch's) and learning-rate histories.
(Not test_optim.py: tests/frontend has one, and test basenames must be unique.)"""
import warnings

import numpy as np
import pytest

import graphc
from harness import assert_close, check_optimizer, to_numpy, torch

# ---- optimizers -----------------------------------------------------------------------------------
OPTIMIZERS = {
    "sgd_momentum_dampening_maximize": lambda lib, ps: lib.optim.SGD(
        ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01, maximize=True),
    "sgd_nesterov": lambda lib, ps: lib.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    "adam_amsgrad": lambda lib, ps: lib.optim.Adam(ps, lr=0.01, amsgrad=True, weight_decay=0.1),
    "adamw_maximize": lambda lib, ps: lib.optim.AdamW(ps, lr=0.01, amsgrad=True, maximize=True),
    "adam_decoupled_weight_decay": lambda lib, ps: lib.optim.Adam(
        ps, lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
    "rmsprop_maximize": lambda lib, ps: lib.optim.RMSprop(ps, lr=0.01, maximize=True),
    "adagrad_maximize": lambda lib, ps: lib.optim.Adagrad(ps, lr=0.1, maximize=True, eps=1e-3),
    "rmsprop_centered_momentum": lambda lib, ps: lib.optim.RMSprop(
        ps, lr=0.01, centered=True, momentum=0.5, weight_decay=0.1),
    "adagrad_lr_decay": lambda lib, ps: lib.optim.Adagrad(
        ps, lr=0.1, lr_decay=0.1, initial_accumulator_value=0.5, weight_decay=0.1),
    "adadelta": lambda lib, ps: lib.optim.Adadelta(ps, lr=0.5, weight_decay=0.1),
    "adadelta_maximize": lambda lib, ps: lib.optim.Adadelta(ps, rho=0.5, maximize=True),
    "adamax": lambda lib, ps: lib.optim.Adamax(ps, lr=0.01, weight_decay=0.1),
    "adamax_maximize": lambda lib, ps: lib.optim.Adamax(ps, betas=(0.5, 0.9), maximize=True),
    "nadam": lambda lib, ps: lib.optim.NAdam(ps, lr=0.01, weight_decay=0.1,
                                             momentum_decay=0.1),
    "nadamw_maximize": lambda lib, ps: lib.optim.NAdam(
        ps, lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
    "radam": lambda lib, ps: lib.optim.RAdam(ps, lr=0.01, weight_decay=0.1),
    # beta2 = 0.5 makes rho_t cross 5 within the steps, switching on the adaptive step.
    "radamw_rectified": lambda lib, ps: lib.optim.RAdam(
        ps, lr=0.01, betas=(0.9, 0.5), weight_decay=0.1, decoupled_weight_decay=True),
    "asgd": lambda lib, ps: lib.optim.ASGD(ps, lr=0.05, lambd=0.1, t0=2, weight_decay=0.1),
    "asgd_maximize": lambda lib, ps: lib.optim.ASGD(ps, maximize=True),
    "rprop": lambda lib, ps: lib.optim.Rprop(ps, lr=0.05, step_sizes=(1e-3, 0.08)),
    "rprop_maximize": lambda lib, ps: lib.optim.Rprop(ps, etas=(0.3, 1.5), maximize=True),
    "adafactor": lambda lib, ps: lib.optim.Adafactor(ps),
    "adafactor_options": lambda lib, ps: lib.optim.Adafactor(
        ps, lr=0.5, beta2_decay=-0.5, eps=(1e-3, 1e-2), d=1.5, weight_decay=0.1, maximize=True),
}
GROUPED = {"sgd_nesterov", "adam_amsgrad", "adadelta", "adamax", "nadam", "radam", "asgd",
           "rprop", "adafactor_options"}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_matches_pytorch(name):
    check_optimizer(OPTIMIZERS[name], steps=5, groups=name in GROUPED)


@pytest.mark.parametrize("kw", [dict(lr=0.5, max_iter=4, history_size=3),
                                dict(lr=1, max_iter=5, history_size=3,
                                     line_search_fn="strong_wolfe"),
                                dict(lr=1, max_iter=3, max_eval=4, tolerance_grad=1e-3,
                                     tolerance_change=1e-4, line_search_fn="strong_wolfe")])
def test_lbfgs_matches_pytorch(kw):
    # Near convergence the line search amplifies float32 rounding of the loss itself.
    check_optimizer(lambda lib, ps: lib.optim.LBFGS(ps, **kw), steps=4, modes=(),
                    rtol=1e-4, atol=1e-5)


def test_lbfgs_step_is_a_graph_break():
    w = graphc.ones(3, requires_grad=True)
    opt = graphc.optim.LBFGS([w])

    def closure():
        opt.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss

    step = graphc.compile(lambda: opt.step(closure), fullgraph=True)
    with pytest.raises(graphc.GraphBreak, match="LBFGS.step"):
        step()
    lenient = graphc.compile(lambda: opt.step(closure))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lenient()       # runs eagerly
    np.testing.assert_allclose(to_numpy(w), np.zeros(3), atol=1e-6)


def test_lbfgs_needs_one_group_and_a_known_line_search():
    groups = [{"params": [graphc.ones(2, requires_grad=True)]},
              {"params": [graphc.ones(2, requires_grad=True)]}]
    with pytest.raises(ValueError, match="per-parameter options"):
        graphc.optim.LBFGS(groups)
    w = graphc.ones(2, requires_grad=True)
    opt = graphc.optim.LBFGS([w], line_search_fn="backtracking")

    def closure():
        opt.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="only 'strong_wolfe' is supported"):
        opt.step(closure)


def test_sparse_adam_is_refused_pointing_to_adam():
    from graphc.unsupported import REFUSED
    assert "torch.optim.SparseAdam" in REFUSED
    with pytest.raises(NotImplementedError, match=r"SparseAdam.*Instead: graphc.optim.Adam"):
        graphc.optim.SparseAdam([graphc.zeros(2, requires_grad=True)])


NAMES = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam",
         "ASGD", "Rprop", "LBFGS", "Adafactor", "Muon"]


@pytest.mark.parametrize("name", NAMES)
def test_defaults_and_repr_match_pytorch(name):
    t = getattr(torch.optim, name)([torch.zeros(2, 2, requires_grad=True)])
    g = getattr(graphc.optim, name)([graphc.zeros(2, 2, requires_grad=True)])
    assert list(g.defaults.items()) == list(t.defaults.items())
    assert repr(g) == repr(t)


BAD = [("SGD", dict(lr=-1)), ("SGD", dict(momentum=-1)), ("SGD", dict(nesterov=True)),
       ("SGD", dict(momentum=0.9, nesterov=True, dampening=0.1)),
       ("Adam", dict(betas=(1.0, 0.9))), ("AdamW", dict(eps=-1)),
       ("RMSprop", dict(alpha=-1)), ("Adagrad", dict(lr_decay=-1)),
       ("Adadelta", dict(lr=-1)), ("Adadelta", dict(rho=1.5)), ("Adadelta", dict(eps=-1)),
       ("Adadelta", dict(weight_decay=-1)), ("Adamax", dict(betas=(0.9, 1.0))),
       ("Adamax", dict(eps=-1)), ("NAdam", dict(momentum_decay=-1)),
       ("NAdam", dict(betas=(-0.1, 0.9))), ("RAdam", dict(weight_decay=-1)),
       ("RAdam", dict(lr=-1)), ("ASGD", dict(lr=-1)), ("ASGD", dict(weight_decay=-1)),
       ("Rprop", dict(etas=(1.5, 1.2))), ("Rprop", dict(etas=(0.5, 0.9))),
       ("Rprop", dict(lr=-0.1)), ("LBFGS", dict(lr=-1)), ("Adafactor", dict(lr=-1)),
       ("Adafactor", dict(beta2_decay=0.1)), ("Adafactor", dict(eps=(-1, 1e-3))),
       ("Adafactor", dict(eps=(None, -1))), ("Adafactor", dict(d=0.5)),
       ("Adafactor", dict(weight_decay=-1))]


@pytest.mark.parametrize("name, kw", BAD)
def test_bad_hyperparameters_raise_as_pytorch(name, kw):
    with pytest.raises(Exception) as want:
        getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kw)
    with pytest.raises(type(want.value), match=None) as got:
        getattr(graphc.optim, name)([graphc.zeros(2, requires_grad=True)], **kw)
    assert str(got.value).replace("graphc.", "torch.") == str(want.value)


def _to_graphc(value):
    if isinstance(value, torch.Tensor):
        return graphc.tensor(to_numpy(value))
    if isinstance(value, dict):
        return {k: _to_graphc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_graphc(v) for v in value]
    return value


RESUMED = ["adafactor_options", "adadelta", "adamax", "nadamw_maximize", "radamw_rectified", "asgd", "rprop",
           "rmsprop_centered_momentum", "adagrad_lr_decay"]


@pytest.mark.parametrize("name", RESUMED)
def test_resumes_from_pytorch_state_dict(name):
    """PyTorch's state dict, saved after three steps, loads into graphc's optimizer:
    same state tensors (dtype and shape), and the next steps give the same parameters."""
    rng = np.random.default_rng(3)
    w0 = rng.standard_normal((3, 4)).astype(np.float32)
    x = rng.standard_normal((4, 3)).astype(np.float32)

    def run(lib, w, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            ((lib.tensor(x) @ w).sin() ** 2).sum().backward()
            opt.step()

    tw = torch.tensor(w0, requires_grad=True)
    topt = OPTIMIZERS[name](torch, [tw])
    run(torch, tw, topt, 3)
    saved = topt.state_dict()
    gw = graphc.tensor(to_numpy(tw), requires_grad=True)
    gopt = OPTIMIZERS[name](graphc, [gw])
    gopt.load_state_dict(_to_graphc(saved))
    for key, value in saved["state"][0].items():
        assert_close(gopt.state[gw][key], value, 0, 0, f"state {key!r}")
    run(torch, tw, topt, 3)
    run(graphc, gw, gopt, 3)
    assert_close(gw, tw, 1e-5, 1e-6, "parameters after resuming")
    assert list(gopt.state_dict()["param_groups"][0]) == list(topt.state_dict()["param_groups"][0])


def test_compiled_step_follows_schedules_without_recompiling():
    """Hyperparameters a scheduler changes (lr, momentum, beta1) are runtime inputs of
    the compiled step."""
    cases = [(lambda ps: graphc.optim.Adam(ps, lr=0.01),
              lambda o: graphc.optim.lr_scheduler.OneCycleLR(o, 0.1, total_steps=10)),
             (lambda ps: graphc.optim.SGD(ps, lr=0.01, momentum=0.9),
              lambda o: graphc.optim.lr_scheduler.CyclicLR(o, 0.01, 0.1, step_size_up=2)),
             (lambda ps: graphc.optim.NAdam(ps), lambda o: graphc.optim.lr_scheduler.OneCycleLR(
                 o, 0.1, total_steps=10)),
             (lambda ps: graphc.optim.Rprop(ps), lambda o: graphc.optim.lr_scheduler.LinearLR(o)),
             (lambda ps: graphc.optim.ASGD(ps), lambda o: graphc.optim.lr_scheduler.LinearLR(o))]
    for make_opt, make_sched in cases:
        w = graphc.ones(3, requires_grad=True)
        opt = make_opt([w])
        sched = make_sched(opt)

        @graphc.compile(fullgraph=True, backend="interpreter")
        def step():
            opt.zero_grad()
            loss = (w.tanh() ** 2).sum()
            loss.backward()
            opt.step()
            return loss

        for _ in range(8):
            step()
            sched.step()
        assert step.recompiles == 0, type(opt).__name__


# ---- schedulers ---------------------------------------------------------------------------------
def _s(lib):
    return lib.optim.lr_scheduler


SCHEDULERS = {
    "step": lambda lib, o: _s(lib).StepLR(o, 2, 0.5),
    "multistep": lambda lib, o: _s(lib).MultiStepLR(o, [1, 3, 3], 0.3),
    "constant": lambda lib, o: _s(lib).ConstantLR(o, 0.5, 3),
    "linear": lambda lib, o: _s(lib).LinearLR(o, 0.2, 0.9, 4),
    "exponential": lambda lib, o: _s(lib).ExponentialLR(o, 0.8),
    "polynomial": lambda lib, o: _s(lib).PolynomialLR(o, 4, 2.0),
    "cosine": lambda lib, o: _s(lib).CosineAnnealingLR(o, 2, 0.01),
    "warm_restarts": lambda lib, o: _s(lib).CosineAnnealingWarmRestarts(o, 2, 2, 0.01),
    "one_cycle": lambda lib, o: _s(lib).OneCycleLR(o, [0.2, 0.4], total_steps=6),
    "one_cycle_three_phase_linear": lambda lib, o: _s(lib).OneCycleLR(
        o, 0.2, epochs=2, steps_per_epoch=3, three_phase=True, anneal_strategy="linear"),
    "cyclic": lambda lib, o: _s(lib).CyclicLR(o, 0.01, 0.1, step_size_up=2),
    "cyclic_triangular2": lambda lib, o: _s(lib).CyclicLR(
        o, [0.01, 0.02], 0.1, step_size_up=1, step_size_down=2, mode="triangular2"),
    "cyclic_exp_range": lambda lib, o: _s(lib).CyclicLR(
        o, 0.01, 0.1, step_size_up=2, mode="exp_range", gamma=0.9),
    "lambda": lambda lib, o: _s(lib).LambdaLR(o, [lambda e: 0.9 ** e, lambda e: 1 / (e + 1)]),
    "multiplicative": lambda lib, o: _s(lib).MultiplicativeLR(o, lambda e: 0.95),
    "sequential": lambda lib, o: _s(lib).SequentialLR(
        o, [_s(lib).LinearLR(o, 0.1, total_iters=2), _s(lib).CosineAnnealingLR(o, 3)], [2]),
    "chained": lambda lib, o: _s(lib).ChainedScheduler(
        [_s(lib).ConstantLR(o, 0.5, 2), _s(lib).ExponentialLR(o, 0.9)]),
}
MOMENTUM_OPTIMIZER = {  # cyclic schedulers drive momentum (SGD) or beta1 (Adam)
    "one_cycle": lambda lib, ps: lib.optim.SGD(ps, lr=0.1, momentum=0.9),
    "one_cycle_three_phase_linear": lambda lib, ps: lib.optim.Adam(ps),
    "cyclic": lambda lib, ps: lib.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    "cyclic_triangular2": lambda lib, ps: lib.optim.NAdam(ps),
    "cyclic_exp_range": lambda lib, ps: lib.optim.Adamax(ps),
}
COMPILED_ON_CPU = {"one_cycle", "cyclic_triangular2"}


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_scheduler_matches_pytorch(name):
    make_opt = MOMENTUM_OPTIMIZER.get(name, lambda lib, ps: lib.optim.SGD(ps, lr=0.1))
    check_optimizer(make_opt, make_sched=SCHEDULERS[name], steps=6, groups=True,
                    modes=("cpu", "interpreter") if name in COMPILED_ON_CPU else ("interpreter",))


@pytest.mark.parametrize("kw", [dict(patience=1, factor=0.5),
                                dict(mode="max", threshold_mode="abs", patience=0, cooldown=1,
                                     min_lr=[0.02, 0.04], factor=0.5)])
def test_reduce_lr_on_plateau_matches_pytorch(kw):
    check_optimizer(lambda lib, ps: lib.optim.SGD(ps, lr=0.1),
                    make_sched=lambda lib, o: _s(lib).ReduceLROnPlateau(o, **kw), steps=6,
                    groups=True, modes=("interpreter",), sched_step=lambda s, loss: s.step(loss))


def _groups(lib, optimizer="SGD"):
    ps = [lib.zeros(2, requires_grad=True), lib.zeros(2, requires_grad=True)]
    groups = [{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.5}]
    if optimizer == "SGD":
        return lib.optim.SGD(groups, lr=0.1, momentum=0.9)
    return lib.optim.Adam(groups, lr=0.1)


def _history(lib, make, steps=14, optimizer="SGD"):
    """Rates, momenta and betas after each of ``steps`` steps, and the state_dict keys."""
    opt = _groups(lib, optimizer)
    sched = make(lib, opt)

    def record():
        return (sched.get_last_lr(), [g["lr"] for g in opt.param_groups],
                [(g.get("momentum"), g.get("betas")) for g in opt.param_groups])

    history = [record()]
    for _ in range(min(steps, getattr(sched, "total_steps", steps))):   # OneCycleLR ends
        opt.step()
        sched.step()
        history.append(record())
    return history, sorted(sched.state_dict()), sorted(opt.param_groups[0])


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_long_schedule_is_exactly_pytorchs(name, optimizer):
    """Past the end of warmups, cycles and restarts, to the last bit; the state dict
    (private keys included) has PyTorch's keys."""
    if optimizer == "Adam" and name == "cyclic":
        return                  # the same code path as SGD's
    assert _history(graphc, SCHEDULERS[name], optimizer=optimizer) == \
        _history(torch, SCHEDULERS[name], optimizer=optimizer)


def test_nested_sequential_in_chained_is_exactly_pytorchs():
    def make(lib, o):
        return _s(lib).ChainedScheduler([
            _s(lib).SequentialLR(o, [_s(lib).ConstantLR(o, 0.5, 2), _s(lib).StepLR(o, 2)], [3]),
            _s(lib).ExponentialLR(o, 0.9)])
    assert _history(graphc, make) == _history(torch, make)


@pytest.mark.parametrize("name", ["step", "multistep", "constant", "linear", "exponential",
                                  "polynomial", "cosine"])
def test_step_with_epoch_uses_the_closed_form(name):
    def run(lib):
        sched = SCHEDULERS[name](lib, _groups(lib))
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for epoch in [3, 7, 1, 10]:
                sched.step(epoch)
                out.append(sched.get_last_lr())
        return out
    assert run(graphc) == run(torch)


def test_warm_restarts_with_fractional_epochs():
    def run(lib):
        sched = _s(lib).CosineAnnealingWarmRestarts(_groups(lib), 3, 2, 0.01)
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for epoch in [0.5, 1.7, 3.2, 9.9, 25.0, 2.5, 4]:
                sched.step(epoch)
                out.append((sched.get_last_lr(), sched.T_cur, sched.T_i, sched.last_epoch))
        return out
    assert run(graphc) == run(torch)
    with pytest.raises(ValueError, match="Expected non-negative epoch, but got -1"):
        _s(graphc).CosineAnnealingWarmRestarts(_groups(graphc), 3).step(-1)


@pytest.mark.parametrize("kw", [dict(),
                                dict(mode="max", threshold_mode="abs", cooldown=2, patience=1,
                                     min_lr=[0.01, 0.2], factor=0.5),
                                dict(patience=0, eps=0.02, factor=0.5, threshold=0.1)])
def test_reduce_lr_on_plateau_is_exactly_pytorchs(kw):
    def run(lib):
        sched = _s(lib).ReduceLROnPlateau(_groups(lib), **kw)
        out = []
        for metric in [5, 4, 4, 4.1, 3, 3, 3, 3, 6, 2, 2, 2, 2, 2, 2, 1]:
            sched.step(metric)
            out.append((sched.get_last_lr(), sched.num_bad_epochs, sched.cooldown_counter,
                        sched.best, sched.in_cooldown))
        return out, sorted(sched.state_dict())
    assert run(graphc) == run(torch)


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_scheduler_resumes_from_its_state_dict(name):
    def run(lib):
        opt = _groups(lib)
        sched = SCHEDULERS[name](lib, opt)
        for _ in range(3):
            opt.step()
            sched.step()
        resumed_opt = _groups(lib)
        resumed_opt.load_state_dict(opt.state_dict())
        resumed = SCHEDULERS[name](lib, resumed_opt)
        resumed.load_state_dict(sched.state_dict())
        out = []
        for _ in range(3):
            resumed_opt.step()
            resumed.step()
            out.append(resumed.get_last_lr())
        return out
    assert run(graphc) == run(torch)


def test_warnings_match_pytorch():
    def run(lib):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            opt = _groups(lib)
            sched = _s(lib).StepLR(opt, 2)
            sched.step()            # before opt.step()
            sched.get_lr()          # outside step()
            sched.step(3)           # deprecated epoch argument
            opt.step()
            sched.step()
        return [str(w.message) for w in caught]
    assert run(graphc) == run(torch)
    assert len(run(graphc)) == 3


SCHEDULER_ERRORS = [
    lambda lib, o: _s(lib).ConstantLR(o, factor=1.5),
    lambda lib, o: _s(lib).LinearLR(o, start_factor=0),
    lambda lib, o: _s(lib).LinearLR(o, end_factor=1.5),
    lambda lib, o: _s(lib).CosineAnnealingWarmRestarts(o, 0),
    lambda lib, o: _s(lib).CosineAnnealingWarmRestarts(o, 2, T_mult=1.5),
    lambda lib, o: _s(lib).OneCycleLR(o, 0.1),
    lambda lib, o: _s(lib).OneCycleLR(o, 0.1, total_steps=0),
    lambda lib, o: _s(lib).OneCycleLR(o, 0.1, total_steps=5, pct_start=1),
    lambda lib, o: _s(lib).OneCycleLR(o, 0.1, total_steps=5, anneal_strategy="exp"),
    lambda lib, o: _s(lib).OneCycleLR(o, [0.1], total_steps=5),
    lambda lib, o: _s(lib).OneCycleLR(lib.optim.Adagrad(o.param_groups[0]["params"]), 0.1,
                                      total_steps=5),
    lambda lib, o: _s(lib).CyclicLR(o, 0.1, 1.0, mode="square"),
    lambda lib, o: _s(lib).ReduceLROnPlateau(o, factor=1.0),
    lambda lib, o: _s(lib).ReduceLROnPlateau(o, mode="median"),
    lambda lib, o: _s(lib).ReduceLROnPlateau(o, threshold_mode="pct"),
    lambda lib, o: _s(lib).ReduceLROnPlateau(o, min_lr=[0.1]),
    lambda lib, o: _s(lib).LambdaLR(o, [lambda e: 1.0]),
    lambda lib, o: _s(lib).MultiplicativeLR(o, [1.0, 2.0]),
    lambda lib, o: _s(lib).SequentialLR(o, [], []),
    lambda lib, o: _s(lib).SequentialLR(o, [_s(lib).StepLR(o, 2)], [3]),
    lambda lib, o: _s(lib).SequentialLR(o, [_s(lib).ReduceLROnPlateau(o)], []),
    lambda lib, o: _s(lib).ChainedScheduler([]),
    lambda lib, o: _s(lib).ChainedScheduler([_s(lib).StepLR(o, 2), _s(lib).StepLR(_groups(lib), 2)]),
    lambda lib, o: _s(lib).StepLR("not an optimizer", 2),
    lambda lib, o: _s(lib).StepLR(_groups(lib), 2, last_epoch=3),
]


@pytest.mark.parametrize("make", SCHEDULER_ERRORS)
def test_scheduler_errors_match_pytorch(make):
    with pytest.raises(Exception) as want:
        make(torch, _groups(torch))
    with pytest.raises(type(want.value)) as got:
        make(graphc, _groups(graphc))
    if "which is different from" not in str(want.value):   # names the optimizer objects
        assert str(got.value).replace("graphc.", "torch.") == str(want.value)


def test_one_cycle_past_total_steps_raises():
    opt = _groups(graphc)
    sched = _s(graphc).OneCycleLR(opt, 0.1, total_steps=2)
    sched.step()
    sched.step()
    with pytest.raises(ValueError, match="Tried to step 3 times. The specified number of "
                                         "total steps is 2"):
        sched.step()


# ---- Muon ---------------------------------------------------------------------------------------
def _newton_schulz_in_float32(grad, ns_coefficients, ns_steps, eps):
    """PyTorch's Newton-Schulz iteration with float32 in place of its bfloat16."""
    a, b, c = ns_coefficients
    x = grad.float()
    if grad.size(0) > grad.size(1):
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(ns_steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.T if grad.size(0) > grad.size(1) else x


MUON = [dict(lr=0.02), dict(lr=0.02, momentum=0.8, nesterov=False, weight_decay=0.0,
                            adjust_lr_fn="match_rms_adamw", ns_steps=3)]


@pytest.mark.parametrize("kw", MUON)
def test_muon_matches_pytorch_iterating_in_float32(kw, monkeypatch):
    """graphc has no bfloat16: with PyTorch's iteration in float32 too, Muon is exact."""
    import torch.optim._muon
    monkeypatch.setattr(torch.optim._muon, "_zeropower_via_newtonschulz",
                        _newton_schulz_in_float32)
    check_optimizer(lambda lib, ps: lib.optim.Muon([ps[0]], **kw), steps=5)


def test_muon_agrees_with_pytorchs_bfloat16_iteration_to_its_precision():
    check_optimizer(lambda lib, ps: lib.optim.Muon([ps[0]], lr=0.02), steps=5, modes=(),
                    rtol=1e-2, atol=2e-3)


def test_muon_orthogonalizes_tall_matrices_as_pytorch():
    from graphc.optim.muon import _zeropower_via_newtonschulz
    g = np.random.default_rng(5).standard_normal((6, 3)).astype(np.float32)
    coefficients = (3.4445, -4.775, 2.0315)
    assert_close(_zeropower_via_newtonschulz(graphc.tensor(g), coefficients, 5, 1e-7),
                 _newton_schulz_in_float32(torch.tensor(g), coefficients, 5, 1e-7), 1e-5, 1e-6)


def test_muon_rejects_what_pytorch_rejects():
    for kw, params in [(dict(), [graphc.zeros(3, requires_grad=True)]),
                       (dict(lr=-1), [graphc.zeros(2, 2, requires_grad=True)]),
                       (dict(adjust_lr_fn="rms"), [graphc.zeros(2, 2, requires_grad=True)])]:
        with pytest.raises(ValueError) as got:
            graphc.optim.Muon(params, **kw)
        with pytest.raises(ValueError) as want:
            torch.optim.Muon([torch.tensor(p.detach().numpy(), requires_grad=True) for p in params], **kw)
        assert str(got.value).replace("graphc.", "torch.") == str(want.value)


# ---- swa_utils ----------------------------------------------------------------------------------
def _swa_run(lib, make_averaged, steps=4):
    """Train a small model with SGD, folding it into an averaged model after each step;
    the averaged model's state dict at the end, and its output."""
    lib.manual_seed(0)
    rng = np.random.default_rng(7)
    model = lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.BatchNorm1d(4), lib.nn.Linear(4, 2))
    weights = np.random.default_rng(8)
    with lib.no_grad():
        for p in model.parameters():
            p.copy_(lib.tensor(weights.standard_normal(tuple(p.shape)).astype(np.float32)))
    averaged = make_averaged(lib, model)
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        x = lib.tensor(rng.standard_normal((5, 3)).astype(np.float32))
        opt.zero_grad()
        model(x).tanh().sum().backward()
        opt.step()
        averaged.update_parameters(model)
    loader = [(lib.tensor(rng.standard_normal((5, 3)).astype(np.float32)), None)
              for _ in range(3)]
    lib.optim.swa_utils.update_bn(loader, averaged)
    averaged.eval()
    out = averaged(lib.tensor(rng.standard_normal((2, 3)).astype(np.float32)))
    return {k: to_numpy(v) for k, v in averaged.state_dict().items()}, to_numpy(out)


AVERAGED = {
    "swa": lambda lib, m: lib.optim.swa_utils.AveragedModel(m),
    "ema_multi": lambda lib, m: lib.optim.swa_utils.AveragedModel(
        m, multi_avg_fn=lib.optim.swa_utils.get_ema_multi_avg_fn(0.7)),
    "ema_buffers": lambda lib, m: lib.optim.swa_utils.AveragedModel(
        m, avg_fn=lib.optim.swa_utils.get_ema_avg_fn(0.6), use_buffers=True),
    "swa_multi": lambda lib, m: lib.optim.swa_utils.AveragedModel(
        m, multi_avg_fn=lib.optim.swa_utils.get_swa_multi_avg_fn()),
}


@pytest.mark.parametrize("name", sorted(AVERAGED))
def test_averaged_model_and_update_bn_match_pytorch(name):
    (got_state, got_out), (want_state, want_out) = (_swa_run(graphc, AVERAGED[name]),
                                                    _swa_run(torch, AVERAGED[name]))
    assert list(got_state) == list(want_state)
    for key, value in want_state.items():
        assert_close(got_state[key], value, 1e-5, 1e-6, key)
    assert_close(got_out, want_out, 1e-5, 1e-6, "output")


@pytest.mark.parametrize("kw", [dict(swa_lr=0.05), dict(swa_lr=[0.02, 0.2], anneal_epochs=3,
                                                         anneal_strategy="linear"),
                                dict(swa_lr=0.01, anneal_epochs=0)])
def test_swalr_matches_pytorch(kw):
    def make(lib, o):
        return lib.optim.swa_utils.SWALR(o, **kw)
    assert _history(graphc, make) == _history(torch, make)
    check_optimizer(lambda lib, ps: lib.optim.SGD(ps, lr=0.1), make_sched=make, steps=4,
                    groups=True, modes=("interpreter",))


def test_swa_errors_match_pytorch():
    for make in [lambda lib: lib.optim.swa_utils.get_ema_avg_fn(1.5),
                 lambda lib: lib.optim.swa_utils.get_ema_multi_avg_fn(-0.1),
                 lambda lib: lib.optim.swa_utils.SWALR(_groups(lib), 0.1, anneal_strategy="x"),
                 lambda lib: lib.optim.swa_utils.SWALR(_groups(lib), 0.1, anneal_epochs=-1),
                 lambda lib: lib.optim.swa_utils.AveragedModel(
                     lib.nn.Linear(2, 2), avg_fn=lambda *a: None, multi_avg_fn=lambda *a: None)]:
        with pytest.raises(Exception) as want:
            make(torch)
        with pytest.raises(type(want.value)) as got:
            make(graphc)
        assert str(got.value) == str(want.value)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_float64_parameters_match_pytorch_to_double_precision(name):
    """The scalar arithmetic (bias corrections, step sizes) is PyTorch's, to the last
    bits that float64 shows."""
    def run(lib):
        w = lib.tensor(np.linspace(-1, 1, 6).reshape(2, 3), dtype=lib.float64,
                       requires_grad=True)
        opt = OPTIMIZERS[name](lib, [w])
        for _ in range(5):
            opt.zero_grad()
            (w.sin() ** 2).sum().backward()
            opt.step()
        return w, opt.state[w]
    (gw, gstate), (tw, tstate) = run(graphc), run(torch)
    assert_close(gw, tw, 1e-12, 1e-14, "parameters")
    assert list(gstate) == list(tstate)
    for key, value in tstate.items():
        assert_close(gstate[key], value, 1e-12, 1e-14, f"state {key!r}")


@pytest.mark.parametrize("line_search_fn", [None, "strong_wolfe"])
def test_lbfgs_float64_is_exactly_pytorchs(line_search_fn):
    def run(lib):
        w = lib.tensor(np.linspace(-1, 1, 6).reshape(2, 3), dtype=lib.float64,
                       requires_grad=True)
        opt = lib.optim.LBFGS([w], max_iter=10, history_size=3, line_search_fn=line_search_fn)

        def closure():
            opt.zero_grad()
            loss = ((w.sin() - 0.3) ** 2).sum() + (w ** 4).sum() * 0.1
            loss.backward()
            return loss
        for _ in range(3):
            opt.step(closure)
        state = opt.state[w]
        return to_numpy(w), state["func_evals"], state["n_iter"], sorted(state)
    (gw, *gothers), (tw, *tothers) = run(graphc), run(torch)
    assert_close(gw, tw, 1e-14, 1e-15, "parameters")
    assert gothers == tothers


# ---- hooks --------------------------------------------------------------------------------------
def test_hooks_run_as_pytorchs():
    """Step hooks (per optimizer and global, pre and post, removable), state-dict and
    load-state-dict hooks (prepend, replacing the dict) run in PyTorch's order."""
    import importlib

    def run(lib):
        module = importlib.import_module(lib.__name__ + ".optim.optimizer")
        log = []
        w = lib.tensor(np.ones(3, np.float32), requires_grad=True)
        opt = lib.optim.Adam([w], lr=0.1)
        pre = opt.register_step_pre_hook(
            lambda o, args, kwargs: log.append(("pre", type(o).__name__, len(args), kwargs)))
        post = opt.register_step_post_hook(lambda o, args, kwargs: log.append("post"))
        global_pre = module.register_optimizer_step_pre_hook(lambda *a: log.append("global pre"))
        global_post = module.register_optimizer_step_post_hook(lambda *a: log.append("global post"))
        opt.register_state_dict_pre_hook(lambda o: log.append("state_dict pre"))
        opt.register_state_dict_pre_hook(lambda o: log.append("first"), prepend=True)
        opt.register_state_dict_post_hook(lambda o, sd: dict(sd, extra=1))
        opt.register_load_state_dict_pre_hook(lambda o, sd: log.append(sorted(sd)))
        opt.register_load_state_dict_post_hook(lambda o: log.append("loaded"))
        (w ** 2).sum().backward()
        opt.step()
        pre.remove()
        global_pre.remove()
        opt.step(closure=None)
        with post:
            pass
        global_post.remove()
        opt.step()
        state = opt.state_dict()
        log.append(sorted(state))
        opt.load_state_dict({k: v for k, v in state.items() if k != "extra"})
        opt.register_step_pre_hook(lambda o, args, kwargs: 5)
        with pytest.raises(RuntimeError) as bad:
            opt.step()
        log.append(str(bad.value).split(" must ")[1])
        return log, to_numpy(w).tolist()
    assert run(graphc) == run(torch)


def test_step_hooks_of_a_subclass_step_as_pytorchs():
    """A subclass's own ``step`` is wrapped too: calling the (wrapped) parent's step from
    it runs the hooks twice, in PyTorch as here."""
    def run(lib):
        lib.optim.SGD([lib.ones(1, requires_grad=True)], lr=1.0)

        class Halving(lib.optim.SGD):
            def step(self, closure=None):
                for group in self.param_groups:
                    group["lr"] /= 2
                return super().step(closure)

        calls = []
        w = lib.ones(2, requires_grad=True)
        opt = Halving([w], lr=1.0)
        opt.register_step_post_hook(lambda *a: calls.append(1))
        w.sum().backward()
        opt.step()
        return calls, to_numpy(w).tolist()
    assert run(graphc) == run(torch)
