"""What a Viber bot message carries besides its text: the step's image and attachments as
Viber REST Bot API message types, and its buttons as a keyboard (docs/channels/viber.md,
"What is sent").

- one image: ``picture``, the text as its description;
- one video, file or audio and no text: ``video`` / ``file`` (audio has no type of its
  own), with the ``size`` Viber requires (asked of the file's host when not known);
- anything else with attachments (several, or a text beside a video or file):
  ``rich_media``, a carousel of one card per attachment (at most 6), the text on the
  first card and as ``alt_text`` for clients without rich media.

No database, no network: the adapter asks for sizes before it calls this.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from omnirelay.channels.base import Outbound, PermanentError

MAX_CAPTION = 768  # picture description
MAX_VIDEO = 26 * 1024 * 1024  # Viber's documented limits
MAX_FILE = 50 * 1024 * 1024
MAX_FILE_NAME = 256
MAX_CARDS = 6
MAX_ALT_TEXT = 7000
CARD_COLUMNS, CARD_ROWS = 6, 7  # one card: a 6 x 7 group of buttons
KINDS = ("image", "video", "audio", "file")
BAD_DATA, TEXT_ERROR = 1021, 1012


@dataclass(frozen=True)
class Media:
    url: str
    kind: str  # image | video | audio | file
    name: str | None = None

    @property
    def file_name(self) -> str:
        if self.name:
            return self.name[:MAX_FILE_NAME]
        tail = PurePosixPath(unquote(urlsplit(self.url).path)).name
        return (tail or "file")[:MAX_FILE_NAME]


def media_of(message: Outbound) -> list[Media]:
    """The step's image, then its attachments (``extra["attachments"]``: ``{url, type,
    name?}`` as /user/notifications/send plans them), the image once."""
    out = [Media(message.image, "image")] if message.image else []
    raw = message.extra.get("attachments")
    if raw is None:
        return out
    if not isinstance(raw, list):
        raise PermanentError("attachments must be a list", code=BAD_DATA)
    for item in raw:
        url = item.get("url") if isinstance(item, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise PermanentError("an attachment needs an http(s) url", code=BAD_DATA)
        kind = item.get("type") if item.get("type") in KINDS else "file"
        name = item.get("name") if isinstance(item.get("name"), str) else None
        if not any(m.url == url for m in out):
            out.append(Media(url, str(kind), name))
    return out


def native(media: list[Media], text: str) -> Media | None:
    """The one video or file sent as Viber's own type (its size is needed), or None."""
    if len(media) == 1 and media[0].kind != "image" and not text.strip():
        return media[0]
    return None


def content(media: list[Media], text: str, size: int | None = None) -> dict[str, Any]:
    """The type-specific fields of the ``send_message`` body (``type`` and what it needs)."""
    if len(media) == 1 and media[0].kind == "image":
        if len(text) > MAX_CAPTION:
            raise PermanentError(
                f"a picture's text is at most {MAX_CAPTION} characters", code=TEXT_ERROR
            )
        return {"type": "picture", "media": media[0].url, "text": text}
    one = native(media, text)
    if one is not None:
        if size is None or size <= 0:
            raise PermanentError(
                f"the size of {one.url[:200]} is unknown (its host did not say)", code=BAD_DATA
            )
        limit = MAX_VIDEO if one.kind == "video" else MAX_FILE
        if size > limit:
            raise PermanentError(
                f"a Viber {'video' if one.kind == 'video' else 'file'} is at most "
                f"{limit // (1024 * 1024)} MB",
                code=BAD_DATA,
            )
        if one.kind == "video":
            return {"type": "video", "media": one.url, "size": size}
        return {"type": "file", "media": one.url, "size": size, "file_name": one.file_name}
    return carousel(media, text)


def carousel(media: list[Media], text: str) -> dict[str, Any]:
    """``rich_media``: one 6 x 7 card per attachment, a picture (or the file's name) over
    a caption; both open the attachment. The text is the first card's caption."""
    if len(media) > MAX_CARDS:
        raise PermanentError(f"Viber shows at most {MAX_CARDS} attachments", code=BAD_DATA)
    if len(text) > MAX_ALT_TEXT:
        raise PermanentError(f"text is at most {MAX_ALT_TEXT} characters", code=TEXT_ERROR)
    buttons: list[dict[str, Any]] = []
    for i, item in enumerate(media):
        top: dict[str, Any] = {
            "Columns": CARD_COLUMNS,
            "Rows": 5,
            "ActionType": "open-url",
            "ActionBody": item.url,
        }
        if item.kind == "image":
            top["Image"] = item.url
        else:
            top.update(Text=item.file_name, TextSize="large", TextHAlign="center")
        caption = text if i == 0 and text.strip() else (item.name or item.file_name)
        buttons.append(top)
        buttons.append(
            {
                "Columns": CARD_COLUMNS,
                "Rows": 2,
                "ActionType": "open-url",
                "ActionBody": item.url,
                "Text": caption[:250],
                "TextSize": "medium",
                "TextVAlign": "middle",
                "TextHAlign": "left",
            }
        )
    return {
        "type": "rich_media",
        "rich_media": {
            "Type": "rich_media",
            "ButtonsGroupColumns": CARD_COLUMNS,
            "ButtonsGroupRows": CARD_ROWS,
            "BgColor": "#FFFFFF",
            "Buttons": buttons,
        },
        "alt_text": text if text.strip() else media[0].url,
    }


def keyboard(message: Outbound) -> dict[str, Any] | None:
    """The seed's action (title + URL) as an open-url button; ``extra["buttons"]``
    (omnichannel steps) as more buttons: ``{"text", "url"}`` opens a link, ``{"text",
    "reply"}`` answers with that text, ``{"text", "share_phone": true}`` asks for the phone."""
    buttons: list[dict[str, Any]] = []
    if message.action:
        buttons.append(
            {
                "ActionType": "open-url",
                "ActionBody": message.action["url"],
                "Text": message.action["title"],
            }
        )
    raw = message.extra.get("buttons")
    if raw is not None:
        if not isinstance(raw, list) or len(raw) > 24:
            raise PermanentError("buttons must be a list of at most 24", code=BAD_DATA)
        for item in raw:
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                raise PermanentError("each button needs a text", code=BAD_DATA)
            if isinstance(item.get("url"), str):
                kind, action = "open-url", item["url"]
            elif item.get("share_phone") is True:
                kind, action = "share-phone", "phone"
            else:
                kind, action = "reply", str(item.get("reply") or item["text"])
            buttons.append({"ActionType": kind, "ActionBody": action, "Text": item["text"]})
    if not buttons:
        return None
    return {"Type": "keyboard", "DefaultHeight": False, "Buttons": buttons}
