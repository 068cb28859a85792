"""Values kept on the device between calls (``graphc.residency`` and the cuda runtime), on
the stand-in driver of ``test_cuda`` (device memory is host memory, kernels run on the
emulator, and the driver counts the bytes each transfer moves).

A compiled training step moves only its batch in and what the host reads out; every host
read, write, view and ``.numpy()`` array sees what it would without the device.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import graphc
from graphc import nn, residency
from cuda_samples import F32, _train
from residency_training import assert_same_history, batch, train_with_host_interactions, training

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.mark.slow
def test_a_compiled_training_step_moves_only_its_batch(fake_gpu):
    model, opt, step = training("cuda")
    for i in range(3):                     # eager first Adam step, then trace + compile
        loss = step(*batch(i))
    up, down = fake_gpu.uploaded, fake_gpu.downloaded
    # Adam's lr, betas and eps are runtime inputs (a scheduler may change them): 8 bytes each.
    (program,) = step.programs()
    hyperparameters = sum(type(s).__name__ == "NumberInput" for s in program.capture.sources)
    assert hyperparameters == 4
    for i in range(3, 6):
        x, y = batch(i)
        loss = step(x, y)
        assert fake_gpu.uploaded - up == x.numel() * 4 + y.numel() * 8 + hyperparameters * 8
        # The kernels' error flag, and the last step's loss: still referenced (by
        # ``loss``) when this call overwrote its buffer.
        assert fake_gpu.downloaded - down == 8 + 4
        up, down = fake_gpu.uploaded, fake_gpu.downloaded
    assert step.compile_count == 1
    float(loss)                                         # reading the loss downloads it
    assert fake_gpu.downloaded - down == 4
    # Parameters and Adam's state stayed on the device: each moved device to device.
    assert fake_gpu.copied > 0


def test_host_reads_and_writes_between_steps_see_the_device_values(fake_gpu):
    """The same training with the same host interactions, on the device and on the
    interpreter: every value the host sees is equal."""
    assert_same_history(train_with_host_interactions("cuda"),
                        train_with_host_interactions("interpreter"))


def test_a_second_program_reads_parameters_from_the_first(fake_gpu):
    model, opt, step = training("cuda")
    for i in range(4):
        step(*batch(i))
    assert all(residency.find(p._array).pending for p in model.parameters())
    model.eval()
    evaluate = graphc.compile(model, backend="cuda")
    x, _ = batch(9)
    up, down = fake_gpu.uploaded, fake_gpu.downloaded
    with graphc.no_grad():
        out = evaluate(x)
    assert fake_gpu.uploaded - up == x.numel() * 4     # parameters came device to device
    assert fake_gpu.downloaded - down == 8             # the error record's code
    with graphc.no_grad():
        expected = model(x).numpy()                    # eager: brings the parameters home
    assert all(residency.find(p._array) is None for p in model.parameters())
    np.testing.assert_allclose(out.numpy(), expected, **F32)


def test_outputs_kept_alive_survive_the_next_call(fake_gpu):
    double = graphc.compile(lambda x: x * 2, backend="cuda")
    xs = [graphc.full((5,), float(i)) for i in range(3)]
    outs = [double(x) for x in xs]          # each call overwrites the last one's buffer
    for i, out in enumerate(outs):
        np.testing.assert_array_equal(out.numpy(), np.full(5, 2.0 * i, np.float32))


def test_saving_mid_training_saves_the_current_values(fake_gpu, tmp_path):
    def run(backend, path):
        model, opt, step = training(backend)
        for i in range(4):
            step(*batch(i))
        graphc.save(model.state_dict(), path)
        for i in range(4, 6):
            step(*batch(i))
        return graphc.load(path)
    got = run("cuda", tmp_path / "device.pt")
    expected = run("interpreter", tmp_path / "host.pt")
    for k in expected:
        np.testing.assert_allclose(got[k].numpy(), expected[k].numpy(), **F32)


def test_compiled_forward_with_eager_backward_and_optimizer(fake_gpu):
    def make():
        return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    x, target = batch(0)
    expected_losses, expected = _train(make, x, target, "interpreter", steps=4)
    losses, params = _train(make, x, target, "cuda", steps=4)
    np.testing.assert_allclose(losses, expected_losses, **F32)
    for p, e in zip(params, expected, strict=True):
        np.testing.assert_allclose(p, e, rtol=1e-5, atol=1e-5)


# ---- the bookkeeping itself ----------------------------------------------------------------
class _Owner:
    """A device owner whose 'device buffer' is a host array."""

    def __init__(self, value):
        self.value = np.asarray(value, np.float32)
        self.downloads = 0

    def download(self, copy, array):
        self.downloads += 1
        np.copyto(array, self.value)


def _pending(owner, shape=(4,)):
    a = np.empty(shape, np.float32)
    residency.place(a, residency.DeviceCopy(owner, "out", 0, pending=True))
    return a


def test_a_host_access_downloads_a_pending_value_once_and_forgets_the_copy():
    owner = _Owner([1, 2, 3, 4])
    t = graphc.Tensor._wrap(_pending(owner), graphc.float32)
    assert t.shape == (4,) and t.dim() == 1 and owner.downloads == 0    # metadata only
    view = t[1:]
    assert owner.downloads == 1 and residency.find(t._array) is None
    np.testing.assert_array_equal(view.numpy(), [2, 3, 4])
    t.sum()
    assert owner.downloads == 1


def test_write_backs_take_over_a_pending_copy_or_fall_back_to_copying():
    owner = _Owner([5, 6, 7, 8])
    dest = np.zeros(4, np.float32)
    residency.assign(dest, _pending(owner))            # a whole storage: nothing moves
    assert owner.downloads == 0 and residency.find(dest).owner is owner
    residency.claim(dest)
    np.testing.assert_array_equal(dest, [5, 6, 7, 8])
    base = np.zeros(8, np.float32)
    residency.assign(base[2:6], _pending(owner))       # a view: downloaded and copied
    np.testing.assert_array_equal(base, [0, 0, 5, 6, 7, 8, 0, 0])
    assert residency.find(base) is None


def test_arrays_handed_out_never_stay_on_a_device():
    t = graphc.zeros(3)
    assert residency.can_stay_on_device(t._array)
    np.asarray(t)
    assert not residency.can_stay_on_device(t._array)
    shared = np.zeros(3, np.float32)
    assert not residency.can_stay_on_device(graphc.from_numpy(shared)._array)
    assert not residency.can_stay_on_device(graphc.zeros(4)[1:]._array)     # a view
    assert not residency.can_stay_on_device(graphc.zeros(0)._array)        # empty


# ---- random interleavings of device calls and host uses --------------------------------------
ACTIONS = ["step", "read", "write", "evaluate", "view", "escaped", "bump", "same_twice"]


def interleaving(backend, actions) -> list:
    """Run ``actions`` (names from ACTIONS) on a fresh model; returns what the host saw."""
    model, opt, step = training(backend)
    w = model[0].weight
    row, escaped = w.detach()[2], w.detach().numpy()
    evaluate = graphc.compile(model, backend=backend)
    acc = graphc.ones(4)
    bump = graphc.compile(lambda a: a.mul_(2).add_(1).sum(), backend=backend)
    both = graphc.compile(lambda a, b: a * 2 + b, backend=backend)
    seen = []
    for i, action in enumerate(actions):
        if action == "step":
            seen.append(step(*batch(i)))
        elif action == "read":
            seen.append(w.sum().item())
        elif action == "write":
            with graphc.no_grad():
                w.mul_(0.9)
        elif action == "evaluate":
            with graphc.no_grad():
                seen.append(evaluate(batch(i)[0]))
        elif action == "view":
            seen.append(row.numpy().copy())
        elif action == "escaped":
            seen.append(escaped.copy())
        elif action == "bump":
            seen.append(bump(acc))
        elif action == "same_twice":
            seen.append(both(acc, acc))
    seen += [acc] + list(model.parameters())
    return [np.array(s.detach().numpy()) if isinstance(s, graphc.Tensor) else s for s in seen]


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])   # the driver is stateless
@given(st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=12))
def test_random_interleavings_see_what_the_interpreter_sees(fake_gpu, actions):
    assert_same_history(interleaving("cuda", actions), interleaving("interpreter", actions))
