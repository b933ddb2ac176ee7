"""Seeding a large book straight into PostgreSQL with set-based SQL: clients, pools, facilities and
balanced ledger transactions (one deposit and one drawdown per client), then balances derived from the
legs. Quantities come from integer hashes of the client number, so every run builds the same book."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

from django.db import connection, transaction

from accounts.audit import SYSTEM
from collateral.models import Asset
from collateral.services import asset_create, fx_rate_record, price_record
from ledger.enums import AccountKind
from ledger.services import firm_account
from notifications.models import WebhookEndpoint

SECURITIES = 200


def _hash(expression: str, salt: int, modulus: int = 1_000_000) -> str:
    """A deterministic pseudo-random integer in [0, modulus) from an integer SQL expression. md5 mixes
    well enough that different salts give independent draws (a multiplicative hash did not: holding BTC
    and being highly geared came out correlated)."""
    return f"(('x' || substr(md5(({expression})::text || ':{salt}'), 1, 8))::bit(32)::bigint % {modulus})"


def seed_market(say: Callable[[str], None]) -> None:
    WebhookEndpoint.objects.create(name="Broker OMS", url="http://127.0.0.1:9/bench", secret="bench")
    asset_create(
        symbol="HKD",
        name="Hong Kong dollar",
        kind="cash",
        currency="HKD",
        decimals=2,
        haircut="0",
        lot_size="0.01",
        actor=SYSTEM,
    )
    asset_create(symbol="BTC", name="Bitcoin", kind="crypto", currency="USD", decimals=8, haircut="0.6", lot_size="0.00000001", sale_rank=1, actor=SYSTEM)  # fmt: skip
    asset_create(symbol="ETH", name="Ether", kind="crypto", currency="USD", decimals=18, haircut="0.65", lot_size="0.000000000000000001", sale_rank=2, actor=SYSTEM)  # fmt: skip
    fx_rate_record(currency="USD", rate="7.8", source="bench", actor=SYSTEM)
    price_record(asset=Asset.objects.get(pk="BTC"), price="98000", source="bench", actor=SYSTEM)
    price_record(asset=Asset.objects.get(pk="ETH"), price="3400", source="bench", actor=SYSTEM)
    for n in range(1, SECURITIES + 1):
        haircut = Decimal("0.20") + Decimal(n % 7) * Decimal("0.05")
        asset = asset_create(
            symbol=f"S{n:03d}.HK", name=f"Security {n}", kind="security", currency="HKD", decimals=0,
            haircut=haircut, lot_size="100", concentration_limit="0.60" if n % 3 == 0 else None,
            sale_rank=10 + n, actor=SYSTEM,
        )  # fmt: skip
        price_record(
            asset=asset, price=Decimal(10 + (n * 37) % 490) + Decimal("0.25"), source="bench", actor=SYSTEM
        )
    say(f"assets: HKD, BTC, ETH and {SECURITIES} securities, with prices")


def seed_book(clients: int, say: Callable[[str], None]) -> int:
    """Returns the number of positions."""
    clearing = firm_account(AccountKind.CUSTODY_CLEARING).pk
    steps = [
        (
            "clients",
            f"""INSERT INTO accounts_client (reference, name, kind, email, kyc_status, pi_portfolio_value_currency,
                    pi_portfolio_value, pi_total_assets_currency, pi_total_assets, pi_assessed_on, pi_expires_on,
                    created_at, updated_at)
                SELECT 'B' || lpad(i::text, 6, '0'), 'Bench client ' || i, 'corporation', 'b' || i || '@client.example',
                       'approved', 'HKD',
                       20000000, 'HKD', 60000000, CURRENT_DATE - 30, CURRENT_DATE + 335, now(), now()
                  FROM generate_series(1, {clients}) AS i""",
        ),
        (
            "credit profiles",
            """INSERT INTO accounts_creditprofile (client_id, internal_rating, credit_limit_currency, credit_limit,
                    next_review_on, updated_at)
                SELECT id, 'A', 'HKD', 100000000, CURRENT_DATE + 180, now() FROM accounts_client
                 WHERE reference LIKE 'B%'""",
        ),
        (
            "ledger accounts",
            """INSERT INTO ledger_account (code, kind, client_id, name, created_at)
                SELECT k.kind || ':' || c.reference || CASE WHEN k.kind = 'collateral' THEN '' ELSE ':F' END,
                       k.kind, c.id, k.kind || ' ' || c.reference, now()
                  FROM accounts_client c
                 CROSS JOIN (VALUES ('collateral'), ('loan_principal'), ('interest_receivable'),
                                    ('fees_receivable')) AS k(kind)
                 WHERE c.reference LIKE 'B%'""",
        ),
        (
            "collateral pools",
            """INSERT INTO collateral_collateralpool (client_id, account_id, created_at)
                SELECT a.client_id, a.id, now() FROM ledger_account a
                 WHERE a.kind = 'collateral' AND a.code LIKE 'collateral:B%'""",
        ),
        (
            "facilities",
            """INSERT INTO financing_facility (reference, client_id, limit_currency, "limit", rate_kind, fixed_rate,
                    base_rate_name, spread, policy_id, status, opened_on, principal_account_id,
                    interest_account_id, fees_account_id, created_at)
                SELECT 'FB' || substr(c.reference, 2), c.id, 'HKD', 100000000, 'fixed', 0.065, '', 0, NULL,
                       'active', CURRENT_DATE, p.id, i.id, f.id, now()
                  FROM accounts_client c
                  JOIN ledger_account p ON p.client_id = c.id AND p.kind = 'loan_principal'
                  JOIN ledger_account i ON i.client_id = c.id AND i.kind = 'interest_receivable'
                  JOIN ledger_account f ON f.client_id = c.id AND f.kind = 'fees_receivable'
                 WHERE c.reference LIKE 'B%'""",
        ),
        (
            "positions (holdings plan)",
            f"""CREATE TEMP TABLE bench_positions AS
                WITH c AS (SELECT id, substr(reference, 2)::int AS n FROM accounts_client WHERE reference LIKE 'B%')
                SELECT id AS client_id, 'BTC'::varchar AS instrument_id,
                       round(0.05 + {_hash("n", 1)}::numeric / 1000000 * 8, 8) AS quantity
                  FROM c WHERE {_hash("n", 2, 100)} < 70
                UNION ALL
                SELECT id, 'ETH', round(0.1 + {_hash("n", 3)}::numeric / 1000000 * 30, 8)
                  FROM c WHERE {_hash("n", 4, 100)} < 40
                UNION ALL
                SELECT id, 'HKD', round(10000 + {_hash("n", 5)}::numeric / 1000000 * 500000, 2)
                  FROM c WHERE {_hash("n", 6, 100)} < 60
                UNION ALL
                SELECT c.id, 'S' || lpad((1 + (c.n * 7 + j * 61) % {SECURITIES})::text, 3, '0') || '.HK',
                       100 * (1 + {_hash("c.n * 10 + j", 7, 20)})
                  FROM c CROSS JOIN generate_series(0, 3) AS j
                 WHERE j <= {_hash("n", 8, 4)}""",
        ),
        (
            "deposit transactions",
            """INSERT INTO ledger_transaction (kind, memo, posted_at, actor_label, idempotency_key)
                SELECT 'deposit', 'Bench deposit', now() - interval '1 hour', 'bench', 'bench:deposit:' || client_id
                  FROM (SELECT DISTINCT client_id FROM bench_positions) AS holders""",
        ),
        (
            "deposit legs",
            f"""INSERT INTO ledger_leg (transaction_id, account_id, instrument_id, amount)
                SELECT t.id, a.id, bp.instrument_id, bp.quantity
                  FROM bench_positions bp
                  JOIN ledger_transaction t ON t.idempotency_key = 'bench:deposit:' || bp.client_id
                  JOIN ledger_account a ON a.client_id = bp.client_id AND a.kind = 'collateral'
                UNION ALL
                SELECT t.id, {clearing}, bp.instrument_id, -bp.quantity
                  FROM bench_positions bp
                  JOIN ledger_transaction t ON t.idempotency_key = 'bench:deposit:' || bp.client_id""",
        ),
    ]
    for label, sql in steps:
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
            rows = cursor.rowcount
        with connection.cursor() as cursor:
            # Fresh statistics after each bulk step: without them the planner keeps believing the new tables
            # are empty and checks every foreign key of the next step with a sequential scan.
            cursor.execute("ANALYZE")
        say(f"  {label}: {rows:,} rows in {time.perf_counter() - started:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM bench_positions")
        positions = cursor.fetchone()[0]
    return positions


def seed_debt(say: Callable[[str], None]) -> None:
    """Draw each facility down to a ratio spread over the book: 90% between 20% and 84%, 7% between 84%
    and 99% (some in the warning band) and 3% already above the margin-call threshold: a stressed book."""
    settlement = firm_account(AccountKind.CASH_SETTLEMENT).pk
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""CREATE TEMP TABLE bench_debt AS
                SELECT f.id AS facility_id, f.principal_account_id AS account_id,
                       round(s.margin_value * CASE
                           WHEN {_hash("f.id", 9, 100)} < 90 THEN 0.20 + {_hash("f.id", 10)}::numeric / 1000000 * 0.64
                           WHEN {_hash("f.id", 9, 100)} < 97 THEN 0.84 + {_hash("f.id", 10)}::numeric / 1000000 * 0.15
                           ELSE 1.00 + {_hash("f.id", 10)}::numeric / 1000000 * 0.19 END, 2) AS amount
                  FROM financing_facility f JOIN financing_marginstate s ON s.facility_id = f.id
                 WHERE f.reference LIKE 'FB%' AND s.margin_value > 0"""
        )
        cursor.execute(
            """INSERT INTO ledger_transaction (kind, memo, posted_at, actor_label, idempotency_key)
                SELECT 'drawdown', 'Bench drawdown', now() - interval '1 hour', 'bench', 'bench:drawdown:' || facility_id
                  FROM bench_debt WHERE amount > 0"""
        )
        cursor.execute(
            f"""INSERT INTO ledger_leg (transaction_id, account_id, instrument_id, amount)
                SELECT t.id, d.account_id, 'HKD', d.amount FROM bench_debt d
                  JOIN ledger_transaction t ON t.idempotency_key = 'bench:drawdown:' || d.facility_id
                 WHERE d.amount > 0
                UNION ALL
                SELECT t.id, {settlement}, 'HKD', -d.amount FROM bench_debt d
                  JOIN ledger_transaction t ON t.idempotency_key = 'bench:drawdown:' || d.facility_id
                 WHERE d.amount > 0"""
        )
        legs = cursor.rowcount
    say(f"  drawdowns: {legs // 2:,} facilities drawn in {time.perf_counter() - started:.1f} s")


def derive_balances(say: Callable[[str], None]) -> None:
    """Balances are derived from the legs, never written on their own."""
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM ledger_balance")
        cursor.execute(
            """INSERT INTO ledger_balance (account_id, instrument_id, amount)
                SELECT account_id, instrument_id, SUM(amount) FROM ledger_leg GROUP BY account_id, instrument_id"""
        )
        rows = cursor.rowcount
        cursor.execute("ANALYZE")
    say(f"  balances derived from the legs: {rows:,} rows in {time.perf_counter() - started:.1f} s")
