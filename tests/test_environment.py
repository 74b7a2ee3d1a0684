"""environment.yml (conda) must list the same dependencies, with the same bounds, as pyproject.toml."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# pip name -> conda-forge name(s) where they differ
CONDA_NAMES = {"torch": ["pytorch"], "dask[distributed]": ["dask", "distributed"]}
_REQ = re.compile(r"^\s*([A-Za-z0-9_.\-]+(?:\[[^\]]+\])?)\s*(.*)$")


def _split(req: str) -> tuple[str, str]:
    name, spec = _REQ.match(req).groups()
    return name.lower(), ",".join(sorted(s.strip() for s in spec.split(",") if s.strip()))


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = dict(_split(r) for r in project["dependencies"])
    reqs.update(_split(r) for r in project["optional-dependencies"]["dev"])
    out = {}
    for name, spec in reqs.items():
        for conda_name in CONDA_NAMES.get(name, [name]):
            out[conda_name] = spec
    return out


def environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            if item.startswith("-e"):
                continue
            name, spec = _split(item)
            out[name] = spec
    out.pop("python", None)
    out.pop("pip", None)
    return out


def test_environment_matches_pyproject():
    py, env = pyproject_requirements(), environment_requirements()
    assert set(py) == set(env), (
        f"only in pyproject.toml: {sorted(set(py) - set(env))}; only in environment.yml: {sorted(set(env) - set(py))}"
    )
    mismatched = {n: (py[n], env[n]) for n in py if py[n] != env[n]}
    assert not mismatched, f"version bounds differ (pyproject, environment.yml): {mismatched}"


def test_python_bound_matches():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert f"python{project['requires-python']}" in env["dependencies"]


def test_torch_is_bounded_to_the_cpu_wheel_range():
    # An unbounded torch pulls a multi-GB CUDA build on the CPU machines; 2.13.0 (on disk there) must satisfy it.
    spec = pyproject_requirements()["pytorch"]
    assert "<2.14" in spec and ">=2.3" in spec
