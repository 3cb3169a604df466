"""A streaming reader of the upload form (multipart/form-data): text fields are kept
(bounded), the `file` part's bytes are handed out as they arrive and counted, so a file
over the limit is refused at its first byte too many and never held whole in memory."""

from __future__ import annotations

from collections.abc import Callable

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from omnirelay.errors import DomainError, InvalidInput

FIELDS_LIMIT = 64 * 1024  # bytes of text fields in one form (the slot's are ~200)
FILE_FIELD = "file"


def boundary_of(content_type: str | None) -> bytes:
    kind, params = parse_options_header(content_type or "")
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidInput(
            "invalid_form", "The upload must be multipart/form-data (the slot's fields, then file)"
        )
    return boundary


def too_large(limit: int) -> InvalidInput:
    return InvalidInput(
        "file_too_large", f"The file is larger than {limit} bytes (10 MB)", field=FILE_FIELD
    )


class FormReader:
    """Feed it the body's chunks; ``take()`` returns the file bytes received since the
    last call. ``on_file`` runs with the text fields read so far when the file part
    starts (the seed puts the file last): it may refuse before a byte is stored."""

    def __init__(
        self, boundary: bytes, limit: int, on_file: Callable[[dict[str, str]], None]
    ) -> None:
        self.limit, self.on_file = limit, on_file
        self.fields: dict[str, str] = {}
        self.size = 0  # bytes of the file so far
        self.file_started = self.file_done = False
        self._fields_bytes = 0
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._name: str | None = None
        self._value = bytearray()
        self._in_file = False
        self._pending = bytearray()
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field_data,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except DomainError:
            raise
        except MultipartParseError as exc:
            raise InvalidInput("invalid_form", f"The form is not valid multipart: {exc}") from exc

    def finish(self) -> None:
        try:
            self._parser.finalize()
        except MultipartParseError as exc:
            raise InvalidInput("invalid_form", f"The form is not valid multipart: {exc}") from exc

    def take(self) -> bytes:
        data = bytes(self._pending)
        self._pending.clear()
        return data

    # --- parser callbacks -------------------------------------------------------------

    def _part_begin(self) -> None:
        self._headers, self._name, self._value = {}, None, bytearray()

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        if len(self._header_value) > FIELDS_LIMIT:
            raise InvalidInput("invalid_form", "A part's header is too long")

    def _header_end(self) -> None:
        self._headers[bytes(self._header_field).decode("latin-1").lower()] = bytes(
            self._header_value
        )
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", b""))
        raw = params.get(b"name")
        if raw is None:
            raise InvalidInput("invalid_form", "A form part has no name")
        self._name = raw.decode("utf-8", "replace")
        if self._name == FILE_FIELD and not self.file_started:
            self.on_file(dict(self.fields))  # may raise: nothing is stored then
            self.file_started = self._in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.size += end - start
            if self.size > self.limit:
                raise too_large(self.limit)
            self._pending += data[start:end]
            return
        if self.file_done:
            return  # parts after the file are ignored, as S3 does
        self._fields_bytes += end - start
        if self._fields_bytes > FIELDS_LIMIT:
            raise InvalidInput("invalid_form", "The form's text fields are too long")
        self._value += data[start:end]

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file, self.file_done = False, True
        elif not self.file_done and self._name is not None:
            try:
                self.fields[self._name] = bytes(self._value).decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(
                    "invalid_form", f"Field {self._name!r} is not UTF-8 text"
                ) from None
