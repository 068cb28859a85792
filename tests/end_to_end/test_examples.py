"""End to end: every example trains to the result its docstring promises.

Each example's ``main()`` runs with small settings, and each script runs once from the
command line the way the README tells people to run it.
"""
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import graphc
from examples_loader import EXAMPLES, load_example

ROOT = Path(__file__).resolve().parents[2]


def test_two_layer_backprop_gradients_agree_with_autograd():
    example = load_example("two_layer_backprop")
    graphc.manual_seed(1)
    x, y = graphc.randn(8, 20), graphc.randn(8, 3)
    w1, w2 = graphc.randn(20, 6), graphc.randn(6, 3)
    hand_loss, g1, g2 = example.hand_written_gradients(x, y, w1, w2)
    auto_loss, a1, a2 = example.autograd_gradients(
        x, y, w1.clone().requires_grad_(), w2.clone().requires_grad_())
    assert hand_loss == pytest.approx(auto_loss, rel=1e-6)
    for hand, auto in [(g1, a1), (g2, a2)]:
        scale = np.abs(hand.numpy()).max()
        np.testing.assert_allclose(auto.numpy(), hand.numpy(), rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.slow
def test_two_layer_backprop_trains_both_ways_in_step():
    result = load_example("two_layer_backprop").main(steps=200, quiet=True)
    hand, auto = result["hand_losses"], result["autograd_losses"]
    assert result["grad_error"] < 1e-4
    np.testing.assert_allclose(auto, hand, rtol=1e-4)
    assert hand[-1] < 1e-5 * hand[0]


@pytest.mark.slow
def test_regression_adam_loss_drops_by_orders_of_magnitude():
    losses = load_example("regression_adam").main(steps=300, quiet=True)["losses"]
    assert len(losses) == 300
    assert losses[-1] < 1e-3 * losses[0]
    assert max(losses[200:]) < 1e-2 * losses[0]


@pytest.mark.slow
def test_quadrants_all_three_ways_fit():
    accuracies = load_example("quadrants").main(quiet=True)
    assert set(accuracies) == {"raw", "module", "sequential"}
    for way, accuracy in accuracies.items():
        assert accuracy >= 0.9, way


def test_quadrants_data_and_raw_network_shapes():
    example = load_example("quadrants")
    graphc.manual_seed(0)
    X, labels, Y = example.make_data(per_quadrant=5)
    assert X.shape == (20, 2) and labels.tolist() == [q for q in range(4) for _ in range(5)]
    np.testing.assert_array_equal(Y.numpy(), np.eye(4, dtype=np.float32)[labels.numpy()])
    # With noise 0.4 around (+-1, +-1) about 99% of points lie in their own quadrant.
    signs = np.sign(X.numpy())
    expected = np.sign(np.array(example.CENTERS))[labels.numpy()]
    assert (signs == expected).all(axis=1).mean() >= 0.9
    params = example.raw_parameters()
    assert [tuple(p.shape) for p in params] == [(2, 3), (3,), (3, 3), (3,), (3, 4), (4,)]
    assert example.raw_forward(params, X).shape == (20, 4)


@pytest.mark.slow
def test_digits_mlp_and_cnn_accuracy():
    pytest.importorskip("sklearn")
    accuracies = load_example("digits").main(epochs=20, cnn_epochs=3, quiet=True)
    assert accuracies["mlp"] >= 0.95
    assert accuracies["cnn"] >= 0.9


@pytest.mark.slow
def test_demo_trains_and_compiled_run_matches_eager(caplog):
    """The demo compiles its whole training step into one program (no graph break, one
    compile), and that program trains exactly as eager does."""
    pytest.importorskip("sklearn")
    with warnings.catch_warnings(record=True) as caught, \
            caplog.at_level(logging.DEBUG, logger="graphc.guards"):
        warnings.simplefilter("always")
        result = load_example("demo").main(epochs=3, quiet=True)
    assert not [w for w in caught if "running eagerly" in str(w.message)]
    assert [r.message.split(":")[0] for r in caplog.records
            if r.name == "graphc.guards"] == ["step"]
    eager = result["eager"]
    assert len(eager["losses"]) == 3 and eager["losses"][-1] < eager["losses"][0]
    assert eager["accuracy"] >= 0.9
    assert eager["ms_per_step"] > 0
    compiled = result["compiled"]
    np.testing.assert_allclose(compiled["losses"], eager["losses"], rtol=1e-3)
    assert compiled["accuracy"] == pytest.approx(eager["accuracy"], abs=0.01)
    assert result["speedup"] == pytest.approx(eager["ms_per_step"] / compiled["ms_per_step"])


def _compiled_matches_eager(result, rtol):
    """Both runs started from the same weights on the same batches: same losses."""
    eager, compiled = result["eager"]["losses"], result["compiled"]["losses"]
    np.testing.assert_allclose(compiled, eager, rtol=rtol)
    return eager


def test_gpt_learns_and_compiled_matches_eager():
    pytest.importorskip("sklearn")
    result = load_example("gpt").main(steps=40, batch_size=8, block_size=16, width=32,
                                      layers=1, sample_tokens=20, quiet=True)
    losses = _compiled_matches_eager(result, rtol=1e-3)
    assert losses[0] > 4.0 and np.mean(losses[-5:]) < 3.5     # from ln(85) = 4.44
    assert result["sample"].startswith("The data set ") and len(result["sample"]) == 33


def test_char_lstm_learns_and_compiled_matches_eager():
    pytest.importorskip("sklearn")
    result = load_example("char_lstm").main(steps=30, batch_size=8, block_size=8, width=32,
                                            sample_tokens=20, quiet=True)
    losses = _compiled_matches_eager(result, rtol=1e-3)
    assert np.mean(losses[-5:]) < losses[0] - 0.8
    assert len(result["sample"]) == 33


def test_mnist_cnn_with_adadelta_and_steplr():
    pytest.importorskip("sklearn")
    result = load_example("mnist_cnn").main(epochs=2, quiet=True)
    for mode in ("eager", "compiled"):      # dropout draws differ: each must learn
        assert result[mode]["losses"][-1] < result[mode]["losses"][0]
        assert result[mode]["accuracy"] >= 0.85, mode


@pytest.mark.slow
@pytest.mark.parametrize("script, args", [
    ("two_layer_backprop.py", ["--steps", "3"]),
    ("regression_adam.py", ["--steps", "3"]),
    ("quadrants.py", ["--epochs", "100"]),
    ("digits.py", ["--epochs", "1", "--cnn-epochs", "1"]),
    ("demo.py", ["--epochs", "2"]),
    ("gpt.py", ["--steps", "3"]),
    ("char_lstm.py", ["--steps", "3", "--mode", "eager"]),   # compiled: the test above
    ("mnist_cnn.py", ["--epochs", "1"]),
])
def test_example_runs_as_a_script(script, args):
    if script in ("digits.py", "demo.py", "gpt.py", "char_lstm.py", "mnist_cnn.py"):
        pytest.importorskip("sklearn")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    done = subprocess.run([sys.executable, str(EXAMPLES / script), *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "loss" in done.stdout or "accuracy" in done.stdout
