"""The compile report opened in a real headless browser (Chromium through Playwright,
``tests/browser.py``): the page of a run that compiled the tutorial MLP's training step,
a small GPT's and a function with a graph break and two recompiles.  It must load
with no console error and no request but its own file, draw the graph, and show a
kernel's code and profile when the kernel is clicked.  Skipped where Chromium or
Playwright is missing.

``GRAPHC_REPORT_SCREENSHOT=docs/report.png`` makes the GPT test save the README's
screenshot (taken on purpose, not on every run)."""
import os
import re

import pytest

from graphc.report import collect, write
from graphc.report.page import write_page

import report_programs
from browser import chromium, open_report

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The one report file of a run that compiled the three programs."""
    chromium()
    directory = str(tmp_path_factory.mktemp("report"))
    report_programs.mlp_step(directory)
    report_programs.gpt_step(directory)
    report_programs.breaking(directory)
    (path,) = [p for p in write() if os.path.dirname(p) == directory]
    return path


def select_function(page, index):
    page.locator("nav button").nth(index).click()
    return page.locator(f"main section.function[data-function='{index}']")


def check_kernel_click(page, section):
    """Click the first kernel node of the drawn graph: the kernels tab opens on it,
    showing its generated code and its profile section."""
    section.locator(".graph svg g.node").first.click()
    detail = section.locator(".kernel-detail").first
    assert "k0_" in detail.locator("h4").inner_text()
    assert "define void" in detail.locator("pre.code").inner_text()
    assert detail.locator(".profile").count() == 1
    assert section.locator("[data-tab=kernels] .kernel-list div.active").count() == 1


@pytest.mark.parametrize("index, ops_at_least", [(0, 40), (1, 400)], ids=["mlp", "gpt"])
def test_training_step_report_in_the_browser(report, index, ops_at_least):
    with open_report(report) as (page, errors, requests):
        section = select_function(page, index)
        kernels = section.locator(".graph svg g.node[id*='-K']").count()
        assert kernels > 5                               # collapsed: one node per kernel
        section.get_by_role("button", name="ops in fusion groups").click()
        ops = section.locator(".graph svg g.node")
        assert ops.count() >= ops_at_least
        assert section.locator(".graph svg g.cluster").count() == kernels
        # the hover text: dot puts it on a link, dagre drawings in a <title>
        hover = ops.nth(ops.count() // 2).evaluate(
            "n => n.querySelector('a') ? n.querySelector('a').getAttribute('xlink:title')"
            " : n.querySelector('title').textContent")
        assert re.match(r"%\w+ = \w+ : \w+\[", hover) and ".py:" in hover
        section.locator("input[type=search]").fill("matmul")
        assert section.locator(".graph svg g.node.hit").count() > 0
        if index == 1 and os.environ.get("GRAPHC_REPORT_SCREENSHOT"):
            page.screenshot(path=os.environ["GRAPHC_REPORT_SCREENSHOT"])
        section.get_by_role("button", name="kernels (collapsed)").click()
        check_kernel_click(page, section)
        for tab in ("IR", "guards", "memory"):
            section.locator(f".tabs button[data-tab={tab}]").click()
        assert section.locator("svg.memory rect.buffer").count() > 0
        assert errors == []
        assert requests == [f"file://{report}"]


def test_graph_break_and_recompiles_in_the_browser(report):
    with open_report(report) as (page, errors, requests):
        section = select_function(page, 2)
        table = section.locator("table.compiles").inner_text()
        assert "recompile: global FACTOR: 2.0 -> 3.0" in table
        assert "recompile: global FACTOR: 3.0 -> 200.0" in table
        line = report_programs.scale.__code__.co_firstlineno + 3
        assert "graph break (eager)" in table and f"report_programs.py:{line}" in table
        section.get_by_role("button", name="compile 3").click()
        shown = section.locator(".break").inner_text()
        assert "graph break" in shown and f"report_programs.py:{line}" in shown
        assert "global FACTOR: 3.0 -> 200.0" in shown
        section.get_by_role("button", name="compile 2").click()
        section.locator("[data-compile='2'] .tabs button[data-tab=guards]").click()
        guards = section.locator("[data-compile='2'] [data-tab=guards] pre").inner_text()
        assert guards == "global FACTOR == 3.0"
        assert errors == [] and requests == [f"file://{report}"]


def test_a_profiled_kernel_shows_its_times(tmp_path, monkeypatch):
    """The profile section as graphc.profiling's rows fill it (stand-in rows here: the
    profiler's own tests check the numbers)."""
    chromium()
    step = report_programs.mlp_step(str(tmp_path))
    rows = [{"name": k.name, "kind": "loop", "calls": 3, "total_s": 3e-5, "median_s": 1e-5,
             "bytes": 4000, "flops": 2000, "share": 0.25}
            for k in step.reporter.compiles[0].entry.program.forward.program.kernels]
    monkeypatch.setattr(collect, "profile_of", lambda native: rows)
    path = tmp_path / "profiled.html"
    write_page(str(path), [step.reporter])
    with open_report(str(path)) as (page, errors, requests):
        section = select_function(page, 0)
        section.locator(".tabs button[data-tab=kernels]").click()
        assert "25.0%" in section.locator(".kernel-list div").first.inner_text()
        profile = section.locator(".kernel-detail table.profile").inner_text()
        for shown in ("calls\t3", "median\t10.0 us", "GB/s\t0.40", "GFLOP/s\t0.20",
                      "share\t25.0 %"):
            assert shown in profile
        assert errors == [] and requests == [f"file://{path}"]
