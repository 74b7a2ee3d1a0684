"""Progress bars: where ``sgdbayes.progress.bar`` writes, checked in a real papermill run (the bar reaches the
command's stderr, the executed notebook holds none of it) and in a headless process (no bar at all)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import nbformat
import pytest

from sgdbayes import progress

PROBE = textwrap.dedent("""
    import time
    from sgdbayes.progress import bar
    for _ in bar(range(40), desc="probe-bar", unit="step"):
        time.sleep(0.02)
    print("cell done")
""")


def test_mode_follows_the_environment(monkeypatch):
    monkeypatch.setenv(progress.ENV_VAR, "stderr")
    assert progress.mode() == "stderr"
    monkeypatch.setenv(progress.ENV_VAR, "off")
    assert progress.mode() == "off"
    assert progress.bar(range(3), desc="x").disable
    monkeypatch.setenv(progress.ENV_VAR, "sideways")
    with pytest.raises(ValueError, match="SGDBAYES_PROGRESS"):
        progress.mode()
    monkeypatch.delenv(progress.ENV_VAR)
    assert progress.mode() in ("terminal", "off")  # pytest's stderr is captured: not a kernel


def test_disable_wins_and_the_bar_counts():
    with progress.bar(total=5, desc="t", disable=True) as b:
        b.update(5)
        assert b.disable
    assert list(progress.bar(range(4), disable=True)) == [0, 1, 2, 3]


def _run(code: str, env: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in (progress.ENV_VAR, "PYTEST_CURRENT_TEST")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=300,
                          cwd=tmp_path)


def test_headless_without_flag_shows_no_bar(tmp_path):
    out = _run(PROBE, {}, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "probe-bar" not in out.stderr and "cell done" in out.stdout


def test_flag_stderr_in_a_plain_process_writes_a_bar_with_rate(tmp_path):
    out = _run(PROBE, {progress.ENV_VAR: "stderr"}, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "probe-bar" in out.stderr and "step/s" in out.stderr


def test_papermill_kernel_bar_reaches_the_terminal_not_the_notebook(tmp_path):
    """The runner's set-up: papermill executes a notebook whose kernel inherits this command's stderr, with
    SGDBAYES_PROGRESS=stderr (and TQDM_DISABLE=1, as the runner sets it). The bar with its rate must be in the
    command's stderr; the saved notebook must contain the cell's print but no trace of the bar."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(PROBE)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src, dst = tmp_path / "probe.ipynb", tmp_path / "probe.out.ipynb"
    nbformat.write(nb, src)
    code = textwrap.dedent(f"""
        import papermill
        papermill.execute_notebook({str(src)!r}, {str(dst)!r}, kernel_name="python3", progress_bar=False,
                                   log_output=False)
    """)
    out = _run(code, {progress.ENV_VAR: "stderr", "TQDM_DISABLE": "1"}, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "probe-bar" in out.stderr and "step/s" in out.stderr, out.stderr[-3000:]
    saved = json.loads(dst.read_text())
    text = json.dumps(saved["cells"][0]["outputs"])
    assert "cell done" in text
    assert "probe-bar" not in text and "step/s" not in text
