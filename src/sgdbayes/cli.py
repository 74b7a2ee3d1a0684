"""``sgdbayes list | run CHAPTER | book`` — run the book's chapters with papermill at any profile.

    sgdbayes list [--profile P] [--estimate]
    sgdbayes run CHAPTER [--profile P] [-p name=value ...] [--force]
    sgdbayes book [--profile P] [--no-html] [--force]
"""

from __future__ import annotations

import argparse
import importlib
import os
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from sgdbayes.chapters import ConfigError, discover, load_profiles, resolve_parameters
from sgdbayes.paths import project_root
from sgdbayes.runner import (CELL_TIMEOUT_ENV, DEFAULT_KERNEL, REPORT, ChapterFailed, cell_timeout_from_env,
                             cell_timeout_seconds, execute, jupyter_book_build)


def _parse_overrides(items: list[str]) -> dict[str, str]:
    overrides = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"-p expects name=value, got {item!r}")
        name, value = item.split("=", 1)
        overrides[name.strip()] = value
    return overrides


def _setup(args) -> tuple[Path, dict, object]:
    root = project_root()
    chapters = discover(root)
    profiles = load_profiles(root, chapters)
    if args.profile not in profiles.descriptions:
        raise ConfigError(f"unknown profile {args.profile!r}; valid profiles: {', '.join(profiles.names)}")
    return root, chapters, profiles


DEVICES = ("auto", "cpu", "cuda")
SCHEDULERS = ("sync", "local")
SCHEDULER_ENV = "SGDBAYES_DASK_SCHEDULER"


def chapter_spec(name: str):
    """The chapter's declared parameters (``sgdbayes.experiments.<name>.PARAMETERS``), or None if it declares none."""
    module_name = f"sgdbayes.experiments.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:
            return None
        raise
    return getattr(module, "PARAMETERS", None)


def validate_parameters(chapter, params: dict) -> None:
    """Check ``params`` against the chapter's declared ranges and relations (before any kernel starts)."""
    from sgdbayes.params import ParameterError

    spec = chapter_spec(chapter.name)
    if spec is None:
        raise ConfigError(f"chapter {chapter.name!r} declares no parameter ranges: add PARAMETERS (a "
                          f"sgdbayes.params.Spec) to sgdbayes.experiments.{chapter.name}")
    missing = spec.missing(list(chapter.parameters))
    if missing:
        raise ConfigError(f"chapter {chapter.name!r}: parameter(s) {', '.join(missing)} of its parameters cell have "
                          f"no declared range in sgdbayes.experiments.{chapter.name}.PARAMETERS")
    try:
        spec.check(params, chapter=chapter.name)
    except ParameterError as err:
        raise ConfigError(str(err)) from None


def validate_device(device: str | None) -> None:
    """``--device``: auto, cpu, cuda or cuda:N, and CUDA only where it is present."""
    if device is None:
        return
    kind, _, index = device.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise ConfigError(f"--device {device!r} is not understood; allowed: auto, cpu, cuda, cuda:N")
    if kind == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: CUDA is not available on this machine (torch "
                              f"{torch.__version__}); use --device cpu or auto")
        if index and int(index) >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def validate_scheduler(address: str | None, *, source: str = "--scheduler", timeout_s: float = 5.0) -> None:
    """``--scheduler``: sync, local, or a Dask address (tcp://host:port, tls://...) that accepts a connection."""
    if address is None:
        return
    if address in SCHEDULERS:
        return
    parts = urlsplit(address)
    if parts.scheme not in ("tcp", "tls", "ucx", "inproc") or not parts.hostname:
        raise ConfigError(f"{source} {address!r} is not understood; allowed: sync, local, or a Dask scheduler address "
                          "such as tcp://host:8786")
    if parts.scheme in ("tcp", "tls"):
        try:
            port = parts.port or 8786
        except ValueError:
            raise ConfigError(f"{source} {address!r}: the port is not a number") from None
        try:
            socket.create_connection((parts.hostname, port), timeout=timeout_s).close()
        except OSError as err:
            raise ConfigError(f"{source} {address}: no Dask scheduler answers there ({err.strerror or err}). Start one "
                              f"(`dask scheduler`) or drop the option to run in this process") from None


def _validate_options(args) -> None:
    validate_device(getattr(args, "device", None))
    if getattr(args, "scheduler", None):
        validate_scheduler(args.scheduler)
    elif os.environ.get(SCHEDULER_ENV):
        validate_scheduler(os.environ[SCHEDULER_ENV], source=f"${SCHEDULER_ENV}")
    _cell_timeout(args)


def _env(args) -> dict[str, str]:
    env = {"SGDBAYES_PROFILE": args.profile}
    if getattr(args, "scheduler", None):
        env["SGDBAYES_DASK_SCHEDULER"] = args.scheduler
    if getattr(args, "device", None):
        env["SGDBAYES_DEVICE"] = args.device
    return env


def _cell_timeout(args) -> float | None:
    if args.cell_timeout is None:
        return cell_timeout_from_env()
    return cell_timeout_seconds(args.cell_timeout, f"--cell-timeout {args.cell_timeout}")


def _run_one(root, chapter, params, args, index: str = "") -> None:
    print(f"{index}{chapter.name} (profile {args.profile})", flush=True)
    result = execute(root, chapter, params, profile=args.profile, kernel=args.kernel, force=args.force,
                     progress=not args.quiet, env=_env(args), cell_timeout=_cell_timeout(args))
    if result.skipped:
        print(f"  up to date: {result.output.relative_to(root)} (inputs unchanged; --force re-executes)")
    else:
        print(f"  executed in {result.seconds:.1f} s -> {result.output.relative_to(root)}")


def cmd_list(args) -> int:
    root, chapters, profiles = _setup(args)
    shown = [args.profile] if args.profile_given else profiles.names
    if args.estimate:
        from sgdbayes import estimate

        print("Calibrating this machine's throughputs (a few seconds) ...", flush=True)
        resolved = {name: {p: resolve_parameters(ch, profiles, p) for p in profiles.names}
                    for name, ch in chapters.items()}
        print(estimate.render(resolved, profiles.names, shown))
        return 0
    for name in shown:
        print(f"profile {name}: {profiles.descriptions[name]}")
    print()
    for chapter in chapters.values():
        print(f"{chapter.name}  ({chapter.source.relative_to(root)})")
        if not chapter.parameters:
            print("    (no parameters)")
            continue
        rows = [("parameter", *shown)]
        for pname in chapter.parameters:
            rows.append((pname, *(repr(resolve_parameters(chapter, profiles, p)[pname]) for p in shown)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("    " + "  ".join(c.ljust(w) for c, w in zip(r, widths)))
        print()
    return 0


def cmd_run(args) -> int:
    root, chapters, profiles = _setup(args)
    if args.chapter not in chapters:
        raise ConfigError(f"unknown chapter {args.chapter!r}; valid chapters: {', '.join(chapters)}")
    chapter = chapters[args.chapter]
    params = resolve_parameters(chapter, profiles, args.profile, _parse_overrides(args.param))
    validate_parameters(chapter, params)
    _validate_options(args)
    _run_one(root, chapter, params, args)
    return 0


def cmd_book(args) -> int:
    root, chapters, profiles = _setup(args)
    order = [c for c in chapters if c != REPORT] + ([REPORT] if REPORT in chapters else [])
    resolved = {c: resolve_parameters(chapters[c], profiles, args.profile) for c in order}  # validate all first
    for name in order:
        validate_parameters(chapters[name], resolved[name])
    _validate_options(args)
    t0 = time.perf_counter()
    for i, name in enumerate(order, 1):
        _run_one(root, chapters[name], resolved[name], args, index=f"[{i}/{len(order)}] ")
    print(f"chapters done in {time.perf_counter() - t0:.1f} s")
    if not args.no_html:
        jupyter_book_build(root)
        print(f"book: {root / '_build' / 'html' / 'index.html'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sgdbayes", description="Run the chapters of the sgdbayes book.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--profile", default=os.environ.get("PROFILE") or "default",
                       help="smoke | default | paper (see book/profiles.yml)")
        p.add_argument("--kernel", default=DEFAULT_KERNEL, help="Jupyter kernel name")
        p.add_argument("--force", action="store_true", help="execute even if inputs are unchanged")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.add_argument("--device", default=None,
                       help="sets SGDBAYES_DEVICE for the notebooks (auto|cpu|cuda|cuda:N)")
        p.add_argument("--scheduler", default=None,
                       help="Dask scheduler address (tcp://host:port) for sharded sampling; "
                            "default SGDBAYES_DASK_SCHEDULER or a local cluster")
        p.add_argument("--cell-timeout", default=None, metavar="SECONDS",
                       help=f"fail a cell that runs longer (interrupting it); 0 or inf: no limit; default "
                            f"{CELL_TIMEOUT_ENV} or no limit")

    p_list = sub.add_parser("list", help="chapters and their parameters per profile")
    p_list.add_argument("--profile", default=None)
    p_list.add_argument("--estimate", action="store_true",
                        help="predict each chapter's time per profile, here (throughputs measured now) and on a GPU "
                             "(a stated model)")
    p_list.set_defaults(func=cmd_list)
    p_run = sub.add_parser("run", help="execute one chapter")
    p_run.add_argument("chapter")
    p_run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE")
    common(p_run)
    p_run.set_defaults(func=cmd_run)
    p_book = sub.add_parser("book", help="execute every chapter, then build the HTML")
    p_book.add_argument("--no-html", action="store_true", help="execute the chapters only")
    common(p_book)
    p_book.set_defaults(func=cmd_book)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        args.profile_given = args.profile is not None
        args.profile = args.profile or "default"
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"sgdbayes: error: {err}", file=sys.stderr)
        return 2
    except ChapterFailed as err:
        print(f"sgdbayes: {err}", file=sys.stderr)
        return 1
    except RuntimeError as err:
        print(f"sgdbayes: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
