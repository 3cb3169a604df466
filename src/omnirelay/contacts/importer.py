"""Bulk import of contacts: set-based, a batch of rows per transaction.

A batch is parsed and checked row by row (a bad row is refused with its reason, the others
go on), rows of the batch that share a channel id become one, then one query per channel
id finds the contacts that exist already. New contacts and their values are two
``executemany`` INSERTs; a row that matches one contact fills it in (merged); a row that
matches several goes through ``service.create``, which merges them."""

from __future__ import annotations

import csv
import functools
import io
import json
import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.pool import AsyncResult
from typing import Any

from sqlalchemy.orm import Session

from omnirelay.contacts import events, service, values
from omnirelay.contacts import repository as repo
from omnirelay.contacts.collector import paused_collector
from omnirelay.contacts.models import CHANNEL_IDS, Contact, mask_of, object_id
from omnirelay.contacts.schemas import NewContact, VariableValue
from omnirelay.db import utcnow
from omnirelay.errors import DomainError, InvalidInput

BATCH = 5000  # rows per transaction
# Parser processes by default: none. Measured with the fast phone path (ADR 29): pickling
# a batch to a parser and back costs the writer more than parsing it here.
DEFAULT_PARSERS = 0
MAX_REASONS = 1000  # refused rows reported one by one; the count goes on past it
IN_CHUNK = 500  # values per IN (...) list
_ID_COLUMNS = tuple(CHANNEL_IDS.values())


@dataclass
class Summary:
    rows: int = 0
    created: int = 0
    merged: int = 0
    refused: int = 0
    reasons: list[dict[str, Any]] = field(default_factory=list)

    def refuse(self, line: int, reason: str) -> None:
        self.refused += 1
        if len(self.reasons) < MAX_REASONS:
            self.reasons.append({"line": line, "reason": reason})

    def add(self, other: Summary) -> None:
        self.rows += other.rows
        self.created += other.created
        self.merged += other.merged
        for r in other.reasons:
            if len(self.reasons) < MAX_REASONS:
                self.reasons.append(r)
        self.refused += other.refused

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "created": self.created,
            "merged": self.merged,
            "refused": self.refused,
            "errors": self.reasons,
        }


# --- reading files ------------------------------------------------------------------


def read_rows(source: str | Iterable[str], fmt: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of a CSV (a header line of column names) or JSON Lines text
    or file. A line that is not a JSON object becomes a row that is refused."""
    lines = io.StringIO(source) if isinstance(source, str) else source
    if fmt == "csv":
        reader = csv.DictReader(lines)
        try:
            for row in reader:
                yield reader.line_num, {k: v for k, v in row.items() if k is not None and v != ""}
        except csv.Error as exc:  # e.g. a field over the csv module's size limit
            raise InvalidInput(
                "invalid_file", f"CSV line {reader.line_num}: {exc}", field="data"
            ) from None
        return
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            parsed: Any = json.loads(line)
        except ValueError:
            parsed = None
        yield number, parsed if isinstance(parsed, dict) else {"__invalid__": True}


def format_of(name: str) -> str:
    lower = name.lower()
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    raise InvalidInput("invalid_format", "A .csv or .jsonl file", field="format")


# --- one batch ----------------------------------------------------------------------


@dataclass
class _Row:
    line: int
    ids: dict[str, str]  # column -> value
    values: dict[str, values.Typed | None]  # variable id -> value (None clears)
    sources: dict[str, Any]


@dataclass(frozen=True)
class VarInfo:
    """What parsing needs of a variable (plain data: it goes to parser processes)."""

    id: str
    name: str
    validate_as: str


@dataclass
class Parsed:
    """A batch after parsing: its rows, and those refused with their reasons."""

    size: int
    rows: list[_Row]
    refused: list[tuple[int, str]]


def parse_batch(
    batch: Sequence[tuple[int, Mapping[str, Any]]], variables: Mapping[str, VarInfo]
) -> Parsed:
    """Check and normalise a batch (phones through phonenumbers): no database, so it may
    run in other processes (``parse_in_processes``) while this one writes."""
    out = Parsed(len(batch), [], [])
    with paused_collector():
        for line, raw in batch:
            try:
                out.rows.append(_parse(line, raw, variables))
            except DomainError as exc:
                out.refused.append((line, exc.message))
    return out


def parse_in_processes(
    chunks: Iterator[list[tuple[int, dict[str, Any]]]],
    variables: Mapping[str, VarInfo],
    workers: int,
) -> Iterator[Parsed]:
    """The batches parsed by ``workers`` processes, in order, a few batches ahead of the
    writer; 0 parses them here."""
    if workers <= 0:
        for chunk in chunks:
            yield parse_batch(chunk, variables)
        return
    parse = functools.partial(parse_batch, variables=dict(variables))
    ahead: deque[AsyncResult[Parsed]] = deque()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for chunk in chunks:  # at most two batches per parser read ahead: memory stays flat
            ahead.append(pool.apply_async(parse, (chunk,)))
            if len(ahead) > 2 * workers:
                yield ahead.popleft().get()
        while ahead:
            yield ahead.popleft().get()


_SOURCES = frozenset(service.SOURCE_KEYS)


def _parse(line: int, raw: Mapping[str, Any], variables: Mapping[str, VarInfo]) -> _Row:
    # The hot loop of an import's parse: one dict probe per key in the common case.
    if "__invalid__" in raw:
        raise InvalidInput("invalid_row", "not a JSON object")
    ids: dict[str, str] = {}
    sources: dict[str, Any] = {}
    pairs: list[tuple[str, Any]] = []
    for key, value in raw.items():
        column = CHANNEL_IDS.get(key)
        if column is not None:
            if value is not None and value != "":
                ids[column] = service.normalise_id(key, value, key)
        elif key == "variables" and isinstance(value, list):
            for item in value:
                if not isinstance(item, dict):
                    raise InvalidInput("invalid_row", "variables: a list of {id|name, value}")
                pairs.append((str(item.get("id") or item.get("name") or ""), item.get("value")))
        elif key in _SOURCES and isinstance(value, dict):
            sources[key] = value
        else:
            pairs.append((key, value))
    if not ids:
        raise InvalidInput("missing_field", "no phone or other channel id")
    typed: dict[str, values.Typed | None] = {}
    for key, value in pairs:
        var = variables.get(key)
        if var is None:
            raise InvalidInput("variable_not_found", f"unknown variable {key!r}")
        if value is None or value == "":
            typed[var.id] = None
        else:
            typed[var.id] = values.typed(var.validate_as, value, var.name)
    return _Row(line, ids, typed, sources)


def variable_keys(session: Session, organization_id: str) -> dict[str, VarInfo]:
    """Variables by id and by name."""
    out: dict[str, VarInfo] = {}
    for var in repo.variables(session, organization_id):
        info = VarInfo(var.id, var.name, var.validate_as)
        out[var.name] = info
        out[var.id] = info
    return out


def _existing(session: Session, organization_id: str, rows: Sequence[_Row]) -> dict[Any, str]:
    """(column, value) -> id of the contact that has it, one query per column and chunk."""
    wanted: dict[str, set[str]] = {}
    for row in rows:
        for column, value in row.ids.items():
            wanted.setdefault(column, set()).add(value)
    found: dict[Any, str] = {}
    for column, keys in wanted.items():
        ordered = sorted(keys)
        for start in range(0, len(ordered), IN_CHUNK):
            chunk = ordered[start : start + IN_CHUNK]
            for value, cid in repo.ids_by_channel_values(
                session, organization_id, column, chunk
            ).items():
                found[(column, value)] = cid
    return found


def import_batch(
    session: Session,
    organization_id: str,
    batch: Sequence[tuple[int, Mapping[str, Any]]],
    variables: Mapping[str, VarInfo] | None = None,
) -> Summary:
    variables = variables if variables is not None else variable_keys(session, organization_id)
    return import_parsed(session, organization_id, parse_batch(batch, variables), variables)


def import_parsed(
    session: Session, organization_id: str, parsed: Parsed, variables: Mapping[str, VarInfo]
) -> Summary:
    """Write a parsed batch: one transaction's worth."""
    with paused_collector(), repo.bulk_cache(session):
        return _write(session, organization_id, parsed, variables)


def _write(
    session: Session, organization_id: str, parsed: Parsed, variables: Mapping[str, VarInfo]
) -> Summary:
    summary = Summary(rows=parsed.size)
    for line, reason in parsed.refused:
        summary.refuse(line, reason)
    groups: list[_Row] = []
    owner: dict[tuple[str, str], int] = {}  # (column, value) -> index in groups
    slow: list[_Row] = []
    for row in parsed.rows:
        hits = {owner[k] for k in row.ids.items() if k in owner}
        if len(hits) > 1:
            slow.append(row)  # joins two rows of the batch: merged the careful way
            continue
        if hits:
            index = hits.pop()
            group = groups[index]
            for column, value in row.ids.items():
                group.ids.setdefault(column, value)
                owner.setdefault((column, value), index)
            group.values.update(row.values)
            group.sources.update(row.sources)
            summary.merged += 1
            continue
        owner.update({k: len(groups) for k in row.ids.items()})
        groups.append(row)

    found = _existing(session, organization_id, groups)
    now = utcnow()
    moment, day = repo.bulk_formats(session)
    stamp = moment(now)
    new_contacts: list[tuple[Any, ...]] = []
    new_values: list[tuple[Any, ...]] = []
    for row in groups:
        holders = {found[k] for k in row.ids.items() if k in found}
        if len(holders) > 1:
            slow.append(row)
            continue
        if holders:
            _fill_in(session, organization_id, holders.pop(), row, now)
            summary.merged += 1
            continue
        cid = object_id()
        ids = row.ids
        new_contacts.append(
            (
                cid,
                organization_id,
                *(ids.get(c) for c in _ID_COLUMNS),
                json.dumps(row.sources) if row.sources else None,
                stamp,
                stamp,
            )
        )
        mask = mask_of(ids)
        new_values += [
            (cid, vid, t.text, t.num, None if t.day is None else day(t.day), mask)
            for vid, t in row.values.items()
            if t is not None
        ]
    repo.insert_contacts(session, new_contacts)
    repo.insert_values(session, new_values)
    summary.created += len(new_contacts)
    if new_contacts and events.callback_configured(session, organization_id):
        made = repo.by_ids(session, organization_id, [c[0] for c in new_contacts])
        events.created(session, organization_id, service.render(session, organization_id, made))
    for row in slow:
        item = NewContact(
            ids={w: row.ids[c] for w, c in CHANNEL_IDS.items() if c in row.ids},
            variables=[
                VariableValue(vid, _plain(variables[vid], t)) for vid, t in row.values.items()
            ],
            sources=row.sources,
        )
        service.create(session, organization_id, [item])
        summary.merged += 1
    return summary


def _value(cid: str, vid: str, typed: values.Typed) -> dict[str, Any]:
    return {
        "contact_id": cid,
        "variable_id": vid,
        "value_text": typed.text,
        "value_num": typed.num,
        "value_date": typed.day,
    }


def _plain(var: VarInfo, typed: values.Typed | None) -> Any:
    if typed is None:
        return None
    return values.render(var.validate_as, typed.text, typed.num, typed.day)


def _fill_in(session: Session, organization_id: str, cid: str, row: _Row, now: Any) -> None:
    contact: Contact | None = repo.get(session, organization_id, cid)
    assert contact is not None
    for column, value in row.ids.items():
        if getattr(contact, column) is None:
            setattr(contact, column, value)
    if row.sources:
        contact.sources = {**row.sources, **(contact.sources or {})}
    contact.updated_at = now
    repo.upsert_values(session, [_value(cid, v, t) for v, t in row.values.items() if t is not None])
    repo.clear_values(session, cid, [v for v, t in row.values.items() if t is None])
    session.flush()
    if events.callback_configured(session, organization_id):
        events.updated(
            session, organization_id, service.render(session, organization_id, [contact])[0]
        )


def batches(
    rows: Iterator[tuple[int, dict[str, Any]]], size: int = BATCH
) -> Iterator[list[tuple[int, dict[str, Any]]]]:
    chunk: list[tuple[int, dict[str, Any]]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
