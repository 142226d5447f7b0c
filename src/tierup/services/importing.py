"""Importing history: members, orders and refunds from a CSV file (with a header) or JSON lines.

The whole file is checked before anything is written: a file with a bad row imports nothing, and
every bad row is named with its line number. Rows are then applied in time order through the
same use cases as live reports (enrolment; recordOrders in batches, with the refunds among them), so what an import
leaves — tiers at the right times, the multipliers of the time, lots and their expiry, tasks,
quests, badges — is what reporting the same history live would have left, with points expiring and
tiers whose validity ended re-evaluated at the time, as the daily job would have. Orders and their refunds
may come in two files of one import, applied in one time line. Every row is idempotent on its
externalId: importing a file again adds nothing. An import announces nothing: history reaches
neither live sockets nor webhooks, and the growth tree's pictures that events are made of are not
drawn.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import csv
import gc
import io
import itertools
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy import select

from ..domain.activity import job_midnight
from ..domain.errors import Rejected
from ..domain.points import lot_expiries_between
from ..domain.program import DEFAULT_CHANNEL
from ..store.db import Database
from ..store.models import Coupon, Member, MemberBadge, PointsEntry, QuestPass, Report, TaskCompletion, TierChange
from .expiry import expire_points, lot_expiries
from .members import EnrolmentInput, check_enrolment, enroll_members
from .orders import (OrderAmounts, OrderInput, RefundInput, check_order, check_refund, check_refund_of,
                     record_orders)
from .programs import ActiveProgram
from .tiers import earliest_validity_end, evaluate_lapsed_before

KINDS = ("members", "orders", "refunds")
# Columns named as the contract's inputs; the first ones of each kind are required.
COLUMNS = {
    "members": (("externalId",), ("displayName", "birthday", "joinedAt", "phone", "channel", "storeCode")),
    "orders": (("externalId", "memberExternalId", "amount", "paidAt"), ("channel", "storeCode")),
    "refunds": (("externalId", "orderExternalId", "amount", "refundedAt"), ("channel", "storeCode")),
}
MAX_PROBLEMS_SHOWN = 1000


class ImportRefused(Exception):
    """The file has bad rows; nothing was imported. `problems` are 'line N: …' sentences; `advice`, what to do
    about many of them at once."""

    def __init__(self, problems: list[str], total: int, advice: list[str] | None = None):
        self.problems = problems
        self.total = total
        self.advice = advice or []
        super().__init__(f"{total} problem(s); nothing was imported")


@dataclass
class Imported:
    rows: int = 0
    new: int = 0
    duplicates: int = 0
    refused: list[str] = field(default_factory=list)  # rows a use case refused while applying (none after checks)


@dataclass(frozen=True)
class Row:
    line: int
    values: dict[str, str]
    unreadable: str | None = None  # why the line is not a row at all


def read_rows(path: Path, encoding: str = "utf-8") -> Iterator[Row]:
    """CSV with a header, or JSON lines (one object per line; by the file's extension or first character)."""
    text = _text(path, encoding)
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json") or text.lstrip().startswith("{"):
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    yield Row(number, _json_row(line))
                except _Unreadable as exc:
                    yield Row(number, {}, str(exc))
        return
    yield from _csv_rows(text)


def _csv_rows(text: str) -> Iterator[Row]:
    """The rows of CSV text, strictly read, blank lines passed over, each named by the line it begins on: a
    quote left open or a cell longer than csv reads (131,072 characters) is a line that is not a row, and so is
    a row with a value where the header names no column; a header naming a column twice is the file's one
    problem (each row would hold the last of the two cells). Cells are separated as the header's are: by
    commas, or by semicolons (a spreadsheet where the comma is the decimal separator saves CSV so) or tabs
    (text copied from a spreadsheet)."""
    first_line = text.lstrip().partition("\n")[0]  # the header, after any blank lines
    reader = csv.reader(io.StringIO(text), delimiter=max(_DELIMITERS, key=first_line.count), strict=True)
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1  # where the row begins (a quote left open reads on to the end)
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Row(start, {}, f"not CSV ({_CSV_ERRORS.get(str(exc), exc)})")
            if header is None:
                return
            continue
        if not cells:
            continue
        if header is None:
            header = [name.strip() for name in cells]
            twice = sorted({name for name in header if name and header.count(name) > 1})
            if twice:
                yield Row(start, {}, f"the header names {', '.join(twice)} more than once")
                return
            continue
        if any(value.strip() for name, value in itertools.zip_longest(header, cells, fillvalue="")
               if not name):  # a spreadsheet's empty columns past the table are fine while they stay empty
            yield Row(start, {}, "a value where the header names no column")
            continue
        yield Row(start, {name: value.strip() for name, value in zip(header, cells) if name}
                  | {name: "" for name in header[len(cells):] if name})


_DELIMITERS = (",", ";", "\t")
# csv's words for what a spreadsheet user sees in the file.
_CSV_ERRORS = {"unexpected end of data": "a quote opened in this row is never closed",
               f"field larger than field limit ({csv.field_size_limit()})":
                   f"a cell is longer than {csv.field_size_limit():,} characters"}


def _text(path: Path, encoding: str) -> str:
    data = path.read_bytes()
    try:
        # A spreadsheet's "CSV UTF-8" starts with a byte-order mark.
        return data.decode("utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding)
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ImportRefused([f"line {line}: not {encoding} text (byte 0x{data[exc.start]:02x}): save the file as "
                             "\"CSV UTF-8\", or name its encoding, e.g. --encoding gb18030 for Excel's \"CSV\" "
                             "on a Chinese system"], 1) from None
    except LookupError:
        raise ImportRefused([f"no text encoding called {encoding!r}"], 1) from None


def _json_row(line: str) -> dict[str, str]:
    """The line's object, its values as the text a CSV cell would hold: numbers as written (12.50 stays
    12.50, and 1e2 is no amount, as the API judges the text it is sent), null as nothing."""
    try:
        value = json.loads(line, parse_int=str, parse_float=str, parse_constant=str, object_pairs_hook=_object)
    except _Unreadable:
        raise
    except ValueError as exc:
        raise _Unreadable(f"not JSON ({exc.msg})") from None
    except RecursionError:
        raise _Unreadable("not JSON (nested too deeply)") from None
    if not isinstance(value, dict):
        raise _Unreadable("each line must be a JSON object")
    wrong = [f"{name} must be text or a number, not {_JSON_NAMES[type(v)]}" for name, v in value.items()
             if type(v) in _JSON_NAMES]
    if wrong:
        raise _Unreadable("; ".join(wrong))
    return {name: "" if v is None else v for name, v in value.items()}


_JSON_NAMES = {bool: "true or false", list: "a list", dict: "an object"}


def _object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object naming each of its members once (json keeps the last of two, as a CSV header naming a
    column twice would)."""
    found = dict(pairs)
    if len(found) < len(pairs):
        named = collections.Counter(name for name, _ in pairs)
        raise _Unreadable(f"the object names {', '.join(sorted(n for n, times in named.items() if times > 1))} "
                          "more than once")
    return found


async def import_file(db: Database, program: ActiveProgram, kind: str, path: Path, *, now: datetime,
                      progress: Callable[[int, int], None] | None = None, encoding: str = "utf-8") -> Imported:
    """Check every row of the file, then apply them all in time order. Raises ImportRefused (nothing written)."""
    return (await import_files(db, program, {kind: path}, now=now, progress=progress, encoding=encoding))[kind]


async def import_files(db: Database, program: ActiveProgram, paths: dict[str, Path], *, now: datetime,
                       progress: Callable[[int, int], None] | None = None, encoding: str = "utf-8"
                       ) -> dict[str, Imported]:
    """Files by kind: one kind, or orders with their refunds, whose rows then apply in one time order (a refund
    between the orders paid before and after it, as it happened). Every row of every file is checked first;
    raises ImportRefused (nothing written), its problems named by file when there are two."""
    if len(paths) > 1 and set(paths) != {"orders", "refunds"}:
        raise ValueError("only orders and their refunds are imported together")
    with _collector_paused():
        checked: dict[str, list] = {}
        problems: list[str] = []
        advice: list[str] = []
        # The orders imported with the refunds (None: a bad row, whose refunds are not judged); None when their
        # file could not be read at all.
        imported: dict[str, OrderInput | None] | None = {}
        amounts: dict[str, OrderAmounts] = {}  # each good order's amounts as its check found them, by externalId
        for kind in KINDS:  # orders before their refunds, which may name them
            if kind not in paths:
                continue
            try:
                rows = list(read_rows(paths[kind], encoding))
            except ImportRefused as refused:
                found = refused.problems
                imported = None if kind == "orders" else imported
            else:
                checked[kind], found = await _checked(db, program, kind, rows, now, imported, amounts,
                                                      advice)
                if kind == "orders" and "refunds" in paths:
                    imported = {row.values["externalId"]: None for row in rows if row.values.get("externalId")}
                    imported.update((order.external_id, order) for order in checked[kind])
                del rows  # half an import's memory, not needed while it applies
            problems += [f"{paths[kind].name}: {problem}" for problem in found] if len(paths) > 1 else found
        if problems:
            raise ImportRefused(problems[:MAX_PROBLEMS_SHOWN], len(problems), advice)
        # Sorted by time, an order before a refund of the same moment (the sort keeps the files' order).
        requests = sorted((request for kind in KINDS for request in checked.get(kind, [])), key=_when)
        done = await _apply(db, program, requests, amounts, daily_jobs="members" not in paths,
                            now=now, progress=progress or (lambda done, total: None))
        return {kind: done.get(kind, Imported()) for kind in paths}


async def _checked(db: Database, program: ActiveProgram, kind: str, rows: list[Row], now: datetime,
                   imported: dict[str, OrderInput | None] | None,
                   amounts: dict[str, OrderAmounts], advice: list[str]) -> tuple[list, list[str]]:
    """The good rows as the use cases' inputs, in time order (the rows themselves are let go: half an import's
    memory), and a problem for every bad row, in file order; good orders' `amounts` noted. Refunds are judged
    against their orders (those `imported` with them, or stored).
    `advice` takes what to do about many problems at once."""
    problems: list[str] = []
    requests = [(row, _request(kind, row, program, now, problems, amounts)) for row in rows]
    problems += _repeated_keys(rows)
    if kind == "orders":
        unknown = await _unknown_members(db, program, [r for _, r in requests if r is not None], rows)
        if unknown:
            orders = ("1 order names a member who is" if len(unknown) == 1
                      else f"{len(unknown):,} orders name members who are")
            advice.append(f"{orders} not in program {program.code}: import members before their orders "
                          "(tierup import members FILE)")
        problems += unknown
    elif kind == "refunds" and imported is not None:
        problems += await _refund_problems(db, program, requests, imported, amounts, now)
    problems.sort(key=lambda problem: int(problem.split(":", 1)[0].removeprefix("line ")))  # file order
    return sorted((request for _, request in requests if request is not None), key=_when), problems


def _request(kind: str, row: Row, program: ActiveProgram, now: datetime, problems: list[str],
             amounts: dict[str, OrderAmounts]):
    """The row as the use case's input, checked by the use case's own checks (an order's `amounts` noted);
    None when it is bad."""
    if row.unreadable:
        problems.append(f"line {row.line}: {row.unreadable}")
        return None
    required, optional = COLUMNS[kind]
    values = row.values
    unknown = sorted(set(values) - set(required) - set(optional))
    missing = [name for name in required if not values.get(name)]
    if unknown or missing:
        if unknown:
            problems.append(f"line {row.line}: unknown column(s) {', '.join(unknown)}; expected "
                            f"{', '.join(required + optional)}")
        for name in missing:
            problems.append(f"line {row.line}: {name} is required")
        return None
    try:
        request = _parse(kind, values)
        if kind == "members":
            check_enrolment(request, program, now)
        elif kind == "orders":
            amounts[request.external_id] = check_order(program, request, now)
        else:
            check_refund(program, request, now)
    except _Unreadable as exc:
        problems.append(f"line {row.line}: {exc}")
        return None
    except Rejected as rejection:
        problems += [f"line {row.line}: {_named(p)}" for p in rejection.problems]
        return None
    return request


def _named(problem) -> str:
    """The problem with the column it is about, unless its message names it already."""
    column = ".".join((problem.field or ())[1:])
    return problem.message if not column or problem.message.startswith(column) else f"{column}: {problem.message}"


class _Unreadable(ValueError):
    pass


def _parse(kind: str, values: dict[str, str]):
    where = {"channel": values.get("channel") or DEFAULT_CHANNEL, "store_code": values.get("storeCode") or None}
    if kind == "members":
        return EnrolmentInput(external_id=values["externalId"], display_name=values.get("displayName") or None,
                              birthday=_date(values, "birthday"), phone=values.get("phone") or None,
                              joined_at=_time(values, "joinedAt"), **where)
    if kind == "orders":
        return OrderInput(external_id=values["externalId"], member_external_id=values["memberExternalId"],
                          amount=values["amount"], paid_at=_time(values, "paidAt"), **where)
    return RefundInput(external_id=values["externalId"], order_external_id=values["orderExternalId"],
                       amount=values["amount"], refunded_at=_time(values, "refundedAt"), **where)


def _time(values: dict[str, str], name: str) -> datetime | None:
    if not values.get(name):
        return None
    try:
        moment = datetime.fromisoformat(values[name])
    except ValueError:
        raise _Unreadable(f"{name}: {values[name]!r} is not an ISO 8601 time, e.g. 2026-03-01T10:00:00+08:00") from None
    if moment.tzinfo is None:
        raise _Unreadable(f"{name}: {values[name]!r} needs a UTC offset, e.g. 2026-03-01T10:00:00+08:00")
    return moment


def _date(values: dict[str, str], name: str) -> date | None:
    if not values.get(name):
        return None
    try:
        return date.fromisoformat(values[name])
    except ValueError:
        raise _Unreadable(f"{name}: {values[name]!r} is not a date, e.g. 1990-05-17") from None


def _repeated_keys(rows: list[Row]) -> list[str]:
    first_seen: dict[str, int] = {}
    problems = []
    for row in rows:
        key = row.values.get("externalId")
        if not key:
            continue
        if key in first_seen:
            problems.append(f"line {row.line}: externalId {key!r} is already on line {first_seen[key]}")
        else:
            first_seen[key] = row.line
    return problems


async def _unknown_members(db: Database, program: ActiveProgram, orders: list[OrderInput], rows: list[Row]
                           ) -> list[str]:
    """Orders must name enrolled members."""
    names = sorted({order.member_external_id for order in orders})
    known: set[str] = set()
    async with db.read() as session:
        for start in range(0, len(names), 5000):
            known.update((await session.execute(select(Member.external_id).where(
                Member.program_id == program.id, Member.external_id.in_(names[start:start + 5000])))).scalars())
    unknown = set(names) - known
    return [f"line {row.line}: memberExternalId: no member {row.values['memberExternalId']!r} in program {program.code}"
            for row in rows if row.values.get("memberExternalId") in unknown]


@dataclass
class _Refundable:
    """An order as the checks of its refunds need it."""
    paid_at: datetime
    left_fen: int  # what is left to refund on it


async def _refund_problems(db: Database, program: ActiveProgram, refunds: list[tuple[Row, RefundInput | None]],
                           imported: dict[str, OrderInput | None], amounts: dict[str, OrderAmounts], now: datetime
                           ) -> list[str]:
    """A refund must name an order (stored, or `imported` with it), come after it was paid and take no more than
    is left to refund on it, the file's refunds counted in time order, as they will apply."""
    good = sorted(((row, refund) for row, refund in refunds if refund is not None), key=lambda pair: _when(pair[1]))
    names = {refund.order_external_id for _, refund in good}
    orders = {name: _Refundable(order.paid_at, amounts[name].paid_fen)
              for name in names if (order := imported.get(name)) is not None}
    # A stored order (one of the file imported before, too) is judged as stored: its stored refunds count.
    orders.update(await _stored_orders(db, program, names, {refund.external_id for _, refund in good}))
    problems = []
    for row, refund in good:
        order = orders.get(refund.order_external_id)
        if order is None:
            if refund.order_external_id not in imported:  # else its row is bad, and named already
                problems.append(f"line {row.line}: orderExternalId: no order {refund.order_external_id!r} in "
                                f"program {program.code}")
            continue
        refund_fen = check_refund(program, refund, now)
        try:
            check_refund_of(program, refund, refund_fen, paid_at=order.paid_at, left_fen=order.left_fen)
        except Rejected as rejection:
            problems += [f"line {row.line}: {_named(p)}" for p in rejection.problems]
        else:
            order.left_fen -= refund_fen
    return problems


async def _stored_orders(db: Database, program: ActiveProgram, names: set[str], importing: set[str]
                         ) -> dict[str, _Refundable]:
    """The stored orders named, with what is left to refund after their stored refunds (but those `importing`)."""
    found: dict[str, _Refundable] = {}
    listed = sorted(names)
    async with db.read() as session:
        for start in range(0, len(listed), 5000):
            orders = {order_id: (name, _Refundable(occurred_at, amount_fen or 0))
                      for name, order_id, occurred_at, amount_fen in await session.execute(
                          select(Report.external_id, Report.id, Report.occurred_at, Report.amount_fen).where(
                              Report.program_id == program.id, Report.kind == "ORDER",
                              Report.external_id.in_(listed[start:start + 5000])))}
            for order_id, refund, amount_fen in await session.execute(
                    select(Report.order_id, Report.external_id, Report.amount_fen).where(
                        Report.kind == "REFUND", Report.order_id.in_(list(orders)))):
                if refund not in importing:
                    orders[order_id][1].left_fen -= amount_fen or 0
            found.update(orders.values())
    return found


def _when(request) -> datetime:
    """Rows apply in the order they happened; members without a joining time join as they are read."""
    moment = getattr(request, "paid_at", None) or getattr(request, "refunded_at", None) or request.joined_at
    return moment or datetime.min.replace(tzinfo=timezone.utc)


# Members, orders and refunds go in batches, one transaction each. A batch of the import is larger than a
# client's: under a second of the write lock (a server on the same SQLite file waits that long at most: 5,000
# orders take about 0.8 s here). Each batch reads its members and their states, and each SQLite commit writes
# every index page the batch touched, which is most of them whatever the batch's size: batches of 2,000 orders
# made an import a sixteenth slower, of 500 a fifth more again.
BATCH = 5000


# The tables an import grows and reads again for the next rows (a batch's reports, its members' states); a
# seed's history fills them too.
HISTORY_TABLES = tuple(model.__tablename__ for model in (Report, Member, PointsEntry, TierChange, TaskCompletion,
                                                         QuestPass, MemberBadge, Coupon))


_KIND_OF = {EnrolmentInput: "members", OrderInput: "orders", RefundInput: "refunds"}


async def _apply(db: Database, program: ActiveProgram, requests: list, amounts: dict[str, OrderAmounts], *,
                 daily_jobs: bool, now: datetime, progress: Callable[[int, int], None]) -> dict[str, Imported]:
    """Members, or orders with their refunds in time order, in batches, each ending where points expire
    (_DailyJobs). `daily_jobs`: run as time passes (orders and refunds)."""
    done: dict[str, Imported] = {}
    for request in requests:
        done.setdefault(_KIND_OF[type(request)], Imported()).rows += 1
    jobs = await _DailyJobs.of(db, program, [r for r in requests if isinstance(r, OrderInput)]) if daily_jobs else None
    progress(0, len(requests))
    start = steps = 0
    while start < len(requests):
        end = min(start + BATCH, len(requests))
        if jobs is not None:
            end = await jobs.batch_end(requests, start, end)
        await _batch(db, program, requests[start:end], amounts, done, now=now, evaluate_lapsed=jobs is not None)
        gc.collect(1)  # what the batch left (see _collector_paused)
        steps += 1
        await _grown(db, steps)
        progress(end, len(requests))
        start = end
    if jobs is not None and requests:  # those due in the last batch, for members without a report after them
        await jobs.run_before(_when(requests[-1]))
    return done


async def _batch(db: Database, program: ActiveProgram, batch: list, amounts: dict[str, OrderAmounts],
                 done: dict[str, Imported], *, now: datetime, evaluate_lapsed: bool) -> None:
    if isinstance(batch[0], EnrolmentInput):
        _count_all(done, batch, await enroll_members(db, program, batch, now=now, announce=False, limit=BATCH))
        return
    # Orders and their refunds: checked with the file, not again.
    results = await record_orders(db, program, batch, now=now, announce=False, limit=BATCH,
                                  checked=[amounts.get(request.external_id) if isinstance(request, OrderInput)
                                           else None for request in batch],
                                  evaluate_lapsed=evaluate_lapsed)
    _count_all(done, batch, results)


class _DailyJobs:
    """The daily jobs as they would have run while the imported history happened: shortly after each midnight
    (program time) by which lots expired, their points expire, and tiers whose validity ended are
    re-evaluated, in that order (as `tierup jobs` runs them), before the orders and refunds after that
    midnight (one at the midnight itself comes first), so that every order and refund finds its member's tier
    and points as they were then. Each batch of orders ends at the next midnight by which lots expired (once a
    month at most, as lots expire by the month). Tiers lapse on any day, and a batch runs on past those
    midnights: the members it reports on are evaluated in it, before their first report after their midnight
    (or a referred member's first order, for a referrer: tiers.evaluate_if_lapsed), and the others between
    batches, the days' evaluations together (tiers.evaluate_lapsed_before): only members without a report
    since their midnight are left to them. Jobs due after the import's last order or refund are left to
    `tierup jobs`, which announces what they do; these announce nothing."""

    def __init__(self, db: Database, program: ActiveProgram, expiry_midnights: list[datetime]):
        self.db, self.program = db, program
        self.expiry_midnights = expiry_midnights  # when the job finds lots expired, in order; those run taken off
        self.expired_until: datetime | None = None  # the last expiry's midnight: every lot due by it is expired

    @classmethod
    async def of(cls, db: Database, program: ActiveProgram, orders: list[OrderInput]) -> _DailyJobs:
        """The jobs for importing `orders` (in time order): expiries of the lots stored before and of those the
        orders will earn (each order earns a lot, and so may a task it completes, expiring by the month)."""
        definition = program.definition
        zone = definition.zone
        moments = await lot_expiries(db, program)
        if orders:
            moments.update(lot_expiries_between(orders[0].paid_at, orders[-1].paid_at,
                                                definition.points_expiry_months, zone))
        return cls(db, program, sorted({job_midnight(moment, zone) for moment in moments}))

    async def batch_end(self, requests: list, start: int, end: int) -> int:
        """Where a batch from `start` (of reports in time order) must end (at most `end`), once the jobs due
        before its first report have run: at the next expiry's midnight."""
        until = await self.run_before(_when(requests[start]))
        return bisect.bisect_right(requests, until, start, end, key=_when) if until is not None else end

    async def run_before(self, at: datetime) -> datetime | None:
        """Run every job due before `at`; returns the next expiry's midnight (None: none is due)."""
        evaluation = await self._next_evaluation()
        while True:
            expiry = self.expiry_midnights[0] if self.expiry_midnights else None
            due = _soonest(expiry, evaluation)
            if due is None or due >= at:
                return expiry
            if due == expiry:
                await expire_points(self.db, self.program, as_of=due, since=self.expired_until, announce=False)
                self.expired_until = self.expiry_midnights.pop(0)
            else:  # every evaluation before the next expiry (or `at`) at once: evaluations change no points
                evaluated = await evaluate_lapsed_before(self.db, self.program, before=_soonest(expiry, at))
                # Every tier lapsed by then was evaluated, so the next evaluation is later; were none (it cannot
                # be), asking again would find the same midnight for ever.
                evaluation = await self._next_evaluation() if evaluated else None

    async def _next_evaluation(self) -> datetime | None:
        if self.program.definition.tier_validity_months is None:  # permanent tiers: nothing lapses
            return None
        ended = await earliest_validity_end(self.db, self.program)
        return job_midnight(ended, self.program.definition.zone) if ended is not None else None


def _soonest(*moments: datetime | None) -> datetime | None:
    return min((moment for moment in moments if moment is not None), default=None)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector paused for the import; _apply runs it on the young objects after each batch
    (what the batch left, its session's cycles among them). The file's rows and a
    batch's rows, members and states live for long, and the collector, run every 700 allocations, walked
    them again and again: a fifth of an import's time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def _grown(db: Database, steps: int) -> None:
    """After the 1st, 2nd, 4th, 8th… step of an import (a batch), when what it wrote may
    have doubled the tables, their statistics are refreshed for the next steps' plans (on PostgreSQL): one
    ANALYZE each time, a handful in all, where plans made for the tables as they were cost each batch a scan."""
    if steps & (steps - 1) == 0:
        await db.refresh_statistics(HISTORY_TABLES)


def _count_all(done: dict[str, Imported], requests: list, results: list) -> None:
    for request, result in zip(requests, results):
        counted = done[_KIND_OF[type(request)]]
        if isinstance(result, Rejected):
            counted.refused.append(f"{request.external_id}: {result}")
        elif result.duplicate:
            counted.duplicates += 1
        else:
            counted.new += 1
