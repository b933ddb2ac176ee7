import pytest

from financing.margin_calls.batch import LadderBatch
from financing.monitoring.ladder import ladder_apply_in_python


@pytest.fixture(params=["one statement", "rows built in Python"])
def both_ladders(request, monkeypatch):
    """Run the test twice: with each ladder batch read, decided and written by one PostgreSQL statement
    (``ladder_apply_in_sql``, ``ladder_batch_write``: what runs on PostgreSQL), and with it decided and its rows built in Python
    (``ladder_apply_in_python``, ``LadderBatch.write_in_python``: what runs elsewhere)."""
    if request.param == "rows built in Python":
        monkeypatch.setattr("financing.margin_calls.batch.ladder_batch_write", LadderBatch.write_in_python)
        monkeypatch.setattr("financing.monitoring.ladder.ladder_apply_in_sql", ladder_apply_in_python)
    return request.param


@pytest.fixture
def every_change_written(settings):
    """The sweep writes every change of a facility's figures (no step, no interval): for tests of the valuation
    itself, which compare the stored figures with the calculations to the cent after moves that the default
    write rule would leave unwritten (a drift within the step, or a market value with no debt)."""
    settings.SWEEP_RATIO_STEP = 0
    settings.SWEEP_WRITE_INTERVAL_SECONDS = 0
