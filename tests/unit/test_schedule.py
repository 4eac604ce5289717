"""Batch-window schedules (aimesh/runtime/schedule.py): the cron language Kubernetes CronJobs
accept, checked against croniter; windows across midnight, both DST changes and time zones, on a
fake clock; and the minimum-length check settings run."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

# croniter ships no type information (types-croniter stubs lag behind 7.x).
from croniter import croniter  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from aimesh.runtime import schedule

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(
    zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0, fold: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone, fold=fold).astimezone(UTC)


# ---- the cron language -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "minutes", "hours", "days", "months", "weekdays"),
    [
        ("0 1 * * *", {0}, {1}, set(range(1, 32)), set(range(1, 13)), set(range(7))),
        ("*/15 9-17 * * MON-FRI", {0, 15, 30, 45}, set(range(9, 18)), None, None, {1, 2, 3, 4, 5}),
        ("5,10 0 1 jan,Jul ?", {5, 10}, {0}, {1}, {1, 7}, set(range(7))),
        ("30/10 2-8/3 */10 * SUN", {30, 40, 50}, {2, 5, 8}, {1, 11, 21, 31}, None, {0}),
    ],
)
def test_fields_parse_as_kubernetes_cronjobs_read_them(
    text: str,
    minutes: set[int],
    hours: set[int],
    days: set[int] | None,
    months: set[int] | None,
    weekdays: set[int],
) -> None:
    cron = schedule.parse(text)
    assert cron.minutes == minutes
    assert cron.hours == hours
    assert days is None or cron.days == days
    assert months is None or cron.months == months
    assert cron.weekdays == weekdays


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("0 1 * *", "5 fields"),
        ("0 1 * * * *", "5 fields"),
        ("60 1 * * *", "minute '60'"),
        ("0 24 * * *", "hour '24'"),
        ("0 1 0 * *", "day of month '0'"),
        ("0 1 * 13 *", "month '13'"),
        ("0 1 * * 7", "day of week '7'"),  # Kubernetes' parser refuses 7 for Sunday
        ("0 1 * * MON-SUN", "runs backwards"),
        ("0 1 L * *", "day of month 'L'"),
        ("0 1 * * 1#2", "day of week '1#2'"),
        ("*/0 1 * * *", "step"),
        ("0 1,,2 * * *", "empty list item"),
        ("@daily", "5 fields"),
    ],
)
def test_anything_else_is_refused_naming_the_field(text: str, names: str) -> None:
    with pytest.raises(schedule.CronError, match=names):
        schedule.parse(text)


def test_day_of_month_and_week_combine_as_vixie_cron() -> None:
    # Both restricted: either matches. 2027-01-04 is a Monday, 2027-01-13 the 13th.
    either = schedule.parse("0 0 13 * MON")
    assert either.matches_day(date(2027, 1, 4))
    assert either.matches_day(date(2027, 1, 13))
    assert not either.matches_day(date(2027, 1, 5))
    # One unrestricted: both must match (every Monday).
    both = schedule.parse("0 0 * * MON")
    assert both.matches_day(date(2027, 1, 4))
    assert not both.matches_day(date(2027, 1, 13))
    # A step is a restriction (robfig/cron clears the star on `*/2`).
    stepped = schedule.parse("0 0 */2 * MON")
    assert stepped.matches_day(date(2027, 1, 4))  # Monday, even day
    assert stepped.matches_day(date(2027, 1, 13))  # odd day
    # ...but a step of 1 is not: `*/1` is `*`.
    assert not schedule.parse("0 0 13 * */1").matches_day(date(2027, 1, 4))


def test_a_one_value_range_is_that_value() -> None:
    ranged, single = schedule.parse("0 5-5 * * 3-3"), schedule.parse("0 5 * * 3")
    assert (ranged.hours, ranged.weekdays) == (single.hours, single.weekdays)
    assert (set(single.hours), set(single.weekdays)) == ({5}, {3})


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    single = number.map(str)
    # Ranges of two or more values: croniter reads `N-N` as `*`, Kubernetes (and we) as N
    # (test_a_one_value_range_is_that_value).
    span = (
        st.tuples(number, number).filter(lambda p: p[0] != p[1]).map(lambda p: f"{min(p)}-{max(p)}")
    )
    # Steps of 2 or more: croniter reads `*/1` in a day field as a restriction, Kubernetes (and
    # we) as `*` (test_day_of_month_and_week_combine_as_vixie_cron).
    stepped = st.tuples(
        st.sampled_from(["*", *[str(v) for v in range(low, high + 1)]]), st.integers(2, 7)
    ).map(lambda p: f"{p[0]}/{p[1]}")
    item = st.one_of(single, span, stepped)
    return st.one_of(st.just("*"), st.lists(item, min_size=1, max_size=3).map(",".join))


CRON = st.tuples(_field(0, 59), _field(0, 23), _field(1, 31), _field(1, 12), _field(0, 6)).map(
    " ".join
)


@settings(max_examples=300, deadline=None)
@given(
    text=CRON,
    at=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 12, 31)),
)
def test_previous_fire_time_agrees_with_croniter(text: str, at: datetime) -> None:
    # UTC: the cron language alone (DST is the window's business, tested below). Half a minute
    # past: croniter's get_prev is strictly before, ours at-or-before.
    t = at.replace(second=30, microsecond=0, tzinfo=UTC)
    cron = schedule.parse(text)
    ours = schedule.last_at_or_before(cron, UTC, t)
    if ours is None:
        return  # nothing within four years back (e.g. February 30th): croniter would search on
    theirs = croniter(text, t).get_prev(datetime)
    assert ours == theirs, text


@settings(max_examples=200, deadline=None)
@given(
    text=CRON,
    at=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2030, 12, 31)),
)
def test_next_fire_time_agrees_with_croniter(text: str, at: datetime) -> None:
    t = at.replace(second=30, microsecond=0, tzinfo=UTC)
    ours = schedule.first_after(schedule.parse(text), UTC, t)
    if ours is None:
        return
    assert ours == croniter(text, t).get_next(datetime), text


# ---- windows on a fake clock -----------------------------------------------------------------


def states(window: schedule.Window, start: datetime, end: datetime) -> list[tuple[datetime, bool]]:
    """The window's state minute by minute, reduced to its changes."""
    out: list[tuple[datetime, bool]] = []
    t = start
    while t <= end:
        now = window.is_open(t)
        if not out or out[-1][1] != now:
            out.append((t, now))
        t += timedelta(minutes=1)
    return out


def test_a_window_across_midnight() -> None:
    window = schedule.Window.parse("0 22 * * *", "30 1 * * *", "Etc/UTC")
    assert states(window, utc(2027, 1, 4, 21, 0), utc(2027, 1, 5, 3, 0)) == [
        (utc(2027, 1, 4, 21, 0), False),
        (utc(2027, 1, 4, 22, 0), True),
        (utc(2027, 1, 5, 1, 30), False),
    ]


def test_weekday_windows_across_midnight_in_berlin() -> None:
    # prod's risk-batch caller: Monday to Friday 22:00 until 05:00 the next morning.
    window = schedule.Window.parse("0 22 * * 1-5", "0 5 * * 2-6", "Europe/Berlin")
    assert window.is_open(local(BERLIN, 2027, 1, 5, 3, 0))  # Tuesday 03:00
    assert not window.is_open(local(BERLIN, 2027, 1, 5, 5, 0))  # closes on the minute
    assert not window.is_open(local(BERLIN, 2027, 1, 9, 23, 0))  # Saturday night
    assert not window.is_open(local(BERLIN, 2027, 1, 10, 23, 0))  # Sunday night
    assert window.is_open(local(BERLIN, 2027, 1, 11, 22, 0))  # Monday 22:00


def test_the_same_window_in_another_time_zone_moves_with_it() -> None:
    berlin = schedule.Window.parse("0 1 * * *", "0 3 * * *", "Europe/Berlin")
    new_york = schedule.Window.parse("0 1 * * *", "0 3 * * *", "America/New_York")
    # 00:30 UTC in January: 01:30 in Berlin (open), 19:30 the day before in New York (closed).
    assert berlin.is_open(utc(2027, 1, 5, 0, 30))
    assert not new_york.is_open(utc(2027, 1, 5, 0, 30))
    assert new_york.is_open(utc(2027, 1, 5, 6, 30))


@pytest.mark.parametrize(
    ("zone", "day", "opened", "closed"),
    [
        # Spring forward: 02:00 -> 03:00. The close at 02:30 does not exist that day: it happens
        # at the transition, never skipped (a skipped close would leave access open a day).
        ("Europe/Berlin", (2027, 3, 28), (1, 30, 0), (3, 0, 0)),
        ("America/New_York", (2027, 3, 14), (1, 30, 0), (3, 0, 0)),
    ],
)
def test_a_close_inside_the_spring_forward_gap_happens_at_the_transition(
    zone: str, day: tuple[int, int, int], opened: tuple[int, int, int], closed: tuple[int, ...]
) -> None:
    tz = ZoneInfo(zone)
    window = schedule.Window.parse("30 1 * * *", "30 2 * * *", zone)
    start = local(tz, *day, 0, 0)
    changes = states(window, start, start + timedelta(hours=6))
    assert changes == [
        (start, False),
        (local(tz, *day, opened[0], opened[1]), True),
        (local(tz, *day, closed[0], closed[1]), False),
    ]
    # The window is 30 minutes long that day instead of 60.
    assert (changes[2][0] - changes[1][0]) == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("zone", "day"),
    [("Europe/Berlin", (2027, 10, 31)), ("America/New_York", (2027, 11, 7))],
)
def test_an_edge_in_the_repeated_fall_back_hour_happens_once(
    zone: str, day: tuple[int, int, int]
) -> None:
    tz = ZoneInfo(zone)
    # 01:00 exists twice in New York, 02:00-02:59 in Berlin; pick an hour repeated in both.
    hour = 2 if zone == "Europe/Berlin" else 1
    window = schedule.Window.parse(f"10 {hour} * * *", f"40 {hour} * * *", zone)
    start = local(tz, *day, 0, 0)
    first_open = local(tz, *day, hour, 10, fold=0)
    first_close = local(tz, *day, hour, 40, fold=0)
    assert states(window, start, start + timedelta(hours=6)) == [
        (start, False),
        (first_open, True),
        (first_close, False),
    ]
    # In the repeated hour, one hour later by the clock on the wall, it stays closed.
    assert not window.is_open(local(tz, *day, hour, 20, fold=1))


def test_windows_over_both_dst_changes_last_longer_and_shorter() -> None:
    window = schedule.Window.parse("0 1 * * *", "0 3 * * *", "Europe/Berlin")
    lengths = {
        o.start.astimezone(BERLIN).date(): o.minutes
        for o in schedule.openings(window, date(2027, 1, 1))
    }
    assert lengths[date(2027, 1, 15)] == 120
    assert lengths[date(2027, 3, 28)] == 60  # 01:00 CET -> 03:00 CEST
    assert lengths[date(2027, 10, 31)] == 180  # 01:00 CEST -> 03:00 CET
    assert len(lengths) == 366  # a year and a day from 2027-01-01


def test_open_and_close_on_the_same_minute_means_closed() -> None:
    # Hourly opening, a closing at 03:00: at 03:00 both fire, and the window stays closed.
    window = schedule.Window.parse("0 * * * *", "0 3 * * *", "Etc/UTC")
    assert window.is_open(utc(2027, 1, 4, 2, 59))
    assert not window.is_open(utc(2027, 1, 4, 3, 0))
    assert not window.is_open(utc(2027, 1, 4, 3, 59))
    assert window.is_open(utc(2027, 1, 4, 4, 0))


def test_several_windows_open_the_policy_while_any_is_open() -> None:
    morning = schedule.Window.parse("0 6 * * *", "0 7 * * *", "Etc/UTC")
    evening = schedule.Window.parse("0 18 * * *", "0 19 * * *", "Etc/UTC")
    assert schedule.is_open([morning, evening], utc(2027, 1, 4, 6, 30))
    assert schedule.is_open([morning, evening], utc(2027, 1, 4, 18, 30))
    assert not schedule.is_open([morning, evening], utc(2027, 1, 4, 12, 0))
    assert schedule.next_edge([morning, evening], utc(2027, 1, 4, 12, 0)) == utc(2027, 1, 4, 18)


def test_next_edge_is_strictly_after_now() -> None:
    window = schedule.Window.parse("0 1 * * *", "0 3 * * *", "Etc/UTC")
    assert window.next_edge(utc(2027, 1, 4, 1, 0)) == utc(2027, 1, 4, 3, 0)
    assert window.next_edge(utc(2027, 1, 4, 3, 0)) == utc(2027, 1, 5, 1, 0)


# ---- what settings check ---------------------------------------------------------------------


def test_the_shortest_opening_is_found_on_the_dst_day() -> None:
    window = schedule.Window.parse("30 1 * * *", "45 2 * * *", "Europe/Berlin")
    with pytest.raises(schedule.WindowError, match=r"2027-03-28 01:30 CET .* only 30 minutes"):
        schedule.check_length(window, 45, date(2027, 1, 1))
    schedule.check_length(window, 30, date(2027, 1, 1))


def test_a_window_that_never_opens_or_never_closes_is_refused() -> None:
    with pytest.raises(schedule.WindowError, match="never opens"):
        schedule.check_length(
            schedule.Window.parse("0 1 30 2 *", "0 3 * * *", "Etc/UTC"), 15, date(2027, 1, 1)
        )
    with pytest.raises(schedule.WindowError, match="never opens"):
        # Every opening coincides with a closing.
        schedule.check_length(
            schedule.Window.parse("0 3 * * *", "0 * * * *", "Etc/UTC"), 15, date(2027, 1, 1)
        )
    with pytest.raises(schedule.WindowError, match="never happens"):
        schedule.check_length(
            schedule.Window.parse("0 1 * * *", "0 3 31 2 *", "Etc/UTC"), 15, date(2027, 1, 1)
        )


def test_a_leap_day_window_is_found_beyond_the_first_year() -> None:
    window = schedule.Window.parse("0 1 29 2 *", "0 2 29 2 *", "Etc/UTC")
    (opening,) = schedule.openings(window, date(2027, 1, 1))
    assert opening.start == utc(2028, 2, 29, 1, 0)
    assert opening.minutes == 60
