"""The JSON parser of the API: refuses text no column can hold, before any view sees it.

A NUL character (PostgreSQL refuses it in text) or half of a UTF-16 surrogate pair (`"\\ud800"`: valid JSON,
but not encodable as UTF-8, so the database driver would fail with a 500) answers 400 with the reason.
"""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32


def _bad_text(value: str) -> bool:
    if "\x00" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check(value, depth=0) -> None:
    if depth > MAX_DEPTH:
        raise ParseError(f"The JSON body is nested more than {MAX_DEPTH} levels deep.")
    if isinstance(value, str):
        if _bad_text(value):
            raise ParseError("The JSON body holds a NUL character or an unpaired surrogate (\\ud800–\\udfff).")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check(key, depth + 1)
            _check(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check(item, depth + 1)


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"The JSON body is nested more than {MAX_DEPTH} levels deep.")
        _check(data)
        return data
