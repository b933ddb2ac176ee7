"""API: margin policies. Created and changed with the ``risk`` scope; a change of thresholds (or of which
policy is the default) is a four-eyes request a second risk officer approves."""

from __future__ import annotations

import django_filters
from django.contrib.contenttypes.models import ContentType
from django.db.models import CharField, OuterRef, Subquery
from django.db.models.functions import Cast
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.enums import ApprovalStatus
from accounts.models import ApprovalRequest
from api.accounts.serializers import ApprovalRequestOut
from api.collateral.serializers import SYMBOL_PATTERN
from api.enums import Scope
from api.exceptions import StaffSessionRequired
from api.fields import DecimalStringField, PlainDecimalOutField, fraction_field
from api.filters import FilterSet
from api.permissions import Rule
from api.views import ApiViewSet, validated
from financing.lending.policies import (
    MARGIN_POLICY_CHANGE,
    POLICY_FIELDS,
    THRESHOLD_FIELDS,
    margin_policy_change,
    margin_policy_change_request,
    margin_policy_create,
)
from financing.models import MarginPolicy


@extend_schema_field(
    {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$", "example": "12:00:00"}
)
class LocalTimeField(serializers.TimeField):
    """A wall-clock time in Hong Kong, ``HH:MM[:SS]`` without an offset (JSON Schema's ``time`` format
    demands one)."""

    def __init__(self, **kwargs):
        super().__init__(format="%H:%M:%S", input_formats=["%H:%M:%S", "%H:%M"], **kwargs)


def threshold_field(**kwargs) -> DecimalStringField:
    """A threshold on the margin ratio, as a fraction with four places (1.2000 = 120%)."""
    return DecimalStringField(decimal_places=4, whole_digits=2, positive=True, **kwargs)


class PendingPolicyChange(serializers.Serializer):
    id = serializers.IntegerField()
    proposed = serializers.DictField()


class MarginPolicyOut(serializers.ModelSerializer):
    max_advance = PlainDecimalOutField(help_text="a drawdown or withdrawal may not lift the ratio above this")
    warning = PlainDecimalOutField()
    margin_call = PlainDecimalOutField(help_text="a margin call is issued above this")
    forced_sale = PlainDecimalOutField(help_text="a forced sale is started above this")
    target = PlainDecimalOutField(help_text="where a cure or a forced sale must bring the ratio")
    sale_cost_rate = PlainDecimalOutField(help_text="fees and slippage assumed when sizing a sale")
    sale_order = serializers.ListField(child=serializers.CharField(), read_only=True)
    cure_time = LocalTimeField(read_only=True, help_text="Hong Kong time on the cure day")
    pending_change = serializers.SerializerMethodField(
        help_text="the threshold change waiting for a second risk officer, if any"
    )

    class Meta:
        model = MarginPolicy
        fields = [
            "id",
            *POLICY_FIELDS,
            "pending_change",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(PendingPolicyChange(allow_null=True))
    def get_pending_change(self, policy):
        pk = getattr(policy, "pending_request_id", None)
        if pk is None:
            return None
        return {"id": pk, "proposed": policy.pending_proposed}


class MarginPolicyTerms(serializers.Serializer):
    """What changes at once: the name, the cure period and the terms of a forced sale."""

    cure_business_days = serializers.IntegerField(min_value=1, max_value=30, required=False)
    cure_time = LocalTimeField(required=False, help_text="Hong Kong time on the cure day")
    sale_cost_rate = fraction_field(required=False)
    sale_order = serializers.ListField(
        child=serializers.RegexField(SYMBOL_PATTERN),
        required=False,
        max_length=50,
        help_text="symbols in the order they are sold; empty: BTC, ETH, then securities by haircut",
    )
    requires_sale_approval = serializers.BooleanField(required=False)


class MarginPolicyIn(MarginPolicyTerms):
    """A new policy (never the default at once: that is a change request). Thresholds left out take the
    platform's defaults (85%, 90%, 100%, 120%, target 85%)."""

    name = serializers.CharField(max_length=100)
    is_default = serializers.BooleanField(
        required=False, help_text="true is refused (403 `four_eyes_required`): ask with a change request"
    )
    max_advance = threshold_field(required=False)
    warning = threshold_field(required=False)
    margin_call = threshold_field(required=False)
    forced_sale = threshold_field(required=False)
    target = threshold_field(required=False)


class MarginPolicyChange(MarginPolicyTerms):
    """A partial change: only the fields sent. Thresholds and ``is_default`` are refused here (403
    ``four_eyes_required``): ask for them with a change request."""

    name = serializers.CharField(max_length=100, required=False)
    max_advance = threshold_field(required=False)
    warning = threshold_field(required=False)
    margin_call = threshold_field(required=False)
    forced_sale = threshold_field(required=False)
    target = threshold_field(required=False)
    is_default = serializers.BooleanField(required=False)


class MarginPolicyChangeRequestIn(serializers.Serializer):
    """New thresholds (only those sent), and/or ``is_default: true``."""

    max_advance = threshold_field(required=False)
    warning = threshold_field(required=False)
    margin_call = threshold_field(required=False)
    forced_sale = threshold_field(required=False)
    target = threshold_field(required=False)
    is_default = serializers.BooleanField(required=False, help_text="true: make this the default policy")
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class MarginPolicyFilter(FilterSet):
    name = django_filters.CharFilter(max_length=100)

    class Meta:
        model = MarginPolicy
        fields = ["name"]


class MarginPolicyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Margin policies: the thresholds on the margin ratio and the terms of a cure and a forced sale."""

    read_rule = Rule(Scope.READ, "financing.view_marginpolicy")
    write_rules = {
        "create": Rule(Scope.RISK, "financing.add_marginpolicy"),
        "partial_update": Rule(Scope.RISK, "financing.change_marginpolicy"),
        "change_requests": Rule(Scope.RISK, "financing.change_marginpolicy"),
    }
    serializer_class = MarginPolicyOut
    filterset_class = MarginPolicyFilter
    ordering_fields = ["name", "updated_at"]
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator, with no database to ask
            return MarginPolicy.objects.none()
        pending = ApprovalRequest.objects.filter(
            kind=MARGIN_POLICY_CHANGE.key,
            target_type=ContentType.objects.get_for_model(MarginPolicy),
            target_id=Cast(OuterRef("pk"), CharField()),
            status=ApprovalStatus.PENDING,
        )
        return MarginPolicy.objects.annotate(
            pending_request_id=Subquery(pending.values("pk")[:1]),
            pending_proposed=Subquery(pending.values("proposed")[:1]),
        )

    def _out(self, policy: MarginPolicy, status_code: int = status.HTTP_200_OK) -> Response:
        return Response(MarginPolicyOut(self.get_queryset().get(pk=policy.pk)).data, status=status_code)

    @extend_schema(
        request=MarginPolicyIn,
        responses={201: MarginPolicyOut},
        summary="Create a margin policy",
        description="Refused: 400 `duplicate_policy`, 400 `invalid` (the thresholds must rise: 0 < max advance "
        "≤ warning ≤ margin call < forced sale, and 0 < target < margin call).",
    )
    def create(self, request):
        data = validated(MarginPolicyIn, request)
        policy = margin_policy_create(actor=self.caller.actor, **data)
        return self._out(policy, status.HTTP_201_CREATED)

    @extend_schema(
        request=MarginPolicyChange,
        responses=MarginPolicyOut,
        summary="Change a margin policy's name, cure period or sale terms",
        description=(
            "These change at once. The thresholds ("
            + ", ".join(THRESHOLD_FIELDS)
            + ") and `is_default` change "
            "only through a change request a second risk officer approves: sent here they are refused with 403 "
            "`four_eyes_required`, and nothing is changed."
        ),
    )
    def partial_update(self, request, pk=None):
        policy = self.get_object()
        policy = margin_policy_change(
            policy=policy, actor=self.caller.actor, **validated(MarginPolicyChange, request)
        )
        return self._out(policy)

    @extend_schema(
        request=MarginPolicyChangeRequestIn,
        responses={201: ApprovalRequestOut},
        summary="Ask for new thresholds, or to make the policy the default (four-eyes)",
        description=(
            "Creates an approval request; the policy changes only when a second risk officer approves it. The "
            "maker must be a named person: only staff logged in with a session may ask; an API key gets 403 "
            "`staff_session_required`. Refused: 409 `duplicate_pending_request`, 400 `no_change`, 400 "
            "`invalid` (thresholds that would not rise)."
        ),
    )
    @action(detail=True, methods=["post"], url_path="change-requests")
    def change_requests(self, request, pk=None):
        policy = self.get_object()
        if self.caller.api_key is not None:
            raise StaffSessionRequired(
                "A change of a margin policy's thresholds is a four-eyes request made by a named member of staff; "
                "log in to ask for one. An API key cannot."
            )
        data = validated(MarginPolicyChangeRequestIn, request)
        reason = data.pop("reason")
        approval = margin_policy_change_request(policy=policy, actor=self.caller.actor, reason=reason, **data)
        return Response(ApprovalRequestOut(approval).data, status=status.HTTP_201_CREATED)
