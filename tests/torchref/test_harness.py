"""The differential harness itself, on layers and functions graphc has had from the start:
it passes where graphc agrees with PyTorch and fails where it does not."""
import numpy as np
import pytest

from harness import check_function, check_module, check_optimizer

rng = np.random.default_rng(0)


def test_linear_module_matches():
    check_module(lambda lib: lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.Tanh()),
                 rng.standard_normal((5, 3)).astype(np.float32))


def test_function_matches():
    check_function(lambda lib, a, b: (a * b).exp().sum(1), rng.standard_normal((2, 3)),
                   rng.standard_normal((2, 3)))


def test_optimizer_matches():
    check_optimizer(lambda lib, ps: lib.optim.Adam(ps, lr=0.01),
                    make_sched=lambda lib, o: lib.optim.lr_scheduler.StepLR(o, 2, 0.5))


def test_a_wrong_function_fails():
    with pytest.raises(AssertionError):
        check_function(lambda lib, a: a * 2 if lib.__name__ == "torch" else a * 2.001,
                       rng.standard_normal(3), modes=())
