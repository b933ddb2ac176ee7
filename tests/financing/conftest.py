import pytest

from financing.ladder import ladder_apply_in_python
from financing.margin_calls import LadderBatch


@pytest.fixture(params=["one statement", "rows built in Python"])
def both_ladders(request, monkeypatch):
    """Run the test twice: with each ladder batch read, decided and written by one PostgreSQL statement
    (``financing.ladder_sql``: what runs on PostgreSQL), and with it decided and its rows built in Python
    (``ladder_apply_in_python``, ``LadderBatch.write_in_python``: what runs elsewhere)."""
    if request.param == "rows built in Python":
        monkeypatch.setattr("financing.ladder_sql.ladder_batch_write", LadderBatch.write_in_python)
        monkeypatch.setattr("financing.ladder.ladder_apply_in_sql", ladder_apply_in_python)
    return request.param
