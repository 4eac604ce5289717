"""Batch-window schedules: two 5-field cron expressions in an IANA time zone -> "is the window
open at instant t?" (standard library only; runs in the window reconciler pod and in settings
validation, see aimesh/runtime/__init__.py).

Cron, as Kubernetes CronJobs read it (robfig/cron's standard parser):
- fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or JAN-DEC), day of
  week (0-6, 0 = Sunday, or SUN-SAT); names in any case;
- each field is a comma-separated list of `*` (or `?`), `N`, `A-B`, each optionally `/STEP`
  (`N/STEP` means `N-max/STEP`);
- day of month and day of week: when either is unrestricted (`*` or `?`, no step) both must
  match, otherwise either may (Vixie cron).

Windows (docs/models.md, "Batch windows"):
- a window is open at t when the latest `open` time at or before t is later than the latest
  `close` time at or before t; `open` and `close` on the same minute: closed (fail closed);
- times are local wall-clock times of the window's time zone. A time that does not exist that
  day (clocks spring forward over it) happens at the transition: a close scheduled inside the gap
  is never skipped. A time that exists twice (clocks fall back) happens once, at its first
  occurrence.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cached_property
from zoneinfo import ZoneInfo

# How far back and ahead an edge is searched for: four years and a day cover a schedule that
# fires only on February 29th.
HORIZON_DAYS = 4 * 366

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class CronError(ValueError):
    """A cron expression outside the accepted language; the message names the field and value."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    # The value names[0] stands for (JAN = 1, SUN = 0).
    first_name_value: int = 0


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, _MONTHS, 1),
    _Field("day of week", 0, 6, _DAYS, 0),
)


def _value(text: str, spec: _Field) -> int:
    lowered = text.lower()
    if lowered in spec.names:
        return spec.names.index(lowered) + spec.first_name_value
    if not text.isdigit():
        allowed = f"{spec.low}-{spec.high}"
        if spec.names:
            allowed += f" or {spec.names[0].upper()}-{spec.names[-1].upper()}"
        raise CronError(f"{spec.name} {text!r}: not a number ({allowed})")
    number = int(text)
    if not spec.low <= number <= spec.high:
        raise CronError(f"{spec.name} {text!r}: out of range {spec.low}-{spec.high}")
    return number


def _parse_field(text: str, spec: _Field) -> tuple[frozenset[int], bool]:
    """The values a field matches, and whether it is unrestricted (`*`/`?` without a step)."""
    values: set[int] = set()
    star = False
    for part in text.split(","):
        if not part:
            raise CronError(f"{spec.name} {text!r}: empty list item")
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise CronError(f"{spec.name} {part!r}: the step must be a positive number")
            step = int(step_text)
        if base in ("*", "?"):
            low, high = spec.low, spec.high
            star = star or step == 1
        elif "-" in base:
            first, _, last = base.partition("-")
            low, high = _value(first, spec), _value(last, spec)
            if low > high:
                raise CronError(f"{spec.name} {part!r}: the range runs backwards")
        else:
            low = _value(base, spec)
            high = spec.high if slash else low
        values.update(range(low, high + 1, step))
    return frozenset(values), star


@dataclass(frozen=True)
class Cron:
    """One parsed 5-field expression."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool = field(default=False)
    any_weekday: bool = field(default=False)

    def matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = day.isoweekday() % 7 in self.weekdays
        if self.any_day or self.any_weekday:
            return dom and dow
        return dom or dow

    @cached_property
    def times(self) -> tuple[tuple[int, int], ...]:
        """(hour, minute) of every match within a matching day, in order."""
        return tuple((h, m) for h in sorted(self.hours) for m in sorted(self.minutes))

    @cached_property
    def offsets(self) -> tuple[timedelta, ...]:
        """`times` as time since midnight."""
        return tuple(timedelta(hours=h, minutes=m) for h, m in self.times)


def parse(text: str) -> Cron:
    """Parse `text`; raises CronError naming the offending field."""
    parts = text.split()
    if len(parts) != 5:
        raise CronError(
            f"{text!r}: a schedule has 5 fields (minute hour day-of-month month day-of-week), "
            f"not {len(parts)}"
        )
    (minutes, _), (hours, _), (days, any_day), (months, _), (weekdays, any_weekday) = (
        _parse_field(part, spec) for part, spec in zip(parts, _FIELDS, strict=True)
    )
    return Cron(text, minutes, hours, days, months, weekdays, any_day, any_weekday)


def _utc_of(day: date, hour: int, minute: int, zone: tzinfo) -> datetime:
    """The instant a local wall-clock time happens (see the module docstring for gaps/folds)."""
    wall = datetime(day.year, day.month, day.day, hour, minute)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    # In a gap: fold=0 and fold=1 map it to instants on either side of the transition; the
    # transition is the first instant after the earlier one with another UTC offset.
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    instant, stop = min(first, other), max(first, other)
    offset = instant.astimezone(zone).utcoffset()
    while instant < stop:
        instant += timedelta(minutes=1)
        if instant.astimezone(zone).utcoffset() != offset:
            break
    return instant


def _midnight(day: date, zone: tzinfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def instants_on(cron: Cron, day: date, zone: tzinfo) -> list[datetime]:
    """Every instant (UTC) `cron` fires at on local date `day`, in order."""
    if not cron.matches_day(day):
        return []
    start = _midnight(day, zone)
    if start.astimezone(zone).hour == 0 and start + timedelta(days=1) == _midnight(
        day + timedelta(days=1), zone
    ):
        # No clock change that day: local time is midnight plus elapsed time.
        return [start + delta for delta in cron.offsets]
    return [_utc_of(day, h, m, zone) for h, m in cron.times]


def last_at_or_before(cron: Cron, zone: tzinfo, t: datetime) -> datetime | None:
    """The latest instant <= t that `cron` fires at (None within HORIZON_DAYS)."""
    today = t.astimezone(zone).date()
    for back in range(HORIZON_DAYS + 1):
        found = [u for u in instants_on(cron, today - timedelta(days=back), zone) if u <= t]
        if found:
            return found[-1]
    return None


def first_after(cron: Cron, zone: tzinfo, t: datetime, days: int = HORIZON_DAYS) -> datetime | None:
    """The earliest instant > t that `cron` fires at (None within `days`)."""
    today = t.astimezone(zone).date()
    for ahead in range(days + 1):
        found = [u for u in instants_on(cron, today + timedelta(days=ahead), zone) if u > t]
        if found:
            return found[0]
    return None


@dataclass(frozen=True)
class Window:
    """A batch window: opens on `open`, closes on `close`, both read in `time_zone`."""

    open: Cron
    close: Cron
    time_zone: str

    @classmethod
    def parse(cls, open_text: str, close_text: str, time_zone: str) -> Window:
        return cls(parse(open_text), parse(close_text), time_zone)

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def is_open(self, t: datetime) -> bool:
        opened = last_at_or_before(self.open, self.zone, t)
        if opened is None:
            return False
        closed = last_at_or_before(self.close, self.zone, t)
        return closed is None or opened > closed

    def next_edge(self, t: datetime, days: int = 2) -> datetime | None:
        """The next instant > t at which this window opens or closes (within `days`)."""
        edges = [first_after(c, self.zone, t, days) for c in (self.open, self.close)]
        return min((e for e in edges if e is not None), default=None)

    def transitions(self, start: date, days: int) -> Iterator[tuple[datetime, bool]]:
        """(instant, open afterwards) of every change of state on local dates
        [start, start + days), starting closed; where `open` and `close` fall on one instant
        the window is closed afterwards."""
        state = False
        for offset in range(days):
            day = start + timedelta(days=offset)
            closes = instants_on(self.close, day, self.zone)
            shut = set(closes)
            opens = [u for u in instants_on(self.open, day, self.zone) if u not in shut]
            cursor: datetime | None = None
            while True:
                edges = closes if state else opens
                i = 0 if cursor is None else bisect_right(edges, cursor)
                if i == len(edges):
                    break
                cursor = edges[i]
                state = not state
                yield cursor, state


def is_open(windows: Iterable[Window], t: datetime) -> bool:
    """Whether any of `windows` is open at t (a caller's policy is open while any window is)."""
    return any(w.is_open(t) for w in windows)


def next_edge(windows: Iterable[Window], t: datetime, days: int = 2) -> datetime | None:
    """The next instant > t at which any of `windows` opens or closes (within `days`)."""
    return min((e for w in windows if (e := w.next_edge(t, days)) is not None), default=None)


@dataclass(frozen=True)
class Opening:
    """One period a window is open: [start, end)."""

    start: datetime
    end: datetime

    @property
    def minutes(self) -> float:
        return (self.end - self.start).total_seconds() / 60


class WindowError(ValueError):
    """A window that never opens, never closes, or is open too briefly."""


def openings(window: Window, start: date, days: int = 366) -> list[Opening]:
    """Every period the window is open that begins on local dates [start, start + days).

    Raises WindowError when it never opens in that span or an opening is never closed."""
    found: list[Opening] = []
    opened: datetime | None = None
    for instant, now_open in window.transitions(start, days):
        if now_open:
            opened = instant
        elif opened is not None:
            found.append(Opening(opened, instant))
            opened = None
    if opened is not None:
        closing = first_after(window.close, window.zone, opened)
        if closing is None:
            raise WindowError(
                f"'close' ({window.close.text}) never happens after the opening of "
                f"{opened.astimezone(window.zone):%Y-%m-%d %H:%M %Z}: the window would stay open"
            )
        found.append(Opening(opened, closing))
    if not found and days < HORIZON_DAYS:
        # Perhaps it opens only beyond this span (e.g. on February 29th).
        return openings(window, start, HORIZON_DAYS)
    if not found:
        raise WindowError(
            f"the window never opens within {HORIZON_DAYS // 366} years: 'open' "
            f"({window.open.text}) never fires on a minute 'close' ({window.close.text}) does not"
        )
    return found


def check_length(window: Window, minimum_minutes: int, start: date) -> None:
    """Raise WindowError when the window never opens or closes, or one of its openings in the
    year from `start` (both DST changes included) is shorter than `minimum_minutes`."""
    shortest = min(openings(window, start), key=lambda o: o.end - o.start, default=None)
    if shortest is not None and shortest.minutes < minimum_minutes:
        local = shortest.start.astimezone(window.zone)
        raise WindowError(
            f"the window opening on {local:%Y-%m-%d %H:%M %Z} ({window.time_zone}) is open for "
            f"only {shortest.minutes:g} minutes; a window must be open at least "
            f"{minimum_minutes} minutes"
        )
