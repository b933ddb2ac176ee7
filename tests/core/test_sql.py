"""SQL files: named pieces read once, composed with psycopg's sql module."""

from __future__ import annotations

import pytest
from psycopg import sql

from core.sql import sql_compose, sql_file, sql_pieces


def test_a_file_without_names_is_one_piece(tmp_path):
    (tmp_path / "one.sql").write_text("-- what it does\nSELECT 1\n")
    assert sql_file(str(tmp_path / "module.py"), "one.sql") == "-- what it does\nSELECT 1"


def test_named_pieces_are_read_apart(tmp_path):
    (tmp_path / "many.sql").write_text(
        "-- a header, not a piece\n\n-- name: first\n-- what the first does,\n-- in two lines\nSELECT 1\n"
        "-- kept: inside the piece\n\n-- name: second.empty\n-- only said\n-- name: third\nSELECT {x}\n"
    )
    path = tmp_path / "many.sql"
    assert sql_pieces(path) == {
        "first": "SELECT 1\n-- kept: inside the piece",
        "second.empty": "",
        "third": "SELECT {x}",
    }
    with pytest.raises(KeyError, match=r"many\.sql has no piece 'fourth'"):
        sql_file(str(tmp_path / "module.py"), "many.sql", "fourth")


def test_a_piece_named_twice_is_refused(tmp_path):
    (tmp_path / "twice.sql").write_text("-- name: a\nSELECT 1\n-- name: a\nSELECT 2\n")
    with pytest.raises(ValueError, match="named twice"):
        sql_pieces(tmp_path / "twice.sql")


def test_slots_take_sql_text_and_composables_and_parameters_stay():
    text = sql_compose(
        "SELECT {columns} FROM t WHERE x = %(x)s AND y = '{{}}'::jsonb {filter}",
        columns=sql.SQL(", ").join([sql.Identifier("crypto_0"), sql.Placeholder("unit")]),
        filter="AND z",
    )
    assert text == "SELECT \"crypto_0\", %(unit)s FROM t WHERE x = %(x)s AND y = '{}'::jsonb AND z"
