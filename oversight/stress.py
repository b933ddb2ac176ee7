"""Stress tests: the live book valued read-only at a scenario's shocked prices — the sweep's own valuation
statement, then the forced-sale planner for the facilities a call or a sale would reach — and the firm's
figures after the shock (docs/stress-tests.md). A run writes its own rows only: never a margin state, a
snapshot, a margin call, a forced sale or a ledger posting."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections import defaultdict
from decimal import ROUND_FLOOR, Decimal, localcontext

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from accounts.audit import SYSTEM, Actor, AuditSpec, actor_label, actor_user, audit_events_record
from collateral.calculations import (
    LEAST_SEARCH_MAX_CANDIDATES,
    LEAST_SEARCH_MIN_SLOPE,
    WIDE,
    PositionInput,
    cure_amounts,
    default_sale_order,
    forced_sale_plan,
)
from collateral.enums import AssetKind
from collateral.models import Asset, CollateralPool
from collateral.selectors import current_prices, fx_rates_latest
from core.exceptions import InvalidInput, PermissionRefused
from core.money import CENT, HKD, ZERO
from core.sql import sql_compose, sql_file
from financing.enums import FacilityStatus, MarginStatus
from financing.models import Facility, MarginPolicy, MarginState
from financing.monitoring.sweep import AssetUnit, asset_units, facility_figures, valuation_of_book_run
from financing.selectors import default_policy
from ledger.models import Balance
from oversight.calculations import Shocks, hkd_per_unit, plain, share, shocked, shocked_rates, shocks_parse
from oversight.enums import StressRunStatus, StressTrigger
from oversight.library import library_write
from oversight.models import StressResult, StressRun, StressScenario

logger = logging.getLogger(__name__)

RUN_PERMISSION = "oversight.run_stress_test"
ADD_PERMISSION = "oversight.add_stressscenario"
# A call that is not met becomes a forced sale: a run plans the sale for both.
NEEDS_A_SALE = (MarginStatus.MARGIN_CALL, MarginStatus.FORCED_SALE)


def _require(actor: Actor, permission: str, words: str) -> None:
    """A person needs the permission (their role's); the platform itself and an API key (whose scope the API
    checked) are not people."""
    user = actor_user(actor)
    if user is None or (user.is_active and user.has_perm(permission)):
        return
    raise PermissionRefused(words)


def scenario_shocks(raw: object) -> Shocks:
    """A scenario's shocks read and checked against the assets and currencies the platform knows."""
    assets = dict(Asset.objects.values_list("instrument_id", "kind"))
    currencies = [code for code, _ in settings.CURRENCY_CHOICES]
    try:
        return shocks_parse(raw, assets=assets, currencies=currencies)
    except ValueError as error:
        raise InvalidInput(str(error)) from None


def _sale_cost(value: object) -> Decimal | None:
    if value in (None, ""):
        return None
    if isinstance(value, float):
        raise InvalidInput('Give the sale cost as a string ("0.02"), not a floating-point number.')
    try:
        cost = Decimal(str(value))
    except ArithmeticError:
        raise InvalidInput(f"The sale cost {value!r} is not a number.") from None
    if not cost.is_finite() or not ZERO <= cost < 1:
        raise InvalidInput(f"The sale cost {value} is not a fraction from 0 up to (not including) 1.")
    if cost != cost.quantize(Decimal("0.0001")):
        raise InvalidInput(f"The sale cost {value} has more than four decimal places.")
    return cost


@transaction.atomic
def stress_scenario_create(
    *,
    name: str,
    shocks: object,
    actor: Actor,
    sale_cost: object = None,
    key: str = "",
    description: str = "",
    source: str = "",
    active: bool = True,
) -> StressScenario:
    """A risk officer's own scenario (audited). Its shocks are checked before anything is written."""
    _require(actor, ADD_PERMISSION, "Only risk officers may add a stress scenario.")
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A scenario needs a name.")
    parsed = scenario_shocks(shocks)
    if not (parsed.assets or parsed.classes or parsed.fx):
        raise InvalidInput("A scenario needs at least one shock.")
    cost = _sale_cost(sale_cost)
    from django.utils.text import slugify

    key = slugify(key or name)[:50] or "scenario"
    base, number = key, 1
    while StressScenario.objects.filter(key=key).exists():
        number += 1
        key = f"{base}-{number}"
    scenario = StressScenario.objects.create(
        key=key, name=name[:200], description=description, source=source, active=active,
        shocks=parsed.as_json(), sale_cost=cost, created_by=actor_user(actor),
    )  # fmt: skip
    audit_events_record(
        [AuditSpec(actor, "stress_scenario.created", scenario, after={
            "key": key, "name": scenario.name, "shocks": scenario.shocks, "sale_cost": cost})]
    )  # fmt: skip
    return scenario


CHANGE_PERMISSION = "oversight.change_stressscenario"
SCENARIO_FIELDS = ("name", "description", "source", "shocks", "sale_cost", "active")


@transaction.atomic
def stress_scenario_update(*, scenario: StressScenario, actor: Actor, **changes: object) -> StressScenario:
    """Change a scenario's name, description, source, shocks, sale cost or whether it runs with the library
    (audited as ``stress_scenario.updated``, with the figures before and after). Its key, and the runs already
    made with it, stay as they are (each run keeps the shocks it ran with). Bad input: nothing written."""
    _require(actor, CHANGE_PERMISSION, "Only risk officers may change a stress scenario.")
    unknown = set(changes) - set(SCENARIO_FIELDS)
    if unknown:
        raise InvalidInput(f"These scenario fields cannot be changed: {', '.join(sorted(unknown))}.")
    if "name" in changes:
        changes["name"] = str(changes["name"] or "").strip()[:200]
        if not changes["name"]:
            raise InvalidInput("A scenario needs a name.")
    if "shocks" in changes:
        parsed = scenario_shocks(changes["shocks"])
        if not (parsed.assets or parsed.classes or parsed.fx):
            raise InvalidInput("A scenario needs at least one shock.")
        changes["shocks"] = parsed.as_json()
    if "sale_cost" in changes:
        changes["sale_cost"] = _sale_cost(changes["sale_cost"])
    scenario = StressScenario.objects.select_for_update().get(pk=scenario.pk)
    before = {name: getattr(scenario, name) for name in changes}
    for name, value in changes.items():
        setattr(scenario, name, value)
    changed = [name for name in changes if before[name] != getattr(scenario, name)]
    if not changed:
        return scenario
    scenario.save(update_fields=changed)
    audit_events_record(
        [AuditSpec(actor, "stress_scenario.updated", scenario,
                   before={name: before[name] for name in changed},
                   after={name: getattr(scenario, name) for name in changed})]
    )  # fmt: skip
    return scenario


def library_ensure() -> int:
    """Write the library's scenarios that are missing (by key); how many were added."""
    return library_write(StressScenario)


# --- the shocked market ----------------------------------------------------------------------------


def shocked_market(shocks: Shocks) -> tuple[list[AssetUnit], dict[str, PositionInput], dict]:
    """The unit values the valuation runs on, a ``PositionInput`` template per asset at the shocked price and
    rate (for the sale planner), and what the run records of the prices: before and after, per asset and pair."""
    prices = current_prices()
    rates = {pair: rate.rate for pair, rate in fx_rates_latest().items()}
    rates_after = shocked_rates(rates, shocks)
    fx_after = hkd_per_unit(rates_after)
    assets = list(Asset.objects.select_related("instrument"))
    prices_after = {}
    record: dict = {"assets": {}, "fx": {}}
    templates = {}
    for asset in assets:
        symbol = asset.symbol
        quote = prices.get(symbol)
        shock = shocks.for_asset(symbol, asset.kind) if asset.kind != AssetKind.CASH else ZERO
        if quote is not None:
            prices_after[symbol] = quote.__class__(
                shocked(quote.price, shock), quote.currency, quote.source, quote.observed_at
            )
        price = (
            Decimal(1) if asset.kind == AssetKind.CASH else (prices_after[symbol].price if quote else None)
        )
        currency = asset.currency if asset.kind == AssetKind.CASH or quote is None else quote.currency
        templates[symbol] = PositionInput(
            symbol=symbol, quantity=ZERO, price=price, fx_to_hkd=fx_after.get(currency), haircut=asset.haircut,
            concentration_limit=asset.concentration_limit, eligible=asset.eligible, lot_size=asset.lot_size,
            decimals=asset.decimals, kind=asset.kind,
        )  # fmt: skip
        if asset.kind != AssetKind.CASH:
            record["assets"][symbol] = {
                "kind": asset.kind, "currency": currency, "shock": shock,
                "price_before": quote.price if quote else None, "price_after": price,
                "hkd_per_unit_after": price * fx_after[currency] if price is not None and currency in fx_after else None,
            }  # fmt: skip
    for (currency, quote_currency), rate in rates.items():
        record["fx"][f"{currency}/{quote_currency}"] = {
            "shock": shocks.fx.get((currency, quote_currency), ZERO),
            "before": rate,
            "after": rates_after[(currency, quote_currency)],
        }
    units = asset_units(prices=prices_after, fx=fx_after)
    return units, templates, record


# --- the run ----------------------------------------------------------------------------------------


def _results_statement(templates: dict[str, PositionInput] | None = None) -> tuple[str, dict[str, object]]:
    """The ``results`` statement with the plans from the fixed parts (piece ``fast``) composed for the crypto of
    ``templates``, one set of columns each in the default sale order (none given: no plan is made there), and
    the parameters those columns read. Only column numbers and the pieces' text go into the statement's text;
    every figure and symbol is a parameter."""
    piece = functools.partial(sql_file, __file__, "stress.sql")
    statement = piece("results")
    priced = {
        s: t
        for s, t in (templates or {}).items()
        if t.kind == AssetKind.CRYPTO and _unit_value(t) is not None
    }
    crypto = [priced[symbol] for symbol in default_sale_order(list(priced.values()))]
    if not crypto:
        return statement.replace("%%FAST%%", piece("fast.none")).replace("%%VOLUME%%", ""), {}
    columns = range(len(crypto))
    params: dict[str, object] = {
        "cash_symbols": [t.symbol for t in templates.values() if t.kind == AssetKind.CASH]
    }
    for i, t in enumerate(crypto):
        params |= {f"fc_{i}_symbol": t.symbol, f"fc_{i}_unit": _unit_value(t), f"fc_{i}_haircut": t.haircut,
                   f"fc_{i}_lot": t.lot_size, f"fc_{i}_lot_text": plain(t.lot_size), f"fc_{i}_eligible": t.eligible}  # fmt: skip

    def each(name: str, joiner: str, **slots) -> str:  # the piece fast.<name> for every column, joined
        return joiner.join(
            piece(f"fast.{name}").format(i=i, **{k: f(i) for k, f in slots.items()}) for i in columns
        )

    def total(column: str, among) -> str:
        return "(" + " + ".join(f"v.{column}{j}" for j in among) + ")" if among else "0"

    def margin(i: int) -> str:  # the crypto's margin value (fast.margin_and_proceeds)
        if not crypto[i].eligible:
            return "0"
        return (f"GREATEST(FLOOR(ROUND(n.q{i} * %(fc_{i}_unit)s::numeric, 2) * (1 - %(fc_{i}_haircut)s::numeric) * 100)"
                " * 0.01, 0)")  # fmt: skip

    def by_last(value) -> str:  # a column's figure for the crypto sold last
        return "CASE c.last " + " ".join(f"WHEN {i} THEN {value(i)}" for i in columns) + " END"

    def held_among(table: str, among) -> str:  # whether the pool holds any of these columns' crypto
        return "(" + (" OR ".join(f"{table}.q{j} > 0" for j in among) or "false") + ")"

    last_columns = {
        "held": lambda i: f"c.q{i}", "unit": lambda i: f"%(fc_{i}_unit)s::numeric",
        "lot": lambda i: f"%(fc_{i}_lot)s::numeric", "haircut": lambda i: f"%(fc_{i}_haircut)s::numeric",
        "eligible": lambda i: f"%(fc_{i}_eligible)s::boolean", "pf": lambda i: f"c.pf{i}", "d_after": lambda i: f"c.d{i}",
        "lv_after": lambda i: f"c.lv{i}", "m_after": lambda i: f"c.m{i}", "symbol": lambda i: f"%(fc_{i}_symbol)s::text",
        "lot_text": lambda i: f"%(fc_{i}_lot_text)s::text",
    }  # fmt: skip
    limited = [i for i in columns if crypto[i].concentration_limit is not None]
    fast = piece("fast").format(
        quantities=each("quantity", ",\n           "),
        values=", ".join(f"{piece('fast.value').format(i=i)}, {piece('fast.margin_and_proceeds').format(i=i, margin=margin(i))}"
                         for i in columns),
        lvf_all=total("lvf", columns),
        mv_all=total("mv", columns),
        afters=each("after", ",\n           ", pf_through=lambda i: total("pf", range(i + 1)),
                    lvf_rest=lambda i: total("lvf", range(i + 1, len(crypto))),
                    mv_rest=lambda i: total("mv", range(i + 1, len(crypto)))),
        last=each("last_when", " "),
        limited="(" + (" OR ".join(f"s.q{i} > 0" for i in limited) or "false") + ")",
        held_any=held_among("s", columns),
        window=piece("window").format(
            rows=piece("fast.window_rows").format(
                last_columns=", ".join(f"{by_last(value)} AS {name}" for name, value in last_columns.items())
            )
        ),
        whole_sales=each("whole_sale", "\n               || "),
        whole_proceeds="(" + each("whole_proceeds", " + ") + ")",
        sold_volume=each("sold", ", "),
        held_after_last="CASE l.last "
        + " ".join(f"WHEN {i} THEN {held_among('l', range(i + 1, len(crypto)))}" for i in columns)
        + " END",
        no_volume=", ".join("0::numeric, 0::numeric" for _ in columns),
    )  # fmt: skip
    volume = "UNION ALL\n" + each("volume", "\nUNION ALL\n")
    return statement.replace("%%FAST%%", fast).replace("%%VOLUME%%", volume), params


def valued_in_sql() -> bool:
    """Whether a run values the book with the sweep's SQL (PostgreSQL) or the pure calculations."""
    return connection.vendor == "postgresql"


# Per asset, what the plans sell: quantity and market value.
Volume = dict[str, dict[str, Decimal]]


def _no_volume() -> Volume:
    return defaultdict(lambda: {"quantity": ZERO, "market_value": ZERO})


# Per status before and after: how many rows, and the sums of market value before and after, margin value before
# and after, the repayments that cure, and the debt (``stress.sql``, piece ``results``).
Group = tuple[str, str, int, Decimal | None, Decimal, Decimal | None, Decimal, Decimal, Decimal]


def _write_results(
    run: StressRun, units: list[AssetUnit], templates: dict[str, PositionInput]
) -> tuple[list[Group], list[int], Volume]:
    """One row per open facility, their figures per status before and after, the facilities a sale would reach
    still without a plan, and the volume per asset of the plans written with the rows. On PostgreSQL the sweep's
    valuation statement writes them, sums them up and plans the sales it can from the pools' fixed parts in the
    same pass (``stress.sql``, piece ``results``); elsewhere the pure calculations (``facility_figures``) with
    the margin states read in bulk, and every plan is left to the planner."""
    default = default_policy()
    if valued_in_sql():
        with connection.cursor() as cursor:
            _plan_units_load(cursor, templates)
        statement, crypto_params = _results_statement(templates if planned_in_sql() else None)
        returned = valuation_of_book_run(
            statement,
            units=units,
            params={
                "run": run.pk, "default_target": default.target, "default_policy": default.pk,
                "sale_cost": run.sale_cost, "min_slope": LEAST_SEARCH_MIN_SLOPE,
                "max_candidates": LEAST_SEARCH_MAX_CANDIDATES // 2, **crypto_params,
            },
        )  # fmt: skip
        groups: list[Group] = []
        unplanned: list[int] = []
        volume = _no_volume()
        for kind, first, second, n, *sums in returned:
            if kind == "rows":
                groups.append((first, second, n, *sums))
            elif kind == "unplanned":
                unplanned.append(n)
            else:
                volume[first] = {"quantity": sums[0], "market_value": sums[1]}
        return groups, unplanned, volume
    targets = {None: default.target, **dict(MarginPolicy.objects.values_list("pk", "target"))}
    policies = dict(Facility.objects.exclude(status=FacilityStatus.CLOSED).values_list("pk", "policy_id"))
    states = MarginState.objects.in_bulk(list(policies))
    rows = []
    for facility_id, market_value, margin_value, debt, ratio, status in facility_figures(None, units):
        state = states.get(facility_id)
        cure = (
            cure_amounts(debt, margin_value, targets[policies[facility_id]]).repayment
            if status in NEEDS_A_SALE
            else ZERO
        )
        rows.append(
            StressResult(
                run=run, facility_id=facility_id,
                market_value_before=state.market_value if state else None,
                margin_value_before=state.margin_value if state else None,
                debt_before=state.debt if state else None, ratio_before=state.margin_ratio if state else None,
                status_before=state.status if state else "", market_value=market_value, margin_value=margin_value,
                debt=debt, ratio_after=ratio, status_after=status, repayment_to_cure=cure,
            )
        )  # fmt: skip
    StressResult.objects.bulk_create(rows, batch_size=2000)
    groups_by: dict[tuple[str, str], list] = {}
    for row in rows:
        group = groups_by.setdefault(
            (row.status_before, row.status_after), [0, None, ZERO, None, ZERO, ZERO, ZERO]
        )
        group[0] += 1
        for i, value in enumerate((row.market_value_before, row.market_value, row.margin_value_before,
                                   row.margin_value, row.repayment_to_cure, row.debt), 1):  # fmt: skip
            group[i] = _plus(group[i], value)
    unplanned = [row.facility_id for row in rows if row.status_after in NEEDS_A_SALE]
    return (
        [(*key, *figures) for key, figures in groups_by.items()],
        unplanned,
        _no_volume(),
    )


def _plus(total: Decimal | None, value: Decimal | None) -> Decimal | None:
    """A sum as SQL's ``SUM`` makes it: None (no figure yet) until a value is added; a None value adds nothing."""
    if value is None:
        return total
    return value if total is None else total + value


def planned_in_sql() -> bool:
    """Whether a run plans the forced sales in SQL (PostgreSQL; the rows SQL cannot plan exactly go to the
    Python planner) or every one with the Python planner."""
    return valued_in_sql()


def _plan_sales(
    run: StressRun,
    templates: dict[str, PositionInput],
    unplanned: list[int],
    volume: Volume,
) -> Volume:
    """The forced sale each facility in ``unplanned`` (a call or a sale after the shock, no plan written with
    its row) would meet, planned as the live planner plans it (financing.liquidation.forced_sales): the pool's
    HKD repays first, then the rest is sold in the policy's order, in whole lots, at the scenario's sale cost (or
    the policy's). On PostgreSQL two statements plan and write them from the pools' positions (``stress.sql``,
    pieces ``plan_positions`` and ``plans_write``), and the Python planner the few they leave. Returns
    ``volume`` (per asset: quantity, market value) with these plans' sales added."""
    # Not kept: for the bench, the log and the tests.
    run.plans_with_rows = run.facilities_needing_a_sale - len(unplanned)
    columns = ("pk", "run_id", "facility_id", "debt")
    if not planned_in_sql():
        # Every row a sale would reach is planned here: found by status, not from a list that could be too long.
        rows = run.results.filter(status_after__in=NEEDS_A_SALE).only(*columns)
        return _add(volume, _plan_in_python(run, list(rows), templates))
    run.plans_in_python = run.plans_in_second_pass = 0
    if not unplanned:
        return volume
    left, planned, second_pass = _plan_in_sql(run, unplanned, templates)
    run.plans_in_python, run.plans_in_second_pass = len(left), second_pass
    volume = _add(volume, planned)
    if left:  # the ids of rows of this run
        in_python = _plan_in_python(run, list(run.results.filter(pk__in=left).only(*columns)), templates)
        volume = _add(volume, in_python)
    return volume


def _add(volume: Volume, more: Volume) -> Volume:
    """``volume`` with what ``more`` sells added, asset by asset."""
    for symbol, figures in more.items():
        volume[symbol]["quantity"] += figures["quantity"]
        volume[symbol]["market_value"] += figures["market_value"]
    return volume


def _plan_units_load(cursor, templates: dict[str, PositionInput]) -> None:
    """Each asset as the sale planner sees it at the scenario's prices, into a temporary table the plans join
    (``stress.sql``, piece ``plan_units_create``)."""
    crypto_rank = {"BTC": 0, "ETH": 1}
    units = list(templates.values())
    columns: dict[str, list] = {
        "symbol": [u.symbol for u in units],
        "unit": [_unit_value(u) for u in units],
        "haircut": [u.haircut for u in units],
        "lim": [u.concentration_limit for u in units],
        "eligible": [u.eligible for u in units],
        "lot": [u.lot_size for u in units],
        "lot_text": [plain(u.lot_size) for u in units],
        "cash": [u.kind == AssetKind.CASH for u in units],
        # collateral.calculations.default_sale_order: crypto (BTC, ETH, the rest), securities, anything else.
        "grp": [0 if u.kind == "crypto" else 1 if u.kind == "security" else 2 for u in units],
        "crank": [crypto_rank.get(u.symbol, 9) if u.kind == "crypto" else 0 for u in units],
    }
    piece = functools.partial(sql_file, __file__, "stress.sql")
    cursor.execute(piece("plan_units_drop"))
    cursor.execute(piece("plan_units_create"))
    cursor.execute(piece("plan_units_insert"), columns)
    cursor.execute(piece("plan_units_analyze"))


def _plan_in_sql(
    run: StressRun, unplanned: list[int], templates: dict[str, PositionInput]
) -> tuple[list[int], Volume, int]:
    """Plan the facilities ``unplanned`` from their positions and write the plans, in two statements; the ids
    of the rows left to the Python planner, the volume per asset of the plans written, and how many last sales
    the second pass found (a cut binding). The plan units are loaded (``_write_results``)."""
    piece = functools.partial(sql_file, __file__, "stress.sql")
    plan_symbols = [t.symbol for t in templates.values() if t.kind != AssetKind.CASH]  # what a sale may sell
    left: list[int] = []
    second_pass = 0
    volume = _no_volume()
    with connection.cursor() as cursor:
        cursor.execute(piece("plans_drop"))
        cursor.execute(piece("plan_cut_bound"))
        cursor.execute(
            piece("plan_positions"),
            {
                "run": run.pk, "facilities": unplanned, "sale_cost": run.sale_cost,
                "default_policy": default_policy().pk, "plan_symbols": plan_symbols,
            },
        )  # fmt: skip
        cursor.execute(
            sql_compose(
                piece("plans_write"), window=piece("window").format(rows=piece("plans_write.window_rows"))
            ),
            {
                "min_slope": LEAST_SEARCH_MIN_SLOPE,
                # Fewer than the Python planner's own limit: a row SQL plans, Python would plan the same way.
                "max_candidates": LEAST_SEARCH_MAX_CANDIDATES // 2,
                # The second pass's candidates from the bound with the cuts in place: the least is found within
                # a few (``LeastSearch`` then finds it within fewer still, from its own start at or above).
                "second_candidates": 64,
            },
        )
        for pk, symbol, quantity, market_value in cursor.fetchall():
            if pk is not None:
                left.append(pk)
            elif symbol is None:
                second_pass = int(quantity)
            else:
                volume[symbol] = {"quantity": quantity, "market_value": market_value}
    return left, volume, second_pass


def _unit_value(template: PositionInput) -> Decimal | None:
    if template.price is None or template.fx_to_hkd is None:
        return None
    with localcontext(prec=WIDE):
        return template.price * template.fx_to_hkd


def _plan_in_python(run: StressRun, rows: list[StressResult], templates: dict[str, PositionInput]) -> Volume:
    """``rows`` planned one by one with ``collateral.calculations.forced_sale_plan`` and written."""
    volume = _no_volume()
    if not rows:
        return volume
    facilities = dict(
        Facility.objects.filter(pk__in=[r.facility_id for r in rows]).values_list("pk", "client_id")
    )
    policy_ids = dict(Facility.objects.filter(pk__in=list(facilities)).values_list("pk", "policy_id"))
    policies = {None: default_policy(), **MarginPolicy.objects.in_bulk()}
    pools = dict(
        CollateralPool.objects.filter(client_id__in=list(facilities.values())).values_list(
            "client_id", "account_id"
        )
    )
    holdings: dict[int, dict[str, Decimal]] = defaultdict(dict)
    for account_id, symbol, amount in (
        Balance.objects.filter(account_id__in=list(pools.values()))
        .exclude(amount=0)
        .values_list("account_id", "instrument_id", "amount")
    ):
        holdings[account_id][symbol] = amount
    for row in rows:
        policy = policies[policy_ids[row.facility_id]]
        held = {s: q for s, q in holdings.get(pools.get(facilities[row.facility_id]), {}).items() if q > 0}
        debt = row.debt
        plan_rows = []
        cash = min(held.get(HKD, ZERO), max(debt, ZERO)).quantize(CENT, rounding=ROUND_FLOOR)
        if cash > 0:
            debt -= cash
            plan_rows.append({"asset": HKD, "quantity": cash, "lot_size": Decimal("0.01"),
                              "market_value": cash, "proceeds": cash})  # fmt: skip
            held[HKD] -= cash
        positions = [
            PositionInput(**{**templates[s].__dict__, "quantity": q})
            for s, q in held.items()
            if templates[s].kind != AssetKind.CASH
        ]
        cost = run.sale_cost if run.sale_cost is not None else policy.sale_cost_rate
        plan = forced_sale_plan(
            positions, debt=debt, target=policy.target, sale_cost=cost, order=policy.sale_order or None
        )
        for sale in plan.sales:
            plan_rows.append({"asset": sale.symbol, "quantity": plain(sale.quantity),
                              "lot_size": plain(templates[sale.symbol].lot_size), "market_value": sale.market_value,
                              "proceeds": sale.proceeds})  # fmt: skip
            volume[sale.symbol]["quantity"] += sale.quantity
            volume[sale.symbol]["market_value"] += sale.market_value
        row.sale_plan = plan_rows
        row.sale_proceeds = sum((Decimal(p["proceeds"]) for p in plan_rows), ZERO)
        row.ratio_after_sale = plan.ratio_after
        row.shortfall = plan.shortfall
    _save_plans(rows)
    return volume


def _save_plans(rows: list[StressResult]) -> None:
    """The plans into their rows: on PostgreSQL one statement over arrays (Django's ``bulk_update`` writes a
    CASE per row, which the server compares row by row: quadratic in the rows)."""
    if not valued_in_sql():
        StressResult.objects.bulk_update(
            rows, ["sale_plan", "sale_proceeds", "ratio_after_sale", "shortfall"], batch_size=2000
        )
        return
    with connection.cursor() as cursor:
        cursor.execute(
            sql_file(__file__, "stress.sql", "plans"),
            {
                "ids": [r.pk for r in rows],
                "plans": [json.dumps(r.sale_plan, cls=DjangoJSONEncoder) for r in rows],
                "proceeds": [r.sale_proceeds for r in rows],
                "ratios": [r.ratio_after_sale for r in rows],
                "shortfalls": [r.shortfall for r in rows],
            },
        )


def _plan_totals(run: StressRun) -> tuple[Decimal, Decimal, Decimal]:
    """The plans' proceeds, shortfalls and what the sales would repay (their proceeds, never more than the
    debt they repay): on PostgreSQL one aggregate (``stress.sql``, piece ``plan_totals``); elsewhere (SQLite,
    which has no LEAST and sums decimals in floating point) the rows' exact figures added up here."""
    if valued_in_sql():
        with connection.cursor() as cursor:
            cursor.execute(sql_file(__file__, "stress.sql", "plan_totals"), {"run": run.pk})
            return cursor.fetchone()
    proceeds = shortfall = repaid = ZERO
    planned = run.results.filter(status_after__in=NEEDS_A_SALE)
    for debt, sale_proceeds, row_shortfall in planned.values_list("debt", "sale_proceeds", "shortfall"):
        proceeds += sale_proceeds
        shortfall += row_shortfall
        if sale_proceeds > 0:
            repaid += min(debt, sale_proceeds)
    return proceeds, shortfall, repaid


def _firm_figures(run: StressRun, groups: list[Group], volume: Volume) -> None:
    """The firm's figures: those of the rows from their sums per status (``_write_results``), those of the
    plans in one aggregate over the rows with a plan."""
    by_before: dict[str, int] = defaultdict(int)
    by_after: dict[str, int] = defaultdict(int)
    totals: list[Decimal | None] = [None] * 6
    for status_before, status_after, n, *sums in groups:
        by_before[status_before or "new"] += n
        by_after[status_after] += n
        for i, value in enumerate(sums):
            totals[i] = _plus(totals[i], value)
    mv_before, mv_after, lv_before, lv_after, due, debt = (value or ZERO for value in totals)
    proceeds, shortfall, repaid = _plan_totals(run)
    run.by_status_before, run.by_status_after = dict(by_before), dict(by_after)
    run.facilities = sum(by_after.values())
    run.market_value_before = mv_before
    run.market_value_after = mv_after
    run.margin_value_before = lv_before
    run.margin_value_after = lv_after
    run.amount_due = due
    run.sale_proceeds = proceeds
    run.shortfall = shortfall
    run.lending = debt
    run.lending_after_sales = run.lending - repaid
    run.capital = settings.BROKER_CAPITAL_HKD
    run.lending_cap = settings.BROKER_CAPITAL_HKD * settings.FIRM_LOAN_TO_CAPITAL_MULTIPLE
    liquidity = settings.STRESS_DAILY_LIQUIDITY
    run.sale_volume = {
        symbol: {
            "quantity": plain(figures["quantity"]),
            "market_value": figures["market_value"],
            "daily_liquidity": plain(liquidity[symbol]) if symbol in liquidity else None,
            "share_of_daily_liquidity": share(figures["quantity"], liquidity.get(symbol)),
        }
        for symbol, figures in sorted(volume.items())
    }


def stress_run(
    *, scenario: StressScenario, actor: Actor = SYSTEM, trigger: str = StressTrigger.ON_DEMAND
) -> StressRun:
    """Run ``scenario`` on the live book and keep the results (audited). Read-only for the book: one
    transaction writes the run and its rows, nothing else. A run that fails is kept as failed, with why."""
    _require(actor, RUN_PERMISSION, "Only risk officers may run a stress test.")
    shocks = scenario_shocks(scenario.shocks)
    started = time.perf_counter()
    previous = (
        StressRun.objects.filter(scenario=scenario, status=StressRunStatus.FINISHED)
        .order_by("-started_at", "-pk")
        .first()
    )
    user = actor_user(actor)
    run = StressRun(
        scenario=scenario, shocks=shocks.as_json(), sale_cost=scenario.sale_cost, trigger=trigger,
        requested_by=user, requested_by_label=actor_label(actor), started_at=timezone.now(), previous=previous,
    )  # fmt: skip
    try:
        with transaction.atomic():
            run.save()
            phases = {}
            mark = time.perf_counter()
            units, templates, run.prices = shocked_market(shocks)
            groups, unplanned, volume = _write_results(run, units, templates)
            run.facilities_needing_a_sale = sum(n for _, after, n, *_ in groups if after in NEEDS_A_SALE)
            phases["valuation_ms"], mark = _ms(mark), time.perf_counter()
            volume = _plan_sales(run, templates, unplanned, volume)
            phases["sale_plans_ms"], mark = _ms(mark), time.perf_counter()
            phases["plans_with_rows"] = run.plans_with_rows
            phases["plans_in_python"] = getattr(run, "plans_in_python", None)
            phases["plans_in_second_pass"] = getattr(run, "plans_in_second_pass", None)
            _firm_figures(run, groups, volume)
            phases["firm_ms"] = _ms(mark)
            run.status = StressRunStatus.FINISHED
            run.finished_at = timezone.now()
            run.duration_ms = int((time.perf_counter() - started) * 1000)
            run.save()
            audit_events_record([AuditSpec(actor, "stress_run.finished", run, after={
                "scenario": scenario.key, "shocks": run.shocks, "sale_cost": run.sale_cost,
                "facilities": run.facilities, "by_status_after": run.by_status_after,
                "shortfall": run.shortfall, "duration_ms": run.duration_ms})])  # fmt: skip
    except Exception as error:
        logger.exception("Stress run of %s failed", scenario.key)
        with transaction.atomic():
            run.pk = None
            run.status, run.error = StressRunStatus.FAILED, f"{type(error).__name__}: {error}"[:2000]
            run.finished_at = timezone.now()
            run.duration_ms = int((time.perf_counter() - started) * 1000)
            run.prices, run.facilities = {}, 0
            run.save()
            audit_events_record(
                [
                    AuditSpec(
                        actor, "stress_run.failed", run, after={"scenario": scenario.key, "error": run.error}
                    )
                ]
            )
        raise
    run.refresh_from_db()  # the JSON figures as kept (decimals as strings)
    run.phases = phases  # not kept: for the bench and the log
    logger.info("Stress run #%s of %s: %s", run.pk, scenario.key, phases)
    return run


def _ms(since: float) -> int:
    return int((time.perf_counter() - since) * 1000)


def stress_library_run(*, actor: Actor = SYSTEM, trigger: str = StressTrigger.SCHEDULED) -> list[StressRun]:
    """Every active scenario, one after another (the monthly schedule; the demo's seed)."""
    library_ensure()
    runs = []
    for scenario in StressScenario.objects.filter(active=True):
        try:
            runs.append(stress_run(scenario=scenario, actor=actor, trigger=trigger))
        except Exception:  # kept as a failed run, with why; the other scenarios still run
            continue
    return runs
