"""API representations of clients, credit profiles and limit-change requests."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.enums import ClientKind, InternalRating, KycStatus
from accounts.models import ApprovalRequest, Client, CreditProfile
from api.fields import BoundedDateField, MoneyOutField, money_field


class ClientOut(serializers.ModelSerializer):
    email = serializers.CharField(read_only=True, help_text="may be empty")
    pi_portfolio_value = MoneyOutField(allow_null=True, help_text="HKD; professional-investor evidence")
    pi_total_assets = MoneyOutField(allow_null=True, help_text="HKD; professional-investor evidence")
    currency = serializers.SerializerMethodField(help_text="the currency of every amount: HKD")
    eligible = serializers.SerializerMethodField(help_text="eligible for financing today")
    eligibility_reasons = serializers.SerializerMethodField(help_text="why not, in words")

    class Meta:
        model = Client
        fields = [
            "id",
            "reference",
            "name",
            "kind",
            "email",
            "kyc_status",
            "currency",
            "pi_portfolio_value",
            "pi_total_assets",
            "pi_assessed_on",
            "pi_expires_on",
            "eligible",
            "eligibility_reasons",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_currency(self, client) -> str:
        return "HKD"

    def _eligibility(self, client):
        cache = self.context.setdefault("eligibility", {})
        if client.pk not in cache:
            cache[client.pk] = client.eligibility()
        return cache[client.pk]

    def get_eligible(self, client) -> bool:
        return self._eligibility(client).eligible

    def get_eligibility_reasons(self, client) -> list[str]:
        return list(self._eligibility(client).reasons)


class ClientIn(serializers.Serializer):
    reference = serializers.RegexField(
        r"^[A-Z0-9][A-Z0-9-]{0,19}$",
        required=False,
        help_text="the broker's own reference (upper-case letters, digits, dashes); assigned when left out",
    )
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=ClientKind.choices)
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True, default="")


class ClientChange(serializers.Serializer):
    """A partial change: only the fields sent are changed. The KYC status and the professional-investor
    evidence are refused here (403 `four_eyes_required`): ask for them with an assessment change request."""

    name = serializers.CharField(max_length=200, required=False)
    kind = serializers.ChoiceField(choices=ClientKind.choices, required=False)
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True)
    kyc_status = serializers.ChoiceField(choices=KycStatus.choices, required=False)
    pi_portfolio_value = money_field(required=False, allow_null=True)
    pi_total_assets = money_field(required=False, allow_null=True)
    pi_assessed_on = BoundedDateField(required=False, allow_null=True)
    pi_expires_on = BoundedDateField(required=False, allow_null=True)


class AssessmentChangeIn(serializers.Serializer):
    """The new KYC status or professional-investor evidence; only the fields sent are asked for."""

    kyc_status = serializers.ChoiceField(choices=KycStatus.choices, required=False)
    pi_portfolio_value = money_field(required=False, allow_null=True)
    pi_total_assets = money_field(required=False, allow_null=True)
    pi_assessed_on = BoundedDateField(required=False, allow_null=True)
    pi_expires_on = BoundedDateField(
        required=False, allow_null=True, help_text="default: the validity period after the assessment"
    )
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class PendingLimitChange(serializers.Serializer):
    id = serializers.IntegerField()
    credit_limit = serializers.CharField()


class CreditProfileOut(serializers.ModelSerializer):
    client_reference = serializers.CharField(source="client.reference", read_only=True)
    credit_limit = MoneyOutField(help_text="HKD: the approved credit limit")
    currency = serializers.SerializerMethodField()
    pending_limit_change = serializers.SerializerMethodField(
        help_text="the limit change waiting for a second member of staff, if any"
    )

    class Meta:
        model = CreditProfile
        fields = [
            "id",
            "client",
            "client_reference",
            "internal_rating",
            "credit_limit",
            "currency",
            "next_review_on",
            "pending_limit_change",
            "updated_at",
        ]
        read_only_fields = fields

    def get_currency(self, profile) -> str:
        return "HKD"

    @extend_schema_field(PendingLimitChange(allow_null=True))
    def get_pending_limit_change(self, profile):
        pk = getattr(profile, "pending_request_id", None)
        if pk is None:
            return None
        return {"id": pk, "credit_limit": profile.pending_credit_limit}


class CreditProfileIn(serializers.Serializer):
    """A new credit profile: its limit starts at zero and is set by a limit change request (four-eyes)."""

    client = serializers.PrimaryKeyRelatedField(queryset=Client.objects.all(), help_text="the client's id")
    internal_rating = serializers.ChoiceField(choices=InternalRating.choices)
    next_review_on = BoundedDateField(help_text="when the credit view is to be reviewed")


class LimitChangeIn(serializers.Serializer):
    credit_limit = money_field(positive=True, help_text="the proposed credit limit, HKD")
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class ApprovalRequestOut(serializers.ModelSerializer):
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    decided_by = serializers.CharField(source="decided_by.username", read_only=True, allow_null=True)

    class Meta:
        model = ApprovalRequest
        fields = [
            "id",
            "kind",
            "status",
            "target_repr",
            "current",
            "proposed",
            "reason",
            "requested_by",
            "requested_at",
            "decided_by",
            "decided_at",
            "decision_note",
        ]
        read_only_fields = fields
