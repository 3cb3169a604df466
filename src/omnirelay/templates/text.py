"""A template's text: its placeholders, the `regexpText` derived from it, and matching a
message text against it with the variables taken out.

Placeholders are ``#VAR#`` (seed 001, seed 004) or ``{var}`` (seed 002); each stands for
any non-empty text. `regexpText` is what seed 004 shows, ``^fixed (.+) fixed$``, with the
fixed parts escaped so that it is a valid regular expression in Python and JavaScript
alike (only the characters with a meaning in a pattern are escaped: ECMAScript's unicode
mode refuses any other escape).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

PLACEHOLDER = re.compile(r"#([A-Za-z0-9_]+)#|\{([A-Za-z0-9_]+)\}")
_SPECIAL = re.compile(r"([\\^$.*+?()\[\]{}|/])")
VARIABLE = "(.+)"


def _escape(fixed: str) -> str:
    return _SPECIAL.sub(r"\\\1", fixed)


def placeholders(text: str) -> list[str]:
    """Every placeholder in order, repeats too (one group of `regexpText` each)."""
    return [m.group(1) or m.group(2) for m in PLACEHOLDER.finditer(text)]


def fields(text: str) -> list[str]:
    """The placeholders' names, each once, in order of first use."""
    return list(dict.fromkeys(placeholders(text)))


@lru_cache(maxsize=4096)
def fixed_length(text: str) -> int:
    """How many characters of the text are not placeholders: the more, the more specific."""
    return len(PLACEHOLDER.sub("", text))


def regexp_text(text: str) -> str:
    parts: list[str] = []
    last = 0
    for m in PLACEHOLDER.finditer(text):
        parts.append(_escape(text[last : m.start()]))
        parts.append(VARIABLE)
        last = m.end()
    parts.append(_escape(text[last:]))
    return "^" + "".join(parts) + "$"


@lru_cache(maxsize=4096)  # the texts of approved templates, matched again and again
def pattern(text: str) -> re.Pattern[str]:
    """`regexpText` as Python matches it: a placeholder used again is a back-reference to
    its first use (the same value both times). DOTALL: a variable may span lines; callers
    use fullmatch(), so `$` never stops short of a trailing newline."""
    parts: list[str] = []
    groups: dict[str, int] = {}
    last = 0
    for m in PLACEHOLDER.finditer(text):
        parts.append(_escape(text[last : m.start()]))
        name = m.group(1) or m.group(2)
        if name in groups:
            parts.append(f"(?:\\{groups[name]})")
        else:
            groups[name] = len(groups) + 1
            parts.append(VARIABLE)
        last = m.end()
    parts.append(_escape(text[last:]))
    return re.compile("^" + "".join(parts) + "$", re.DOTALL)


@dataclass(frozen=True)
class Match:
    variables: dict[str, str]


def match(text: str, message: str, compiled: re.Pattern[str] | None = None) -> Match | None:
    """The variables of ``message`` if it is ``text`` with its placeholders filled in."""
    found = (compiled or pattern(text)).fullmatch(message)
    if found is None:
        return None
    return Match(dict(zip(_names(text), found.groups(), strict=True)))


@lru_cache(maxsize=4096)
def _names(text: str) -> tuple[str, ...]:
    return tuple(fields(text))
