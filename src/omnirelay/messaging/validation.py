"""Wire bodies of the /v3 send methods -> drafts, with the seed's errors.

Only checks that need no database live here; the service checks connections, senders,
templates, custom_id and balance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from omnirelay.messaging import errors as e
from omnirelay.messaging.email_steps import email_step
from omnirelay.net.ssrf import IPNetwork, precheck
from omnirelay.phones import InvalidPhone, parse_phone

CHANNELS = ("sms", "viber", "vk", "telegram", "email", "webchat")
# channel -> (min ttl, max ttl, default ttl); seed 001 and the wire notes. An email's
# ttl also bounds its bounce window (docs/channels/email.md).
TTL = {
    "sms": (60, 172800, 172800),
    "viber": (60, 86400, 600),
    "vk": (60, 86400, 600),
    "telegram": (60, 86400, 600),
    "email": (60, 172800, 86400),
    "webchat": (60, 86400, 600),
}
SIMPLE_TTL = (60, 86400, 300)
TEXT_LIMIT = {
    "sms": 2000,
    "viber": 1000,
    "vk": 4096,
    "telegram": 4096,
    "email": 200_000,
    "webchat": 4096,
}
MAX_AHEAD = timedelta(hours=72)
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass
class StepDraft:
    channel: str
    phone: str  # E.164 digits
    text: str | None
    sender: str | None = None  # SMS/Viber sender ID, or the VK group id
    image: str | None = None
    action: dict[str, str] | None = None
    ttl: int = 600
    extra: dict[str, Any] | None = None  # channel-specific: see channels.base.Outbound
    # The connection the caller chose and checked (a notification's channel entry);
    # None: accepting picks the channel's connection by sender.
    connection_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Draft:
    method: str
    steps: list[StepDraft]
    custom_id: str | None = None
    report: str | None = None
    reply: str | None = None
    daydelivery: bool = False
    delivery_date: datetime | None = None
    simple: bool = False  # sendSimple: the steps come from the default route
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rules:
    default_region: str | None
    allowed_networks: Sequence[IPNetwork] = ()


def _str(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise e.no_field(name)
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise e.invalid(f"{name} must be a string", name)
    return str(value)


def _phone(raw: Any, default_region: str | None, field: str = "phone") -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise e.bad_phone(field)
    digits = _phone_digits(str(raw), default_region)
    if digits is None:
        raise e.bad_phone(field)
    return digits


@lru_cache(maxsize=100_000)
def _phone_digits(raw: str, default_region: str | None) -> str | None:
    # Parsing is a third of a send's validation; clients send the same numbers again and
    # again. Bounded: a stream of new numbers only costs the parse they cost anyway.
    try:
        return parse_phone(raw, default_region).digits
    except InvalidPhone:
        return None


def _ttl(value: Any, channel: str, limits: tuple[int, int, int], field: str = "ttl") -> int:
    low, high, default = limits
    if value is None or value == "":
        return default
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except (TypeError, ValueError):
        raise e.bad_ttl(channel, low, high, field) from None
    if number != number or number != int(number) or not low <= number <= high:
        raise e.bad_ttl(channel, low, high, field)
    return int(number)


def _url(value: Any, name: str, rules: Rules) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 2000:
        raise e.invalid(f"{name} must be a URL", name)
    try:
        precheck(value.strip(), rules.allowed_networks)
    except Exception as exc:  # UnsafeURL and shape errors
        raise e.invalid(f"{name}: {exc}", name) from exc
    return value.strip()


def _text(value: str | None, channel: str, name: str = "text") -> str | None:
    if value is not None and len(value) > TEXT_LIMIT[channel]:
        raise e.bad_text(f"at most {TEXT_LIMIT[channel]} characters on {channel}", name)
    return value


def parse_delivery_date(value: Any, now: datetime) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise e.SendError(1054, "Wrong DATE format", field="delivery_date")
    try:
        when = datetime.strptime(value.strip(), DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise e.SendError(1054, "Wrong DATE format", field="delivery_date") from None
    if when > now + MAX_AHEAD:
        raise e.SendError(
            1021,
            "Invalid argument: delivery_date can't be more than 72 hours from now",
            field="delivery_date",
        )
    return when


def _common(body: dict[str, Any], draft: Draft, rules: Rules, now: datetime) -> Draft:
    custom_id = _str(body, "custom_id")
    if custom_id is not None and len(custom_id) > 200:
        raise e.SendError(1026, "Wrong user message ID format", field="custom_id")
    draft.custom_id = custom_id
    draft.report = _url(body.get("report"), "report", rules)
    draft.reply = _url(body.get("reply"), "reply", rules)
    day = body.get("daydelivery", False)
    if day in (None, ""):
        day = False
    if not isinstance(day, bool | int) or day not in (0, 1, True, False):
        raise e.invalid("daydelivery must be a boolean", "daydelivery")
    draft.daydelivery = bool(day)
    draft.delivery_date = parse_delivery_date(body.get("delivery_date"), now)
    return draft


def _viber(step: dict[str, Any], draft_step: StepDraft, prefix: str = "") -> None:
    text, image, action = step.get("text"), step.get("image"), step.get("action")
    if not text and not image and not action:
        raise e.SendError(1035, "Text or image or action must be specified", field=prefix + "text")
    if action is not None:
        if not isinstance(action, dict) or not action.get("title") or not action.get("url"):
            raise e.SendError(
                1035, "Action title and URL must be specified", field=prefix + "action"
            )
        title, url = action["title"], action["url"]
        if not isinstance(title, str) or len(title) > 30:
            raise e.SendError(1035, "Action title must be a text of 1..30 characters")
        if not _is_http(url):
            raise e.SendError(1037, "Wrong button URL", field=prefix + "action.url")
        draft_step.action = {"title": title, "url": url}
    if image is not None and image != "":
        if not _is_http(image):
            raise e.SendError(1036, "Wrong image URL", field=prefix + "image")
        draft_step.image = image
    # Viber business messages: text, image, text + button, or text + image + button.
    combo = (bool(text), bool(image), bool(action))
    if combo not in {
        (True, False, False),
        (False, True, False),
        (True, False, True),
        (True, True, True),
    }:
        raise e.SendError(1035, "Incorrect content combination", field=prefix + "text")


def _is_http(value: Any) -> bool:
    return (
        isinstance(value, str)
        and value.startswith(("http://", "https://"))
        and len(value) <= 2000
        and " " not in value
        and len(value.split("://", 1)[1]) > 0
    )


def parse_step(
    step: dict[str, Any],
    rules: Rules,
    *,
    channel: str | None = None,
    prefix: str = "",
    fallback_phone: Any = None,
    ttl_limits: tuple[int, int, int] | None = None,
) -> StepDraft:
    channel = channel or _str(step, "channel", required=True)
    assert channel is not None
    if channel not in CHANNELS:
        raise e.not_allowed(channel)
    raw_phone = step.get("phone", fallback_phone)
    if raw_phone is None or raw_phone == "":
        if channel == "vk":
            raise e.SendError(None, "No phone or user", field=prefix + "phone")
        if channel != "email":  # an email step is addressed by its ``email``
            raise e.no_field("phone")
    phone = _phone(raw_phone, rules.default_region, prefix + "phone") if raw_phone else ""
    text = _str(step, "text")
    ttl = _ttl(step.get("ttl"), channel, ttl_limits or TTL[channel], prefix + "ttl")
    out = StepDraft(channel=channel, phone=phone, text=_text(text, channel), ttl=ttl)
    if channel == "sms":
        out.sender = _str(step, "sender", required=True)
        if text is None:
            raise e.no_field("text")
    elif channel == "viber":
        out.sender = _str(step, "sender", required=True)
        _viber(step, out, prefix)
    elif channel == "email":
        email_step(step, out, rules, prefix)
    elif channel == "vk":
        group = step.get("group")
        if group is None or group == "":
            raise e.no_field("group")
        if isinstance(group, bool) or not str(group).isdigit():
            raise e.invalid("group must be a VK group id (a number)", prefix + "group")
        out.sender = str(int(str(group)))
        if text is None:
            raise e.SendError(None, "No text or tmpl", field=prefix + "text")
        # omnirelay extensions: a photo attachment, a link button (docs/channels/vk.md)
        image, action = step.get("image"), step.get("action")
        if image is not None and image != "":
            if not _is_http(image):
                raise e.SendError(1036, "Wrong image URL", field=prefix + "image")
            out.image = image
        if action is not None:
            if not isinstance(action, dict) or not action.get("title") or not action.get("url"):
                raise e.SendError(1035, "Action title and URL must be specified")
            if not isinstance(action["title"], str) or not _is_http(action["url"]):
                raise e.SendError(1037, "Wrong button URL", field=prefix + "action.url")
            out.action = {"title": action["title"][:40], "url": action["url"]}
    else:  # telegram
        out.sender = _str(step, "sender")
        _telegram(step, out, prefix)
    return out


def _telegram(step: dict[str, Any], draft_step: StepDraft, prefix: str) -> None:
    """A Telegram step: a text, or a photo (``image``) with an optional caption; an
    ``action`` {title, url} becomes an inline keyboard button."""
    image, action = step.get("image"), step.get("action")
    if action is not None:
        if not isinstance(action, dict) or not action.get("title") or not action.get("url"):
            raise e.SendError(
                1035, "Action title and URL must be specified", field=prefix + "action"
            )
        title, url = action["title"], action["url"]
        if not isinstance(title, str) or len(title) > 64:
            raise e.SendError(1035, "Action title must be a text of 1..64 characters")
        if not _is_http(url):
            raise e.SendError(1037, "Wrong button URL", field=prefix + "action.url")
        draft_step.action = {"title": title, "url": url}
    if image is not None and image != "":
        if not _is_http(image):
            raise e.SendError(1036, "Wrong image URL", field=prefix + "image")
        draft_step.image = image
    if draft_step.text is None and draft_step.image is None:
        raise e.no_field("text")


def _body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not body:
        raise e.no_params()
    return body


def single(method: str, channel: str, body: Any, rules: Rules, now: datetime) -> Draft:
    """sendSMS, sendViber, sendVK, sendTelegram."""
    body = _body(body)
    draft = Draft(method=method, steps=[parse_step(body, rules, channel=channel)])
    return _common(body, draft, rules, now)


def omnichannel(body: Any, rules: Rules, now: datetime, method: str = "send") -> Draft:
    body = _body(body)
    route = body.get("route")
    if route is None:
        raise e.no_field("route")
    if not isinstance(route, list) or not route:
        raise e.invalid("route must be a non-empty array of steps", "route")
    if len(route) > 10:
        raise e.invalid("a route has at most 10 steps", "route")
    steps: list[StepDraft] = []
    for i, step in enumerate(route):
        if not isinstance(step, dict):
            raise e.invalid(f"route[{i}] must be an object", f"route[{i}]")
        steps.append(
            parse_step(
                {"ttl": body.get("ttl"), **step},
                rules,
                prefix=f"route[{i}].",
                fallback_phone=body.get("phone"),
            )
        )
    return _common(body, Draft(method=method, steps=steps), rules, now)


def simple(body: Any, rules: Rules, now: datetime) -> Draft:
    """sendSimple: phone and text; the steps are filled from the default route later."""
    body = _body(body)
    if body.get("phone") in (None, ""):
        raise e.no_field("phone")
    text = _str(body, "text", required=True)
    phone = _phone(body["phone"], rules.default_region)
    ttl = _ttl(body.get("ttl"), "telegram", SIMPLE_TTL)
    step = StepDraft(channel="", phone=phone, text=text, sender=_str(body, "sender"), ttl=ttl)
    draft = Draft(method="sendSimple", steps=[step], simple=True)
    return _common(body, draft, rules, now)
