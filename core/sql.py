"""SQL kept in ``.sql`` files beside the code that runs it, read once, and composed with psycopg's ``sql``
module (the slots a statement leaves open are ``{name}``; parameters stay ``%(name)s``)."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from psycopg import sql

# A file may hold several named pieces, each headed by a ``-- name: <piece>`` line (the yesql/aiosql convention).
NAME_LINE = re.compile(r"^-- name: ([a-z0-9_.]+)[ \t]*$", re.M)
# The comment lines that open a piece document it, and are not part of its text (a piece may fill a slot in the
# middle of a line).
LEADING_COMMENT = re.compile(r"\A(?:[ \t]*--[^\n]*\n?|[ \t]*\n)*")


@functools.cache
def sql_pieces(path: Path) -> dict[str, str]:
    """The named pieces of the ``.sql`` file at ``path`` (read once per process, each without the comment
    lines that open it), or the whole file as the piece ``""`` when it names none."""
    text = path.read_text()
    heads = list(NAME_LINE.finditer(text))
    if not heads:
        return {"": text.strip()}
    pieces = {}
    for head, following in zip(heads, [*heads[1:], None], strict=True):
        end = following.start() if following else len(text)
        if head.group(1) in pieces:
            raise ValueError(f"{path}: the piece {head.group(1)!r} is named twice")
        pieces[head.group(1)] = LEADING_COMMENT.sub("", text[head.end() : end].strip()).strip()
    return pieces


def sql_file(module_file: str, name: str, piece: str = "") -> str:
    """The text of ``piece`` (or of the whole file) of the file ``name`` beside the module ``module_file``."""
    pieces = sql_pieces(Path(module_file).with_name(name))
    try:
        return pieces[piece]
    except KeyError:
        raise KeyError(f"{name} has no piece {piece!r}") from None


def sql_compose(template: str, **slots: str | sql.Composable) -> str:
    """``template`` with its ``{slot}`` filled (text is taken as SQL, not quoted), as the text to execute."""
    composed = sql.SQL(template).format(
        **{key: sql.SQL(value) if isinstance(value, str) else value for key, value in slots.items()}
    )
    return composed.as_string()
