"""graphc.distributed on real MPI processes: ``mpiexec -n 2`` and ``-n 3`` run the workers
in tests/distributed/workers, which check every collective against numpy on every rank
(collectives.py) and inside graphc.compile (compiled.py), train with DistributedDataParallel
against one process, eagerly and compiled (ddp.py), or end
in a fault (faults.py); this side checks how each job ends.  DistributedSampler's indices
are also checked against PyTorch's here, without processes.

Skipped where mpi4py or an ``mpiexec`` is missing (``pip install graphc[distributed]``).
"""
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import graphc as torch
import graphc.distributed as dist

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKERS = os.path.join(ROOT, "tests", "distributed", "workers")
_venv_mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
MPIEXEC = _venv_mpiexec if os.path.exists(_venv_mpiexec) else shutil.which("mpiexec")
HAVE_MPI = importlib.util.find_spec("mpi4py") is not None and MPIEXEC is not None
needs_mpi = pytest.mark.skipif(not HAVE_MPI, reason="needs mpi4py and mpiexec "
                                                    "(pip install graphc[distributed])")


def _launcher() -> str:
    """"mpich" (Hydra's mpiexec), "openmpi", or "" when unknown or absent."""
    if MPIEXEC is None:
        return ""
    text = subprocess.run([MPIEXEC, "--version"], capture_output=True, text=True).stdout
    return "mpich" if "HYDRA" in text else "openmpi" if "Open MPI" in text else ""


LAUNCHER = _launcher()
# Open MPI's mpiexec refuses to run as root without a flag, and more ranks than cores
# without another; MPICH's needs neither.
LAUNCH_FLAGS = (["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
                if LAUNCHER == "openmpi" else [])


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run(n, worker, *args, timeout=120, **env):
    """Run a worker on n ranks (n=None: plain python, a world of 1); (rc, output, seconds)."""
    cmd = [sys.executable, os.path.join(WORKERS, worker), *args]
    if n is not None:
        cmd = [MPIEXEC, *LAUNCH_FLAGS, "-n", str(n)] + cmd
    start = time.monotonic()
    # Its own session, so that a job that hangs is killed whole (mpiexec, its proxy, ranks).
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=_env(**env), start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        raise
    return p.returncode, out, time.monotonic() - start


# ---- no processes launched ---------------------------------------------------------------------
def test_import_graphc_does_not_import_mpi4py():
    code = "import sys, graphc, graphc.distributed as d; d.is_available(); " \
           "print('mpi4py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_env(), check=True).stdout
    assert out.strip() == "False"


def test_calls_before_init_process_group_say_so():
    assert not dist.is_initialized()
    assert dist.is_available() == (importlib.util.find_spec("mpi4py") is not None)
    for call in (lambda: dist.all_reduce(torch.ones(2)), dist.barrier, dist.get_rank,
                 dist.get_world_size, lambda: dist.broadcast(torch.ones(2), 0),
                 lambda: dist.send(torch.ones(2), 1), dist.destroy_process_group,
                 lambda: torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(1, 1)),
                 lambda: torch.utils.data.DistributedSampler(range(4))):
        with pytest.raises(ValueError, match="Default process group has not been initialized, "
                                             "please make sure to call init_process_group."):
            call()


def test_init_arguments_refused_before_mpi_starts():
    with pytest.raises(RuntimeError, match="doesn't have NCCL built in"):
        dist.init_process_group("nccl")
    with pytest.raises(ValueError, match="only None or 'env://'"):
        dist.init_process_group("mpi", init_method="tcp://localhost:23456")
    with pytest.raises(TypeError, match="timedelta"):
        dist.init_process_group("mpi", timeout=5)
    assert dist.ReduceOp.SUM == 0 and dist.ReduceOp.AVG.name == "AVG"
    assert issubclass(dist.DistBackendError, dist.DistError)
    assert issubclass(dist.DistError, RuntimeError)


# ---- one process without a launcher, and launchers' environment ------------------------------
@needs_mpi
@pytest.mark.slow
def test_a_process_alone_is_a_world_of_one():
    rc, out, _ = run(None, "collectives.py")
    assert rc == 0 and "rank 0 ok" in out, out


@needs_mpi
@pytest.mark.slow
def test_numbers_that_disagree_with_mpi_are_refused():
    # One process alone is rank 0 of 1 to MPI; each stated number below says otherwise.
    code = """if True:
        import os
        import graphc.distributed as d
        for env, kwargs in [({"RANK": "1", "WORLD_SIZE": "2"}, {}), ({"LOCAL_RANK": "1"}, {}),
                            ({}, {"world_size": 3})]:
            os.environ.update(env)
            try:
                d.init_process_group("gloo", **kwargs)
            except ValueError as e:
                print(e)
            for k in env:
                del os.environ[k]
        d.init_process_group("gloo", rank=0, world_size=1)
        print("rank", d.get_rank(), "of", d.get_world_size())
    """
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=_env(), timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "torchrun / the PyTorch launcher (RANK, WORLD_SIZE) says rank 1, world size 2, but MPI "
        "has this "
        "process as rank 0 of 1: graphc.distributed forms its world with MPI, so start the "
        "processes with mpiexec -n N",
        "LOCAL_RANK is 1, but MPI has this process as local rank 0 on its machine",
        "init_process_group(rank=..., world_size=...) says world size 3, but MPI has this "
        "process as rank 0 of 1: graphc.distributed forms its world with MPI, so start the "
        "processes with mpiexec -n N",
        "rank 0 of 1"], p.stdout


# ---- collectives on 2 and 3 ranks ---------------------------------------------------------------
@needs_mpi
@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("worker", ["collectives.py", "compiled.py"])   # eager, compiled
def test_every_collective_matches_numpy_on_every_rank(worker, n):
    rc, out, _ = run(n, worker)
    assert rc == 0, out
    for r in range(n):
        assert f"rank {r} ok" in out, out


# ---- DistributedDataParallel and DistributedSampler -------------------------------------------
@needs_mpi
@pytest.mark.slow
@pytest.mark.parametrize("n", [None, 2, 3])
def test_ddp_on_n_shards_trains_as_one_process_on_the_batch(n):
    rc, out, _ = run(n, "ddp.py")         # None: one process alone, a world of 1
    assert rc == 0, out
    for r in range(n or 1):
        assert f"rank {r} ok" in out, out
    assert "bit-identical to one process" in out, out


@pytest.mark.parametrize("n, replicas, drop_last",
                         [(10, 3, False), (10, 3, True), (12, 3, False), (12, 4, True),
                          (5, 2, False), (2, 5, False), (7, 1, False), (0, 2, False)])
def test_distributed_sampler_matches_pytorch(n, replicas, drop_last):
    """Unshuffled, PyTorch's indices exactly.  Shuffled, graphc's randperm is not PyTorch's
    (numpy's generator), so each epoch's shares must be what PyTorch's algorithm makes of
    some permutation: one padded permutation split rank::replicas, the same for every rank."""
    real = pytest.importorskip("torch.utils.data.distributed")
    from graphc.utils.data.distributed import DistributedSampler
    data = list(range(n))
    for rank in range(replicas):
        mine = DistributedSampler(data, replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = real.DistributedSampler(data, replicas, rank, shuffle=False,
                                         drop_last=drop_last)
        assert list(mine) == list(theirs) and len(mine) == len(theirs)
    for seed, epoch in [(0, 0), (0, 1), (7, 0)]:
        shares = []
        for rank in range(replicas):
            s = DistributedSampler(data, replicas, rank, seed=seed, drop_last=drop_last)
            s.set_epoch(epoch)
            shares.append(list(s))
            assert len(s) == len(real.DistributedSampler(data, replicas, rank,
                                                         drop_last=drop_last))
        padded = [shares[i % replicas][i // replicas] for i in range(len(shares[0]) * replicas)]
        if n:
            perm = padded[:n] if not drop_last else padded
            assert len(set(perm)) == len(perm) and set(perm) <= set(data)
            if not drop_last:
                assert sorted(perm) == data
                assert padded == (perm * (len(padded) // n + 1))[:len(padded)]
    seeded = [list(DistributedSampler(data, replicas, 0, seed=s)) for s in (0, 0, 1)]
    assert seeded[0] == seeded[1]
    with pytest.raises(ValueError, match=r"Invalid rank 3, rank should be in the interval"):
        DistributedSampler(data, 3, 3)


# ---- faults: errors on every rank, not a hung job ---------------------------------------------
@needs_mpi
@pytest.mark.slow
@pytest.mark.skipif(LAUNCHER != "mpich", reason="pins down MPICH's mpiexec")
def test_mpich_alone_hangs_when_a_rank_exits_nonzero():
    # Why graphc.distributed.faults exists: MPICH ends a job when a rank is killed or calls
    # MPI_Abort, but not when one exits with an error status while the others wait.
    with pytest.raises(subprocess.TimeoutExpired):
        run(2, "mpi_alone.py", timeout=4)


@needs_mpi
@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 3])
def test_a_rank_that_raises_fails_the_others_naming_it(n):
    rc, out, seconds = run(n, "faults.py", "raise", timeout=60)
    assert rc != 0
    assert "ValueError: boom on purpose" in out
    for r in range(n - 1):
        assert f"rank {n - 1} failed: ValueError: boom on purpose (this is rank {r})" in out, out
    assert seconds < 15, seconds


@needs_mpi
@pytest.mark.slow
def test_a_rank_that_exits_early_fails_the_others_naming_it():
    # Without graphc's notice, MPICH leaves the other rank blocked for ever.
    rc, out, seconds = run(2, "faults.py", "exit", timeout=60)
    assert rc != 0
    assert "rank 1 exited without destroy_process_group while rank 0 still waits on it" \
        in out, out
    assert seconds < 15, seconds


@needs_mpi
@pytest.mark.slow
def test_a_collective_that_outlives_the_timeout_fails():
    rc, out, seconds = run(2, "faults.py", "timeout", timeout=60)
    assert rc != 0
    assert "DistBackendError: rank 0: all_reduce(f32[3], op=SUM) timed out after 1 s" in out, out
    assert seconds < 15, seconds      # the sleeping rank (30 s) is aborted with the job


@needs_mpi
@pytest.mark.slow
def test_mismatched_shapes_are_named_on_every_rank():
    rc, out, seconds = run(2, "faults.py", "mismatch", timeout=60)
    assert rc != 0
    assert out.count("Detected mismatch between collectives on ranks: rank 1 is running "
                     "all_reduce(f32[3, 4], op=SUM), but rank 0 is running "
                     "all_reduce(f32[3], op=SUM)") == 2, out
    assert seconds < 15, seconds
