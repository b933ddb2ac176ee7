"""API representations of assets, prices, FX rates and collateral movements."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.fields import (
    AwareDateTimeField,
    PlainDecimalOutField,
    fraction_field,
    price_field,
    quantity_field,
)
from collateral.enums import AssetKind, CustodyMovementKind, MovementKind
from collateral.models import Asset, CollateralMovement, CurrentPrice, CustodyMovement, FxRate

SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$"


class CurrentPriceOut(serializers.ModelSerializer):
    symbol = serializers.CharField(source="asset_id", read_only=True)
    price = PlainDecimalOutField(source="price.price")
    currency = serializers.CharField(source="price.currency", read_only=True)
    source = serializers.CharField(source="price.source", read_only=True)
    observed_at = serializers.DateTimeField(source="price.observed_at", read_only=True)

    class Meta:
        model = CurrentPrice
        fields = [
            "symbol",
            "price",
            "currency",
            "source",
            "observed_at",
            "is_stale",
            "stale_reason",
            "checked_at",
        ]
        read_only_fields = fields


class AssetOut(serializers.ModelSerializer):
    symbol = serializers.CharField(read_only=True)
    decimals = serializers.IntegerField(source="instrument.decimals", read_only=True)
    lot_size = PlainDecimalOutField()
    haircut = PlainDecimalOutField(help_text="a fraction: 0.6 means 60% of market value lends nothing")
    concentration_limit = PlainDecimalOutField(allow_null=True)
    current_price = serializers.SerializerMethodField()

    class Meta:
        model = Asset
        fields = [
            "symbol",
            "name",
            "kind",
            "currency",
            "decimals",
            "lot_size",
            "haircut",
            "concentration_limit",
            "eligible",
            "sale_rank",
            "current_price",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(CurrentPriceOut(allow_null=True))
    def get_current_price(self, asset):
        try:
            current = asset.current_price
        except CurrentPrice.DoesNotExist:
            return None
        return CurrentPriceOut(current).data


class AssetIn(serializers.Serializer):
    symbol = serializers.RegexField(SYMBOL_PATTERN, help_text="e.g. 0700.HK, BTC; stored upper-case")
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=AssetKind.choices)
    currency = serializers.ChoiceField(choices=settings.CURRENCY_CHOICES, help_text="the price currency")
    decimals = serializers.IntegerField(min_value=0, max_value=18, help_text="places a quantity may have")
    haircut = fraction_field(help_text="a fraction: 0.30 = 30%; crypto at least the floor (0.60)")
    lot_size = quantity_field(positive=True, required=False, default="1")
    concentration_limit = fraction_field(required=False, allow_null=True, default=None)
    eligible = serializers.BooleanField(required=False, default=True)
    sale_rank = serializers.IntegerField(min_value=0, max_value=32767, required=False, default=100)


class PriceRowIn(serializers.Serializer):
    symbol = serializers.CharField(
        max_length=20, help_text="an asset symbol (0700.HK) or an FX pair (USD/HKD: HKD per USD)"
    )
    price = price_field(positive=True)
    currency = serializers.CharField(max_length=4, required=False, allow_blank=True, default="")
    observed_at = AwareDateTimeField(required=False, allow_null=True, default=None, help_text="default: now")
    source = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")


class PricesIn(serializers.Serializer):
    source = serializers.CharField(max_length=100, help_text="where the prices come from, e.g. market-data")
    prices = serializers.ListField(child=PriceRowIn(), min_length=1, max_length=1000)


class HeldPriceOut(serializers.Serializer):
    line = serializers.IntegerField(help_text="the item's place in the list, from 1")
    symbol = serializers.CharField()
    price = PlainDecimalOutField()
    reason = serializers.CharField()


class PricesRecordedOut(serializers.Serializer):
    prices_recorded = serializers.IntegerField()
    fx_rates_recorded = serializers.IntegerField()
    held = HeldPriceOut(
        many=True,
        help_text="recorded, but too far from the value in use (or outside a peg band): not used until a second "
        "person confirms them in the staff admin",
    )


class FxRateOut(serializers.ModelSerializer):
    pair = serializers.SerializerMethodField()
    rate = PlainDecimalOutField(help_text="units of quote per unit of currency")

    class Meta:
        model = FxRate
        fields = ["pair", "currency", "quote", "rate", "source", "observed_at"]
        read_only_fields = fields

    def get_pair(self, rate) -> str:
        return f"{rate.currency}/{rate.quote}"


# What a movement of collateral and a movement of free custody holdings show alike.
MOVEMENT_OUT_FIELDS = [
    "id",
    "client",
    "client_reference",
    "kind",
    "asset",
    "quantity",
    "external_reference",
    "made_by",
    "transaction",
    "created_at",
]


class MovementOutFields(serializers.Serializer):
    asset = serializers.CharField(source="asset_id", read_only=True)
    quantity = PlainDecimalOutField()
    made_by = serializers.CharField(source="actor_label", read_only=True)
    transaction = serializers.IntegerField(source="transaction_id", read_only=True)


class CollateralMovementOut(MovementOutFields, serializers.ModelSerializer):
    client = serializers.IntegerField(source="pool.client_id", read_only=True)
    client_reference = serializers.CharField(source="pool.client.reference", read_only=True)

    class Meta:
        model = CollateralMovement
        fields = MOVEMENT_OUT_FIELDS
        read_only_fields = fields


class CollateralMovementIn(serializers.Serializer):
    client = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="the client's id")
    kind = serializers.ChoiceField(choices=MovementKind.choices)
    asset = serializers.RegexField(SYMBOL_PATTERN, help_text="the asset's symbol")
    quantity = quantity_field(positive=True)
    external_reference = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        default="",
        help_text="the custody system's reference: a movement is recorded once per reference and client",
    )


# --- free custody holdings ------------------------------------------------------------------------


class CustodyMovementOut(MovementOutFields, serializers.ModelSerializer):
    client_reference = serializers.CharField(source="client.reference", read_only=True)

    class Meta:
        model = CustodyMovement
        fields = MOVEMENT_OUT_FIELDS
        read_only_fields = fields


class CustodyMovementIn(serializers.Serializer):
    client = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="the client's id")
    kind = serializers.ChoiceField(choices=CustodyMovementKind.choices)
    asset = serializers.RegexField(SYMBOL_PATTERN, help_text="the asset's symbol")
    quantity = quantity_field(positive=True)
    external_reference = serializers.CharField(
        max_length=100,
        help_text="the custody system's reference: a movement is recorded once per reference and client",
    )


class CustodyHoldingOut(serializers.Serializer):
    """What a client holds free (unpledged) at the broker, by asset: the balance of their custody account."""

    client = serializers.IntegerField(source="account.client_id", read_only=True)
    client_reference = serializers.CharField(source="account.client.reference", read_only=True)
    asset = serializers.CharField(source="instrument_id", read_only=True)
    quantity = PlainDecimalOutField(source="amount")
