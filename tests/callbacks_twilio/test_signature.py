"""X-Twilio-Signature against the example of Twilio's own documentation (webhook
security), and what a verifier must refuse."""

from __future__ import annotations

from omnirelay.callbacks.twilio import signature, verify

URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}
DOCUMENTED = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="


def test_the_documented_example() -> None:
    assert signature("12345", URL, PARAMS) == DOCUMENTED
    assert verify("12345", URL, PARAMS, DOCUMENTED)


def test_anything_else_is_refused() -> None:
    assert not verify("12346", URL, PARAMS, DOCUMENTED)  # another token
    assert not verify("12345", URL + "&baz=3", PARAMS, DOCUMENTED)  # another URL
    assert not verify("12345", URL, {**PARAMS, "Digits": "1235"}, DOCUMENTED)
    assert not verify("12345", URL, PARAMS, None)
    assert not verify("", URL, PARAMS, signature("", URL, PARAMS))  # no token configured
