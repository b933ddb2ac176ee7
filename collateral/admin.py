from __future__ import annotations

import csv
import datetime
import hashlib
import io
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from collateral import services
from collateral.custody import custody_holding_receive, custody_holding_release
from collateral.enums import AssetKind, CustodyMovementKind, PriceStatus
from collateral.models import (
    Asset,
    CollateralMovement,
    CollateralPool,
    CustodyMovement,
    FxRate,
    Price,
    PriceQuote,
)
from collateral.oracle import crypto_assets, oracle_rules, price_venues
from collateral.selectors import (
    age_in_words,
    assets_freshness,
    current_prices,
    custody_holdings_valued,
    fx_rates_latest,
    held_fx_rates,
    held_prices,
    pool_valuation_of,
    price_doubts,
    price_quotes_latest,
)
from collateral.services import PriceBatchRefused, PriceRow, RowProblem
from core.admin import AddOnlyAdminMixin, ReadOnlyAdminMixin, ServiceAdminMixin, run_for_each
from core.exceptions import DomainError
from core.forms import PlainDecimalField
from core.money import format_hkd, format_percent


def plain(amount: Decimal | None) -> str:
    """A decimal as written, without trailing zeros or an exponent: 98000, 7.785."""
    return "" if amount is None else f"{amount.normalize():f}"


class AssetForm(forms.ModelForm):
    symbol = forms.CharField(
        max_length=20, required=False, help_text="e.g. 0700.HK, BTC, HKD (new assets only)"
    )
    decimals = forms.IntegerField(
        min_value=0, max_value=18, required=False, help_text="BTC 8, ETH 18, shares 0"
    )
    requested_haircut = PlainDecimalField(
        required=False,
        max_digits=6,
        decimal_places=4,
        label="Request a new haircut",
        help_text="A fraction (0.65 = 65%). Takes effect when a second member of staff approves it.",
    )
    request_reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    class Meta:
        model = Asset
        fields = [
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


@admin.register(Asset)
class AssetAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = AssetForm
    list_display = [
        "symbol",
        "name",
        "kind",
        "currency",
        "haircut_percent",
        "concentration_limit",
        "eligible",
        "price",
    ]
    list_filter = ["kind", "eligible", "currency"]
    search_fields = ["instrument__code", "name"]

    def get_readonly_fields(self, request, obj=None):
        return ["kind", "currency", "haircut"] if obj else []

    def get_fields(self, request, obj=None):
        if obj:
            return ["name", "kind", "currency", "haircut", "requested_haircut", "request_reason", "lot_size",
                    "concentration_limit", "eligible", "sale_rank", "price_band"]  # fmt: skip
        return ["symbol", "name", "kind", "currency", "decimals", "lot_size", "haircut", "concentration_limit",
                "eligible", "sale_rank", "price_band"]  # fmt: skip

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="haircut", ordering="haircut")
    def haircut_percent(self, asset: Asset) -> str:
        return format_percent(asset.haircut)

    @admin.display(description="current price")
    def price(self, asset: Asset) -> str:
        if asset.kind == "cash":
            return f"1 {asset.currency}"
        quote = current_prices([asset.symbol]).get(asset.symbol)
        return (
            f"{quote.price.normalize():f} {quote.currency} ({quote.source}, {quote.observed_at:%H:%M:%S})"
            if quote
            else "—"
        )

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            services.asset_update(
                asset=obj,
                actor=request.user,
                **{
                    name: data[name]
                    for name in (
                        "name",
                        "lot_size",
                        "concentration_limit",
                        "eligible",
                        "sale_rank",
                        "price_band",
                    )
                },
            )
            if data.get("requested_haircut") is not None:
                approval = services.haircut_change_request(
                    asset=obj,
                    haircut=data["requested_haircut"],
                    actor=request.user,
                    reason=data["request_reason"],
                )
                self.message_user(
                    request, f"Haircut change submitted for approval as request #{approval.pk}."
                )
        else:
            created = services.asset_create(
                symbol=data["symbol"],
                name=data["name"],
                kind=data["kind"],
                currency=data["currency"],
                decimals=data["decimals"] if data["decimals"] is not None else 0,
                haircut=data["haircut"],
                lot_size=data["lot_size"],
                concentration_limit=data["concentration_limit"],
                eligible=data["eligible"],
                sale_rank=data["sale_rank"],
                price_band=data["price_band"],
                actor=request.user,
            )
            obj.pk = created.pk


# --- price files -----------------------------------------------------------------------------------

PRICE_FILE_COLUMNS = ("symbol", "price", "currency", "observed_at", "source")
PRICE_FILE_MAX_BYTES = 2 * 1024 * 1024
PRICE_FILE_MAX_ROWS = 10_000
SOURCE_MAX_LENGTH = Price._meta.get_field("source").max_length


def _observed_at(value: str) -> tuple[datetime.datetime | None, str]:
    """An ISO-8601 time with its zone, or empty for now; or the reason it cannot be read."""
    if not value:
        return None, ""
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None, (
            f"observed_at {value!r} is not an ISO-8601 date and time (e.g. 2026-11-20T16:10:00+08:00)"
        )
    if timezone.is_naive(moment):
        return None, f"observed_at {value} has no time zone: add one, e.g. {value}+08:00"
    return moment, ""


def _refused(line: int, reason: str) -> tuple[list[PriceRow], list[RowProblem]]:
    return [], [RowProblem(line, "", reason)]


def _header_problem(header: list[str]) -> str:
    missing = [name for name in PRICE_FILE_COLUMNS if name not in header]
    unknown = list(dict.fromkeys(name for name in header if name not in PRICE_FILE_COLUMNS))
    repeated = sorted({name for name in header if name in PRICE_FILE_COLUMNS and header.count(name) > 1})
    found = [
        *([f"missing {', '.join(missing)}"] if missing else []),
        *([f"unknown {', '.join(repr(name) for name in unknown)}"] if unknown else []),
        *([f"repeated {', '.join(repeated)}"] if repeated else []),
    ]
    if not found:
        return ""
    return f"the first line must be the header {','.join(PRICE_FILE_COLUMNS)} (any order): {'; '.join(found)}"


def price_file_read(data: bytes) -> tuple[list[PriceRow], list[RowProblem]]:
    """The rows of a price file (CSV, UTF-8, a header naming symbol, price, currency, observed_at and
    source in any order), and every line that cannot be read, with its number and the reason."""
    empty = f"the file is empty: it needs the header {','.join(PRICE_FILE_COLUMNS)} and one line per price"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        return _refused(
            line, f"the file is not UTF-8 text (byte 0x{data[error.start]:02x}): save it as CSV UTF-8"
        )
    if not text.strip():
        return _refused(1, empty)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[PriceRow] = []
    problems: list[RowProblem] = []
    try:
        header = [name.strip().lower() for name in next(reader)]
        if problem := _header_problem(header):
            return _refused(1, problem)
        for record in reader:
            line = reader.line_num
            if not any(field.strip() for field in record):
                continue  # a blank line
            if len(rows) + len(problems) >= PRICE_FILE_MAX_ROWS:
                return _refused(line, f"the file has more than {PRICE_FILE_MAX_ROWS} prices: split it")
            position = header.index("symbol")
            symbol = record[position].strip() if len(record) > position else ""
            if len(record) != len(header):
                problems.append(
                    RowProblem(line, symbol, f"{len(record)} fields, but the header has {len(header)}")
                )
                continue
            # Cells are trimmed, but the price is taken as written: an amount is plain digits, unpadded.
            values = {
                name: field if name == "price" else field.strip()
                for name, field in zip(header, record, strict=True)
            }
            observed_at, problem = _observed_at(values["observed_at"])
            if not problem and len(values["source"]) > SOURCE_MAX_LENGTH:
                problem = f"the source is longer than {SOURCE_MAX_LENGTH} characters"
            if problem:
                problems.append(RowProblem(line, symbol, problem))
                continue
            rows.append(
                PriceRow(
                    symbol=values["symbol"],
                    price=values["price"],
                    currency=values["currency"],
                    observed_at=observed_at,
                    source=values["source"],
                    line=line,
                )
            )
    except csv.Error as error:
        problems.append(RowProblem(reader.line_num, "", f"the file is not valid CSV here: {error}"))
    if not rows and not problems:
        problems.append(RowProblem(2, "", "the file has a header but no prices"))
    return rows, problems


class PriceFileForm(forms.Form):
    file = forms.FileField(
        allow_empty_file=True,  # refused by price_file_read with the other reasons, in the same words
        label="Price file (CSV)",
        help_text="UTF-8 CSV with the header symbol,price,currency,observed_at,source",
    )


def _recorded_words(rows: list[PriceRow], limit: int = 20) -> str:
    items = [f"{row.symbol.strip().upper()} {row.price}" for row in rows]
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


class HeldForConfirmationAdminMixin:
    """Prices and FX rates held by the sanity check: listed with their status and reason, confirmed or
    rejected by a second person (a risk officer) with the actions."""

    actions = ["confirm", "reject"]

    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm("collateral.approve_price")

    def _held_message(self, request, record) -> None:
        if record.status == PriceStatus.UNCONFIRMED:
            self.message_user(
                request,
                f"Held for confirmation, not used until a second person confirms it: {record.held_reason}.",
                level=messages.WARNING,
            )

    def _decide(self, request, queryset, service, done: str) -> None:
        run_for_each(self, request, queryset, lambda record: service(record, request.user), done)

    @admin.action(description="Confirm the selected held prices (second person)", permissions=["approve"])
    def confirm(self, request, queryset):
        self._decide(request, queryset, self.confirm_service, "confirmed: used from now on")

    @admin.action(description="Reject the selected held prices (second person)", permissions=["approve"])
    def reject(self, request, queryset):
        self._decide(request, queryset, self.reject_service, "rejected: never used")


@admin.register(Price)
class PriceAdmin(HeldForConfirmationAdminMixin, AddOnlyAdminMixin, ServiceAdminMixin, admin.ModelAdmin):
    list_display = [
        "asset",
        "price",
        "currency",
        "status",
        "held_reason",
        "source",
        "observed_at",
        "recorded_at",
    ]
    list_filter = ["status", "asset", "source"]
    date_hierarchy = "observed_at"
    fields = ["asset", "price", "currency", "source", "observed_at"]

    @staticmethod
    def confirm_service(record, user):
        return services.price_confirm(price=record, actor=user)

    @staticmethod
    def reject_service(record, user):
        return services.price_reject(price=record, actor=user)

    def get_urls(self):
        upload = path("upload/", self.admin_site.admin_view(self.upload_view), name="collateral_price_upload")
        return [upload, *super().get_urls()]

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        record = services.price_record(
            asset=data["asset"],
            price=data["price"],
            currency=data["currency"],
            source=data["source"] or f"admin:{request.user.username}",
            observed_at=data["observed_at"],
            actor=request.user,
        )
        obj.pk = record.pk
        self._held_message(request, record)

    def upload_view(self, request):
        """Securities prices and FX rates from a CSV file: recorded all together, or, when any line is
        bad, nothing at all and every bad line listed with its reason."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        problems: list[RowProblem] = []
        form = PriceFileForm(request.POST, request.FILES) if request.method == "POST" else PriceFileForm()
        if form.is_bound and form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > PRICE_FILE_MAX_BYTES:
                problems = [
                    RowProblem(
                        0, "", f"the file is larger than {PRICE_FILE_MAX_BYTES // 1024 // 1024} MB: split it"
                    )
                ]
            else:
                data = upload.read()
                rows, problems = price_file_read(data)
                if rows:
                    problems = sorted(
                        [*problems, *services.price_rows_check(rows=rows)], key=lambda p: p.line
                    )
                if not problems:
                    try:
                        counts = services.price_file_record(
                            rows=rows,
                            file_name=upload.name,
                            file_sha256=hashlib.sha256(data).hexdigest(),
                            actor=request.user,
                        )
                    except PriceBatchRefused as refusal:
                        problems = refusal.problems
                    except DomainError as error:
                        problems = [RowProblem(0, "", str(error))]
                    else:
                        self.message_user(
                            request,
                            f"Recorded {counts['prices']} price(s) and {counts['fx_rates']} FX rate(s) from "
                            f"{upload.name}: {_recorded_words(rows)}.",
                            level=messages.SUCCESS,
                        )
                        for held in counts["held"]:
                            self.message_user(
                                request,
                                f"Line {held['line']} ({held['symbol']} {plain(held['price'])}) is held for "
                                f"confirmation, not used until a second person confirms it: {held['reason']}.",
                                level=messages.WARNING,
                            )
                        return HttpResponseRedirect(reverse("admin:collateral_price_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Upload prices",
            "form": form,
            "problems": problems,
            "columns": ",".join(PRICE_FILE_COLUMNS),
            "max_rows": PRICE_FILE_MAX_ROWS,
        }
        return TemplateResponse(request, "admin/collateral/price/upload.html", context)


@admin.register(FxRate)
class FxRateAdmin(HeldForConfirmationAdminMixin, AddOnlyAdminMixin, ServiceAdminMixin, admin.ModelAdmin):
    list_display = ["currency", "quote", "rate", "status", "held_reason", "source", "observed_at"]
    list_filter = ["status", "currency", "quote"]
    fields = ["currency", "quote", "rate", "source", "observed_at"]

    @staticmethod
    def confirm_service(record, user):
        return services.fx_rate_confirm(rate=record, actor=user)

    @staticmethod
    def reject_service(record, user):
        return services.fx_rate_reject(rate=record, actor=user)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        record = services.fx_rate_record(
            currency=data["currency"],
            quote=data["quote"],
            rate=data["rate"],
            source=data["source"] or f"admin:{request.user.username}",
            observed_at=data["observed_at"],
            actor=request.user,
        )
        obj.pk = record.pk
        self._held_message(request, record)


class MovementInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CollateralMovement
    fields = ["created_at", "kind", "asset", "quantity", "external_reference", "actor_label"]
    readonly_fields = fields
    extra = 0
    show_change_link = True


@admin.register(CollateralPool)
class CollateralPoolAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["client", "market_value", "margin_value", "positions_count"]
    search_fields = ["client__reference", "client__name"]
    list_select_related = ["client", "account"]
    readonly_fields = [
        "client",
        "account",
        "valuation_table",
        "market_value",
        "margin_value",
        "free_holdings",
    ]
    fields = readonly_fields
    inlines = [MovementInline]

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("collateral.view_collateralpool")

    def _valuation(self, pool):
        cache = getattr(self, "_valuation_cache", {})
        if pool.pk not in cache:
            cache[pool.pk] = pool_valuation_of(pool)
            self._valuation_cache = cache
        return cache[pool.pk]

    def changelist_view(self, request, extra_context=None):
        self._valuation_cache = {}
        return super().changelist_view(request, extra_context)

    @admin.display(description="market value")
    def market_value(self, pool) -> str:
        return format_hkd(self._valuation(pool).market_value)

    @admin.display(description="margin value")
    def margin_value(self, pool) -> str:
        return format_hkd(self._valuation(pool).margin_value)

    @admin.display(description="positions")
    def positions_count(self, pool) -> int:
        return len(self._valuation(pool).positions)

    @admin.display(description="positions and valuation")
    def valuation_table(self, pool) -> str:
        valuation = pool_valuation_of(pool)
        header = mark_safe(
            "<tr><th>asset</th><th>quantity</th><th>market value</th><th>margin value</th><th>above limit</th></tr>"
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    p.symbol + ("" if p.priced else " (no price: counts for nothing)"),
                    f"{p.quantity.normalize():f}",
                    format_hkd(p.market_value),
                    format_hkd(p.margin_value),
                    format_hkd(p.excess_over_limit) if p.excess_over_limit else "",
                )
                for p in valuation.positions
            ),
        )
        return format_html("<table>{}{}</table>", header, rows)

    @admin.display(description="free custody holdings (not pledged)")
    def free_holdings(self, pool) -> str:
        holdings = custody_holdings_valued(pool.client)
        if not holdings:
            return "none"
        header = mark_safe("<tr><th>asset</th><th>quantity</th><th>market value</th><th>eligible</th></tr>")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    h.symbol,
                    f"{h.quantity.normalize():f}",
                    format_hkd(h.market_value) if h.market_value is not None else "no price",
                    "yes" if h.eligible else "no",
                )
                for h in holdings
            ),
        )
        return format_html("<table>{}{}</table>", header, rows)


# --- free custody holdings: the custody feed, entered by operations ------------------------------------


class CustodyMovementForm(forms.ModelForm):
    class Meta:
        model = CustodyMovement
        fields = ["client", "kind", "asset", "quantity", "external_reference"]


@admin.register(CustodyMovement)
class CustodyMovementAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """What the broker's custody system reports received into or released from a client's free holdings,
    recorded by hand when the feed is down. Entered through the custody services, never edited."""

    form = CustodyMovementForm
    list_display = ["created_at", "client", "kind", "asset", "quantity", "external_reference", "actor_label"]
    list_filter = ["kind", "asset", "created_at"]
    search_fields = ["client__reference", "client__name", "external_reference"]
    list_select_related = ["client"]
    autocomplete_fields = ["client"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        service = (
            custody_holding_receive
            if data["kind"] == CustodyMovementKind.RECEIVED
            else custody_holding_release
        )
        movement = service(
            client=data["client"],
            asset=data["asset"],
            quantity=data["quantity"],
            actor=request.user,
            external_reference=data["external_reference"],
        )
        obj.pk = movement.pk


# --- price quotes and the price-health page ------------------------------------------------------------


@admin.register(PriceQuote)
class PriceQuoteAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["received_at", "venue", "asset", "market", "price", "currency", "quoted_at", "status",
                    "error_short", "chosen_price"]  # fmt: skip
    list_filter = ["status", "venue", "asset"]
    list_select_related = ["chosen_price"]
    date_hierarchy = "received_at"
    search_fields = ["=refresh_id"]
    fields = ["refresh_id", "venue", "asset", "market", "price", "currency", "quoted_at", "received_at",
              "status", "error", "chosen_price"]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="reason or error")
    def error_short(self, quote: PriceQuote) -> str:
        return quote.error if len(quote.error) <= 120 else quote.error[:119] + "…"

    def get_urls(self):
        health = path(
            "health/", self.admin_site.admin_view(self.health_view), name="collateral_pricequote_health"
        )
        return [health, *super().get_urls()]

    def health_view(self, request):
        """For each venue and crypto asset the last quote, and for each asset its current price and
        whether it may be acted on. Every staff role may read it."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        config_error, venues, rules = "", [], None
        try:
            venues = price_venues()
            rules = oracle_rules(venues)
        except ImproperlyConfigured as error:
            config_error = str(error)
        cryptos = list(crypto_assets())
        latest = price_quotes_latest([(v.name, s) for v in venues for s in cryptos if s in v.markets])
        venue_rows = []
        for venue in venues:
            for symbol in cryptos:
                if symbol not in venue.markets:
                    continue
                quote = latest[(venue.name, symbol)]
                venue_rows.append(
                    {
                        "venue": venue,
                        "symbol": symbol,
                        "market": venue.markets[symbol],
                        "quote": quote,
                        "price": plain(quote.price) if quote else "",
                        "age": age_in_words(now - quote.quoted_at) if quote and quote.quoted_at else "",
                        "received_age": age_in_words(now - quote.received_at) if quote else "",
                    }
                )
        assets = [a for a in Asset.objects.select_related("instrument") if a.kind != AssetKind.CASH]
        freshness = assets_freshness(assets, now=now)
        doubts = price_doubts(assets)
        prices = current_prices([a.symbol for a in assets])
        checked = dict(
            Asset.objects.filter(current_price__isnull=False).values_list("pk", "current_price__checked_at")
        )
        asset_rows = [
            {
                "asset": asset,
                "quote": prices.get(asset.symbol),
                "price": plain(prices[asset.symbol].price) if asset.symbol in prices else "",
                "age": age_in_words(now - prices[asset.symbol].observed_at) if asset.symbol in prices else "",
                "checked_at": checked.get(asset.symbol),
                "freshness": freshness[asset.symbol],
                "doubt": doubts.get(asset.symbol, ""),
            }
            for asset in assets
        ]
        fx_rows = [
            {
                "rate": rate,
                "value": plain(rate.rate),
                "age": age_in_words(now - rate.observed_at),
                "is_fresh": now - rate.observed_at <= settings.FX_MAX_AGE,
            }
            for _, rate in sorted(fx_rates_latest().items())
        ]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Price health",
            "now": now,
            "config_error": config_error,
            "rules": rules,
            "staleness_seconds": int(rules.staleness.total_seconds()) if rules else None,
            "security_max_age": age_in_words(settings.SECURITY_PRICE_MAX_AGE),
            "fx_max_age": age_in_words(settings.FX_MAX_AGE),
            "venue_rows": venue_rows,
            "asset_rows": asset_rows,
            "fx_rows": fx_rows,
            "held_rows": [
                {"what": p.asset_id, "value": f"{plain(p.price)} {p.currency}", "record": p}
                for p in held_prices()
            ]
            + [
                {"what": f"{r.currency}/{r.quote}", "value": plain(r.rate), "record": r}
                for r in held_fx_rates()
            ],
        }
        return TemplateResponse(request, "admin/collateral/price_health.html", context)
