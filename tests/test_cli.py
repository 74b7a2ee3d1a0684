"""The CLI on a small throw-away project: validation before execution, execution, skipping, failure reports."""

import json
import time
import textwrap
from pathlib import Path

import nbformat
import pytest

from sgdbayes.chapters import ConfigError, coerce, parse_parameters
from sgdbayes.cli import main

GOOD = '''\
# %% [markdown]
# # Good
# %% tags=["parameters"]
profile = "default"
n = 3
x = 0.5
name = "a"
flag = False
sizes = [1, 2]
# %%
from sgdbayes import results
results.clear("good")
results.record("good", "n_times_x", n * x, paper=1.5, profile=profile)
print("name", name, "flag", flag, "sizes", sizes)
'''
BAD = '''\
# %% tags=["parameters"]
k = 1
# %%
y = k + 1
# %%
raise ValueError("boom at k=%d" % k)
'''


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "book").mkdir()
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n"
                                       "  - file: book/good\n  - file: book/bad\n")
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    (tmp_path / "book" / "good.py").write_text(GOOD)
    (tmp_path / "book" / "bad.py").write_text(BAD)
    (tmp_path / "book" / "profiles.yml").write_text(textwrap.dedent("""\
        profiles: {smoke: quick, default: normal, paper: big}
        chapters:
          good:
            smoke: {n: 1}
            paper: {n: 1000, x: 2}
        """))
    monkeypatch.setenv("SGDBAYES_ROOT", str(tmp_path))
    monkeypatch.setenv("SGDBAYES_CACHE_DIR", str(tmp_path / "_build" / "cache"))
    monkeypatch.delenv("SGDBAYES_RESULTS_DIR", raising=False)
    monkeypatch.setattr("sgdbayes.cli.chapter_spec", lambda name: _PERMISSIVE.get(name))
    return tmp_path


def _permissive_specs():
    """Loose declared ranges for the throw-away chapters (tests that check ranges install their own)."""
    from sgdbayes.params import Bool, Choice, Float, Int, List, Spec, Str

    return {"good": Spec(profile=Choice("smoke", "default", "paper"), n=Int(), x=Float(), name=Str(), flag=Bool(),
                         sizes=List(Int())),
            "bad": Spec(k=Int()), "lossy": Spec(k=Int()), "slow": Spec(seconds=Float())}


_PERMISSIVE = _permissive_specs()


def test_parse_parameters(project):
    assert parse_parameters(project / "book" / "good.py") == {
        "profile": "default", "n": 3, "x": 0.5, "name": "a", "flag": False, "sizes": [1, 2]}


def test_parameters_cell_must_hold_literals(tmp_path):
    src = tmp_path / "c.py"
    src.write_text('# %% tags=["parameters"]\nn = 3 + len("ab")\n')
    with pytest.raises(ConfigError, match="not a plain literal"):
        parse_parameters(src)
    src.write_text("# %%\nn = 3\n")
    with pytest.raises(ConfigError, match="no parameters cell"):
        parse_parameters(src)


@pytest.mark.parametrize("default,raw,expected", [(3, "5", 5), (3, "1e5", 100000), (0.5, "2", 2.0),
                                                  ("a", "123", "123"), (False, "true", True), ([1], "[2, 3]", [2, 3])])
def test_coerce_accepts(default, raw, expected):
    import yaml

    assert coerce("c", "p", yaml.safe_load(raw), default, raw=raw) == expected


@pytest.mark.parametrize("default,raw", [(3, "abc"), (3, "0.5"), (0.5, "x"), (False, "1"), ([1], "3")])
def test_coerce_rejects_with_a_clear_message(default, raw):
    import yaml

    with pytest.raises(ConfigError, match=r"parameter 'p' of chapter 'c' expects"):
        coerce("c", "p", yaml.safe_load(raw), default, raw=raw)


def test_list(project, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "good" in out and "bad" in out and "1000" in out and "smoke" in out


@pytest.mark.parametrize("argv,needle", [
    (["run", "nope"], "unknown chapter 'nope'; valid chapters: good, bad"),
    (["run", "good", "--profile", "huge"], "unknown profile 'huge'; valid profiles: smoke, default, paper"),
    (["run", "good", "-p", "m=3"], "unknown parameter 'm' for chapter 'good'; valid parameters: profile, n, x"),
    (["run", "good", "-p", "n=abc"], "expects int (default 3), got abc"),
    (["run", "good", "-p", "n"], "-p expects name=value"),
    (["run", "good", "--kernel", "no-such-kernel"], "Jupyter kernel 'no-such-kernel' not found"),
])
def test_bad_input_is_rejected_before_execution(project, capsys, argv, needle):
    assert main(argv) == 2
    assert needle in capsys.readouterr().err
    assert not (project / "book" / "good.ipynb").exists()


def test_profile_with_unknown_parameter(project, capsys):
    (project / "book" / "profiles.yml").write_text(
        "profiles: {default: d}\nchapters:\n  good:\n    default: {nn: 1}\n")
    assert main(["list"]) == 2
    assert "unknown parameter 'nn' of chapter 'good'" in capsys.readouterr().err


def test_run_execute_skip_force(project, capsys, monkeypatch):
    monkeypatch.setattr("sgdbayes.cache.library_fingerprint", lambda: "fixed")  # others may edit src/ meanwhile
    assert main(["run", "good", "--profile", "paper", "-p", "name=zz", "--quiet"]) == 0
    out_nb = project / "book" / "good.ipynb"
    nb = nbformat.read(out_nb, as_version=4)
    meta = nb.metadata["sgdbayes"]
    assert meta["profile"] == "paper" and meta["parameters"]["n"] == 1000 and meta["parameters"]["x"] == 2.0
    assert meta["parameters"]["name"] == "zz" and meta["parameters"]["profile"] == "paper"
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "name zz flag False" in text
    result = json.loads((project / "_build" / "results" / "good.json").read_text())
    assert result["results"]["n_times_x"]["value"] == 2000.0
    assert result["results"]["n_times_x"]["profile"] == "paper"

    capsys.readouterr()
    assert main(["run", "good", "--profile", "paper", "-p", "name=zz", "--quiet"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["run", "good", "--profile", "smoke", "--quiet"]) == 0  # other parameters: executes again
    assert "executed in" in capsys.readouterr().out
    assert main(["run", "good", "--profile", "smoke", "--quiet", "--force"]) == 0
    assert "executed in" in capsys.readouterr().out
    assert not list((project / "_build" / "partial").iterdir())  # nothing half-written left behind


def test_failing_chapter_reports_cell_error_and_partial(project, capsys):
    (project / "book" / "bad.ipynb").write_text("stale")
    assert main(["run", "bad", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "chapter 'bad' failed at cell" in err and "ValueError: boom at k=1" in err
    partial = Path(err.split("partial output notebook: ")[1].split()[0])
    assert partial.is_file()
    assert not (project / "book" / "bad.ipynb").exists()  # no stale output rendered beside a failure


def test_library_change_reexecutes(project, capsys, monkeypatch):
    monkeypatch.setattr("sgdbayes.cache.library_fingerprint", lambda: "v1")
    assert main(["run", "good", "--quiet"]) == 0
    assert main(["run", "good", "--quiet"]) == 0
    assert "up to date" in capsys.readouterr().out
    monkeypatch.setattr("sgdbayes.cache.library_fingerprint", lambda: "v2")
    assert main(["run", "good", "--quiet"]) == 0
    assert "executed in" in capsys.readouterr().out.splitlines()[-1]


SLOW = '''\
# %% tags=["parameters"]
seconds = 60.0
# %%
import time
print("about to sleep")
def stuck_here():
    time.sleep(seconds)
stuck_here()
'''


def _add_slow_chapter(project):
    (project / "book" / "slow.py").write_text(SLOW)
    with open(project / "_toc.yml", "a") as toc:
        toc.write("  - file: book/slow\n")


def test_cell_timeout_interrupts_and_names_the_cell(project, capsys):
    _add_slow_chapter(project)
    t0 = time.perf_counter()
    assert main(["run", "slow", "--quiet", "--cell-timeout", "3"]) == 1
    assert time.perf_counter() - t0 < 50  # failed at the timeout, did not wait the 60 s out
    err = capsys.readouterr().err
    assert "chapter 'slow' failed at cell 2" in err  # cell 1 is papermill's injected parameters
    assert "CellTimeoutError" in err and "3 s cell timeout" in err
    assert "about to sleep" in err  # the cell's own output is shown with the failure
    assert not (project / "book" / "slow.ipynb").exists()


def test_cell_timeout_from_the_environment(project, capsys, monkeypatch):
    _add_slow_chapter(project)
    monkeypatch.setenv("SGDBAYES_CELL_TIMEOUT", "2")
    assert main(["run", "slow", "--quiet"]) == 1
    assert "2 s cell timeout" in capsys.readouterr().err
    monkeypatch.setenv("SGDBAYES_CELL_TIMEOUT", "0")  # 0: no limit
    assert main(["run", "slow", "--quiet", "-p", "seconds=0.1"]) == 0


@pytest.mark.parametrize("argv, env, needle", [
    (["--cell-timeout", "-1"], None, "--cell-timeout -1: give seconds"),
    (["--cell-timeout", "nan"], None, "--cell-timeout nan: give seconds"),
    (["--cell-timeout", "1e12"], None, "at most 1e+07 s; give 0 or inf for no limit"),
    ([], "soon", "SGDBAYES_CELL_TIMEOUT='soon' is not a number"),
    ([], "-5", "SGDBAYES_CELL_TIMEOUT='-5': give seconds"),
])
def test_bad_cell_timeout_is_rejected_before_execution(project, capsys, monkeypatch, argv, env, needle):
    if env is not None:
        monkeypatch.setenv("SGDBAYES_CELL_TIMEOUT", env)
    assert main(["run", "good", "--quiet", *argv]) == 2
    assert needle in capsys.readouterr().err
    assert not (project / "book" / "good.ipynb").exists()


def test_a_kernel_that_stops_answering_fails_the_run_instead_of_hanging_it(project, capsys, monkeypatch):
    # papermill waits for kernel_info after the last cell with no limit (nteract/papermill#711); ours is bounded
    monkeypatch.setattr("sgdbayes.runner.KERNEL_INFO_TIMEOUT_S", 0)
    assert main(["run", "good", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "KernelUnresponsive" in err and "did not answer kernel_info" in err
    assert not (project / "book" / "good.ipynb").exists()


LOSES_A_REPLY = '''\
# %% tags=["parameters"]
k = 1
# %%
# make the kernel lose the execute_reply of this very cell, as ipykernel 7.4 was seen to do
kernel = get_ipython().kernel
send = kernel.session.send
def dropping_send(stream, msg_or_type, *args, _send=send, _kernel=kernel, **kwargs):
    if msg_or_type == "execute_reply" and not getattr(_kernel, "dropped_one", False):
        _kernel.dropped_one = True
        return {"content": {"status": "ok"}}  # what the kernel reads back from the message it "sent"
    return _send(stream, msg_or_type, *args, **kwargs)
kernel.session.send = dropping_send
print("before the lost reply")
# %%
print("after the lost reply", k + 1)
'''


def test_a_lost_execute_reply_is_recovered_not_waited_for(project, monkeypatch):
    # in a subprocess with a hard limit: a regression here would otherwise hang the test suite
    import subprocess
    import sys

    monkeypatch.setenv("SGDBAYES_CELL_TIMEOUT", "0")  # no cell timeout: only the recovery can finish this run
    (project / "book" / "lossy.py").write_text(LOSES_A_REPLY)
    with open(project / "_toc.yml", "a") as toc:
        toc.write("  - file: book/lossy\n")
    code = ("import sys, sgdbayes.runner as r, sgdbayes.cli as cli; r.LOST_REPLY_GRACE_S = 3.0; "
            "from sgdbayes.params import Int, Spec; cli.chapter_spec = lambda name: Spec(k=Int()); "
            "sys.exit(cli.main(['run', 'lossy', '--quiet']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "execute_reply did not arrive" in proc.stderr
    nb = nbformat.read(project / "book" / "lossy.ipynb", as_version=4)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "before the lost reply" in text and "after the lost reply 2" in text
    assert sum(bool(c.metadata.get("sgdbayes", {}).get("lost_execute_reply")) for c in nb.cells) == 1


# ---- issue 11: every value and option checked before a kernel starts ---------------------------------------------


def _good_spec(monkeypatch):
    from sgdbayes.params import Bool, Choice, Float, Int, List, Rule, Spec, Str

    spec = Spec(profile=Choice("smoke", "default", "paper"), n=Int(min=1), x=Float(gt=0), name=Str(), flag=Bool(),
                sizes=List(Int(min=1), min_len=1),
                relations=[Rule(lambda p: max(p["sizes"]) <= p["n"], "every entry of sizes must be <= n",
                                ("sizes", "n"))])
    monkeypatch.setattr("sgdbayes.cli.chapter_spec", lambda name: spec if name == "good" else _PERMISSIVE.get(name))
    return spec


@pytest.mark.parametrize("argv, needle", [
    (["-p", "n=0"], "n = 0 is out of range; allowed: an integer >= 1"),
    (["-p", "x=-0.5"], "x = -0.5 is out of range; allowed: a finite number > 0"),
    (["-p", "sizes=[1, 0]"], "sizes = [1, 0] is entry 1 (0) is out of range"),
    (["-p", "sizes=[5]"], "every entry of sizes must be <= n; got sizes = [5], n = 3"),
    (["--device", "gpu"], "--device 'gpu' is not understood; allowed: auto, cpu, cuda, cuda:N"),
    (["--scheduler", "somewhere"], "--scheduler 'somewhere' is not understood"),
    (["--scheduler", "tcp://127.0.0.1:1"], "--scheduler tcp://127.0.0.1:1: no Dask scheduler answers there"),
])
def test_declared_ranges_and_options_are_checked_before_execution(project, capsys, monkeypatch, argv, needle):
    _good_spec(monkeypatch)
    assert main(["run", "good", "--quiet", *argv]) == 2
    assert needle in capsys.readouterr().err
    assert not (project / "book" / "good.ipynb").exists()


def test_cuda_is_refused_where_there_is_none(project, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["run", "good", "--quiet", "--device", "cuda"]) == 2
    assert "CUDA is not available on this machine" in capsys.readouterr().err


def test_book_checks_every_chapter_before_running_any(project, capsys, monkeypatch):
    _good_spec(monkeypatch)
    with open(project / "book" / "profiles.yml", "a") as fh:
        fh.write("    default: {n: 0}\n")  # the default profile now gives good a bad n
    assert main(["book", "--quiet", "--no-html"]) == 2
    assert "n = 0 is out of range" in capsys.readouterr().err
    assert not list((project / "book").glob("*.ipynb"))  # neither chapter ran


def test_a_chapter_without_declared_ranges_is_refused(project, capsys, monkeypatch):
    monkeypatch.setattr("sgdbayes.cli.chapter_spec", lambda name: None)
    assert main(["run", "good", "--quiet"]) == 2
    assert "chapter 'good' declares no parameter ranges: add PARAMETERS" in capsys.readouterr().err
    assert not (project / "book" / "good.ipynb").exists()


def test_every_chapter_of_the_book_declares_ranges_for_its_whole_parameters_cell():
    """The real project: each chapter in _toc.yml with a parameters cell has sgdbayes.experiments.<name>.PARAMETERS
    covering every name of that cell, and its own smoke/default/paper values pass the check."""
    from sgdbayes import chapters as chapters_module
    from sgdbayes.cli import chapter_spec

    root = Path(__file__).resolve().parents[1]
    found = chapters_module.discover(root)
    assert len(found) >= 6
    profiles = chapters_module.load_profiles(root, found)
    for chapter in found.values():
        spec = chapter_spec(chapter.name)
        assert spec is not None, f"{chapter.name}: no PARAMETERS"
        assert not spec.missing(list(chapter.parameters)), (chapter.name, spec.missing(list(chapter.parameters)))
        for profile in profiles.names:
            spec.check(chapters_module.resolve_parameters(chapter, profiles, profile), chapter=chapter.name)


def test_a_parameter_without_a_declared_range_is_an_error(project, capsys, monkeypatch):
    spec = _good_spec(monkeypatch)
    del spec.kinds["flag"]
    assert main(["run", "good", "--quiet"]) == 2
    assert "parameter(s) flag of its parameters cell have no declared range" in capsys.readouterr().err


@pytest.mark.parametrize("argv, env", [(["--cell-timeout", "inf"], None), (["--cell-timeout", "1e400"], None),
                                       ([], "inf")])
def test_an_infinite_cell_timeout_means_no_limit(project, capsys, monkeypatch, argv, env):
    monkeypatch.setattr("sgdbayes.cache.library_fingerprint", lambda: "fixed")
    if env is not None:
        monkeypatch.setenv("SGDBAYES_CELL_TIMEOUT", env)
    assert main(["run", "good", "--quiet", "--force", *argv]) == 0


def test_list_estimate_prints_a_time_per_chapter_and_profile(project, capsys, monkeypatch):
    from sgdbayes import estimate

    rates = {"gemm_f32": 1e11, "gemm_f64": 5e10, "sgd_native": 2e10, "sgd_native_wide": 3e10, "sgd_torch": 3e9,
             "prior": 1e5}
    monkeypatch.setattr(estimate, "calibrate", lambda quick=True: rates)
    assert main(["list", "--estimate"]) == 0
    out = capsys.readouterr().out
    assert "smoke here" in out and "paper GPU" in out and "good" in out and "total" in out
