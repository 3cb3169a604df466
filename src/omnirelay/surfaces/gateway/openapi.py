"""What seed 002's methods take, for the OpenAPI document. The handlers read any body kind
themselves (multipart, urlencoded or JSON), so FastAPI cannot describe them: this module
does, and the fuzz tests generate their requests from it."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

TEXT: Schema = {"type": "string"}
FLAG: Schema = {"type": "string", "description": "true/false, on/off, 1/0"}
SECONDS: Schema = {"type": "string", "pattern": "^[0-9]*$"}
WEBHOOK: Schema = {"type": "string", "format": "uri", "description": "checked by the SSRF guard"}

SEND: dict[str, Schema] = {
    "target": {**TEXT, "description": "comma list of number|name|var1|..., or a group id"},
    "message": {**TEXT, "maxLength": 60000},
    "url": {**TEXT, "format": "uri", "description": "media by link (SSRF guard)"},
    "filename": TEXT,
    "schedule": {**SECONDS, "description": "unix time to send at"},
    "delay": {**TEXT, "description": "seconds between targets: '2' or '1-10'"},
    "countryCode": {**TEXT, "description": "replaces a leading 0; '0' turns it off"},
    "location": {**TEXT, "description": "'lat,long'"},
    "typing": FLAG,
    "duration": SECONDS,
    "choices": {**TEXT, "description": "a poll: 2..12 distinct choices, comma separated"},
    "select": {"type": "string", "enum": ["single", "multiple"]},
    "pollname": TEXT,
    "connectOnly": FLAG,
    "followup": SECONDS,
    "data": {**TEXT, "description": "a JSON array of send requests"},
    "sequence": FLAG,
    "preview": FLAG,
    "inboxid": TEXT,
}

FIELDS: dict[str, dict[str, Schema]] = {
    "send": SEND,
    "device": {},
    "disconnect": {},
    "update-device": {
        "name": {**TEXT, "minLength": 2, "maxLength": 30},
        "webhook": WEBHOOK,
        "webhookconnect": WEBHOOK,
        "webhookstatus": WEBHOOK,
        "webhookchaining": WEBHOOK,
        "autoread": FLAG,
        "personal": FLAG,
        "group": FLAG,
        "quick": FLAG,
        "resend": FLAG,
        "target": {**TEXT, "description": "the account's number for OTPs"},
        "countryCode": TEXT,
    },
    "delete-device": {"otp": {**TEXT, "description": "empty: send a code; else the code"}},
    "qr": {"type": {"type": "string", "enum": ["qr", "code"]}},
    "validate": {"target": TEXT, "countryCode": TEXT},
    "status": {"id": SECONDS},
    "delete-message": {"id": SECONDS},
    "reset-message": {},
    "get-devices": {},
    "add-device": {
        "name": {**TEXT, "minLength": 2, "maxLength": 30},
        "device": {"type": "string", "pattern": "^[0-9]{8,15}$"},
        "autoread": FLAG,
        "personal": FLAG,
        "group": FLAG,
    },
}

AUTHORIZATION: Schema = {
    "name": "Authorization",
    "in": "header",
    "required": False,
    "description": "the device token (the account token for /get-devices, /add-device)",
    "schema": TEXT,
}


def operation(method: str) -> Schema:
    """``openapi_extra`` of one POST method: its token header and its body in each kind."""
    fields = FIELDS[method]
    extra: Schema = {"parameters": [AUTHORIZATION]}
    if not fields:
        return extra
    form: Schema = {"type": "object", "properties": fields}
    multipart = form
    if method == "send":  # an upload goes in multipart only
        multipart = {
            "type": "object",
            "properties": {**fields, "file": {"type": "string", "format": "binary"}},
        }
    extra["requestBody"] = {
        "required": False,
        "content": {
            "application/json": {"schema": form},
            "application/x-www-form-urlencoded": {"schema": form},
            "multipart/form-data": {"schema": multipart},
        },
    }
    return extra


def by_get(method: str) -> Schema:
    """``openapi_extra`` of a read-only method called with GET: its fields in the query."""
    query = [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in FIELDS[method].items()
    ]
    return {"parameters": [AUTHORIZATION, *query]}


def send_by_get() -> Schema:
    """``GET /send``: the same fields in the query, with the token(s) and a redirect."""
    # A URL carries a few kilobytes at most (proxies and servers cap it): longer is a POST.
    fields = {**SEND, "message": {**TEXT, "maxLength": 4000}}
    query = [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in fields.items()
    ]
    query.append(
        {
            "name": "token",
            "in": "query",
            "required": False,
            "description": "device token(s), comma separated: one is picked at random",
            "schema": TEXT,
        }
    )
    query.append(
        {
            "name": "redirect",
            "in": "query",
            "required": False,
            "description": "where to send the browser after sending",
            "schema": TEXT,
        }
    )
    return {"parameters": query}
