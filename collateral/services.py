"""Writes for collateral: assets and haircuts, prices and FX, pools and deposits. Withdrawals live in
``financing.services`` because whether one may happen depends on the client's debt and margin policy."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.approvals import ApprovalKind, approval_kind_register
from accounts.audit import Actor, actor_user, audit_event_record, snapshot
from accounts.exceptions import FourEyesViolation
from accounts.models import Client
from accounts.services import approval_request_create
from collateral.calculations import peg_band_breach, price_band_breach
from collateral.enums import USABLE_PRICE_STATUSES, AssetKind, MovementKind, PriceStatus
from collateral.exceptions import AssetNotEligible, HaircutBelowFloor, UnsupportedCrypto
from collateral.models import Asset, CollateralMovement, CollateralPool, CurrentPrice, FxRate, Price
from collateral.selectors import assets_by_symbol
from core.exceptions import InvalidInput, InvalidTransition, PermissionRefused
from core.locks import lock_one
from core.parsing import parse_amount, parse_fraction
from core.validation import validate_model
from ledger.enums import AccountKind, TransactionKind
from ledger.services import LegSpec, account_for, firm_account, instrument_get_or_create, transaction_post

logger = logging.getLogger(__name__)

ASSET_FIELDS = [
    "name",
    "kind",
    "currency",
    "lot_size",
    "haircut",
    "concentration_limit",
    "eligible",
    "sale_rank",
    "price_band",
]


# --- assets and haircuts -------------------------------------------------------------------------


def _check_crypto(symbol: str, kind: str, haircut: Decimal) -> None:
    if kind != AssetKind.CRYPTO:
        return
    if symbol not in settings.CRYPTO_ALLOWLIST:
        raise UnsupportedCrypto(
            f"{symbol} is not accepted as crypto collateral; only {', '.join(settings.CRYPTO_ALLOWLIST)} are."
        )
    floor = settings.CRYPTO_HAIRCUT_FLOOR
    if haircut < floor:
        raise HaircutBelowFloor(
            f"A crypto haircut must be at least {floor * 100:.0f}%; {haircut * 100:.2f}% was asked for {symbol}."
        )


def _optional_band(value: Any) -> Decimal | None:
    return None if value in (None, "") else parse_fraction(value, field="price_band", allow_zero=False)


@transaction.atomic
def asset_create(
    *,
    symbol: str,
    name: str,
    kind: str,
    currency: str,
    decimals: int,
    haircut: Any,
    actor: Actor,
    lot_size: Any = "1",
    concentration_limit: Any = None,
    eligible: bool = True,
    sale_rank: int = 100,
    price_band: Any = None,
) -> Asset:
    symbol = symbol.strip().upper()
    if not symbol:
        raise InvalidInput("An asset needs a symbol.")
    if kind not in AssetKind.values:
        raise InvalidInput(f"{kind!r} is not a kind of asset ({', '.join(AssetKind.values)}).")
    haircut = parse_fraction(haircut, field="haircut")
    _check_crypto(symbol, kind, haircut)
    if Asset.objects.filter(pk=symbol).exists():
        raise InvalidInput(f"Asset {symbol} already exists.", code="duplicate_asset")
    if not 0 <= int(decimals) <= 18:
        raise InvalidInput("decimals: between 0 and 18.")
    instrument = instrument_get_or_create(code=symbol, kind=kind, decimals=int(decimals))
    asset = Asset(
        instrument=instrument,
        name=name,
        kind=kind,
        currency=currency,
        lot_size=parse_amount(lot_size, field="lot_size", positive=True, decimals=int(decimals)),
        haircut=haircut,
        concentration_limit=(
            None
            if concentration_limit in (None, "")
            else parse_fraction(concentration_limit, field="concentration_limit", allow_zero=False)
        ),
        eligible=eligible,
        sale_rank=sale_rank,
        price_band=_optional_band(price_band),
    )
    validate_model(asset)
    asset.save()
    audit_event_record(actor=actor, action="asset.created", target=asset, after=snapshot(asset, ASSET_FIELDS))
    return asset


@transaction.atomic
def asset_update(*, asset: Asset, actor: Actor, **changes: Any) -> Asset:
    """Everything but the haircut, which changes only through a four-eyes approval."""
    allowed = {"name", "lot_size", "concentration_limit", "eligible", "sale_rank", "price_band"}
    if "haircut" in changes:
        raise InvalidInput("A haircut changes only through an approval request.", code="needs_approval")
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(f"These asset fields cannot be changed here: {', '.join(sorted(unknown))}.")
    asset = lock_one(Asset, asset.pk)
    if "lot_size" in changes:
        changes["lot_size"] = parse_amount(
            changes["lot_size"], field="lot_size", positive=True, decimals=asset.decimals
        )
    if changes.get("concentration_limit") not in (None, ""):
        changes["concentration_limit"] = parse_fraction(
            changes["concentration_limit"], field="concentration_limit", allow_zero=False
        )
    elif "concentration_limit" in changes:
        changes["concentration_limit"] = None
    if "price_band" in changes:
        changes["price_band"] = _optional_band(changes["price_band"])
    before = snapshot(asset, list(changes))
    for name, value in changes.items():
        setattr(asset, name, value)
    after = snapshot(asset, list(changes))
    changed = [name for name in changes if before[name] != after[name]]
    if not changed:
        return asset
    validate_model(asset)
    asset.save(update_fields=changed)
    audit_event_record(
        actor=actor,
        action="asset.updated",
        target=asset,
        before={k: before[k] for k in changed},
        after={k: after[k] for k in changed},
    )
    return asset


def _haircut_clean(asset: Asset, proposed: dict[str, Any]) -> dict[str, Any]:
    if set(proposed) != {"haircut"}:
        raise InvalidInput("A haircut change proposes exactly one value: haircut.")
    haircut = parse_fraction(proposed["haircut"], field="haircut")
    _check_crypto(asset.symbol, asset.kind, haircut)
    if haircut == asset.haircut:
        raise InvalidInput(
            f"The haircut of {asset.symbol} is already {haircut * 100:.2f}%.", code="no_change"
        )
    return {"haircut": str(haircut)}


def _haircut_apply(*, target: Asset, proposed: dict[str, Any], actor: Actor, request) -> None:
    asset = lock_one(Asset, target.pk)
    before = snapshot(asset, ["haircut"])
    asset.haircut = Decimal(proposed["haircut"])
    asset.save(update_fields=["haircut"])
    audit_event_record(
        actor=actor,
        action="haircut.changed",
        target=asset,
        before=before,
        after={**snapshot(asset, ["haircut"]), "approval_request": request.pk},
    )


HAIRCUT_CHANGE = approval_kind_register(
    ApprovalKind(
        key="haircut",
        label="Haircut change",
        model=Asset,
        request_permission="collateral.change_asset",
        approve_permission="collateral.approve_haircut",
        clean=_haircut_clean,
        current=lambda asset: {"haircut": str(asset.haircut)},
        apply=_haircut_apply,
        describe=lambda proposed: f"haircut → {Decimal(proposed['haircut']) * 100:.2f}%",
    )
)


def haircut_change_request(*, asset: Asset, haircut: Any, actor: Actor, reason: str = ""):
    return approval_request_create(
        kind=HAIRCUT_CHANGE.key, target=asset, proposed={"haircut": haircut}, actor=actor, reason=reason
    )


# --- prices and FX -------------------------------------------------------------------------------


def _observed(observed_at: datetime.datetime | None) -> datetime.datetime:
    observed_at = observed_at or timezone.now()
    if timezone.is_naive(observed_at):
        raise InvalidInput("observed_at must carry a time zone.")
    if observed_at > timezone.now() + datetime.timedelta(minutes=5):
        raise InvalidInput(f"observed_at {observed_at.isoformat()} is in the future.")
    return observed_at


def _recorder(actor: Actor):
    """The person recording a price (None for a system: an API key, the oracle): who may not confirm it."""
    user = actor_user(actor)
    return user if user is not None and user.pk is not None else None


def _make_current(asset: Asset, record: Price, current: CurrentPrice | None) -> None:
    """``record`` becomes the asset's current price unless a newer one is already current."""
    if current is None:
        CurrentPrice.objects.create(asset=asset, price=record)
    elif current.price.observed_at <= record.observed_at:
        current.price = record
        current.save(update_fields=["price"])


@transaction.atomic
def price_record(
    *,
    asset: Asset,
    price: Any,
    source: str,
    actor: Actor,
    currency: str | None = None,
    observed_at: datetime.datetime | None = None,
    band_check: bool = True,
) -> Price:
    """Record an observed price; it becomes the current price unless a newer one is already current. A price
    further than the asset's band from the current one is held (``PriceStatus.UNCONFIRMED``) until a second
    person confirms it (``price_confirm``), and used by nothing before. ``band_check=False`` is for the crypto
    oracle, whose median of several venues is its own check."""
    if asset.kind == AssetKind.CASH:
        raise InvalidInput(f"{asset.symbol} is cash: its price is 1 {asset.currency}.")
    currency = currency or asset.currency
    if currency != asset.currency:
        raise InvalidInput(
            f"{asset.symbol} is priced in {asset.currency}, not {currency}.", code="wrong_currency"
        )
    value = parse_amount(price, field="price", positive=True, decimals=10)
    observed = _observed(observed_at)
    current = CurrentPrice.objects.select_for_update().select_related("price").filter(asset=asset).first()
    held = None
    if band_check:
        band = asset.price_band if asset.price_band is not None else settings.PUSHED_PRICE_BAND
        held = price_band_breach(current.price.price if current else None, value, band, unit=currency)
    record = Price.objects.create(
        asset=asset,
        price=value,
        currency=currency,
        source=source,
        observed_at=observed,
        status=PriceStatus.UNCONFIRMED if held else PriceStatus.ACCEPTED,
        held_reason=(held or "")[:300],
        recorded_by=_recorder(actor),
    )
    if held:
        logger.warning("The price %s of %s is held for confirmation: %s", value, asset.symbol, held)
    else:
        _make_current(asset, record, current)
    audit_event_record(
        actor=actor,
        action="price.held" if held else "price.recorded",
        target=asset,
        after={
            "price": str(value),
            "currency": currency,
            "source": source,
            "observed_at": record.observed_at,
            **({"price_id": record.pk, "held_reason": held} if held else {}),
        },
    )
    return record


def fx_rate_in_use(currency: str, quote: str) -> FxRate | None:
    """The newest usable rate of the pair (the one the platform converts with)."""
    return (
        FxRate.objects.filter(currency=currency, quote=quote, status__in=USABLE_PRICE_STATUSES)
        .order_by("-observed_at", "-pk")
        .first()
    )


def fx_rate_doubt(currency: str, quote: str, rate: Decimal, previous: Decimal | None) -> str | None:
    """Why a rate may not be used without a second person's confirmation: outside the pair's peg band, or
    further than ``FX_RATE_BAND`` from the rate in use; None when neither."""
    pair = f"{currency}/{quote}"
    reasons = []
    peg = settings.FX_PEG_BANDS.get(pair)
    if peg is not None:
        reasons.append(peg_band_breach(rate, *peg, pair=pair))
    reasons.append(price_band_breach(previous, rate, settings.FX_RATE_BAND, unit=pair))
    return "; ".join(reason for reason in reasons if reason) or None


@transaction.atomic
def fx_rate_record(
    *,
    currency: str,
    rate: Any,
    source: str,
    actor: Actor,
    quote: str = "HKD",
    observed_at: datetime.datetime | None = None,
    band_check: bool = True,
) -> FxRate:
    """Record an FX rate. One outside its pair's peg band (USD/HKD 7.75–7.85) or further than
    ``FX_RATE_BAND`` from the rate in use is held until a second person confirms it (``fx_rate_confirm``)."""
    if currency not in settings.CURRENCIES or quote not in settings.CURRENCIES:
        raise InvalidInput(f"FX rates are kept for {', '.join(settings.CURRENCIES)} only.")
    value = parse_amount(rate, field="rate", positive=True, decimals=10)
    held = None
    if band_check:
        previous = fx_rate_in_use(currency, quote)
        held = fx_rate_doubt(currency, quote, value, previous.rate if previous else None)
    record = FxRate(
        currency=currency,
        quote=quote,
        rate=value,
        source=source,
        observed_at=_observed(observed_at),
        status=PriceStatus.UNCONFIRMED if held else PriceStatus.ACCEPTED,
        held_reason=(held or "")[:300],
        recorded_by=_recorder(actor),
    )
    validate_model(record)
    record.save()
    if held:
        logger.warning("The %s/%s rate %s is held for confirmation: %s", currency, quote, value, held)
    audit_event_record(
        actor=actor,
        action="fx_rate.held" if held else "fx_rate.recorded",
        target=record,
        after={
            "pair": f"{currency}/{quote}",
            "rate": str(record.rate),
            "source": source,
            **({"held_reason": held} if held else {}),
        },
    )
    return record


def _held_decide(model, pk: int, *, actor: Actor, status: str, note: str):
    """Lock a held price or rate and record the second person's decision on it (four-eyes)."""
    user = actor_user(actor)
    if user is None or not user.is_active or not user.has_perm("collateral.approve_price"):
        raise PermissionRefused(
            f"{getattr(user, 'username', 'This actor')} may not confirm or reject a held price or FX rate."
        )
    record = lock_one(model, pk)
    if record.status != PriceStatus.UNCONFIRMED:
        raise InvalidTransition(
            f"{record} is {record.get_status_display().lower()}: only a held one is confirmed or rejected."
        )
    if record.recorded_by_id == user.pk:
        raise FourEyesViolation(f"You recorded {record}; a second member of staff must confirm or reject it.")
    before = snapshot(record, ["status"])
    record.status, record.decided_by, record.decided_at = status, user, timezone.now()
    record.save(update_fields=["status", "decided_by", "decided_at"])
    return record, before, {"status": status, "held_reason": record.held_reason, "note": note}


@transaction.atomic
def price_confirm(*, price: Price, actor: Actor, note: str = "") -> Price:
    """A second person confirms a held price: it is used from now on (current, unless a newer one is)."""
    record, before, after = _held_decide(
        Price, price.pk, actor=actor, status=PriceStatus.CONFIRMED, note=note
    )
    asset = record.asset
    current = CurrentPrice.objects.select_for_update().select_related("price").filter(asset=asset).first()
    _make_current(asset, record, current)
    audit_event_record(
        actor=actor,
        action="price.confirmed",
        target=asset,
        before=before,
        after={"price_id": record.pk, **after},
    )
    return record


@transaction.atomic
def price_reject(*, price: Price, actor: Actor, note: str = "") -> Price:
    """A second person rejects a held price: it is never used."""
    record, before, after = _held_decide(Price, price.pk, actor=actor, status=PriceStatus.REJECTED, note=note)
    audit_event_record(
        actor=actor,
        action="price.rejected",
        target=record.asset,
        before=before,
        after={"price_id": record.pk, **after},
    )
    return record


@transaction.atomic
def fx_rate_confirm(*, rate: FxRate, actor: Actor, note: str = "") -> FxRate:
    """A second person confirms a held FX rate: it is used from now on, unless a newer one is."""
    record, before, after = _held_decide(
        FxRate, rate.pk, actor=actor, status=PriceStatus.CONFIRMED, note=note
    )
    audit_event_record(actor=actor, action="fx_rate.confirmed", target=record, before=before, after=after)
    return record


@transaction.atomic
def fx_rate_reject(*, rate: FxRate, actor: Actor, note: str = "") -> FxRate:
    """A second person rejects a held FX rate: it is never used."""
    record, before, after = _held_decide(FxRate, rate.pk, actor=actor, status=PriceStatus.REJECTED, note=note)
    audit_event_record(actor=actor, action="fx_rate.rejected", target=record, before=before, after=after)
    return record


# --- pools and deposits --------------------------------------------------------------------------


@transaction.atomic
def pool_open(*, client: Client, actor: Actor) -> CollateralPool:
    existing = CollateralPool.objects.filter(client=client).first()
    if existing is not None:
        return existing
    account = account_for(kind=AccountKind.COLLATERAL, client=client, name=f"Collateral pool of {client}")
    pool = CollateralPool.objects.create(client=client, account=account)
    audit_event_record(actor=actor, action="collateral_pool.opened", target=pool)
    return pool


def parse_quantity(asset: Asset, quantity: Any) -> Decimal:
    return parse_amount(quantity, field="quantity", positive=True, decimals=asset.decimals, unit=asset.symbol)


@transaction.atomic
def collateral_deposit(
    *, pool: CollateralPool, asset: Asset, quantity: Any, actor: Actor, external_reference: str = ""
) -> CollateralMovement:
    """Pledge an asset into a client's pool. A deposit never raises the margin ratio, so it needs no lock
    beyond the ledger's own. A custody reference seen before returns the earlier movement."""
    if external_reference:
        earlier = CollateralMovement.objects.filter(pool=pool, external_reference=external_reference).first()
        if earlier is not None:
            return earlier
    if not asset.eligible:
        raise AssetNotEligible(f"{asset.symbol} is not eligible collateral.")
    _check_crypto(asset.symbol, asset.kind, asset.haircut)
    amount = parse_quantity(asset, quantity)
    return collateral_movement_post(
        pool=pool,
        asset=asset,
        amount=amount,
        kind=MovementKind.DEPOSIT,
        actor=actor,
        external_reference=external_reference,
    )


def collateral_movement_post(
    *,
    pool: CollateralPool,
    asset: Asset,
    amount: Decimal,
    kind: str,
    actor: Actor,
    external_reference: str = "",
) -> CollateralMovement:
    """Post a checked deposit or withdrawal: the ledger transaction between the pool and custody clearing,
    the movement record and its audit event. The caller has validated and locked what it needs."""
    into_pool = amount if kind == MovementKind.DEPOSIT else -amount
    words = "Deposit of {} into {}" if kind == MovementKind.DEPOSIT else "Withdrawal of {} from {}"
    txn = transaction_post(
        kind=TransactionKind.DEPOSIT if kind == MovementKind.DEPOSIT else TransactionKind.WITHDRAWAL,
        legs=[
            LegSpec(pool.account, asset.symbol, into_pool),
            LegSpec(firm_account(AccountKind.CUSTODY_CLEARING), asset.symbol, -into_pool),
        ],
        memo=words.format(f"{amount.normalize():f} {asset.symbol}", pool),
        actor=actor,
    )
    movement = CollateralMovement.objects.create(
        pool=pool,
        kind=kind,
        asset=asset,
        quantity=amount,
        transaction=txn,
        external_reference=external_reference,
        actor_label=txn.actor_label,
    )
    audit_event_record(
        actor=actor,
        action="collateral.deposited" if kind == MovementKind.DEPOSIT else "collateral.withdrawn",
        target=pool,
        after={"asset": asset.symbol, "quantity": str(amount), "transaction": txn.pk},
    )
    return movement


# --- bulk prices (file upload and API) -------------------------------------------------------------


@dataclass(frozen=True)
class PriceRow:
    """One line of a price file or one item of an API push: an asset's price, or an FX rate when
    ``symbol`` is a currency pair such as ``USD/HKD``."""

    symbol: str
    price: Any
    currency: str = ""
    observed_at: datetime.datetime | None = None
    source: str = ""
    line: int = 0


@dataclass(frozen=True)
class RowProblem:
    line: int
    symbol: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line} ({self.symbol or 'no symbol'}): {self.reason}"


class PriceBatchRefused(InvalidInput):
    code = "price_batch_refused"

    def __init__(self, problems: list[RowProblem]):
        super().__init__(
            f"The prices were refused: {len(problems)} bad row(s); nothing was recorded. "
            + "; ".join(str(p) for p in problems),
            details={"rows": [{"line": p.line, "symbol": p.symbol, "reason": p.reason} for p in problems]},
        )
        self.problems = problems


def _check_price_row(row: PriceRow, assets: dict[str, Asset]) -> tuple[str, Any] | str:
    """The row's meaning (("fx", ...) or ("price", ...)) or the reason it is refused."""
    symbol = (row.symbol or "").strip().upper()
    if not symbol:
        return "the symbol is empty"
    if len(row.source or "") > Price._meta.get_field("source").max_length:
        return f"the source is longer than {Price._meta.get_field('source').max_length} characters"
    try:
        value = parse_amount(row.price, field="price", positive=True, decimals=10)
        observed = _observed(row.observed_at)
    except InvalidInput as error:
        return str(error)
    if "/" in symbol:
        currency, _, quote = symbol.partition("/")
        if currency not in settings.CURRENCIES or quote not in settings.CURRENCIES or currency == quote:
            return f"{symbol} is not an FX pair of {', '.join(settings.CURRENCIES)}"
        return ("fx", currency, quote, value, observed)
    asset = assets.get(symbol)
    if asset is None:
        return f"there is no asset {symbol}"
    if asset.kind == AssetKind.CASH:
        return f"{symbol} is cash: its price is 1 {asset.currency}"
    if asset.kind == AssetKind.CRYPTO:
        return f"{symbol} is priced by the crypto oracle, not pushed"
    currency = (row.currency or asset.currency).strip().upper()
    if currency != asset.currency:
        return f"{symbol} is priced in {asset.currency}, not {currency}"
    return ("price", asset, value, observed)


@transaction.atomic
def prices_record_bulk(*, rows: list[PriceRow], source: str, actor: Actor) -> dict[str, Any]:
    """Record securities prices and FX rates all together, or none: every bad row is listed by line and
    reason, and a batch with any bad row is refused whole. A row far from the value in use is recorded but
    held for confirmation, and listed under ``held`` with the reason."""
    if not rows:
        raise InvalidInput("There are no prices to record.", code="empty_batch")
    assets = assets_by_symbol([r.symbol.strip().upper() for r in rows if r.symbol])
    checked, problems = [], []
    for index, row in enumerate(rows, start=1):
        result = _check_price_row(row, assets)
        line = row.line or index
        if isinstance(result, str):
            problems.append(RowProblem(line, (row.symbol or "").strip(), result))
        else:
            checked.append((line, row, result))
    if problems:
        raise PriceBatchRefused(problems)
    counts: dict[str, Any] = {"prices": 0, "fx_rates": 0, "held": []}
    for line, row, meaning in checked:
        row_source = row.source or source
        if meaning[0] == "fx":
            _, currency, quote, value, observed = meaning
            record = fx_rate_record(
                currency=currency,
                quote=quote,
                rate=value,
                source=row_source,
                actor=actor,
                observed_at=observed,
            )
            counts["fx_rates"] += 1
            symbol = f"{currency}/{quote}"
        else:
            _, asset, value, observed = meaning
            record = price_record(
                asset=asset, price=value, source=row_source, actor=actor, observed_at=observed
            )
            counts["prices"] += 1
            symbol = asset.symbol
        if record.status == PriceStatus.UNCONFIRMED:
            counts["held"].append(
                {"line": line, "symbol": symbol, "price": value, "reason": record.held_reason}
            )
    return counts


# --- price files (admin upload) -------------------------------------------------------------------


def price_rows_check(*, rows: list[PriceRow]) -> list[RowProblem]:
    """Every reason ``prices_record_bulk`` would refuse these rows for, without recording anything: a
    file upload reports them together with its own parse problems."""
    assets = assets_by_symbol([r.symbol.strip().upper() for r in rows if r.symbol])
    problems = []
    for index, row in enumerate(rows, start=1):
        result = _check_price_row(row, assets)
        if isinstance(result, str):
            problems.append(RowProblem(row.line or index, (row.symbol or "").strip(), result))
    return problems


@transaction.atomic
def price_file_record(
    *, rows: list[PriceRow], file_name: str, file_sha256: str, actor: Actor
) -> dict[str, Any]:
    """Record an uploaded price file whole or not at all, and audit the file itself (name and digest)
    next to the audit event of every price and rate it brought."""
    counts = prices_record_bulk(rows=rows, source=f"file {file_name}"[:100], actor=actor)
    audit_event_record(
        actor=actor,
        action="price_file.recorded",
        after={
            "file": file_name,
            "sha256": file_sha256,
            "rows": len(rows),
            "prices": counts["prices"],
            "fx_rates": counts["fx_rates"],
            "held": len(counts["held"]),
        },
    )
    return counts
