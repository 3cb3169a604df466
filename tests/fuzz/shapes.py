"""What each surface's answers must look like, from the seeds and docs/api/*.md.

Each checker takes the HTTP status and the decoded JSON body (``None`` when the body is
not JSON) and returns the problems it finds; an empty list means the answer is in shape.
"""

from __future__ import annotations

from typing import Any

Problems = list[str]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _keys(body: dict[str, Any], required: set[str], optional: set[str]) -> Problems:
    problems = [f"missing key {k!r}" for k in sorted(required - body.keys())]
    extra = body.keys() - required - optional
    if extra:
        problems.append(f"undocumented keys {sorted(extra)}")
    return problems


def admin(status: int, body: Any) -> Problems:
    """docs/api/admin.md: ``{statusCode, code, message, errors?: [{field, message}]}``,
    ``statusCode`` equal to the HTTP status, never a 5xx for bad input."""
    if status < 400:
        return []
    if not isinstance(body, dict):
        return ["error body is not a JSON object"]
    problems = _keys(body, {"statusCode", "code", "message"}, {"errors"})
    if body.get("statusCode") != status:
        problems.append(f"statusCode {body.get('statusCode')!r} is not the HTTP status {status}")
    for key in ("code", "message"):
        if key in body and not (isinstance(body[key], str) and body[key]):
            problems.append(f"{key} is not a non-empty string")
    if "errors" in body:
        errors = body["errors"]
        if not (isinstance(errors, list) and errors):
            problems.append("errors is not a non-empty list")
        elif not all(
            isinstance(e, dict)
            and set(e) == {"field", "message"}
            and all(isinstance(v, str) for v in e.values())
            for e in errors
        ):
            problems.append("an errors item is not {field, message} strings")
    return problems


def notify(status: int, body: Any) -> Problems:
    """docs/api/notifications.md: success ``{"result": "success", ...}``; an error is a 4xx
    with ``{"result": "error", "desc", "code"?: int, "field"?}`` (sendMixed adds ``id`` and
    ``errors`` when no element was accepted)."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    if status < 400:
        return [] if body.get("result") == "success" else ["2xx without result: success"]
    problems = _keys(body, {"result", "desc"}, {"code", "field", "id", "errors"})
    if body.get("result") != "error":
        problems.append("result is not 'error'")
    if not (isinstance(body.get("desc"), str) and body["desc"]):
        problems.append("desc is not a non-empty string")
    if "code" in body and not _is_int(body["code"]):
        problems.append("code is not an integer")
    if "field" in body and not isinstance(body["field"], str):
        problems.append("field is not a string")
    return problems


def platform(status: int, body: Any) -> Problems:
    """docs/api/platform.md (seed 004): success 200 ``{"result": "success", ...}``; an API
    error is HTTP 500 ``{"result": "error", "code", "desc", "field"?}``; unknown path 404,
    other method 405, in the same shape."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    if status < 400:
        return [] if body.get("result") == "success" else ["2xx without result: success"]
    problems = []
    if status not in (404, 405, 500):
        problems.append(f"HTTP {status}: an API error is 500 (404/405 for path/method)")
    problems += _keys(body, {"result", "code", "desc"}, {"field"})
    if body.get("result") != "error":
        problems.append("result is not 'error'")
    for key in ("code", "desc"):
        if not (isinstance(body.get(key), str) and body[key]):
            problems.append(f"{key} is not a non-empty string")
    if "field" in body and not isinstance(body["field"], str):
        problems.append("field is not a string")
    return problems


def callback(status: int, body: Any) -> Problems:
    """docs/api/callbacks.md (seed 003 section 10): every answer is ``{"head": {"status",
    "message"}, "data"}``; a refusal is HTTP 500 with head status 500 and ``data: null``,
    failed authentication HTTP 401, an unknown path 404, another method 405."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    problems = _keys(body, {"head", "data"}, set())
    head = body.get("head")
    if not (isinstance(head, dict) and set(head) == {"status", "message"}):
        return [*problems, "head is not {status, message}"]
    if not (isinstance(head["message"], str) and head["message"]):
        problems.append("head.message is not a non-empty string")
    if status < 400:
        if head["status"] != 200:
            problems.append("a 2xx answer without head status 200")
        return problems
    if status not in (401, 404, 405, 500):
        problems.append(f"HTTP {status}: a refusal is 500 (401 auth, 404 path, 405 method)")
    if head["status"] != 500:
        problems.append("an error without head status 500")
    if body.get("data") is not None:
        problems.append("an error with data")
    return problems


def gateway(status: int, body: Any) -> Problems:
    """docs/api/gateway.md (seed 002): every answer is a JSON object with a boolean
    ``status``; a refusal is ``status: false`` with ``reason`` (``detail`` where the seed
    says so) and HTTP 200; an unknown path is 404, another method 405, in the same shape."""
    if not isinstance(body, dict):
        return ["body is not a JSON object"]
    if not isinstance(body.get("status"), bool):
        return ["no boolean status"]
    if body["status"]:
        return [] if status < 400 else [f"HTTP {status} with status: true"]
    problems = []
    if status not in (200, 404, 405):
        problems.append(f"HTTP {status}: a refusal is 200 (404 for a path, 405 for a method)")
    reasons = [k for k in ("reason", "detail") if k in body]
    if len(reasons) != 1 or not (isinstance(body[reasons[0]], str) and body[reasons[0]]):
        problems.append("a refusal without one non-empty reason or detail")
    return problems
