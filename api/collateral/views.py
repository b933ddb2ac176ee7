"""API: eligible collateral with haircuts, prices and FX (pushed in bulk), and the custody feed of free
(unpledged) holdings. Collateral movements are in ``api.financing.views``: whether a withdrawal may happen
depends on the client's debt."""

from __future__ import annotations

import django_filters
from django.db import IntegrityError
from django.db.models import OuterRef, Subquery
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.response import Response

from accounts.models import Client
from api.collateral.serializers import (
    SYMBOL_PATTERN,
    AssetIn,
    AssetOut,
    CurrentPriceOut,
    CustodyHoldingOut,
    CustodyMovementIn,
    CustodyMovementOut,
    FxRateOut,
    PricesIn,
    PricesRecordedOut,
)
from api.enums import Scope
from api.filters import BooleanFilter, FilterSet, IdFilter, TimeFilter
from api.permissions import Rule
from api.views import ApiViewSet, validated
from collateral.custody import custody_holding_receive, custody_holding_release
from collateral.enums import USABLE_PRICE_STATUSES, AssetKind, CustodyMovementKind
from collateral.models import Asset, CurrentPrice, CustodyMovement, FxRate
from collateral.services import PriceRow, asset_create, prices_record_bulk
from ledger.enums import AccountKind
from ledger.models import Balance

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
        body = {
            "prices_recorded": counts["prices"],
            "fx_rates_recorded": counts["fx_rates"],
            "held": counts["held"],
        }
        return Response(PricesRecordedOut(body).data, status=status.HTTP_201_CREATED)


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
        usable = FxRate.objects.filter(status__in=USABLE_PRICE_STATUSES)  # never one held for confirmation
        newest = usable.filter(currency=OuterRef("currency"), quote=OuterRef("quote")).order_by(
            "-observed_at", "-pk"
        )
        return FxRate.objects.filter(pk=Subquery(newest.values("pk")[:1]))


# --- free custody holdings: the custody feed ----------------------------------------------------------


class CustodyMovementFilter(FilterSet):
    client = IdFilter(field_name="client_id")
    kind = django_filters.ChoiceFilter(choices=CustodyMovementKind.choices)
    asset = django_filters.CharFilter(field_name="asset_id", max_length=20)
    external_reference = django_filters.CharFilter(max_length=100)
    created_after = TimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = CustodyMovement
        fields = ["client", "kind", "asset", "external_reference"]


def movement_client_and_asset(data: dict) -> tuple[Client, Asset]:
    """The client and the asset a movement in a request body names, or a 400 naming what does not exist."""
    client = Client.objects.filter(pk=data["client"]).first()
    if client is None:
        raise serializers.ValidationError({"client": [f"There is no client with id {data['client']}."]})
    symbol = data["asset"].upper()
    asset = Asset.objects.select_related("instrument").filter(pk=symbol).first()
    if asset is None:
        raise serializers.ValidationError({"asset": [f"There is no asset {symbol}."]})
    return client, asset


class CustodyMovementViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """The custody feed: what the broker's custody system reports received into (``received``) or released from
    (``released``) a client's free, unpledged holdings at the broker. Free holdings are the client's own, apart
    from the pledged pool; a standing top-up instruction may move them into the pool at a margin call. A custody
    reference is recorded once per client: sending it again returns the movement already recorded (200), or
    409 ``external_reference_conflict`` if it described a different one. Releasing more than is held free is
    refused (422 ``insufficient_holdings``)."""

    read_rule = Rule(Scope.READ, "collateral.view_custodymovement", client_users=True)
    write_rules = {"create": Rule(Scope.COLLATERAL, "collateral.add_custodymovement")}
    client_field = "client"
    serializer_class = CustodyMovementOut
    filterset_class = CustodyMovementFilter
    ordering_fields = ["created_at", "quantity"]
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        return self.scoped(CustodyMovement.objects.select_related("client"))

    @extend_schema(
        request=CustodyMovementIn,
        responses={
            201: CustodyMovementOut,
            200: OpenApiResponse(CustodyMovementOut, description="already recorded under this reference"),
        },
        summary="Record a custody movement of free holdings",
    )
    def create(self, request):
        data = validated(CustodyMovementIn, request)
        client, asset = movement_client_and_asset(data)
        service = (
            custody_holding_receive
            if data["kind"] == CustodyMovementKind.RECEIVED
            else custody_holding_release
        )
        arguments = {
            "client": client,
            "asset": asset,
            "quantity": data["quantity"],
            "actor": self.caller.actor,
            "external_reference": data["external_reference"],
        }
        reference = data["external_reference"].strip()
        seen = CustodyMovement.objects.filter(client=client, external_reference=reference).exists()
        try:
            movement = service(**arguments)
        except IntegrityError:
            # A concurrent request recorded the same reference first; our savepoint was rolled back. Now the
            # service returns that movement, or refuses a different one.
            if not CustodyMovement.objects.filter(client=client, external_reference=reference).exists():
                raise
            seen, movement = True, service(**arguments)
        return Response(
            CustodyMovementOut(movement).data, status=status.HTTP_200_OK if seen else status.HTTP_201_CREATED
        )


class CustodyHoldingFilter(FilterSet):
    client = IdFilter(field_name="account__client_id")
    asset = django_filters.CharFilter(field_name="instrument_id", max_length=20)

    class Meta:
        model = Balance
        fields = ["client", "asset"]


class CustodyHoldingViewSet(mixins.ListModelMixin, ApiViewSet):
    """What each client holds free (unpledged) at the broker now, by asset: the balance of the client's custody
    account in the ledger, fed by the custody movements. Not collateral: it lends nothing until it is moved
    into the pool."""

    read_rule = Rule(Scope.READ, "collateral.view_custodymovement", client_users=True)
    client_field = "account__client"
    serializer_class = CustodyHoldingOut
    filterset_class = CustodyHoldingFilter
    ordering_fields = ["instrument_id", "amount"]
    ordering = ["account__client_id", "instrument_id"]

    def get_queryset(self):
        return self.scoped(
            Balance.objects.filter(account__kind=AccountKind.CUSTODY, account__client__isnull=False)
            .exclude(amount=0)
            .select_related("account__client")
        )
