"""Errors of seed 001 ("Server response and possible errors", error codes 1000-1203).

``desc`` is the seed's text; ``number`` its numeric code where the seed gives one.
"""

from __future__ import annotations

from omnirelay.errors import DomainError


class SendError(DomainError):
    def __init__(
        self, number: int | None, desc: str, *, status: int = 400, field: str | None = None
    ) -> None:
        super().__init__(str(number) if number else "invalid_request", desc, field=field)
        self.number = number
        self.status = status


def no_field(name: str) -> SendError:
    return SendError(None, f'No field "{name}"', field=name)


def no_params() -> SendError:
    return SendError(None, "No params")


def bad_phone(field: str = "phone") -> SendError:
    return SendError(1010, "Tel.number error", field=field)


def blocked_phone(field: str = "phone") -> SendError:
    return SendError(1019, "Tel.number is in the black list", field=field)


def blocked_ip() -> SendError:
    return SendError(1013, "IP error (request from blacklisted IP)", status=403)


def bad_sender(field: str = "sender") -> SendError:
    return SendError(1011, "Sender ID error", field=field)


def bad_text(detail: str, field: str = "text") -> SendError:
    return SendError(1012, f"Message text error: {detail}", field=field)


def invalid(detail: str, field: str | None = None) -> SendError:
    return SendError(1021, f"Invalid argument: {detail}", field=field)


def no_settings(channel: str) -> SendError:
    return SendError(1016, "Not found channel settings", field=channel)


def not_allowed(channel: str) -> SendError:
    return SendError(1030, "The channel is not allowed", field=channel)


def no_template() -> SendError:
    return SendError(1000, "The text is not matched existing templates", field="text")


def no_funds() -> SendError:
    return SendError(1015, "Balance error - not enough funds", status=402)


def duplicate_custom_id() -> SendError:
    return SendError(
        1018, "You've already sent message with same user message ID", status=409, field="custom_id"
    )


TTL_ERRORS = {
    "sms": (1040, 'Wrong time-out ("time-to-live") for SMS'),
    "viber": (1034, 'Wrong time-out ("time-to-live") for Viber'),
}
MESSENGER_TTL = (1033, "Wrong TTL for messengers")


def bad_ttl(channel: str, low: int, high: int, field: str = "ttl") -> SendError:
    number, desc = TTL_ERRORS.get(channel, MESSENGER_TTL)
    return SendError(number, f"{desc}: ttl must be {low}..{high} seconds", field=field)
