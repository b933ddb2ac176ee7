"""Reads for lending: a facility's debt, its valuation against the pool, firm-wide totals."""

from __future__ import annotations

import datetime
import weakref
from dataclasses import dataclass
from decimal import Decimal, localcontext

from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.models import OuterRef, QuerySet, Subquery, Sum
from django.utils.dateparse import parse_datetime

from accounts.enums import ApprovalStatus
from accounts.models import ApprovalRequest, Client, CreditProfile
from collateral.calculations import (
    WIDE,
    PoolValuation,
    PositionInput,
    cash_top_up_to_target,
    margin_deficiency,
    margin_ratio,
    margin_surplus,
    market_ltv,
    max_additional_debt,
    pool_valuation,
)
from collateral.enums import USABLE_PRICE_STATUSES, AssetKind
from collateral.models import Asset, CollateralPool
from collateral.selectors import (
    assets_by_symbol,
    current_prices,
    fx_to_hkd,
    hkd_rate,
    pool_holdings,
    position_inputs,
)
from core.db import bigint_array, id_in
from core.money import CENT, HKD, ZERO
from core.sql import sql_file
from financing.calculations import Thresholds, margin_status
from financing.enums import (
    OPEN_FORCED_SALE_STATUSES,
    OPEN_MARGIN_CALL_STATUSES,
    FacilityStatus,
    InstructionStatus,
    MarginStatus,
)
from financing.models import (
    Drawdown,
    Facility,
    ForcedSale,
    MarginCall,
    MarginPolicy,
    StandingTopUpInstruction,
)
from ledger.enums import AccountKind
from ledger.models import Account, Balance, Instrument
from ledger.selectors import balances_of_accounts
from ledger.services import firm_account_code


def default_policy() -> MarginPolicy:
    """The broker-wide default policy (created with the defaults in docs/design.md by a migration;
    re-created with them if it is ever missing, so that no facility is valued without thresholds)."""
    policy = MarginPolicy.objects.filter(is_default=True).first()
    if policy is None:
        MarginPolicy.objects.bulk_create(
            [MarginPolicy(name="Standard", is_default=True)], ignore_conflicts=True
        )
        policy = MarginPolicy.objects.get(is_default=True)
    return policy


def policy_for(facility: Facility) -> MarginPolicy:
    return facility.policy if facility.policy_id else default_policy()


def thresholds_of(policy: MarginPolicy) -> Thresholds:
    return Thresholds(
        max_advance=policy.max_advance,
        warning=policy.warning,
        margin_call=policy.margin_call,
        forced_sale=policy.forced_sale,
        target=policy.target,
    )


@dataclass(frozen=True)
class Debt:
    principal: Decimal
    interest: Decimal
    fees: Decimal

    @property
    def total(self) -> Decimal:
        return self.principal + self.interest + self.fees


def facility_debt(facility: Facility) -> Debt:
    accounts = {
        facility.principal_account_id: "principal",
        facility.interest_account_id: "interest",
        facility.fees_account_id: "fees",
    }
    amounts = dict.fromkeys(accounts.values(), ZERO)
    rows = Balance.objects.filter(account_id__in=accounts, instrument_id=HKD).values_list(
        "account_id", "amount"
    )
    for account_id, amount in rows:
        amounts[accounts[account_id]] = amount.quantize(CENT)  # HKD legs are whole cents already
    return Debt(**amounts)


def facility_pool(facility: Facility) -> CollateralPool | None:
    return CollateralPool.objects.filter(client_id=facility.client_id).select_related("account").first()


@dataclass(frozen=True)
class FacilityValuation:
    facility_id: int
    valuation: PoolValuation
    debt: Debt
    thresholds: Thresholds

    @property
    def market_value(self) -> Decimal:
        return self.valuation.market_value

    @property
    def margin_value(self) -> Decimal:
        return self.valuation.margin_value

    @property
    def margin_ratio(self) -> Decimal | None:
        return margin_ratio(self.debt.total, self.margin_value)

    @property
    def market_ltv(self) -> Decimal | None:
        return market_ltv(self.debt.total, self.market_value)

    @property
    def margin_surplus(self) -> Decimal:
        return margin_surplus(self.debt.total, self.margin_value)

    @property
    def margin_deficiency(self) -> Decimal:
        return margin_deficiency(self.debt.total, self.margin_value)

    @property
    def status(self) -> MarginStatus:
        return margin_status(self.debt.total, self.margin_value, self.thresholds)

    @property
    def available_to_draw(self) -> Decimal:
        return max_additional_debt(self.debt.total, self.margin_value, self.thresholds.max_advance)


def valuation_for_holdings(facility: Facility, holdings: dict[str, Decimal]) -> FacilityValuation:
    return FacilityValuation(
        facility_id=facility.pk,
        valuation=pool_valuation(position_inputs(holdings)),
        debt=facility_debt(facility),
        thresholds=thresholds_of(policy_for(facility)),
    )


def facility_valuation(facility: Facility) -> FacilityValuation:
    pool = facility_pool(facility)
    return valuation_for_holdings(facility, pool_holdings(pool) if pool else {})


@dataclass(frozen=True)
class FacilityRead:
    """One facility as a read shows it: its own fields, its client's reference, its policy's name (None: the
    default policy), its open margin call's id and its live valuation (``facility_read``)."""

    id: int
    reference: str
    client_id: int
    client_reference: str
    status: str
    opened_on: object  # datetime.date
    limit: Decimal
    rate_kind: str
    fixed_rate: Decimal | None
    base_rate_name: str
    spread: Decimal
    policy_id: int | None
    policy_name: str | None
    open_margin_call_id: int | None
    valuation: FacilityValuation

    @property
    def pk(self) -> int:
        return self.id


_FACILITY_READ_STATEMENT = "financing_facility_read"
_OPEN_CALL_STATUSES = [str(status) for status in OPEN_MARGIN_CALL_STATUSES]
_USABLE_PRICE_STATUSES = [str(status) for status in USABLE_PRICE_STATUSES]
_PREPARED_ON: weakref.WeakSet = weakref.WeakSet()  # the psycopg connections that hold the statement


def _prepare_facility_read(cursor) -> None:
    """PREPARE ``facility_read.sql`` once per database connection (Django's psycopg connections never
    prepare): planning its joins costs the server about 1 ms, five times what running it costs, and a read
    of a facility is the API's busiest call. PostgreSQL then keeps one generic plan for the session."""
    raw = connection.connection
    if raw in _PREPARED_ON:
        return
    text = sql_file(__file__, "facility_read.sql")
    for name, number in (("facility", 1), ("client", 2), ("open_call_statuses", 3), ("usable", 4)):
        text = text.replace(f"%({name})s", f"${number}")
    cursor.execute(f"PREPARE {_FACILITY_READ_STATEMENT} (bigint, bigint, text[], text[]) AS {text}")
    _PREPARED_ON.add(raw)


def facility_read(facility_id: int, *, client_id: int | None = None) -> FacilityRead | None:
    """The facility ``facility_id`` (only if it is ``client_id``'s, when given) with its live valuation, read
    in one statement (``facility_read.sql``) and valued by ``collateral.calculations``: the same figures as
    ``facility_valuation``, which reads the same inputs in seven queries. None when there is no such facility
    (or it is another client's). On a database other than PostgreSQL, the queries of ``facility_valuation``."""
    if connection.vendor != "postgresql":
        return _facility_read_by_queries(facility_id, client_id)
    statement, params = facility_read_statement(facility_id, client_id=client_id)
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    return facility_read_of_rows(rows)


def facility_read_statement(facility_id: int, *, client_id: int | None = None) -> tuple[str, list]:
    """``facility_read``'s statement and parameters (PostgreSQL only), for a caller that sends it with others
    in one round trip (``financing.locks.pool_lock_then``); its rows go to ``facility_read_of_rows``. Prepared
    on this connection first if it is not yet."""
    with connection.cursor() as cursor:
        _prepare_facility_read(cursor)
    return (
        f"EXECUTE {_FACILITY_READ_STATEMENT}(%s, %s, %s, %s)",
        [facility_id, client_id, _OPEN_CALL_STATUSES, _USABLE_PRICE_STATUSES],
    )


def facility_read_of_rows(rows: list[tuple]) -> FacilityRead | None:
    """The facility and its live valuation from the rows of ``facility_read``'s statement."""
    if not rows:
        return None
    (pk, reference, client, client_reference, status, opened_on, limit, rate_kind, fixed_rate, base_rate_name,
     spread, policy_id, policy_name, max_advance, warning, margin_call, forced_sale, target, principal,
     interest, fees, open_call_id) = rows[0][:22]  # fmt: skip
    inputs = []
    for (symbol, quantity, kind, asset_currency, haircut, concentration_limit, eligible, lot_size, decimals,
         price, price_currency, fx_direct, fx_to_usd, usd_to_hkd) in (row[22:] for row in rows):  # fmt: skip
        if symbol is None:
            continue  # the pool holds nothing (or there is no pool)
        if kind is None:
            raise KeyError(symbol)  # a holding that is not an asset, as ``position_inputs`` refuses it
        if kind == AssetKind.CASH:
            price, currency = Decimal(1), asset_currency
        else:
            currency = price_currency if price is not None else asset_currency
        inputs.append(
            PositionInput(
                symbol=symbol,
                quantity=quantity,
                price=price,
                fx_to_hkd=hkd_rate(currency, direct=fx_direct, to_usd=fx_to_usd, usd_to_hkd=usd_to_hkd),
                haircut=haircut,
                concentration_limit=concentration_limit,
                eligible=eligible,
                lot_size=lot_size,
                decimals=decimals,
                kind=kind,
            )
        )
    if max_advance is None:  # no default policy: ``default_policy`` makes it again
        thresholds = thresholds_of(default_policy())
    else:
        thresholds = Thresholds(max_advance, warning, margin_call, forced_sale, target)
    debt = Debt(
        *((ZERO if amount is None else amount.quantize(CENT)) for amount in (principal, interest, fees))
    )
    return FacilityRead(
        id=pk,
        reference=reference,
        client_id=client,
        client_reference=client_reference,
        status=status,
        opened_on=opened_on,
        limit=limit,
        rate_kind=rate_kind,
        fixed_rate=fixed_rate,
        base_rate_name=base_rate_name,
        spread=spread,
        policy_id=policy_id,
        policy_name=policy_name,
        open_margin_call_id=open_call_id,
        valuation=FacilityValuation(
            facility_id=pk, valuation=pool_valuation(inputs), debt=debt, thresholds=thresholds
        ),
    )


def _facility_read_by_queries(facility_id: int, client_id: int | None) -> FacilityRead | None:
    facilities = Facility.objects.select_related("client", "policy").filter(pk=facility_id)
    if client_id is not None:
        facilities = facilities.filter(client_id=client_id)
    facility = facilities.first()
    if facility is None:
        return None
    call = open_margin_call(facility)
    return FacilityRead(
        id=facility.pk,
        reference=facility.reference,
        client_id=facility.client_id,
        client_reference=facility.client.reference,
        status=facility.status,
        opened_on=facility.opened_on,
        limit=facility.limit.amount,
        rate_kind=facility.rate_kind,
        fixed_rate=facility.fixed_rate,
        base_rate_name=facility.base_rate_name,
        spread=facility.spread,
        policy_id=facility.policy_id,
        policy_name=facility.policy.name if facility.policy_id else None,
        open_margin_call_id=call.pk if call else None,
        valuation=facility_valuation(facility),
    )


@dataclass(frozen=True)
class StoredSale:
    asset: str
    quantity: Decimal
    market_value: Decimal | None  # HKD at the valuation price
    proceeds: Decimal | None  # market value less the sale cost allowance


@dataclass(frozen=True)
class StoredPlan:
    """A forced sale's plan as it is stored (``ForcedSale.plan``, and ``first_plan`` with when it was made),
    its figures read back as decimals."""

    planned_at: datetime.datetime | None
    debt: Decimal | None
    margin_value: Decimal | None
    margin_ratio: Decimal | None
    target: Decimal | None
    ratio_after: Decimal | None  # None: no debt left (infinite)
    shortfall: Decimal | None
    sales: list[StoredSale]


def _stored_decimal(value: object) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def _stored_time(value: object) -> datetime.datetime | None:
    # Read back from the database it is ISO text; on a sale not yet reloaded, the datetime it was given.
    if isinstance(value, datetime.datetime) or value in (None, ""):
        return value or None
    return parse_datetime(str(value))


def stored_plan(plan: dict) -> StoredPlan | None:
    """``plan`` (a forced sale's ``plan`` or ``first_plan``) read back; None when no plan was made."""
    if not plan:
        return None
    return StoredPlan(
        planned_at=_stored_time(plan.get("planned_at")),
        debt=_stored_decimal(plan.get("debt")),
        margin_value=_stored_decimal(plan.get("margin_value")),
        margin_ratio=_stored_decimal(plan.get("margin_ratio")),
        target=_stored_decimal(plan.get("target")),
        ratio_after=_stored_decimal(plan.get("ratio_after")),
        shortfall=_stored_decimal(plan.get("shortfall")),
        sales=[
            StoredSale(
                sale["asset"],
                Decimal(str(sale["quantity"])).normalize(),
                _stored_decimal(sale.get("market_value")),
                _stored_decimal(sale.get("proceeds")),
            )
            for sale in plan.get("sales", [])
        ],
    )


def open_margin_call(facility: Facility) -> MarginCall | None:
    return MarginCall.objects.filter(facility=facility, status__in=OPEN_MARGIN_CALL_STATUSES).first()


def open_forced_sale(facility: Facility) -> ForcedSale | None:
    return ForcedSale.objects.filter(facility=facility, status__in=OPEN_FORCED_SALE_STATUSES).first()


def open_facility_of(client) -> Facility | None:
    return Facility.objects.filter(client=client).exclude(status=FacilityStatus.CLOSED).first()


@dataclass(frozen=True)
class DrawdownLimits:
    """What a drawdown checks beyond its facility's own figures (``facility_read``), and the reference rows its
    posting needs, read in the same query."""

    open_forced_sale_id: int | None
    credit_limit: Decimal  # the client's approved credit limit; zero without a credit profile
    client_loans: Decimal  # the client's outstanding principal (``client_margin_loans``)
    earlier_drawdown_id: int | None = None  # the drawdown already made with this idempotency key, if any
    cash_account_id: int | None = None  # the firm's cash-settlement account (None before its first use)
    hkd_decimals: int | None = None  # the HKD instrument's decimal places (None without the instrument)


def drawdown_limits(facility: Facility, *, idempotency_key: str | None = None) -> DrawdownLimits:
    """The facility's open forced sale, its client's credit limit and loans, the drawdown already made with
    ``idempotency_key`` (the ledger transaction's key), the firm's cash-settlement account and the HKD
    instrument's decimals, in one query (six round trips otherwise: ``open_forced_sale``, the credit profile,
    ``client_margin_loans``, the drawdown, ``firm_account``, the posting's look-up of its instruments)."""
    return drawdown_limits_of_row(drawdown_limits_query(facility, idempotency_key=idempotency_key).get())


def drawdown_limits_query(facility: Facility, *, idempotency_key: str | None = None) -> QuerySet:
    """``drawdown_limits``'s query: one row, its values for ``drawdown_limits_of_row``."""
    loans = (
        Balance.objects.filter(
            account__kind=AccountKind.LOAN_PRINCIPAL, account__client_id=OuterRef("pk"), instrument_id=HKD
        )
        .values("account__client_id")
        .annotate(total=Sum("amount"))
        .values("total")
    )
    earlier = (
        Drawdown.objects.filter(transaction__idempotency_key=idempotency_key).order_by("pk").values("pk")[:1]
        if idempotency_key
        else Drawdown.objects.none().values("pk")
    )
    return (
        Client.objects.filter(pk=facility.client_id)
        .annotate(
            sale=Subquery(
                ForcedSale.objects.filter(facility_id=facility.pk, status__in=OPEN_FORCED_SALE_STATUSES)
                .order_by("pk")
                .values("pk")[:1]
            ),
            limit=Subquery(CreditProfile.objects.filter(client_id=OuterRef("pk")).values("credit_limit")[:1]),
            loans=Subquery(loans),
            earlier=Subquery(earlier),
            cash_account=Subquery(
                Account.objects.filter(code=firm_account_code(AccountKind.CASH_SETTLEMENT)).values("pk")[:1]
            ),
            hkd_decimals=Subquery(Instrument.objects.filter(code=HKD).values("decimals")[:1]),
        )
        .values_list("sale", "limit", "loans", "earlier", "cash_account", "hkd_decimals")
    )


def drawdown_limits_of_row(row: tuple) -> DrawdownLimits:
    sale, credit_limit, client_loans, earlier_id, cash_account_id, hkd_decimals = row
    return DrawdownLimits(
        open_forced_sale_id=sale,
        credit_limit=credit_limit or ZERO,
        client_loans=client_loans or ZERO,
        earlier_drawdown_id=earlier_id,
        cash_account_id=cash_account_id,
        hkd_decimals=hkd_decimals,
    )


def total_margin_loans_query() -> QuerySet:
    """``total_margin_loans`` as a query of one row and one column (none without loans), for
    ``financing.locks.firm_exposure_lock`` to run after the lock in the same round trip."""
    return (
        Balance.objects.filter(account__kind=AccountKind.LOAN_PRINCIPAL, instrument_id=HKD)
        .values("instrument_id")
        .annotate(total=Sum("amount"))
        .values("total")
    )


def total_margin_loans() -> Decimal:
    """Outstanding principal of every facility: what the firm-wide cap is measured against."""
    total = Balance.objects.filter(account__kind=AccountKind.LOAN_PRINCIPAL, instrument_id=HKD).aggregate(
        total=Sum("amount")
    )["total"]
    return total or ZERO


def client_margin_loans(client) -> Decimal:
    total = Balance.objects.filter(
        account__kind=AccountKind.LOAN_PRINCIPAL, account__client=client, instrument_id=HKD
    ).aggregate(total=Sum("amount"))["total"]
    return total or ZERO


def facility_valuations(facilities: list[Facility]) -> dict[int, FacilityValuation]:
    """Live valuations of many facilities in a fixed number of queries (for a page of an API list): the
    same numbers ``facility_valuation`` gives one by one, with prices, FX, assets, balances and policies
    read once for all of them."""
    if not facilities:
        return {}
    pools = dict(
        CollateralPool.objects.filter(client_id__in={f.client_id for f in facilities}).values_list(
            "client_id", "account_id"
        )
    )
    debt_accounts = {}
    for facility in facilities:
        debt_accounts[facility.principal_account_id] = (facility.pk, "principal")
        debt_accounts[facility.interest_account_id] = (facility.pk, "interest")
        debt_accounts[facility.fees_account_id] = (facility.pk, "fees")
    holdings = balances_of_accounts([*pools.values(), *debt_accounts])
    assets = assets_by_symbol()
    prices = current_prices()
    fx = fx_to_hkd()
    default = None
    result = {}
    for facility in facilities:
        if facility.policy_id:
            policy = facility.policy
        else:
            default = default or default_policy()
            policy = default
        parts = dict.fromkeys(("principal", "interest", "fees"), ZERO)
        for account_id in (
            facility.principal_account_id,
            facility.interest_account_id,
            facility.fees_account_id,
        ):
            _, part = debt_accounts[account_id]
            parts[part] = holdings.get(account_id, {}).get(HKD, ZERO).quantize(CENT)
        pool_holdings_ = holdings.get(pools.get(facility.client_id), {})
        result[facility.pk] = FacilityValuation(
            facility_id=facility.pk,
            valuation=pool_valuation(position_inputs(pool_holdings_, assets=assets, prices=prices, fx=fx)),
            debt=Debt(**parts),
            thresholds=thresholds_of(policy),
        )
    return result


def open_margin_calls_of(facility_ids: list[int]) -> dict[int, MarginCall]:
    calls = MarginCall.objects.filter(facility_id__in=facility_ids, status__in=OPEN_MARGIN_CALL_STATUSES)
    return {call.facility_id: call for call in calls}


# --- automatic top-up ---


def standing_top_up_instruction_of(client) -> StandingTopUpInstruction | None:
    """The client's active standing top-up instruction, if any."""
    return StandingTopUpInstruction.objects.filter(client=client, status=InstructionStatus.ACTIVE).first()


def pending_sign_off_of(instruction: StandingTopUpInstruction) -> ApprovalRequest | None:
    """The approval request waiting to sign the instruction off, if any."""
    return ApprovalRequest.objects.filter(
        kind="standing_top_up",
        target_type=ContentType.objects.get_for_model(StandingTopUpInstruction),
        target_id=str(instruction.pk),
        status=ApprovalStatus.PENDING,
    ).first()


def cash_top_ups_to_target(facility_ids: list[int]) -> dict[int, Decimal]:
    """The exact cash top-up that brings each facility's ratio to its policy's target
    (``collateral.calculations.cash_top_up_to_target``, the automatic top-up's search), for those of
    ``facility_ids`` whose pool has a concentration cut that binds at the current prices; for every other
    facility ``D/T − LV`` is exact, and is not repeated here. What a margin call states, in the call, its
    messages and the API. On PostgreSQL one statement first picks the pools in which a cut may bind
    (``_cut_may_bind``); only those are valued here (in bulk) and searched."""
    assets, prices, fx = assets_by_symbol(), current_prices(), fx_to_hkd()
    if connection.vendor == "postgresql" and facility_ids:
        facility_ids = _cut_may_bind(facility_ids, assets, prices, fx)
    if not facility_ids:
        return {}
    limited = Asset.objects.filter(concentration_limit__isnull=False, eligible=True).values("instrument_id")
    holding = Balance.objects.filter(instrument_id__in=limited).exclude(amount=0).values("account_id")
    facilities = list(
        Facility.objects.filter(id_in("pk", facility_ids), client__collateral_pool__account_id__in=holding)
        .select_related("policy")
        .order_by("pk")
    )
    valuations = facility_valuations(facilities)
    cash = position_inputs({HKD: ZERO}, assets=assets, prices=prices, fx=fx)[0]
    amounts = {}
    for facility in facilities:
        valuation = valuations[facility.pk]
        positions = valuation.valuation.positions
        if not any(p.excess_over_limit > 0 for p in positions):
            continue
        holdings = {p.symbol: p.quantity for p in positions}  # the pool's non-zero balances, as valued
        amounts[facility.pk] = cash_top_up_to_target(
            position_inputs(holdings, assets=assets, prices=prices, fx=fx),
            cash,
            debt=valuation.debt.total,
            target=valuation.thresholds.target,
        )
    return amounts


def _cut_may_bind(facility_ids: list[int], assets, prices, fx) -> list[int]:
    """Those of ``facility_ids`` whose pool holds an eligible asset with a concentration limit and has a
    position above its limit at the current prices (``selectors.sql``): a cut binds in no other pool, so no
    other is valued in Python. Unit values are worked out here exactly as a valuation's are."""
    inputs = position_inputs(dict.fromkeys(assets, Decimal(1)), assets=assets, prices=prices, fx=fx)
    with localcontext(prec=WIDE):
        unit_values = [
            None if p.price is None or p.fx_to_hkd is None else p.price * p.fx_to_hkd for p in inputs
        ]
    with connection.cursor() as cursor:
        cursor.execute(
            sql_file(__file__, "selectors.sql", "cut_may_bind"),
            {
                "facilities": bigint_array(facility_ids),
                "symbols": [p.symbol for p in inputs],
                "unit_values": unit_values,
                "limits": [p.concentration_limit for p in inputs],
                "eligible": [p.eligible for p in inputs],
            },
        )
        return [row[0] for row in cursor.fetchall()]
