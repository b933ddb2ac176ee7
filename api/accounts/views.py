"""API: clients and credit profiles (a limit changes only through a four-eyes approval request)."""

from __future__ import annotations

import django_filters
from django.contrib.contenttypes.models import ContentType
from django.db.models import CharField, OuterRef, Subquery
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.enums import ApprovalStatus, ClientKind, InternalRating, KycStatus
from accounts.exceptions import FourEyesRequired
from accounts.models import ApprovalRequest, Client, CreditProfile
from accounts.services import (
    ASSESSMENT_FIELDS,
    CREDIT_LIMIT_CHANGE,
    client_assessment_change_request,
    client_create,
    client_update,
    credit_limit_change_request,
    credit_profile_create,
)
from api.accounts.serializers import (
    ApprovalRequestOut,
    AssessmentChangeIn,
    ClientChange,
    ClientIn,
    ClientOut,
    CreditProfileIn,
    CreditProfileOut,
    LimitChangeIn,
)
from api.enums import Scope
from api.exceptions import StaffSessionRequired
from api.filters import FilterSet, IdFilter, TimeFilter
from api.permissions import Rule
from api.views import ApiViewSet, validated


class ClientFilter(FilterSet):
    reference = django_filters.CharFilter(max_length=20)
    name = django_filters.CharFilter(lookup_expr="icontains", max_length=200, help_text="part of the name")
    kind = django_filters.ChoiceFilter(choices=ClientKind.choices)
    kyc_status = django_filters.ChoiceFilter(choices=KycStatus.choices)
    created_after = TimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Client
        fields = ["reference", "name", "kind", "kyc_status"]


class ClientViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Clients of the broker. A client user sees only their own client."""

    read_rule = Rule(Scope.READ, "accounts.view_client", client_users=True)
    write_rules = {
        "create": Rule(Scope.ADMIN, "accounts.add_client"),
        "partial_update": Rule(Scope.ADMIN, "accounts.change_client"),
        "assessment_change_requests": Rule(Scope.ADMIN, "accounts.change_client"),
    }
    client_field = "pk"
    serializer_class = ClientOut
    filterset_class = ClientFilter
    ordering_fields = ["reference", "name", "created_at"]
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        return self.scoped(Client.objects.all())

    @extend_schema(
        request=ClientIn,
        responses={201: ClientOut},
        summary="Onboard a client",
        description=(
            "The client's record: name, kind, e-mail, reference. It starts with KYC pending and no "
            "professional-investor evidence, so not eligible; both are set only through an assessment change "
            "request a second member of staff approves. Sent here they are refused with 403 "
            "`four_eyes_required`, and nothing is written."
        ),
    )
    def create(self, request):
        sent = sorted(set(request.data) & set(ASSESSMENT_FIELDS)) if isinstance(request.data, dict) else []
        if sent:
            raise FourEyesRequired(
                f"{', '.join(sent)} cannot be set when a client is created: the KYC status and the "
                "professional-investor evidence are set only through an assessment change request that a second "
                "member of staff approves (POST /api/v1/clients/{id}/assessment-change-requests/). Nothing was "
                "written.",
                details={"fields": sent},
            )
        client = client_create(actor=self.caller.actor, **validated(ClientIn, request))
        return Response(ClientOut(client).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=ClientChange,
        responses=ClientOut,
        summary="Change a client's details",
        description=(
            "Name, kind and e-mail change at once. The KYC status and the professional-investor evidence change "
            "only through an assessment change request a second member of staff approves: sent here they are "
            "refused with 403 `four_eyes_required`, and nothing is changed."
        ),
    )
    def partial_update(self, request, pk=None):
        client = self.get_object()
        client = client_update(client=client, actor=self.caller.actor, **validated(ClientChange, request))
        return Response(ClientOut(client).data)

    @extend_schema(
        request=AssessmentChangeIn,
        responses={201: ApprovalRequestOut},
        summary="Ask for a new KYC status or professional-investor evidence (four-eyes)",
        description=(
            "Creates an approval request; the client changes only when a second member of staff with the "
            "permission approves it in the staff admin. A four-eyes request needs a named person as its maker, "
            "so only staff logged in with a session may ask: an API key gets 403 `staff_session_required`."
        ),
    )
    @action(detail=True, methods=["post"], url_path="assessment-change-requests")
    def assessment_change_requests(self, request, pk=None):
        client = self.get_object()
        if self.caller.api_key is not None:
            raise StaffSessionRequired(
                "A change of a client's KYC status or professional-investor evidence is a four-eyes request made "
                "by a named member of staff; log in to ask for one. An API key cannot."
            )
        data = validated(AssessmentChangeIn, request)
        reason = data.pop("reason")
        approval = client_assessment_change_request(
            client=client, actor=self.caller.actor, reason=reason, **data
        )
        return Response(ApprovalRequestOut(approval).data, status=status.HTTP_201_CREATED)


class CreditProfileFilter(FilterSet):
    client = IdFilter(field_name="client_id")
    internal_rating = django_filters.ChoiceFilter(choices=InternalRating.choices)
    review_before = django_filters.DateFilter(field_name="next_review_on", lookup_expr="lt")

    class Meta:
        model = CreditProfile
        fields = ["client", "internal_rating"]


class CreditProfileViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Credit profiles: rating, approved credit limit, next review. Created with no credit; a member of staff
    asks for a credit limit, and it takes effect when a second member of staff approves it."""

    read_rule = Rule(Scope.READ, "accounts.view_creditprofile", client_users=True)
    write_rules = {
        "create": Rule(Scope.ADMIN, "accounts.add_creditprofile"),
        "limit_change_requests": Rule(Scope.ADMIN, "accounts.change_creditprofile"),
    }
    client_field = "client"
    serializer_class = CreditProfileOut
    filterset_class = CreditProfileFilter
    ordering_fields = ["client__reference", "credit_limit", "next_review_on"]
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator, with no database to ask
            return CreditProfile.objects.none()
        pending = ApprovalRequest.objects.filter(
            kind=CREDIT_LIMIT_CHANGE.key,
            target_type=ContentType.objects.get_for_model(CreditProfile),
            target_id=Cast(OuterRef("pk"), CharField()),
            status=ApprovalStatus.PENDING,
        )
        queryset = CreditProfile.objects.select_related("client").annotate(
            pending_request_id=Subquery(pending.values("pk")[:1]),
            pending_credit_limit=Subquery(
                pending.annotate(limit=KeyTextTransform("credit_limit", "proposed")).values("limit")[:1]
            ),
        )
        return self.scoped(queryset)

    @extend_schema(
        request=CreditProfileIn,
        responses={201: CreditProfileOut},
        summary="Create a client's credit profile",
        description=(
            "The rating and the next review date; the credit limit starts at zero and is set by a limit "
            "change request a second member of staff approves. Refused: 400 `duplicate_credit_profile`."
        ),
    )
    def create(self, request):
        data = validated(CreditProfileIn, request)
        profile = credit_profile_create(actor=self.caller.actor, **data)
        return Response(
            CreditProfileOut(self.get_queryset().get(pk=profile.pk)).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        request=LimitChangeIn,
        responses={201: ApprovalRequestOut},
        summary="Ask for a new credit limit (four-eyes)",
        description=(
            "Creates an approval request; the limit changes only when a second member of staff with the "
            "permission approves it in the staff admin. A four-eyes request needs a named person as its maker, "
            "so only staff logged in with a session may ask: an API key gets 403 `staff_session_required`."
        ),
    )
    @action(detail=True, methods=["post"], url_path="limit-change-requests")
    def limit_change_requests(self, request, pk=None):
        profile = self.get_object()
        if self.caller.api_key is not None:
            raise StaffSessionRequired(
                "A credit-limit change is a four-eyes request made by a named member of staff; "
                "log in to ask for one. An API key cannot."
            )
        data = validated(LimitChangeIn, request)
        approval = credit_limit_change_request(
            profile=profile, credit_limit=data["credit_limit"], actor=self.caller.actor, reason=data["reason"]
        )
        return Response(ApprovalRequestOut(approval).data, status=status.HTTP_201_CREATED)
