"""The pure parts of the email channel: reading what comes back (DSNs, bounces, replies)
and the SMTP error table. No database, no network."""

from __future__ import annotations

import pytest

from omnirelay.channels.base import PermanentError, RetriableError
from omnirelay.channels.smtp.errors import for_reply
from omnirelay.channels.smtp.inbound import new_text, parse
from tests.email.conftest import dsn, reply


def test_dsn_failed() -> None:
    event = parse(dsn("abc@shop.example"), "")
    assert event.kind == "bounce"
    assert event.references[0] == "abc@shop.example"
    assert (event.status, event.code) == ("5.1.1", 1010)
    assert event.diagnostic is not None and "User unknown" in event.diagnostic


def test_dsn_envelope_id_comes_first_and_is_xtext_decoded() -> None:
    event = parse(dsn("returned@x.example", envid="a+2Bb@shop.example"), "")
    assert event.references[:2] == ("a+b@shop.example", "returned@x.example")


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("status", "code"),
    [("5.1.1", 1010), ("5.2.2", 1010), ("5.4.4", 1030), ("5.7.1", 1000), ("5.3.4", 1012)],
)
def test_dsn_status_codes(status: str, code: int) -> None:
    assert parse(dsn("a@b.example", status=status), "").code == code


def test_dsn_delivered_and_delayed() -> None:
    assert parse(dsn("a@b.example", action="delivered", status="2.0.0"), "").kind == "delivered"
    assert parse(dsn("a@b.example", action="delayed", status="4.4.7"), "").kind == "delayed"


def test_a_non_standard_bounce_with_the_returned_message() -> None:
    data = (
        b"From: postmaster@old.example\r\nTo: news@shop.example\r\nSubject: failure notice\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n"
        b"--X\r\nContent-Type: text/plain\r\n\r\nSorry, no mailbox here by that name.\r\n"
        b"--X\r\nContent-Type: message/rfc822\r\n\r\n"
        b"From: news@shop.example\r\nMessage-ID: <Orig@Shop.Example>\r\n\r\nbody\r\n--X--\r\n"
    )
    event = parse(data, "")
    assert (event.kind, event.references) == ("bounce", ("orig@shop.example",))
    assert parse(data, "someone@old.example").kind == "reply"  # a person forwarding it


def test_reply_references_newest_first() -> None:
    data = (
        b"From: Ann <Ann@Example.com>\r\nTo: news@shop.example\r\nSubject: Re: x\r\n"
        b"In-Reply-To: <b@shop.example>\r\nReferences: <a@shop.example> <b@shop.example>\r\n"
        b"\r\nYes please\r\n"
    )
    event = parse(data, "ann@example.com")
    assert event.kind == "reply"
    assert event.references == ("b@shop.example", "a@shop.example")
    assert (event.sender, event.text) == ("ann@example.com", "Yes please")


def test_html_only_reply_is_read_as_text() -> None:
    data = (
        b"From: ann@example.com\r\nTo: news@shop.example\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<div>Yes <b>please</b></div>\r\n"
    )
    assert parse(data, "ann@example.com").text == "Yes please"


@pytest.mark.one_engine
@pytest.mark.parametrize(
    "data",
    [b"", b"\xff\xfe garbage \x00", b"Content-Type: multipart/report\r\n\r\n--", b"x" * 1000],
)
def test_garbage_never_raises(data: bytes) -> None:
    assert parse(data, None).kind in ("reply", "ignored", "bounce")


def test_bulk_precedence_and_null_sender_are_not_replies() -> None:
    assert parse(reply("a@b.example", "x", Precedence="bulk"), "x@y.example").kind == "ignored"
    assert parse(reply("a@b.example", "x"), "").kind == "ignored"


def test_quoted_text_is_cut() -> None:
    assert new_text("Yes\n\n-----Original Message-----\nFrom: shop\nhello") == "Yes"
    assert new_text("Yes\nOn Mon, Dec 1 Shop wrote:\n> hi\n>\n") == "Yes"
    assert new_text("> quoted first\nmy answer") == "> quoted first\nmy answer"


@pytest.mark.one_engine
@pytest.mark.parametrize(
    ("code", "text", "stage", "kind", "status", "number"),
    [
        (421, "4.7.0 Try again later", "connect", RetriableError, None, None),
        (451, "4.3.0 Local error", "data", RetriableError, None, None),
        (554, "5.3.2 No service", "connect", PermanentError, "error", 1016),
        (535, "5.7.8 Authentication credentials invalid", "auth", PermanentError, "error", 1003),
        (553, "5.7.1 Sender address rejected", "mail", PermanentError, "error", 1011),
        (550, "5.1.1 User unknown", "rcpt", PermanentError, "undelivered", 1010),
        (550, "5.4.1 Relay access denied", "rcpt", PermanentError, "undelivered", 1030),
        (552, "5.3.4 Too big", "data", PermanentError, "rejected", 1012),
        (554, "5.6.0 Bad content", "data", PermanentError, "rejected", 1031),
        (554, "Transaction failed", "data", PermanentError, "rejected", 1000),
    ],
)
def test_smtp_error_table(
    code: int, text: str, stage: str, kind: type, status: str | None, number: int | None
) -> None:
    error = for_reply(code, text, stage)
    assert isinstance(error, kind)
    assert f"SMTP {code}" in str(error) and text in str(error)
    if isinstance(error, PermanentError):
        assert (error.status, error.code) == (status, number)
