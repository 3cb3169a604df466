"""Templates: the seed 001 rules (create, change, delete, operator moderation), what both
surfaces share (channel entries, group rules, the template-wide status), and the match
of a message text against the approved entries of a channel (the senders' question).

The /user (seed 004) methods are in ``platform.py``, moderation by provider in
``moderation.py``, groups in ``groups.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from omnirelay.connections import designations
from omnirelay.connections.models import CHANNELS
from omnirelay.db import utcnow
from omnirelay.errors import DomainError, InvalidInput
from omnirelay.templates import repository as repo
from omnirelay.templates import text as texts
from omnirelay.templates.models import STATUSES, Template, TemplateChannel

PLACEHOLDER = texts.PLACEHOLDER
fields = texts.fields
pattern = texts.pattern  # messaging's templates-only check matches with it


class TemplateError(DomainError):
    """Errors with the seed's numeric code."""

    def __init__(
        self, number: int, desc: str, *, status: int = 400, field: str | None = None
    ) -> None:
        super().__init__(str(number), desc, field=field)
        self.number = number
        self.status = status


MAX_NAME = 200  # the column's length
# The seed's codes for template fields (docs/api/notifications.md, "Templates").
NO_TITLE = (1042, "Missed title for the template")
NO_TEXT = (1043, "Missed template text")
NO_ACCESS = (1051, "You don't have access to the template")
BAD_VALUE = (1052, "There was an error verifying fields values")
MISSING = (1053, "Missed value that is obligatory")
WRONG_TYPE = (1056, "Wrong value for this field type")


def error(which: tuple[int, str], field: str | None = None, status: int = 400) -> TemplateError:
    return TemplateError(which[0], which[1], field=field, status=status)


# --- what both surfaces share -----------------------------------------------------------


def entry_status(status: str) -> str:
    """A seed 001 status as a channel entry's (seed 004 knows three)."""
    if status == "approved":
        return "approved"
    if status in ("rejected", "error", "exception", "cancel"):
        return "rejected"
    return "moderate"


def sync_status(row: Template) -> None:
    """The template-wide (seed 001) status after a change of its entries: approved when
    every entry is, `send` (at moderation) while one waits, rejected otherwise."""
    states = {e.status for e in row.entries}
    if not states:
        row.status = "new"
    elif states == {"approved"}:
        row.status = "approved"
    elif "moderate" in states:
        row.status = "send"
    else:
        row.status = "rejected"


def new_entry(row: Template, channel: str, **content: Any) -> TemplateChannel:
    content.setdefault("attachments", [])
    entry = TemplateChannel(
        organization_id=row.organization_id,
        channel=channel,
        status="moderate",
        revision=1,
        **content,
    )
    row.entries.append(entry)
    return entry


def remoderate(entry: TemplateChannel) -> None:
    """The entry needs moderation again (its text changed): answers to earlier requests no
    longer count."""
    entry.status = "moderate"
    entry.comment = None
    entry.revision += 1
    entry.updated_at = utcnow()


@dataclass(frozen=True)
class GroupConflict:
    channel: str
    other: int  # the template of the group that has the channel


def group_conflict(
    session: Session, row: Template, channels: Sequence[str], group_id: int | None = None
) -> GroupConflict | None:
    """Whether giving ``row`` these channels (in its group, or in ``group_id``) would make
    two templates of the group share one. The group row is locked first, so that two
    changes of one group take turns."""
    group_id = group_id if group_id is not None else row.group_id
    if group_id is None:
        return None
    repo.group(session, row.organization_id, group_id, lock=True)
    for other in repo.group_members(session, [group_id]):
        if other.id == row.id:
            continue
        shared = [c for c in channels if c in other.designations]
        if shared:
            return GroupConflict(shared[0], other.id)
    return None


def leave_group(session: Session, row: Template) -> None:
    """Take the template out of its group; a group left empty is removed."""
    if row.group_id is None:
        return
    group = repo.group(session, row.organization_id, row.group_id, lock=True)
    row.group_id = None
    session.flush()
    if group is not None and repo.group_size(session, group.id) == 0:
        session.delete(group)
    elif group is not None:
        group.updated_at = utcnow()
    session.flush()


# --- seed 001 (/v3/template/*) ------------------------------------------------------------


def _channels(channels: Sequence[str] | None) -> list[str]:
    out = list(dict.fromkeys(channels or []))
    for c in out:
        if c not in CHANNELS:
            raise TemplateError(
                BAD_VALUE[0], f"{BAD_VALUE[1]}: unknown channel {c!r}", field="channels"
            )
    return out


def _name(value: object) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise error(NO_TITLE, "name")
    if not isinstance(value, str):
        raise error(WRONG_TYPE, "name")
    if len(value.strip()) > MAX_NAME:
        raise TemplateError(
            BAD_VALUE[0], f"{BAD_VALUE[1]}: name is longer than {MAX_NAME}", field="name"
        )
    return value.strip()


def _group_url(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise error(WRONG_TYPE, "group_url")
    if value and not value.lower().startswith(("http://", "https://")):
        raise TemplateError(
            BAD_VALUE[0], f"{BAD_VALUE[1]}: group_url must be an http(s) URL", field="group_url"
        )
    return value


def v3_channels(row: Template) -> list[str]:
    """The template's channels as seed 001 knows them (its four)."""
    return [c for c in row.designations if c in CHANNELS]


def create(
    session: Session,
    organization_id: str,
    *,
    name: str | None,
    text: str | None,
    channels: Sequence[str] | None,
    group_url: str | None,
    comment: str | None,
) -> Template:
    title = _name(name)
    if not text or not text.strip():
        raise error(NO_TEXT, "text")
    wanted = _channels(channels)
    row = Template(
        uuid=str(uuid.uuid4()),
        organization_id=organization_id,
        name=title,
        text=text,
        group_url=_group_url(group_url),
        comment=comment,
        status="new",
        entries=[],
    )
    for channel in wanted:
        new_entry(row, channel)
    return repo.add(session, row)


def get(session: Session, organization_id: str, template_id: str) -> Template:
    row = repo.by_uuid(session, organization_id, template_id)
    if row is None or row.status == "deleted":
        raise TemplateError(1050, "Template does not exist", status=404)
    return row


def _changeable(session: Session, organization_id: str, template_id: str) -> Template:
    """The organization's template to change or delete. One it deleted is 1051 (it is its
    own, but no longer open to it); another organization's is unknown (1050)."""
    row = repo.by_uuid(session, organization_id, template_id, lock=True)
    if row is None:
        raise TemplateError(1050, "Template does not exist", status=404, field="id")
    if row.status == "deleted":
        raise error(NO_ACCESS, "id", status=403)
    return row


def _set_v3_channels(session: Session, row: Template, channels: list[str]) -> bool:
    """Make the template's seed 001 channels these (entries of other designations stay);
    True when one was added."""
    added = [c for c in channels if c not in row.designations]
    conflict = group_conflict(session, row, added)
    if conflict is not None:
        raise TemplateError(
            BAD_VALUE[0],
            f"{BAD_VALUE[1]}: template {conflict.other} of the same group has channel "
            f"{conflict.channel!r}",
            field="channels",
        )
    for entry in [e for e in row.entries if e.channel in CHANNELS and e.channel not in channels]:
        row.entries.remove(entry)
    for channel in added:
        new_entry(row, channel)
    return bool(added)


def change(
    session: Session, organization_id: str, template_id: str, options: dict[str, Any]
) -> dict[str, Any]:
    unknown = set(options) - {"name", "text", "channels", "group_url", "comment"}
    if unknown:
        first = sorted(unknown)[0]
        raise TemplateError(
            BAD_VALUE[0], f"{BAD_VALUE[1]}: unknown option {first!r}", field=f"options.{first}"
        )
    if not options:
        raise error(MISSING, "options")
    row = _changeable(session, organization_id, template_id)
    changed: dict[str, Any] = {}
    if "name" in options:
        row.name = changed["name"] = _name(options["name"])
    if "text" in options:
        if options["text"] is not None and not isinstance(options["text"], str):
            raise error(WRONG_TYPE, "text")
        if not options["text"] or not options["text"].strip():
            raise error(NO_TEXT, "text")
        if options["text"] != row.text:
            # A changed text has to pass moderation again, on every channel.
            row.text = changed["text"] = options["text"]
            row.status = changed["status"] = "new"
            for entry in row.entries:
                remoderate(entry)
    if "channels" in options:
        if not isinstance(options["channels"], list) or not all(
            isinstance(c, str) for c in options["channels"]
        ):
            raise error(WRONG_TYPE, "channels")
        channels = _channels(options["channels"])
        if _set_v3_channels(session, row, channels) and row.status != "new":
            # Approval is per channel: a channel added needs moderation too.
            row.status = changed["status"] = "new"
        changed["channels"] = channels
    if "group_url" in options:
        row.group_url = changed["group_url"] = _group_url(options["group_url"])
    if "comment" in options:
        if options["comment"] is not None and not isinstance(options["comment"], str):
            raise error(WRONG_TYPE, "comment")
        row.comment = changed["comment"] = options["comment"]
    row.updated_at = utcnow()
    session.flush()
    return changed


def delete_row(session: Session, row: Template) -> None:
    leave_group(session, row)
    row.status = "deleted"
    row.updated_at = utcnow()
    session.flush()


def delete(session: Session, organization_id: str, template_id: str) -> None:
    delete_row(session, _changeable(session, organization_id, template_id))


def list_templates(session: Session, organization_id: str) -> Sequence[Template]:
    return repo.list_for(session, organization_id)


def moderate(
    session: Session, organization_id: str, template_id: str, status: str, comment: str | None
) -> Template:
    """The operator's decision (seed 001 moderates a template as a whole): every channel
    entry takes it too."""
    if status not in STATUSES or status == "deleted":
        raise InvalidInput("invalid_status", f"status must be one of {STATUSES}", field="status")
    row = get(session, organization_id, template_id)
    row.status = status
    row.moderation_comment = comment
    now = row.updated_at = utcnow()
    for entry in row.entries:
        entry.status = entry_status(status)
        entry.comment = comment if entry.status == "rejected" else None
        entry.updated_at = now
    session.flush()
    return row


# --- the senders' question ----------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """An approved channel entry whose template the text fills in."""

    template_id: int  # the /user id
    template_uuid: str  # the /v3 id
    text: str  # the template's text
    entry: TemplateChannel  # channel, components, keyboard, attachments, sender
    variables: dict[str, str]


def match(session: Session, organization_id: str, channel: str, text: str) -> Found | None:
    """The approved entry of ``channel`` (a seed 004 designation, e.g. `whatsapp-business`)
    whose template's `regexpText` matches ``text``, with the variables taken out; None when
    no approved template of that channel matches. When several match, the most specific
    wins (the most fixed characters), then the oldest. An unknown designation is
    `invalid_channel`. One indexed query, the matching here (compiled patterns are
    cached by text), then the winning entry by its key."""
    designations.get(channel)
    best = best_match(repo.approved_entries(session, organization_id, [channel]), text)
    if best is None:
        return None
    entry = repo.entry(session, best[0])  # the winner's content: one lookup by key
    assert entry is not None
    return Found(best[1], best[2], best[3], entry, best[4])


def best_match(
    entries: Iterable[tuple[int, int, str, str]], text: str
) -> tuple[int, int, str, str, dict[str, str]] | None:
    """Of approved entries (entry id, template id, uuid, template text) in the templates'
    order, the one ``match`` picks for ``text`` with its variables; no database (the
    notifications planner calls it on its cached entries)."""
    best: tuple[int, int, str, str, dict[str, str]] | None = None
    best_fixed = -1
    for entry_id, template_id, template_uuid, template_text in entries:
        fixed = texts.fixed_length(template_text)
        if fixed <= best_fixed:
            continue
        found = texts.match(template_text, text)
        if found is not None:
            best = (entry_id, template_id, template_uuid, template_text, found.variables)
            best_fixed = fixed
    return best


def matches(session: Session, organization_id: str, channel: str, text: str) -> bool:
    return match(session, organization_id, channel, text) is not None
