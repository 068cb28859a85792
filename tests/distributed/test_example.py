"""examples/ddp_digits.py run for real, the way its docstring says: ``mpiexec -n 2`` and
``-n 1``, eager and ``--compile``, and plain ``python`` (a world of 1), one epoch each.
Each run must exit 0 and print rank 0's summary line with the world size and a test
accuracy above a floor (one epoch of the MLP reaches 0.88-0.91 over seeds 0-3; 0.9022 with
seed 0, the default).  One process and two train on the same global batches, so their
losses and accuracies agree.

The jobs are launched by test_mpi.py's ``run`` (skipped without mpi4py/mpiexec, as there).
"""
import functools
import re

import pytest

from examples_loader import EXAMPLES
from test_mpi import needs_mpi, run

pytest.importorskip("sklearn")
pytest.importorskip("tqdm")

# ``run`` joins its worker to tests/distributed/workers; an absolute path replaces that.
SCRIPT = str(EXAMPLES / "ddp_digits.py")
ACCURACY_FLOOR = 0.85
SUMMARY = re.compile(r"^ddp_digits: world size (\d+), mlp( compiled)?, 1 epoch, batch 64 "
                     r"\((\d+) per rank\), loss ([\d.]+), test accuracy ([\d.]+), "
                     r"([\d.]+) s$", re.M)


@functools.lru_cache(maxsize=None)
def summary(n, compiled):
    """Runs the example on n ranks (None: plain python); its summary as a dict."""
    rc, out, seconds = run(n, SCRIPT, "--epochs", "1", "--quiet",
                           *(["--compile"] if compiled else []), timeout=120)
    assert rc == 0, out
    lines = SUMMARY.findall(out)
    assert len(lines) == 1, out             # rank 0 alone prints it
    world, comp, per_rank, loss, acc, _ = lines[0]
    return {"world": int(world), "compiled": bool(comp), "per_rank": int(per_rank),
            "loss": float(loss), "accuracy": float(acc), "output": out}


@needs_mpi
@pytest.mark.slow
@pytest.mark.parametrize("n, compiled", [(2, False), (2, True), (1, False), (1, True),
                                         (None, False)])
def test_ddp_digits_trains_on_n_ranks(n, compiled):
    result = summary(n, compiled)
    assert result["world"] == (n or 1)
    assert result["compiled"] == compiled
    assert result["per_rank"] == 64 // (n or 1)
    assert result["accuracy"] >= ACCURACY_FLOOR, result["output"]
    assert 0 < result["loss"] < 2.0, result["output"]


@needs_mpi
@pytest.mark.slow
def test_one_rank_and_two_train_on_the_same_batches():
    one, two = summary(1, False), summary(2, False)
    assert two["loss"] == pytest.approx(one["loss"], abs=2e-4)
    assert abs(two["accuracy"] - one["accuracy"]) <= 1 / 450 + 1e-9    # 450 test images
    assert summary(2, True)["loss"] == pytest.approx(two["loss"], abs=2e-4)
