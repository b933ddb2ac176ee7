"""API: eligible collateral with haircuts, prices and FX (pushed in bulk). Collateral movements are in
``financing.apis``: whether a withdrawal may happen depends on the client's debt."""

from __future__ import annotations

import django_filters
from django.db.models import OuterRef, Subquery
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.response import Response

from api.enums import Scope
from api.filters import BooleanFilter, FilterSet, TimeFilter
from api.permissions import Rule
from api.views import ApiViewSet, validated
from collateral.enums import AssetKind
from collateral.models import Asset, CurrentPrice, FxRate
from collateral.serializers import (
    SYMBOL_PATTERN,
    AssetIn,
    AssetOut,
    CurrentPriceOut,
    FxRateOut,
    PricesIn,
    PricesRecordedOut,
)
from collateral.services import PriceRow, asset_create, prices_record_bulk

SYMBOL_IN_PATH = SYMBOL_PATTERN.strip("^$")


class AssetFilter(FilterSet):
    kind = django_filters.ChoiceFilter(choices=AssetKind.choices)
    eligible = BooleanFilter()
    currency = django_filters.CharFilter(max_length=4)

    class Meta:
        model = Asset
        fields = ["kind", "eligible", "currency"]


class AssetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Acceptable collateral: securities, BTC and ETH, and cash, each with its haircut and limits. Haircut
    changes go through a four-eyes approval in the staff admin."""

    read_rule = Rule(Scope.READ, "collateral.view_asset", client_users=True)
    write_rules = {"create": Rule(Scope.ADMIN, "collateral.add_asset")}
    serializer_class = AssetOut
    filterset_class = AssetFilter
    ordering_fields = ["name", "kind", "haircut", "sale_rank", "created_at"]
    lookup_field = "instrument_id"
    lookup_url_kwarg = "symbol"
    lookup_value_regex = SYMBOL_IN_PATH

    def get_queryset(self):
        return Asset.objects.select_related("instrument", "current_price__price")

    def get_object(self):
        self.kwargs[self.lookup_url_kwarg] = self.kwargs[self.lookup_url_kwarg].upper()
        return super().get_object()

    @extend_schema(request=AssetIn, responses={201: AssetOut}, summary="Add an asset to the collateral list")
    def create(self, request):
        asset = asset_create(actor=self.caller.actor, **validated(AssetIn, request))
        return Response(AssetOut(self.get_queryset().get(pk=asset.pk)).data, status=status.HTTP_201_CREATED)


class PriceFilter(FilterSet):
    symbol = django_filters.CharFilter(field_name="asset_id", max_length=20)
    kind = django_filters.ChoiceFilter(field_name="asset__kind", choices=AssetKind.choices)
    is_stale = BooleanFilter()
    observed_after = TimeFilter(field_name="price__observed_at", lookup_expr="gte")

    class Meta:
        model = CurrentPrice
        fields = ["symbol", "kind", "is_stale"]


class PriceViewSet(mixins.ListModelMixin, ApiViewSet):
    """The price each asset is valued at now (GET), and the bulk push of securities prices and FX rates from
    the broker's market-data system (POST). A batch is recorded whole or not at all: one bad row refuses it
    with every bad row listed (``price_batch_refused``). BTC and ETH are priced by the crypto oracle and
    cannot be pushed."""

    read_rule = Rule(Scope.READ, "collateral.view_price", client_users=True)
    write_rules = {"create": Rule(Scope.PRICES, "collateral.add_price")}
    serializer_class = CurrentPriceOut
    filterset_class = PriceFilter
    ordering_fields = ["asset_id", "price__observed_at"]
    ordering = ["asset_id"]

    def get_queryset(self):
        return CurrentPrice.objects.select_related("price", "asset")

    @extend_schema(
        request=PricesIn,
        responses={201: PricesRecordedOut},
        summary="Push securities prices and FX rates",
    )
    def create(self, request):
        data = validated(PricesIn, request)
        rows = [
            PriceRow(
                symbol=row["symbol"],
                price=row["price"],
                currency=row["currency"],
                observed_at=row["observed_at"],
                source=row["source"],
                line=index,
            )
            for index, row in enumerate(data["prices"], start=1)
        ]
        counts = prices_record_bulk(rows=rows, source=data["source"], actor=self.caller.actor)
        return Response(
            {"prices_recorded": counts["prices"], "fx_rates_recorded": counts["fx_rates"]},
            status=status.HTTP_201_CREATED,
        )


class FxRateFilter(FilterSet):
    currency = django_filters.CharFilter(max_length=4)
    quote = django_filters.CharFilter(max_length=4)

    class Meta:
        model = FxRate
        fields = ["currency", "quote"]


class FxRateViewSet(mixins.ListModelMixin, ApiViewSet):
    """The FX rate in use now for each currency pair (the newest observed). Push new rates through
    ``prices`` with a pair as the symbol (``USD/HKD``)."""

    read_rule = Rule(Scope.READ, "collateral.view_fxrate", client_users=True)
    serializer_class = FxRateOut
    filterset_class = FxRateFilter
    ordering_fields = ["currency", "quote", "observed_at"]
    ordering = ["currency", "quote"]

    def get_queryset(self):
        newest = FxRate.objects.filter(currency=OuterRef("currency"), quote=OuterRef("quote")).order_by(
            "-observed_at", "-pk"
        )
        return FxRate.objects.filter(pk=Subquery(newest.values("pk")[:1]))
