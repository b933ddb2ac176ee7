"""Random sequences of deposits, withdrawals, drawdowns, repayments and price moves: the ledger always
balances, positions always equal the legs, and no drawdown or withdrawal ever ends above max advance."""

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.audit import SYSTEM
from collateral.calculations import ratio_above
from collateral.selectors import pool_holdings
from collateral.services import collateral_deposit, price_record
from core.exceptions import DomainError
from financing.lending.services import collateral_withdraw, drawdown_create, repayment_create
from financing.selectors import facility_pool, facility_valuation
from ledger.models import Balance
from ledger.selectors import balances_from_legs, balances_projected
from tests.financing.factories import facility_with_pool

pytestmark = pytest.mark.django_db

SYMBOLS = ["BTC", "ETH", "HKD", "0700.HK"]
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("500000"), places=2)
quantities = {
    "BTC": st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("3"), places=8),
    "ETH": st.decimals(min_value=Decimal("0.000000000000000001"), max_value=Decimal("50"), places=18),
    "HKD": st.decimals(min_value=Decimal("0.01"), max_value=Decimal("300000"), places=2),
    "0700.HK": st.integers(min_value=1, max_value=3000).map(Decimal),
}
operation = st.one_of(
    st.tuples(st.just("deposit"), st.sampled_from(SYMBOLS)).flatmap(
        lambda t: st.tuples(st.just(t[0]), st.just(t[1]), quantities[t[1]])
    ),
    st.tuples(st.just("withdraw"), st.sampled_from(SYMBOLS)).flatmap(
        lambda t: st.tuples(st.just(t[0]), st.just(t[1]), quantities[t[1]])
    ),
    st.tuples(st.just("drawdown"), st.just("HKD"), amounts),
    st.tuples(st.just("repay"), st.just("HKD"), amounts),
    st.tuples(
        st.just("price"),
        st.sampled_from(["BTC", "ETH", "0700.HK"]),
        st.decimals(min_value=Decimal("0.3"), max_value=Decimal("2"), places=3),
    ),
)


def unbalanced_transactions() -> list:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT transaction_id, instrument_id, SUM(amount) FROM ledger_leg "
            "GROUP BY transaction_id, instrument_id HAVING SUM(amount) <> 0"
        )
        return cursor.fetchall()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, min_size=1, max_size=25))
def test_random_sequences_keep_every_invariant(market, operations):
    with transaction.atomic():
        facility = facility_with_pool(holdings={"BTC": "1", "HKD": "50000.00"}, limit="3000000.00")
        pool = facility_pool(facility)
        for kind, symbol, value in operations:
            try:
                with transaction.atomic():
                    if kind == "deposit":
                        collateral_deposit(pool=pool, asset=market[symbol], quantity=value, actor=SYSTEM)
                    elif kind == "withdraw":
                        collateral_withdraw(pool=pool, asset=market[symbol], quantity=value, actor=SYSTEM)
                    elif kind == "drawdown":
                        drawdown_create(facility=facility, amount=value, actor=SYSTEM)
                    elif kind == "repay":
                        repayment_create(facility=facility, amount=value, actor=SYSTEM)
                    else:
                        current = market[symbol].prices.latest().price
                        price_record(
                            asset=market[symbol],
                            price=(current * value).quantize(Decimal("0.0001")),
                            source="hypothesis",
                            actor=SYSTEM,
                            observed_at=timezone.now(),
                        )
            except DomainError:
                continue
            if kind in ("drawdown", "withdraw"):
                valuation = facility_valuation(facility)
                assert not ratio_above(valuation.debt.total, valuation.margin_value, Decimal("0.85")), (
                    f"{kind} of {value} {symbol} ended at {valuation.margin_ratio}"
                )
        assert unbalanced_transactions() == []
        assert balances_projected() == balances_from_legs()
        assert all(quantity > 0 for quantity in pool_holdings(pool).values())
        assert not Balance.objects.filter(account=pool.account, amount__lt=0).exists()
        transaction.set_rollback(True)
