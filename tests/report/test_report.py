"""The compile report's contents (``graphc.report``), read from the recorders and the
collected data, and ``python -m graphc report``; tests/report/test_report_browser.py
opens the page itself."""
import json
import os
import re
import subprocess
import sys

import pytest

import graphc
from graphc.codegen.memory import peak_bytes
from graphc.report import drawing, page, write
from graphc.report.collect import collect

import report_programs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def page_data(path) -> dict:
    html = open(path, encoding="utf-8").read()
    block = re.search(r'<script type="application/json" id="report-data">(.*?)</script>',
                      html, re.S).group(1)
    return json.loads(block.replace("<\\/", "</"))


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    return report_programs.mlp_step(str(tmp_path_factory.mktemp("mlp")))


def test_graph_break_and_recompiles_are_recorded_with_lines_and_guards(tmp_path):
    compiled = report_programs.breaking(str(tmp_path))
    first, second, third = [collect(r, f"t{r.index}") for r in compiled.reporter.compiles]
    assert first["reason"] is None and first["guards"] == ["global FACTOR == 2.0"]
    assert second["reason"] == "global FACTOR: 2.0 -> 3.0"
    assert second["guards"] == ["global FACTOR == 3.0"] and second["graph_break"] is None
    assert third["reason"] == "global FACTOR: 3.0 -> 200.0"
    line = report_programs.scale.__code__.co_firstlineno + 3        # the .item() line
    assert f"(at report_programs.py:{line})" in third["graph_break"]
    assert third["programs"] == []


def test_ir_stages_show_each_pass_and_what_it_changed(mlp):
    data = collect(mlp.reporter.compiles[0], "t")
    names = [s["name"] for s in data["stages"]]
    assert names[0] == "traced"
    assert names[1:] == [f"pass{i + 1}.{p.__name__}"
                         for i, p in enumerate(graphc.passes.PIPELINE)]
    changed = [s for s in data["stages"][1:] if s["diff"]]
    assert changed, "no pass changed the traced training step"
    for s in changed:
        assert s["diff"].startswith("--- ") and re.search(r"^[-+] +%", s["diff"], re.M)
    for s in data["stages"][1:]:
        assert s["summary"].endswith("unchanged") == (not s["diff"])


def test_kernels_have_ops_loop_ir_code_and_edges(mlp):
    entry = mlp.reporter.compiles[0].entry
    (forward,) = collect(mlp.reporter.compiles[0], "t")["programs"]
    loop_program = entry.program.forward.program
    assert [k["name"] for k in forward["kernels"]] == [k.name for k in loop_program.kernels]
    for k in forward["kernels"]:
        assert k["name"] in k["loops"]
        assert k["language"] == "LLVM IR" and "define void" in k["code"]
        assert k["profile"] is None or k["profile"]["calls"] >= 3
    fused = [k for k in forward["kernels"] if k["group"] is not None]
    assert all(k["ops"] for k in fused)
    assert any("quadrants.py" in line for k in fused for line in k["sources"])
    assert sum(len(k["unfused_in"]) for k in fused) > 0


def test_memory_timeline_peak_is_the_plan(mlp):
    entry = mlp.reporter.compiles[0].entry
    (forward,) = collect(mlp.reporter.compiles[0], "t")["programs"]
    memory, loop_program = forward["memory"], entry.program.forward.program
    assert memory["peak_bytes"] == peak_bytes(loop_program) > 0
    assert 0 < memory["peak_live_bytes"] <= memory["peak_bytes"]
    assert memory["buffers"] == len(loop_program.arena)
    assert memory["svg"].count('class="buffer"') == len(loop_program.arena)


def test_drawing_without_dot_is_left_to_bundled_dagre(mlp, monkeypatch):
    monkeypatch.setattr(drawing.shutil, "which", lambda name: None)
    (forward,) = collect(mlp.reporter.compiles[0], "t")["programs"]
    d = forward["drawing"]
    graph = mlp.reporter.compiles[0].entry.program.graphs["forward"]
    assert d["engine"] == "dagre" and len(d["views"]["ops"]["nodes"]) == len(graph.ops)
    assert len(d["views"]["kernels"]["nodes"]) == len(d["views"]["ops"]["clusters"])
    html = page.render_page([mlp.reporter])
    assert page.static("dagre.min.js") in html


def test_page_is_self_contained(mlp):
    html = page.render_page([mlp.reporter])
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "<link" not in html and "@import" not in html
    assert html.count("<script") == html.count("</script>")


def test_write_makes_one_file_per_run(tmp_path):
    compiled = report_programs.breaking(str(tmp_path))
    for _ in range(2):
        (path,) = [p for p in write() if os.path.dirname(p) == str(tmp_path)]
    assert os.listdir(tmp_path) == [os.path.basename(path)]
    (function,) = page_data(path)["functions"]
    assert function["name"] == "scale" and len(function["compiles"]) == 3
    assert function["where"] == compiled.reporter.where == \
        f"report_programs.py:{report_programs.scale.__code__.co_firstlineno}"


def test_environment_variable_turns_the_report_on(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_REPORT", str(tmp_path))
    assert graphc.compile(lambda x: x + 1).reporter is not None
    monkeypatch.delenv("GRAPHC_REPORT")
    assert graphc.compile(lambda x: x + 1).reporter is None


@pytest.mark.slow
def test_cli_runs_a_script_and_prints_the_report_path(tmp_path):
    script = tmp_path / "tiny.py"
    script.write_text("import graphc as torch\n"
                      "f = torch.compile(lambda x: (x * 2).relu().sum())\n"
                      "print('result', float(f(torch.ones(4))))\n")
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("GRAPHC_REPORT", None)
    out = subprocess.run([sys.executable, "-m", "graphc", "report", "--out", "reports",
                          str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "result 8.0"
    path = lines[1]
    assert os.path.dirname(path) == str(tmp_path / "reports") and os.path.isfile(path)
    (function,) = page_data(path)["functions"]
    assert function["name"] == "<lambda>" and len(function["compiles"]) == 1
    # the command profiles the run: the kernels carry their times
    (program,) = function["compiles"][0]["programs"]
    assert program["profiled"] and all(k["profile"]["calls"] == 1 for k in program["kernels"])
