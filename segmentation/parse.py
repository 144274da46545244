"""Reading values that arrive as text: numbers, dates and the per-feature transform steps.

Pure functions of Columns (or of config text), used by the read, clean and transactions
stages alike, so one rule reads ``"$1,234.50"`` wherever it appears.

A number stored as text is read by the rule in ``input.number_text``: the symbols
(``$€£¥%`` by default) and the thousands separator are removed; surrounding white
space is trimmed; the decimal separator becomes ``.``; a leading ``+``/``-`` and
an exponent are allowed; accounting negatives ``(12.50)`` are read as -12.5. What is
left must parse as a finite number, else the value is *unparseable* (null here; the
clean stage counts it). Empty or blank text is a missing value, like null.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from pyspark.sql import Column
from pyspark.sql import functions as F

from segmentation.compat import try_cast
from segmentation.errors import InputError

if TYPE_CHECKING:  # config imports this module: no import back at run time
    from segmentation.config import NumberTextConfig

LOG1P = "log1p"
ONE_HOT = "one_hot"
CLIP = "clip"
_CLIP = re.compile(r"^clip\(\s*([0-9.eE+-]+)\s*,\s*([0-9.eE+-]+)\s*\)$")


@dataclass(frozen=True)
class Step:
    """One transform step of a feature: log1p, clip(low, high) at quantiles, or one_hot."""

    kind: str
    low: Optional[float] = None
    high: Optional[float] = None


def parse_steps(feature: str, steps: tuple[str, ...]) -> tuple[Step, ...]:
    """``("clip(0.01, 0.99)", "log1p")`` -> Steps; an input error names what is wrong."""
    parsed = []
    for text in steps:
        text = text.strip()
        match = _CLIP.match(text)
        if text in (LOG1P, ONE_HOT):
            parsed.append(Step(text))
        elif match:
            low, high = float(match.group(1)), float(match.group(2))
            if not 0.0 <= low < high <= 1.0:
                raise InputError(
                    f"input.transforms.{feature}: clip quantiles must satisfy 0 <= low < high <= 1, got {text}"
                )
            parsed.append(Step(CLIP, low, high))
        else:
            raise InputError(
                f"input.transforms.{feature}: unknown step {text!r}; use log1p, clip(LOW, HIGH) or one_hot"
            )
    if any(s.kind == ONE_HOT for s in parsed) and len(parsed) > 1:
        raise InputError(f"input.transforms.{feature}: one_hot is a step of its own, not combined with others")
    return tuple(parsed)


def is_categorical(steps: tuple[Step, ...]) -> bool:
    return any(s.kind == ONE_HOT for s in steps)


_NUMBER = r"^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?$"


def is_blank(text: Column) -> Column:
    """Null, empty or only white space: a missing value, not an unparseable one."""
    return text.isNull() | (F.regexp_replace(text, r"\s+", "") == "")


def number_from_text(text: Column, rule: NumberTextConfig) -> Column:
    """The double in ``text`` by the rule in the module doc; null when blank or unparseable."""
    value = text
    removed = rule.symbols + rule.thousands
    if removed:
        value = F.regexp_replace(value, "[" + re.escape(removed) + "]", "")
    value = F.regexp_replace(value, r"^\s+|\s+$", "")
    bracketed = value.rlike(r"^\(.*\)$")
    value = F.when(bracketed, F.regexp_extract(value, r"^\((.*)\)$", 1)).otherwise(value)
    if rule.decimal != ".":
        value = F.translate(value, rule.decimal, ".")
    number = F.when(value.rlike(_NUMBER), try_cast(value, "double"))
    number = F.when(bracketed, -number).otherwise(number)
    return F.when(~is_blank(text) & (F.abs(number) < float("inf")), number).cast("double")


def date_from(column: Column, pattern: Optional[str], is_text: bool) -> Column:
    """A date column from a date, a timestamp, or text / numbers in ``pattern`` (null when it fails)."""
    if not is_text and pattern is None:
        return column.cast("date")
    text = column.cast("string")
    if pattern is None:
        return try_cast(text, "date")
    return F.try_to_timestamp(text, F.lit(pattern)).cast("date")
