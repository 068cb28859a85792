"""A compile says what it is doing once it has run over a second (the ``compile`` log
channel) and records each stage's seconds (``graphc.progress``)."""
import logging

import pytest

import graphc
from graphc import progress


@pytest.fixture
def compile_log(caplog, tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))     # nothing cached: LLVM runs
    caplog.set_level(logging.INFO, logger="graphc.compile")
    return caplog


def compile_and_call():
    f = graphc.compile(lambda x: (x.exp() * 2).sum(), backend="cpu")
    assert f(graphc.ones(8)).item() == pytest.approx(16 * 2.718281828, rel=1e-6)


def test_a_slow_compile_logs_its_stages(compile_log, monkeypatch):
    monkeypatch.setattr(progress, "SLOW", 0.0)        # every compile counts as slow
    compile_and_call()
    messages = [r.getMessage() for r in compile_log.records if r.name == "graphc.compile"]
    for stage in ("trace", "passes", "lower", "render", "llvm", "link"):
        assert any(f": {stage} (" in m and "s so far)" in m for m in messages), stage
    assert "compiled in" in messages[-1] and "llvm" in messages[-1]
    last = progress.finished()[-1]
    assert {"trace", "passes", "lower", "render", "cache", "llvm", "link"} <= set(last)
    assert last["total"] >= sum(s for stage, s in last.items()
                                if stage not in ("name", "total"))


def test_a_quick_compile_says_nothing(compile_log, monkeypatch):
    monkeypatch.setattr(progress, "SLOW", 3600.0)
    compile_and_call()
    assert not [r for r in compile_log.records if r.name == "graphc.compile"]
    assert "llvm" in progress.finished()[-1]


def test_progress_within_a_long_stage_is_logged(caplog, monkeypatch):
    monkeypatch.setattr(progress, "SLOW", 0.0)
    caplog.set_level(logging.INFO, logger="graphc.compile")
    with progress.compiling("model"), progress.stage("llvm"):
        progress.advance("modules compiled", 1, 3)       # within a second of the start
        monkeypatch.setattr(progress.time, "perf_counter", lambda: 10.0 ** 9)
        progress.advance("modules compiled", 2, 3)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("modules compiled" in m for m in messages) == 1
    assert any(m.startswith("model: 2/3 modules compiled") for m in messages)


def test_stages_outside_a_compile_are_not_timed():
    before = progress.finished()
    with progress.stage("render"):
        progress.advance("modules compiled", 1, 2)
    assert progress.finished() == before
