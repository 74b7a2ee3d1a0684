"""The book's chapters, their parameters and the profiles that set them.

A chapter is a jupytext py:percent notebook ``book/<name>.py`` listed in ``_toc.yml``. Its cell tagged ``parameters``
holds plain literal assignments: these are the parameter names, their types and the ``default`` profile's values.
``book/profiles.yml`` overrides them per chapter for the other profiles. Everything is validated here, before any
kernel starts (papermill itself only warns about unknown parameters).
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROFILES_FILE = "book/profiles.yml"
TOC_FILE = "_toc.yml"


class ConfigError(ValueError):
    """A wrong chapter, profile or parameter name or value; the message names the problem and the fix."""


@dataclass(frozen=True)
class Chapter:
    name: str
    source: Path
    parameters: dict[str, Any] = field(default_factory=dict)  # name -> default (the default profile's value)

    def text(self) -> str:
        return self.source.read_text()


def _parameters_cell(source: Path) -> str:
    """Source of the cell tagged ``parameters`` in a py:percent file."""
    lines = source.read_text().splitlines()
    cell: list[str] | None = None
    for line in lines:
        if line.startswith("# %%"):
            if cell is not None:
                break
            if "parameters" in line and "tags" in line:
                cell = []
            continue
        if cell is not None:
            cell.append(line)
    if cell is None:
        raise ConfigError(
            f"{source} has no parameters cell. Fix: add a cell starting with '# %% tags=[\"parameters\"]' "
            "that assigns the chapter's parameters (plain literals)."
        )
    return "\n".join(cell)


def parse_parameters(source: Path) -> dict[str, Any]:
    """``name -> default`` from the parameters cell; every statement must be ``name = <literal>``."""
    code = _parameters_cell(source)
    try:
        tree = ast.parse(code)
    except SyntaxError as err:
        raise ConfigError(f"the parameters cell of {source} is not valid Python: {err}") from None
    params: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # a docstring-like comment
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else None
        if not targets or len(targets) != 1 or not isinstance(targets[0], ast.Name) or node.value is None:
            raise ConfigError(
                f"the parameters cell of {source} may only hold 'name = literal' lines; "
                f"line {node.lineno} is not one"
            )
        try:
            params[targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            raise ConfigError(
                f"parameter {targets[0].id!r} in {source} (line {node.lineno}) is not a plain literal; "
                "use numbers, strings, booleans, None, lists or dicts"
            ) from None
    return params


def toc_files(root: Path) -> list[str]:
    """Every ``file:`` entry of ``_toc.yml`` (root first), in order."""
    toc_path = root / TOC_FILE
    if not toc_path.is_file():
        raise ConfigError(f"{toc_path} not found; run from the project root or set SGDBAYES_ROOT")
    toc = yaml.safe_load(toc_path.read_text()) or {}
    files: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    files.append(node[key])
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return files


def discover(root: Path) -> dict[str, Chapter]:
    """Chapters in ``_toc.yml`` order: entries whose ``<file>.py`` exists (markdown pages are not chapters)."""
    chapters: dict[str, Chapter] = {}
    for entry in toc_files(root):
        source = root / f"{entry}.py"
        if source.is_file():
            name = Path(entry).name
            chapters[name] = Chapter(name=name, source=source, parameters=parse_parameters(source))
    return chapters


def _type_name(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def coerce(chapter: str, name: str, value: Any, default: Any, *, raw: str | None = None) -> Any:
    """Check ``value`` against the type of ``default`` (int → float allowed; a str parameter keeps the raw text)."""
    shown = raw if raw is not None else repr(value)
    if isinstance(value, str) and raw is not None and isinstance(default, (int, float)) \
            and not isinstance(default, bool):
        try:  # YAML reads '1e5' as a string
            value = float(value)
        except ValueError:
            pass
    if default is None:
        return value
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and raw is not None:
            return int(value)  # '1e5' on the command line
    elif isinstance(default, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(default, str):
        if raw is not None:
            return raw
        if isinstance(value, str):
            return value
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)):
            return list(value)
    elif isinstance(default, dict):
        if isinstance(value, dict):
            return value
    raise ConfigError(
        f"parameter {name!r} of chapter {chapter!r} expects {_type_name(default)} "
        f"(default {default!r}), got {shown} ({_type_name(value)}). Fix: pass a value of that type."
    )


@dataclass(frozen=True)
class Profiles:
    descriptions: dict[str, str]
    overrides: dict[str, dict[str, dict[str, Any]]]  # chapter -> profile -> {name: value}

    @property
    def names(self) -> list[str]:
        return list(self.descriptions)


def load_profiles(root: Path, chapters: dict[str, Chapter]) -> Profiles:
    """Read and validate ``book/profiles.yml`` against the chapters' parameter cells."""
    path = root / PROFILES_FILE
    if not path.is_file():
        raise ConfigError(f"{path} not found; it lists the profiles (smoke, default, paper) and their overrides")
    data = yaml.safe_load(path.read_text()) or {}
    descriptions = data.get("profiles") or {}
    if "default" not in descriptions:
        raise ConfigError(f"{path}: the 'profiles' section must name at least 'default'")
    overrides: dict[str, dict[str, dict[str, Any]]] = {}
    for chapter, per_profile in (data.get("chapters") or {}).items():
        if chapter not in chapters:
            continue  # a chapter not (yet) in the TOC may keep its profile entries
        per_profile = per_profile or {}
        for profile, values in per_profile.items():
            if profile not in descriptions:
                raise ConfigError(f"{path}: chapter {chapter!r} names unknown profile {profile!r}; "
                                  f"valid profiles: {', '.join(descriptions)}")
            checked = {}
            for name, value in (values or {}).items():
                defaults = chapters[chapter].parameters
                if name not in defaults:
                    raise ConfigError(
                        f"{path}: profile {profile!r} sets unknown parameter {name!r} of chapter {chapter!r}; "
                        f"valid parameters: {', '.join(defaults)}"
                    )
                checked[name] = coerce(chapter, name, value, defaults[name])
            overrides.setdefault(chapter, {})[profile] = checked
    return Profiles(descriptions=dict(descriptions), overrides=overrides)


def resolve_parameters(chapter: Chapter, profiles: Profiles, profile: str,
                       cli_overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """Notebook defaults < profile overrides < ``-p name=value`` (strings, parsed as YAML scalars)."""
    if profile not in profiles.descriptions:
        raise ConfigError(f"unknown profile {profile!r}; valid profiles: {', '.join(profiles.names)}")
    params = dict(chapter.parameters)
    params.update(profiles.overrides.get(chapter.name, {}).get(profile, {}))
    for name, raw in (cli_overrides or {}).items():
        if name not in chapter.parameters:
            raise ConfigError(
                f"unknown parameter {name!r} for chapter {chapter.name!r}; valid parameters: "
                f"{', '.join(chapter.parameters) or '(none)'}"
            )
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        params[name] = coerce(chapter.name, name, value, chapter.parameters[name], raw=raw)
    if "profile" in chapter.parameters:
        params["profile"] = profile
    return params


def execution_key(chapter: Chapter, params: dict[str, Any], kernel: str) -> str:
    """Hash of everything an executed notebook depends on: its source, parameters, kernel and the library's code
    (:func:`sgdbayes.cache.library_fingerprint`)."""
    from sgdbayes.cache import library_fingerprint

    payload = json.dumps({"source": chapter.text(), "params": params, "kernel": kernel,
                          "library": library_fingerprint()}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()
