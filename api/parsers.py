"""The API's JSON parser: DRF's, stricter. A body with the same key twice in one object is refused (which
of two amounts was meant is not ours to guess; Python's ``json`` would keep the last), and so is a body
nested deeper than any request needs (``MAX_DEPTH``), instead of the parser's ``RecursionError`` and a 500."""

from __future__ import annotations

import codecs
import json

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import get_encoding
from rest_framework.utils.json import strict_constant

# The deepest request body has a list of objects inside an object; 32 levels leave room and stop abuse.
MAX_DEPTH = 32


class DuplicateKey(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, object]]) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def nesting_depth(value: object) -> int:
    """How many arrays and objects deep ``value`` goes, counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def json_loads_strict(text: str) -> object:
    """JSON text as Python values, refusing duplicate keys, NaN and infinities, and deep nesting: raises
    ``ValueError`` with the reason in words."""
    try:
        data = json.loads(text, object_pairs_hook=_object_without_duplicates, parse_constant=strict_constant)
    except RecursionError:
        raise ValueError(f"the body is nested too deeply (at most {MAX_DEPTH} levels)") from None
    if nesting_depth(data) > MAX_DEPTH:
        raise ValueError(f"the body is nested too deeply (at most {MAX_DEPTH} levels)")
    return data


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})  # DRF's: text encodings only
        try:
            text = codecs.getreader(encoding)(stream).read()
            return json_loads_strict(text)
        except DuplicateKey as error:
            raise ParseError(f"JSON parse error - {error}: send each field once.") from None
        except ValueError as error:  # UnicodeDecodeError included
            raise ParseError(f"JSON parse error - {error}") from None
