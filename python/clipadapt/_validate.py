"""Checks of the scalar arguments the public functions share.

Python and numpy numbers are accepted alike (``np.float32(0.9)`` is a number like ``0.9``);
booleans are not numbers here. Every error names the argument and the values it accepts.
"""
from __future__ import annotations

import math
import numbers
import re
from typing import Any

import numpy as np


def integer(value: Any, name: str, *, minimum: int | None = None) -> int:
    """``value`` as an ``int``; TypeError unless it is an integer, ValueError below ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: must be an integer, got {_shown(value)}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be an integer >= {minimum}, got {int(value)}")
    return int(value)


def real(value: Any, name: str, *, above: float | None = None, at_least: float | None = None,
         below: float | None = None) -> float:
    """``value`` as a finite ``float`` within the given bounds (``above`` and ``below`` exclusive)."""
    bounds = [f"{sign} {bound:g}" for sign, bound in ((">", above), (">=", at_least), ("<", below))
              if bound is not None]
    wanted = "a finite number" + (f" {' and '.join(bounds)}" if bounds else "")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: must be {wanted}, got {_shown(value)}")
    number = float(value)
    if (not math.isfinite(number) or (above is not None and not number > above)
            or (at_least is not None and not number >= at_least) or (below is not None and not number < below)):
        raise ValueError(f"{name}: must be {wanted}, got {number!r}")
    return number


def choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    """``value`` when it is one of the ``allowed`` strings; ValueError listing them otherwise."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: unknown value {_shown(value)}; use one of {', '.join(allowed)}")
    return value


def device(value: Any, name: str) -> str:
    """``value`` when it names a device the torch-side code runs on: ``"cpu"``, ``"cuda"`` or
    ``"cuda:N"`` (whether that device exists is the caller's question)."""
    if not isinstance(value, str) or not (value == "cpu" or re.fullmatch(r"cuda(:\d+)?", value)):
        raise ValueError(f"{name}: unknown device {value!r}; use cpu, cuda or cuda:N (N a device number)")
    return value


def _shown(value: Any) -> str:
    """A short description of a rejected value: itself when it is short, else its type."""
    if value is None or (isinstance(value, (numbers.Number, str)) and len(repr(value)) <= 40):
        return repr(value)
    return f"a {type(value).__name__}"
