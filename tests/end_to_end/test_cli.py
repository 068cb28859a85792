"""``python -m graphc ir SCRIPT.py``: runs the script and prints the IR of what it
compiles (traced, backward and after each pass)."""
import os
import re
import subprocess
import sys
import textwrap

import pytest

from graphc import ir
from graphc.passes import PIPELINE

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent("""\
    import sys
    import graphc as torch
    from graphc import nn
    from tiny_data import BATCH

    torch.manual_seed(0)
    model = torch.compile(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)))
    x = torch.randn(BATCH, 3)
    if __name__ == "__main__":
        loss = model(x).pow(2).mean()
        loss.backward()
        print("loss", round(float(loss), 4), "args", sys.argv[1:])
    """)


def run_cli(tmp_path, *args):
    """Run from tmp_path a script in tmp_path/proj that imports a module next to it."""
    (tmp_path / "proj").mkdir(exist_ok=True)
    (tmp_path / "proj" / "train_tiny.py").write_text(SCRIPT)
    (tmp_path / "proj" / "tiny_data.py").write_text("BATCH = 5\n")
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("GRAPHC_PRINT_IR", None)
    return subprocess.run([sys.executable, "-m", "graphc", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def _sections(stdout):
    """{stage: graph text} from the ``# graphc: NAME: STAGE`` headers."""
    parts = re.split(r"^# graphc: Sequential: (\S+)\n", stdout, flags=re.M)
    return {stage: body.strip() for stage, body in zip(parts[1::2], parts[2::2])}


@pytest.mark.slow
def test_ir_command_prints_traced_and_backward_graphs(tmp_path):
    result = run_cli(tmp_path, "ir", "proj/train_tiny.py", "--epochs", "2")
    assert result.returncode == 0, result.stderr
    sections = _sections(result.stdout)
    assert ["traced", "backward"] == list(sections)[:2]
    passes = [f"pass{i + 1}.{p.__name__}" for i, p in enumerate(PIPELINE)]
    assert list(sections) == ["traced", "backward"] + passes + [f"backward.{p}" for p in passes]
    traced = sections["traced"]
    assert traced.startswith("graph Sequential(%input0: f32[5,3], %0.weight: f32[4,3], "
                             "%0.bias: f32[4], %2.weight: f32[2,4], %2.bias: f32[2]) {")
    assert "tanh(" in traced and "train_tiny.py:10" in traced
    backward = sections["backward"]
    assert backward.startswith("graph Sequential_backward(%grad_")
    for stage, text in sections.items():
        body = text[:text.index("\n}") + 2]
        assert str(ir.verify(ir.parse(body))) == body, stage
    assert re.search(r"^loss [0-9.]+ args \['--epochs', '2'\]$", result.stdout, flags=re.M)


def test_ir_command_usage_errors(tmp_path):
    result = run_cli(tmp_path)
    assert result.returncode == 2 and "usage: python -m graphc" in result.stderr
    result = run_cli(tmp_path, "ir", "missing.py")
    assert result.returncode == 2
    assert "error: can't open file 'missing.py': no such file" in result.stderr
