from decimal import Decimal

from django import forms
from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from collateral import services
from collateral.models import Asset, CollateralMovement, CollateralPool, FxRate, Price
from collateral.selectors import current_prices, pool_valuation_of
from core.admin import ReadOnlyAdminMixin, ServiceAdminMixin
from core.money import format_percent


def hkd(amount: Decimal) -> str:
    return f"HK${amount:,.2f}"


class AssetForm(forms.ModelForm):
    symbol = forms.CharField(
        max_length=20, required=False, help_text="e.g. 0700.HK, BTC, HKD (new assets only)"
    )
    decimals = forms.IntegerField(
        min_value=0, max_value=18, required=False, help_text="BTC 8, ETH 18, shares 0"
    )
    requested_haircut = forms.DecimalField(
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
                    "concentration_limit", "eligible", "sale_rank"]  # fmt: skip
        return ["symbol", "name", "kind", "currency", "decimals", "lot_size", "haircut", "concentration_limit",
                "eligible", "sale_rank"]  # fmt: skip

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
                    for name in ("name", "lot_size", "concentration_limit", "eligible", "sale_rank")
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
                actor=request.user,
            )
            obj.pk = created.pk


@admin.register(Price)
class PriceAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = ["asset", "price", "currency", "source", "observed_at", "recorded_at"]
    list_filter = ["asset", "source"]
    date_hierarchy = "observed_at"
    fields = ["asset", "price", "currency", "source", "observed_at"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

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


@admin.register(FxRate)
class FxRateAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = ["currency", "quote", "rate", "source", "observed_at"]
    list_filter = ["currency", "quote"]
    fields = ["currency", "quote", "rate", "source", "observed_at"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

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
    readonly_fields = ["client", "account", "valuation_table", "market_value", "margin_value"]
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
        return hkd(self._valuation(pool).market_value)

    @admin.display(description="margin value")
    def margin_value(self, pool) -> str:
        return hkd(self._valuation(pool).margin_value)

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
                    hkd(p.market_value),
                    hkd(p.margin_value),
                    hkd(p.excess_over_limit) if p.excess_over_limit else "",
                )
                for p in valuation.positions
            ),
        )
        return format_html("<table>{}{}</table>", header, rows)
