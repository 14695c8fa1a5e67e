"""Calendar arithmetic on partition dates (``ds`` = yyyy-MM-dd strings); one place for all of it."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from offline_eval.errors import ConfigError

_DS = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_ds(value: str | dt.date) -> dt.date:
    """Parse a partition date (yyyy-MM-dd); the only date format the pipeline accepts."""
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or not _DS.match(value):
        raise ConfigError(f"invalid ds {value!r}: expected yyyy-MM-dd")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"invalid ds {value!r}: {exc}") from None


def validate_ds(value: str | dt.date) -> str:
    return parse_ds(value).isoformat()


_EPOCH = dt.date(1970, 1, 1)


def offset(ds: str, days: int) -> str:
    return (parse_ds(ds) + dt.timedelta(days=days)).isoformat()


def days_between(start: str, end: str) -> int:
    """end - start in days (negative when end is earlier)."""
    return (parse_ds(end) - parse_ds(start)).days


def epoch_day(ds: str) -> int:
    """Days since 1970-01-01."""
    return (parse_ds(ds) - _EPOCH).days


def date_range(start: str, end: str) -> list[str]:
    """start .. end inclusive."""
    d0, d1 = parse_ds(start), parse_ds(end)
    return [(d0 + dt.timedelta(days=i)).isoformat() for i in range((d1 - d0).days + 1)]


def window_dates(end: str, window_days: int) -> list[str]:
    """The ``window_days`` days ending on ``end``, ascending."""
    return date_range(offset(end, 1 - window_days), end)


def weekly_end(ds: str) -> str:
    """End of the weekly baseline a day compares against: the last Sunday strictly before it."""
    d = parse_ds(ds)
    return (d - dt.timedelta(days=d.weekday() + 1)).isoformat()


# The references every day's drift and alerts are computed against. The 28-day window is built
# by the weekly DAG, for inspection and the weekly work.
DRIFT_REFERENCES = ("previous_day", "baseline_7d")


@dataclass(frozen=True)
class Window:
    """A reference window: ``days`` days ending on ``end``."""

    name: str  # previous_day | baseline_7d | baseline_28d
    days: int
    end: str

    @property
    def dates(self) -> list[str]:
        return window_dates(self.end, self.days)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.end})"


def reference_windows(ds: str) -> list[Window]:
    """The references of day ``ds``: the previous day, and the 7 days ending the last Sunday
    before it (so a backfill of any day compares against exactly the reference it had)."""
    return [Window("previous_day", 1, offset(ds, -1)), Window("baseline_7d", 7, weekly_end(ds))]
