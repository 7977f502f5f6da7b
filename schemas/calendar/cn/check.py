#!/usr/bin/env python3
"""Check the China public-holiday files in this folder (<year>.toml).

Standard library only (Python 3.11+: tomllib, datetime). Run from anywhere:

    python3 schemas/calendar/cn/check.py

Prints one line per year and exits non-zero if any file breaks a rule.
"""

from __future__ import annotations

import datetime as dt
import pathlib
import re
import sys
import tomllib

HERE = pathlib.Path(__file__).resolve().parent

REQUIRED = {"version", "year", "source", "published", "url", "workdays", "holiday"}
OPTIONAL = {"document", "amended"}
HOLIDAY_KEYS = {"name", "from", "to"}
DOCUMENT_RE = re.compile(r"^国办发明电〔\d{4}〕\d+号$")


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")


def parse_date(value: object, where: str, problems: Problems) -> dt.date | None:
    if not isinstance(value, str):
        problems.add(where, f"expected a 'YYYY-MM-DD' string, got {value!r}")
        return None
    try:
        parsed = dt.date.fromisoformat(value)
    except ValueError:
        problems.add(where, f"not a valid date: {value!r}")
        return None
    if parsed.isoformat() != value:
        problems.add(where, f"write the date as YYYY-MM-DD: {value!r}")
    return parsed


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def check_file(path: pathlib.Path, problems: Problems):
    """Return (year, holidays[(name, from, to)], workdays) or None if unreadable."""
    name = path.name
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        problems.add(name, f"cannot parse: {err}")
        return None

    keys = set(data)
    for missing in sorted(REQUIRED - keys):
        problems.add(name, f"missing key `{missing}`")
    for extra in sorted(keys - REQUIRED - OPTIONAL):
        problems.add(name, f"unknown key `{extra}`")

    if data.get("version") != 1:
        problems.add(name, f"version must be 1, got {data.get('version')!r}")

    year = data.get("year")
    if not isinstance(year, int) or isinstance(year, bool):
        problems.add(name, f"year must be an integer, got {year!r}")
        return None
    if path.stem != str(year):
        problems.add(name, f"year {year} does not match the file name")

    source = data.get("source")
    expected_source = f"国务院办公厅关于{year}年部分节假日安排的通知"
    if source != expected_source:
        problems.add(name, f"source must be {expected_source!r}, got {source!r}")

    if "document" in data:
        document = data["document"]
        if not isinstance(document, str) or not DOCUMENT_RE.match(document):
            problems.add(name, f"document should look like 国办发明电〔YYYY〕N号, got {document!r}")

    published = parse_date(data.get("published"), f"{name} published", problems)

    url = data.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        problems.add(name, f"url must be an http(s) URL, got {url!r}")

    if "amended" in data and (not isinstance(data["amended"], str) or not data["amended"].strip()):
        problems.add(name, "amended must be a non-empty string")

    # Holiday periods.
    holidays: list[tuple[str, dt.date, dt.date]] = []
    raw_holidays = data.get("holiday", [])
    if not isinstance(raw_holidays, list) or not raw_holidays:
        problems.add(name, "needs at least one [[holiday]]")
        raw_holidays = []
    for index, entry in enumerate(raw_holidays, start=1):
        where = f"{name} holiday #{index}"
        if not isinstance(entry, dict):
            problems.add(where, "must be a table")
            continue
        entry_keys = set(entry)
        for missing in sorted(HOLIDAY_KEYS - entry_keys):
            problems.add(where, f"missing key `{missing}`")
        for extra in sorted(entry_keys - HOLIDAY_KEYS):
            # Typically `workdays` written after the first [[holiday]].
            problems.add(where, f"unknown key `{extra}` (top-level keys must come before the first [[holiday]])")
        label = entry.get("name")
        if not isinstance(label, str) or not label.strip():
            problems.add(where, f"name must be a non-empty string, got {label!r}")
            label = f"#{index}"
        first = parse_date(entry.get("from"), f"{where} ({label}) from", problems)
        last = parse_date(entry.get("to"), f"{where} ({label}) to", problems)
        if first is None or last is None:
            continue
        if first > last:
            problems.add(where, f"{label}: from {first} is after to {last}")
            continue
        if not any(d.year == year for d in days(first, last)):
            problems.add(where, f"{label}: {first}..{last} has no day in {year}")
        if first < dt.date(year - 1, 12, 1):
            problems.add(where, f"{label}: starts too early ({first})")
        holidays.append((label, first, last))

    starts = [first for _, first, _ in holidays]
    if starts != sorted(starts):
        problems.add(name, "[[holiday]] entries must be in date order")

    rest_days: dict[dt.date, str] = {}
    for label, first, last in holidays:
        for day in days(first, last):
            if day in rest_days:
                problems.add(name, f"{day} is in both {rest_days[day]} and {label}")
            else:
                rest_days[day] = label

    # Working weekend days (调休上班).
    workdays: list[dt.date] = []
    raw_workdays = data.get("workdays", [])
    if not isinstance(raw_workdays, list):
        problems.add(name, "workdays must be an array of dates")
        raw_workdays = []
    for value in raw_workdays:
        day = parse_date(value, f"{name} workdays", problems)
        if day is None:
            continue
        if day.weekday() < 5:
            problems.add(name, f"workday {day} is a {day:%A}, not a Saturday or Sunday")
        if day in rest_days:
            problems.add(name, f"workday {day} falls inside {rest_days[day]}")
        if not dt.date(year - 1, 12, 1) <= day <= dt.date(year, 12, 31):
            problems.add(name, f"workday {day} is outside December {year - 1} .. {year}")
        workdays.append(day)
    if len(set(workdays)) != len(workdays):
        problems.add(name, "workdays has duplicates")
    if workdays != sorted(workdays):
        problems.add(name, "workdays must be in date order")

    if published is not None:
        earliest = min([f for _, f, _ in holidays] + workdays, default=None)
        if earliest is not None and published > earliest:
            problems.add(name, f"published {published} is after the first date it arranges ({earliest})")

    return year, holidays, workdays


def main() -> int:
    problems = Problems()
    files = sorted(HERE.glob("*.toml"))
    if not files:
        print(f"no <year>.toml files in {HERE}", file=sys.stderr)
        return 1

    results = []
    for path in files:
        if not re.fullmatch(r"\d{4}", path.stem):
            problems.add(path.name, "file name must be <year>.toml")
            continue
        result = check_file(path, problems)
        if result is not None:
            results.append(result)

    # Across files: a date may be arranged by only one notice.
    rest_owner: dict[dt.date, int] = {}
    work_owner: dict[dt.date, int] = {}
    for year, holidays, workdays in results:
        for label, first, last in holidays:
            for day in days(first, last):
                if day in rest_owner and rest_owner[day] != year:
                    problems.add(f"{year}.toml", f"{day} ({label}) is also a holiday in {rest_owner[day]}.toml")
                rest_owner.setdefault(day, year)
        for day in workdays:
            if day in work_owner and work_owner[day] != year:
                problems.add(f"{year}.toml", f"workday {day} is also listed in {work_owner[day]}.toml")
            work_owner.setdefault(day, year)
    for day in sorted(set(rest_owner) & set(work_owner)):
        problems.add(
            f"{work_owner[day]}.toml",
            f"workday {day} is a holiday in {rest_owner[day]}.toml",
        )

    for year, holidays, workdays in sorted(results):
        total = sum((last - first).days + 1 for _, first, last in holidays)
        print(f"{year}: {len(holidays)} holiday periods, {total} holiday days, {len(workdays)} workdays")

    if problems.items:
        print(f"\n{len(problems.items)} problem(s):", file=sys.stderr)
        for item in problems.items:
            print(f"  {item}", file=sys.stderr)
        return 1
    print(f"OK: {len(results)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
