"""Shared test settings: one deterministic, CI-sized hypothesis profile, tests/ on
sys.path so test modules can import the ``gradcheck`` helper, and a disk cache of
compiled code of the session's own (never the user's)."""
import os
import sys

from hypothesis import settings

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "torchref"))

settings.register_profile("graphc", deadline=None, derandomize=True, max_examples=25,
                          print_blob=True)
settings.load_profile("graphc")

import pytest  # noqa: E402

import graphc  # noqa: E402
from graphc import targets  # noqa: E402

# The code-generating backends every differential test runs against the interpreter
# ("cuda" only where PyCUDA and a GPU are there; "cuda-emulate" runs its code anywhere).
CODEGEN_BACKENDS = [name for name in targets.NAMES if name != "interpreter"
                    and (name != "cuda" or graphc.cuda.is_available())]


@pytest.fixture(scope="session", autouse=True)
def session_cache(tmp_path_factory):
    """Compiled code goes to a cache folder of this session's own, which starts empty, so
    no test reads or fills the user's cache and every run starts from the same state.
    Subprocesses that tests start inherit it.  Tests of the cache use folders of theirs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRAPHC_CACHE_DIR", str(tmp_path_factory.mktemp("graphc-cache")))
        patch.delenv("GRAPHC_CACHE_SIZE", raising=False)
        yield


@pytest.fixture(params=[pytest.param(name, marks=pytest.mark.slow) if name == "cuda-emulate"
                        else name for name in CODEGEN_BACKENDS])
def backend(request):
    """One code-generating backend's name; tests compare it with the interpreter.  The CPU
    emulation of CUDA compiles every program with a C++ compiler: marked slow."""
    return request.param


@pytest.fixture
def fake_gpu(monkeypatch):
    """The cuda backend's GPU runtime on a stand-in PyCUDA driver whose kernels run on the
    CPU emulator (``tests/fake_cuda.py``); the fixture's value is the driver, which
    counts the bytes every transfer moves."""
    import fake_cuda
    yield from fake_cuda.installed(monkeypatch)
