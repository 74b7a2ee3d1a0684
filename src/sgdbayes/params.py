"""Chapter parameters declared once, with their allowed values, and checked before any work starts.

Each chapter's orchestration module ``sgdbayes.experiments.<chapter>`` defines ``PARAMETERS``, a :class:`Spec`
naming every parameter of the chapter's parameters cell with its allowed values, plus relations between
parameters. ``sgdbayes run`` / ``sgdbayes book`` check the resolved values against it before a kernel starts, so a
bad value fails in a second with a message that names it and says what is allowed, instead of after minutes of work::

    PARAMETERS = Spec(
        seed=Int(min=0),
        lr=Float(gt=0),
        opt_names=List(Choice("sgd", "adam"), min_len=1),
        opt_lrs=List(Float(gt=0), min_len=1),
        relations=[same_length("opt_names", "opt_lrs")],
    )
    PARAMETERS.check({"seed": 0, "lr": 0.1, ...}, chapter="function_probability")   # raises ParameterError
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ParameterError", "Spec", "Int", "Float", "Str", "Bool", "Choice", "List", "Optional", "Rule",
           "same_length", "Kind"]


class ParameterError(ValueError):
    """A parameter value outside what its chapter allows; the message names the value and what is allowed."""


class Kind:
    """One parameter's allowed values. ``problem(value)`` is None when the value is allowed, else the reason."""

    def problem(self, value: Any) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


def _bounds(min: float | None, max: float | None, gt: float | None, lt: float | None) -> list[str]:
    out = []
    if gt is not None:
        out.append(f"> {gt:g}")
    if min is not None:
        out.append(f">= {min:g}")
    if lt is not None:
        out.append(f"< {lt:g}")
    if max is not None:
        out.append(f"<= {max:g}")
    return out


def _out_of_bounds(x: float, min: float | None, max: float | None, gt: float | None, lt: float | None) -> bool:
    return ((min is not None and x < min) or (max is not None and x > max) or (gt is not None and not x > gt)
            or (lt is not None and not x < lt))


@dataclass(frozen=True)
class Int(Kind):
    """An integer (not a bool) with optional bounds."""

    min: int | None = None
    max: int | None = None

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "not an integer"
        if _out_of_bounds(value, self.min, self.max, None, None):
            return "out of range"
        return None

    def describe(self) -> str:
        return " ".join(["an integer", *_bounds(self.min, self.max, None, None)])


@dataclass(frozen=True)
class Float(Kind):
    """A finite real number (ints accepted) with optional inclusive (``min``/``max``) or strict (``gt``/``lt``)
    bounds."""

    min: float | None = None
    max: float | None = None
    gt: float | None = None
    lt: float | None = None

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "not a number"
        if not math.isfinite(value):
            return "not finite"
        if _out_of_bounds(value, self.min, self.max, self.gt, self.lt):
            return "out of range"
        return None

    def describe(self) -> str:
        return " ".join(["a finite number", *_bounds(self.min, self.max, self.gt, self.lt)])


@dataclass(frozen=True)
class Bool(Kind):
    def problem(self, value: Any) -> str | None:
        return None if isinstance(value, bool) else "not true/false"

    def describe(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class Str(Kind):
    """Any string, optionally non-empty."""

    nonempty: bool = False

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, str):
            return "not a string"
        return "empty" if self.nonempty and not value else None

    def describe(self) -> str:
        return "a non-empty string" if self.nonempty else "a string"


class Choice(Kind):
    """One of the given values."""

    def __init__(self, *options: Any) -> None:
        if not options:
            raise ValueError("Choice needs at least one option")
        self.options = options

    def problem(self, value: Any) -> str | None:
        ok = any(value == o and isinstance(value, bool) == isinstance(o, bool) for o in self.options)
        return None if ok else "not one of the options"

    def describe(self) -> str:
        return "one of " + ", ".join(repr(o) for o in self.options)


class Optional(Kind):
    """None, or a value of ``kind``."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind

    def problem(self, value: Any) -> str | None:
        return None if value is None else self.kind.problem(value)

    def describe(self) -> str:
        return f"null or {self.kind.describe()}"


class List(Kind):
    """A list whose every entry is of ``item``, with optional length bounds, optionally without repeats."""

    def __init__(self, item: Kind, *, min_len: int = 0, max_len: int | None = None, unique: bool = False) -> None:
        self.item, self.min_len, self.max_len, self.unique = item, min_len, max_len, unique

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, (list, tuple)):
            return "not a list"
        if len(value) < self.min_len or (self.max_len is not None and len(value) > self.max_len):
            return f"has {len(value)} entries"
        for i, v in enumerate(value):
            p = self.item.problem(v)
            if p:
                return f"entry {i} ({v!r}) is {p}"
        if self.unique and len({repr(v) for v in value}) != len(value):
            return "has repeated entries"
        return None

    def describe(self) -> str:
        n = f"at least {self.min_len} " if self.min_len else ""
        if self.max_len is not None:
            n = f"{self.min_len} to {self.max_len} " if self.min_len else f"at most {self.max_len} "
        uniq = ", no repeats" if self.unique else ""
        return f"a list of {n}entries, each {self.item.describe()}{uniq}"


@dataclass(frozen=True)
class Rule:
    """A relation between parameters: ``test(params)`` must be true; ``text`` says what it requires."""

    test: Callable[[Mapping[str, Any]], bool]
    text: str
    names: tuple[str, ...] = ()


def same_length(*names: str) -> Rule:
    """The lists ``names`` pair up entry by entry, so they must have the same length."""
    return Rule(lambda p: len({len(p[n]) for n in names}) == 1,
                f"{', '.join(names)} pair up entry by entry and must have the same length", names)


@dataclass
class Spec:
    """The allowed values of every parameter of a chapter, and the relations between them."""

    kinds: dict[str, Kind] = field(default_factory=dict)
    relations: list[Rule] = field(default_factory=list)

    def __init__(self, relations: Iterable[Rule] = (), **kinds: Kind) -> None:
        for name, kind in kinds.items():
            if not isinstance(kind, Kind):
                raise TypeError(f"parameter {name!r}: expected a Kind (Int, Float, ...), got {kind!r}")
        self.kinds = dict(kinds)
        self.relations = list(relations)

    @property
    def names(self) -> list[str]:
        return list(self.kinds)

    def problems(self, params: Mapping[str, Any]) -> list[str]:
        """Every violation, as messages naming the parameter, its value and what is allowed."""
        out = []
        for name, value in params.items():
            kind = self.kinds.get(name)
            if kind is None:
                out.append(f"{name} = {value!r} has no declared range (add it to the chapter's PARAMETERS)")
                continue
            p = kind.problem(value)
            if p:
                out.append(f"{name} = {value!r} is {p}; allowed: {kind.describe()}")
        if out:
            return out  # relations assume each value is of its kind
        for rule in self.relations:
            try:
                ok = bool(rule.test(params))
            except (KeyError, TypeError, ValueError, ZeroDivisionError) as err:
                ok, rule_err = False, f" ({type(err).__name__}: {err})"
            else:
                rule_err = ""
            if not ok:
                shown = ", ".join(f"{n} = {params[n]!r}" for n in rule.names if n in params)
                out.append(f"{rule.text}{'; got ' + shown if shown else ''}{rule_err}")
        return out

    def check(self, params: Mapping[str, Any], *, chapter: str = "") -> None:
        """Raise :class:`ParameterError` listing every violation."""
        problems = self.problems(params)
        if problems:
            where = f" of chapter {chapter!r}" if chapter else ""
            raise ParameterError(f"bad parameter value{'s' if len(problems) > 1 else ''}{where}:\n  - "
                                 + "\n  - ".join(problems))

    def missing(self, names: Sequence[str]) -> list[str]:
        """Names of ``names`` that this spec does not declare."""
        return [n for n in names if n not in self.kinds]
