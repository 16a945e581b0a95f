"""The ranges of numeric settings, declared once and checked before anything runs.

A setting's ``Range`` is declared where the setting is: on a field of the config schema
(``fdagmm.config``), or, for an instantiated group whose options are classes of their own
(partitioners, strategies), on the constructor's parameter as ``Annotated[float, POSITIVE]``,
which ``checked_arguments`` enforces on every construction. A test walks both.
"""

from __future__ import annotations

import functools
import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from omegaconf import ListConfig

from fdagmm.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """The values a numeric setting may take: a finite number between optional bounds."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself is outside
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        return (
            math.isfinite(value)
            and (self.low is None or (value > self.low if self.low_open else value >= self.low))
            and (self.high is None or (value < self.high if self.high_open else value <= self.high))
        )

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high}"
        return "a finite number"


AT_LEAST_0 = Range(low=0)
AT_LEAST_1 = Range(low=1)
POSITIVE = Range(low=0, low_open=True)
FRACTION = Range(0, 1)  # [0, 1]
OPEN_FRACTION = Range(0, 1, low_open=True, high_open=True)  # (0, 1)
BELOW_1 = Range(0, 1, high_open=True)  # [0, 1): momenta, decay rates, dropout
FINITE = Range()
SEED = Range(0, 2**32 - 1)  # what numpy's and Lightning's seeding accept


def check_range(setting: str, value: Any, allowed: Range) -> None:
    """Raise a one-line ConfigError unless ``value`` (or each element of a list) is a number in
    ``allowed``; None (a null setting) passes."""
    if value is None:
        return
    elements = list(value) if isinstance(value, (list, tuple, ListConfig)) else [value]
    # bool is an int subclass, and a string may reach an argument that the config types Any.
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v in allowed for v in elements):
        raise ConfigError(f"{setting} must be {allowed}, got {value}")


def checked_arguments(group: str) -> Callable:
    """Decorates a constructor: every call checks its ``Annotated[..., Range]`` arguments, and
    an argument out of range is a ConfigError naming ``<group>.<argument>``."""

    def decorate(init: Callable) -> Callable:
        signature = inspect.signature(init)

        @functools.wraps(init)
        def checked_init(*args: Any, **kwargs: Any) -> None:
            arguments = signature.bind(*args, **kwargs)
            arguments.apply_defaults()
            for name, allowed in _annotated_ranges(init).items():
                check_range(f"{group}.{name}", arguments.arguments[name], allowed)
            init(*args, **kwargs)

        return checked_init

    return decorate


def argument_ranges(cls: type) -> dict[str, Range]:
    """The declared range of each constructor argument of ``cls``, its base classes' included."""
    ranges: dict[str, Range] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in vars(klass):
            ranges |= _annotated_ranges(inspect.unwrap(vars(klass)["__init__"]))
    return ranges


@functools.cache
def _annotated_ranges(function: Callable) -> dict[str, Range]:
    ranges = {}
    for name, hint in typing.get_type_hints(function, include_extras=True).items():
        # ``Annotated[float, POSITIVE] | None``: the range of an optional argument's value
        for option in typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,):
            if typing.get_origin(option) is typing.Annotated:
                ranges |= {name: m for m in option.__metadata__ if isinstance(m, Range)}
    return ranges
