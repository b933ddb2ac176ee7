"""API representations of facilities (with their live valuation), drawdowns, repayments, margin calls and
forced sales."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import Client
from api.collateral.serializers import SYMBOL_PATTERN
from api.fields import (
    BoundedDateField,
    DecimalStringField,
    MoneyOutField,
    PlainDecimalOutField,
    RatioOutField,
    decimal_text,
    money_field,
    price_field,
    quantity_field,
)
from collateral.calculations import Cure, cure_amounts
from financing.enums import MarginStatus, PauseReason, RateKind, TopUpTrigger
from financing.models import (
    AutomaticTopUp,
    AutomaticTopUpTransfer,
    Drawdown,
    Facility,
    ForcedSale,
    MarginCall,
    MarginPolicy,
    Repayment,
    SaleFill,
    SaleOrder,
    StandingTopUpInstruction,
)
from financing.selectors import FacilityRead, FacilityValuation

HKD_ONLY = [("HKD", "Hong Kong dollar")]


class ThresholdsOut(serializers.Serializer):
    max_advance = RatioOutField(help_text="a drawdown or withdrawal may not lift the ratio above this")
    warning = RatioOutField()
    margin_call = RatioOutField(help_text="a margin call is issued above this")
    forced_sale = RatioOutField()
    target = RatioOutField(help_text="where a cure or a forced sale must bring the ratio")


class PositionOut(serializers.Serializer):
    symbol = serializers.CharField()
    quantity = PlainDecimalOutField()
    market_value = MoneyOutField()
    margin_value = MoneyOutField()
    priced = serializers.BooleanField(help_text="false: no price or FX rate, so it counts for nothing")


class FacilityOut(serializers.ModelSerializer):
    """A facility and where it stands now. The valuation is computed live when the facility is read, from the
    current prices, FX rates, haircuts and ledger balances."""

    client_reference = serializers.CharField(source="client.reference", read_only=True)
    limit = MoneyOutField(help_text="HKD: the most principal that may be outstanding")
    currency = serializers.SerializerMethodField()
    fixed_rate = PlainDecimalOutField(allow_null=True, help_text="a fraction a year: 0.065 = 6.5%")
    spread = PlainDecimalOutField(help_text="over the base rate, a fraction a year")
    policy = serializers.SerializerMethodField(help_text="the margin policy's name")
    market_value = serializers.SerializerMethodField()
    margin_value = serializers.SerializerMethodField()
    debt = serializers.SerializerMethodField()
    principal_outstanding = serializers.SerializerMethodField()
    interest_accrued = serializers.SerializerMethodField()
    fees_unpaid = serializers.SerializerMethodField()
    margin_ratio = serializers.SerializerMethodField()
    market_ltv = serializers.SerializerMethodField()
    margin_surplus = serializers.SerializerMethodField()
    margin_deficiency = serializers.SerializerMethodField()
    margin_status = serializers.SerializerMethodField()
    available_to_draw = serializers.SerializerMethodField()
    repayment_to_target = serializers.SerializerMethodField()
    top_up_to_target = serializers.SerializerMethodField()
    thresholds = serializers.SerializerMethodField()
    positions = serializers.SerializerMethodField()
    open_margin_call = serializers.SerializerMethodField()
    valued_at = serializers.SerializerMethodField()

    class Meta:
        model = Facility
        fields = [
            "id",
            "reference",
            "client",
            "client_reference",
            "status",
            "opened_on",
            "limit",
            "currency",
            "rate_kind",
            "fixed_rate",
            "base_rate_name",
            "spread",
            "policy",
            "market_value",
            "margin_value",
            "debt",
            "principal_outstanding",
            "interest_accrued",
            "fees_unpaid",
            "margin_ratio",
            "market_ltv",
            "margin_surplus",
            "margin_deficiency",
            "margin_status",
            "available_to_draw",
            "repayment_to_target",
            "top_up_to_target",
            "thresholds",
            "positions",
            "open_margin_call",
            "valued_at",
        ]
        read_only_fields = fields

    def _valuation(self, facility) -> FacilityValuation:
        return self.context["valuations"][facility.pk]

    def _money(self, amount) -> str:
        return MoneyOutField().to_representation(amount)

    def _ratio(self, ratio) -> str | None:
        return RatioOutField().to_representation(ratio)

    def get_currency(self, facility) -> str:
        return "HKD"

    def get_policy(self, facility) -> str | None:
        return facility.policy.name if facility.policy_id else None

    @extend_schema_field(MoneyOutField(help_text="Σ quantity × price × FX, HKD"))
    def get_market_value(self, facility):
        return self._money(self._valuation(facility).market_value)

    @extend_schema_field(
        MoneyOutField(help_text="Σ market value × (1 − haircut), after concentration limits")
    )
    def get_margin_value(self, facility):
        return self._money(self._valuation(facility).margin_value)

    @extend_schema_field(MoneyOutField(help_text="principal + accrued interest + unpaid fees"))
    def get_debt(self, facility):
        return self._money(self._valuation(facility).debt.total)

    @extend_schema_field(MoneyOutField())
    def get_principal_outstanding(self, facility):
        return self._money(self._valuation(facility).debt.principal)

    @extend_schema_field(MoneyOutField())
    def get_interest_accrued(self, facility):
        return self._money(self._valuation(facility).debt.interest)

    @extend_schema_field(MoneyOutField())
    def get_fees_unpaid(self, facility):
        return self._money(self._valuation(facility).debt.fees)

    @extend_schema_field(
        RatioOutField(
            allow_null=True,
            help_text="debt / margin value as a fraction (0.85000000 = 85%); 0 without debt; "
            "null means infinite: debt and no margin value",
        )
    )
    def get_margin_ratio(self, facility):
        return self._ratio(self._valuation(facility).margin_ratio)

    @extend_schema_field(RatioOutField(allow_null=True, help_text="debt / market value; null means infinite"))
    def get_market_ltv(self, facility):
        return self._ratio(self._valuation(facility).market_ltv)

    @extend_schema_field(MoneyOutField(help_text="margin value − debt; negative when in deficiency"))
    def get_margin_surplus(self, facility):
        return self._money(self._valuation(facility).margin_surplus)

    @extend_schema_field(MoneyOutField(help_text="debt − margin value when positive, else 0"))
    def get_margin_deficiency(self, facility):
        return self._money(self._valuation(facility).margin_deficiency)

    @extend_schema_field(serializers.ChoiceField(choices=MarginStatus.choices))
    def get_margin_status(self, facility):
        return str(self._valuation(facility).status)

    @extend_schema_field(MoneyOutField(help_text="the most that can be drawn now before max advance"))
    def get_available_to_draw(self, facility):
        return self._money(self._valuation(facility).available_to_draw)

    def _cure(self, facility) -> Cure:
        valuation = self._valuation(facility)
        return cure_amounts(valuation.debt.total, valuation.margin_value, valuation.thresholds.target)

    @extend_schema_field(
        MoneyOutField(
            help_text="a repayment of this much brings the margin ratio down to the policy's target; 0.00 when "
            "the ratio is at or below target (with or without a margin call)"
        )
    )
    def get_repayment_to_target(self, facility):
        return self._money(self._cure(facility).repayment)

    @extend_schema_field(
        MoneyOutField(
            help_text="or a cash top-up of this much (cash has no haircut); 0.00 at or below target"
        )
    )
    def get_top_up_to_target(self, facility):
        exact = self.context.get("cash_top_ups", {}).get(facility.pk)
        return self._money(exact if exact is not None else self._cure(facility).cash_top_up)

    @extend_schema_field(ThresholdsOut())
    def get_thresholds(self, facility):
        return ThresholdsOut(self._valuation(facility).thresholds).data

    @extend_schema_field(PositionOut(many=True))
    def get_positions(self, facility):
        return PositionOut(self._valuation(facility).valuation.positions, many=True).data

    @extend_schema_field(serializers.IntegerField(allow_null=True, help_text="the open margin call's id"))
    def get_open_margin_call(self, facility):
        call = self.context["open_margin_calls"].get(facility.pk)
        return call.pk if call is not None else None

    @extend_schema_field(serializers.DateTimeField())
    def get_valued_at(self, facility):
        return serializers.DateTimeField().to_representation(self.context["valued_at"])


_MONEY, _RATIO, _DATETIME = MoneyOutField(), RatioOutField(), serializers.DateTimeField()


def facility_representation(read: FacilityRead, *, cash_top_up: Decimal | None, valued_at) -> dict:
    """What ``FacilityOut`` writes for one facility, built directly from ``financing.selectors.facility_read``
    (a read of one facility is the API's busiest call: a serializer's per-call set-up of thirty fields costs
    more than the valuation). ``FacilityOut`` stays the schema and the list's writer; a test holds the two
    equal, field for field. ``cash_top_up``: the exact cash top-up to target where one was worked out
    (``_exact_cash_top_ups``), else None."""
    valuation = read.valuation
    debt, margin_value, thresholds = valuation.debt, valuation.margin_value, valuation.thresholds
    money, ratio = _MONEY.to_representation, _RATIO.to_representation
    cure = cure_amounts(debt.total, margin_value, thresholds.target)
    return {
        "id": read.id,
        "reference": read.reference,
        "client": read.client_id,
        "client_reference": read.client_reference,
        "status": read.status,
        "opened_on": read.opened_on.isoformat(),
        "limit": money(read.limit),
        "currency": "HKD",
        "rate_kind": read.rate_kind,
        "fixed_rate": decimal_text(read.fixed_rate),
        "base_rate_name": read.base_rate_name,
        "spread": decimal_text(read.spread),
        "policy": read.policy_name,
        "market_value": money(valuation.market_value),
        "margin_value": money(margin_value),
        "debt": money(debt.total),
        "principal_outstanding": money(debt.principal),
        "interest_accrued": money(debt.interest),
        "fees_unpaid": money(debt.fees),
        "margin_ratio": ratio(valuation.margin_ratio),
        "market_ltv": ratio(valuation.market_ltv),
        "margin_surplus": money(valuation.margin_surplus),
        "margin_deficiency": money(valuation.margin_deficiency),
        "margin_status": str(valuation.status),
        "available_to_draw": money(valuation.available_to_draw),
        "repayment_to_target": money(cure.repayment),
        "top_up_to_target": money(cash_top_up if cash_top_up is not None else cure.cash_top_up),
        "thresholds": {
            "max_advance": ratio(thresholds.max_advance),
            "warning": ratio(thresholds.warning),
            "margin_call": ratio(thresholds.margin_call),
            "forced_sale": ratio(thresholds.forced_sale),
            "target": ratio(thresholds.target),
        },
        "positions": [
            {
                "symbol": position.symbol,
                "quantity": decimal_text(position.quantity),
                "market_value": money(position.market_value),
                "margin_value": money(position.margin_value),
                "priced": position.priced,
            }
            for position in valuation.valuation.positions
        ],
        "open_margin_call": read.open_margin_call_id,
        "valued_at": _DATETIME.to_representation(valued_at),
    }


class DrawdownOut(serializers.ModelSerializer):
    facility_reference = serializers.CharField(source="facility.reference", read_only=True)
    amount = MoneyOutField()
    currency = serializers.SerializerMethodField()
    margin_ratio_after = RatioOutField(allow_null=True, help_text="null: infinite")
    made_by = serializers.CharField(source="actor_label", read_only=True)
    transaction = serializers.IntegerField(source="transaction_id", read_only=True)

    class Meta:
        model = Drawdown
        fields = [
            "id",
            "facility",
            "facility_reference",
            "amount",
            "currency",
            "margin_ratio_after",
            "made_by",
            "transaction",
            "created_at",
        ]
        read_only_fields = fields

    def get_currency(self, drawdown) -> str:
        return "HKD"


class RepaymentOut(serializers.ModelSerializer):
    facility_reference = serializers.CharField(source="facility.reference", read_only=True)
    amount = MoneyOutField()
    to_fees = MoneyOutField()
    to_interest = MoneyOutField()
    to_principal = MoneyOutField()
    currency = serializers.SerializerMethodField()
    made_by = serializers.CharField(source="actor_label", read_only=True)
    transaction = serializers.IntegerField(source="transaction_id", read_only=True)

    class Meta:
        model = Repayment
        fields = [
            "id",
            "facility",
            "facility_reference",
            "amount",
            "to_fees",
            "to_interest",
            "to_principal",
            "currency",
            "made_by",
            "transaction",
            "created_at",
        ]
        read_only_fields = fields

    def get_currency(self, repayment) -> str:
        return "HKD"


class FacilityIdField(serializers.PrimaryKeyRelatedField):
    """A facility's id, checked here for its type only: the service's lock looks the facility up (and the
    view answers a missing one as ``PrimaryKeyRelatedField`` does), one query fewer than a look-up here and
    the lock after it. Documented as the related field it stands for."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("incorrect_type", data_type=type(data).__name__)
        try:
            return Facility._meta.pk.to_python(data)
        except (DjangoValidationError, TypeError, ValueError):
            self.fail("incorrect_type", data_type=type(data).__name__)


class CashMovementIn(serializers.Serializer):
    """A drawdown or a repayment: an amount in HKD on a facility."""

    facility = serializers.PrimaryKeyRelatedField(
        queryset=Facility.objects.none(), help_text="the facility's id"
    )
    amount = money_field(positive=True, help_text='HKD as a string, e.g. "250000.00"')
    currency = serializers.ChoiceField(choices=HKD_ONLY, required=False, default="HKD")

    def __init__(self, *args, facilities=None, **kwargs):
        super().__init__(*args, **kwargs)
        if facilities is not None:
            self.fields["facility"].queryset = facilities


class DrawdownIn(CashMovementIn):
    """A drawdown: an amount in HKD on a facility (the facility's id, looked up by the drawdown's lock)."""

    facility = FacilityIdField(queryset=Facility.objects.none(), help_text="the facility's id")


class MarginCallOut(serializers.ModelSerializer):
    facility_reference = serializers.CharField(source="facility.reference", read_only=True)
    ratio_at_issue = RatioOutField(allow_null=True, help_text="null: infinite")
    debt_at_issue = MoneyOutField()
    margin_value_at_issue = MoneyOutField()
    repayment_due = MoneyOutField(help_text="a repayment of this much brings the ratio to target")
    top_up_due = MoneyOutField(help_text="or a cash top-up of this much")
    currency = serializers.SerializerMethodField()

    class Meta:
        model = MarginCall
        fields = [
            "id",
            "facility",
            "facility_reference",
            "status",
            "ratio_at_issue",
            "debt_at_issue",
            "margin_value_at_issue",
            "repayment_due",
            "top_up_due",
            "currency",
            "deadline",
            "issued_at",
            "escalated_at",
            "closed_at",
            "close_reason",
        ]
        read_only_fields = fields

    def get_currency(self, call) -> str:
        return "HKD"


class SaleOrderOut(serializers.ModelSerializer):
    asset = serializers.CharField(source="asset_id", read_only=True)
    quantity = PlainDecimalOutField()
    limit_price = PlainDecimalOutField(allow_null=True)
    filled_quantity = PlainDecimalOutField()
    fees = PlainDecimalOutField(help_text="in the price currency")

    class Meta:
        model = SaleOrder
        fields = [
            "id",
            "client_order_id",
            "asset",
            "route",
            "venue",
            "quantity",
            "status",
            "limit_price",
            "price_currency",
            "filled_quantity",
            "fees",
            "placed_at",
            "closed_at",
        ]
        read_only_fields = fields


class ForcedSaleOut(serializers.ModelSerializer):
    facility_reference = serializers.CharField(source="facility.reference", read_only=True)
    ratio_at_request = RatioOutField(allow_null=True, help_text="null: infinite")
    shortfall = PlainDecimalOutField(help_text="HKD left unsecured when the pool ran out")
    proceeds = PlainDecimalOutField(help_text="HKD received so far, after fees")
    orders = SaleOrderOut(many=True, read_only=True)
    pause_reason = serializers.ChoiceField(
        choices=PauseReason.choices,
        allow_blank=True,
        read_only=True,
        help_text="why it is paused; empty when it is not",
    )

    class Meta:
        model = ForcedSale
        fields = [
            "id",
            "facility",
            "facility_reference",
            "margin_call",
            "trigger",
            "status",
            "pause_reason",
            "ratio_at_request",
            "requested_at",
            "closed_at",
            "status_reason",
            "shortfall",
            "proceeds",
            "orders",
        ]
        read_only_fields = fields


class SaleFillIn(serializers.Serializer):
    """A fill of a securities sell order, reported by the broker's order system."""

    client_order_id = serializers.CharField(max_length=64)
    fill_id = serializers.CharField(
        max_length=100, help_text="the order system's id for this fill; sent twice, recorded once"
    )
    quantity = quantity_field()
    price = price_field()
    fee = money_field(required=False, default=Decimal(0), help_text="in the order's price currency")


class SaleFillOut(serializers.ModelSerializer):
    client_order_id = serializers.CharField(source="order.client_order_id", read_only=True)
    fill_id = serializers.CharField(source="fill_key", read_only=True)
    quantity = PlainDecimalOutField()
    price = PlainDecimalOutField()
    fee = PlainDecimalOutField()
    proceeds = PlainDecimalOutField(help_text="HKD, after the fee")

    class Meta:
        model = SaleFill
        fields = ["id", "client_order_id", "fill_id", "quantity", "price", "fee", "proceeds", "created_at"]
        read_only_fields = fields


# --- automatic top-up ---


class StandingTopUpInstructionOut(serializers.ModelSerializer):
    client_reference = serializers.CharField(source="client.reference", read_only=True)
    asset_order = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="the assets moved after cash (HKD, then other currencies), in this order",
    )
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    signed_off_by = serializers.CharField(source="signed_off_by.username", read_only=True, allow_null=True)
    revoked_by = serializers.CharField(source="revoked_by.username", read_only=True, allow_null=True)

    class Meta:
        model = StandingTopUpInstruction
        fields = [
            "id",
            "client",
            "client_reference",
            "status",
            "trigger",
            "asset_order",
            "requested_by",
            "requested_at",
            "signed_off_by",
            "signed_off_at",
            "revoked_by",
            "revoked_at",
            "revoke_reason",
        ]
        read_only_fields = fields


class StandingTopUpInstructionIn(serializers.Serializer):
    client = serializers.PrimaryKeyRelatedField(queryset=Client.objects.none(), help_text="the client's id")
    trigger = serializers.ChoiceField(
        choices=TopUpTrigger.choices,
        required=False,
        default=TopUpTrigger.MARGIN_CALL,
        help_text="margin_call: when a margin call is issued; warning: already at the warning level",
    )
    asset_order = serializers.ListField(
        child=serializers.RegexField(SYMBOL_PATTERN),
        required=False,
        default=list,
        max_length=20,
        help_text="non-cash assets that may be moved after cash, in order; cash always goes first",
    )
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    def __init__(self, *args, clients=None, **kwargs):
        super().__init__(*args, **kwargs)
        if clients is not None:
            self.fields["client"].queryset = clients


class RevokeIn(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class TopUpTransferOut(serializers.ModelSerializer):
    asset = serializers.CharField(source="asset_id", read_only=True)
    quantity = PlainDecimalOutField()
    market_value = MoneyOutField(help_text="HKD at the valuation price")

    class Meta:
        model = AutomaticTopUpTransfer
        fields = ["asset", "quantity", "market_value"]
        read_only_fields = fields


class SkippedHoldingOut(serializers.Serializer):
    asset = serializers.CharField()
    reason = serializers.CharField()


class AutomaticTopUpOut(serializers.ModelSerializer):
    """One run of a standing instruction: what moved from the client's free custody holdings into the pool (cash
    first, then the client's assets in order, just enough to reach the target), or that nothing could."""

    facility_reference = serializers.CharField(source="facility.reference", read_only=True)
    transfers = TopUpTransferOut(many=True, read_only=True)
    debt = MoneyOutField()
    margin_value_before = MoneyOutField()
    margin_value_after = MoneyOutField()
    ratio_before = RatioOutField(allow_null=True, help_text="null: infinite")
    ratio_after = RatioOutField(allow_null=True, help_text="null: infinite")
    still_due_repayment = MoneyOutField(
        help_text="a repayment of this much would still be needed to reach target"
    )
    still_due_top_up = MoneyOutField(help_text="or a cash top-up of this much")
    currency = serializers.SerializerMethodField()
    skipped = SkippedHoldingOut(
        many=True, read_only=True, help_text="free holdings not moved, with the reason"
    )
    made_by = serializers.CharField(source="actor_label", read_only=True)
    transaction = serializers.IntegerField(source="transaction_id", read_only=True, allow_null=True)

    class Meta:
        model = AutomaticTopUp
        fields = [
            "id",
            "facility",
            "facility_reference",
            "instruction",
            "margin_call",
            "trigger",
            "outcome",
            "transfers",
            "debt",
            "margin_value_before",
            "margin_value_after",
            "ratio_before",
            "ratio_after",
            "still_due_repayment",
            "still_due_top_up",
            "currency",
            "skipped",
            "made_by",
            "transaction",
            "created_at",
        ]
        read_only_fields = fields

    def get_currency(self, top_up) -> str:
        return "HKD"


# --- the facility's lifecycle ---


def rate_input_field(**kwargs):
    return DecimalStringField(
        decimal_places=settings.RATE_DECIMAL_PLACES,
        whole_digits=settings.RATE_MAX_DIGITS - settings.RATE_DECIMAL_PLACES,
        **kwargs,
    )


class FacilityIn(serializers.Serializer):
    """Open a facility: a limit, a fixed rate or a base rate plus a spread, and a margin policy."""

    client = serializers.PrimaryKeyRelatedField(queryset=Client.objects.all(), help_text="the client's id")
    limit = money_field(positive=True, help_text="HKD: the most principal that may be outstanding")
    rate_kind = serializers.ChoiceField(choices=RateKind.choices, required=False, default=RateKind.FIXED)
    fixed_rate = rate_input_field(
        required=False, allow_null=True, default=None, help_text="for rate_kind fixed: 0.065 = 6.5% a year"
    )
    base_rate_name = serializers.CharField(
        max_length=30,
        required=False,
        allow_blank=True,
        default="",
        help_text="for rate_kind floating: the base rate's name, e.g. HIBOR-1M",
    )
    spread = rate_input_field(
        required=False, default=Decimal(0), help_text="over the base rate, a fraction a year"
    )
    policy = serializers.PrimaryKeyRelatedField(
        queryset=MarginPolicy.objects.all(),
        required=False,
        allow_null=True,
        default=None,
        help_text="the margin policy's id; null: the default policy",
    )
    reference = serializers.RegexField(
        r"^[A-Z0-9][A-Z0-9-]{0,19}$", required=False, help_text="assigned (F000123) when left out"
    )
    opened_on = BoundedDateField(required=False, help_text="default: today in Hong Kong")


class FacilityLimitChangeIn(serializers.Serializer):
    limit = money_field(positive=True, help_text="the proposed facility limit, HKD")
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class FacilityStatusIn(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
