"""API: facilities with their live valuation, drawdowns, repayments, collateral movements (deposits and
withdrawals), margin calls and forced sales, standing top-up instructions and automatic top-ups."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import django_filters
from django.db import IntegrityError
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, permissions, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.models import Client
from api.accounts.serializers import ApprovalRequestOut
from api.authentication import caller_of
from api.collateral.serializers import CollateralMovementIn, CollateralMovementOut
from api.collateral.views import movement_client_and_asset
from api.enums import Scope
from api.exceptions import ExternalReferenceConflict, StaffSessionRequired
from api.filters import MAX_ID, FilterSet, IdFilter, TimeFilter
from api.financing.serializers import (
    AutomaticTopUpOut,
    CashMovementIn,
    DrawdownIn,
    DrawdownOut,
    FacilityIdField,
    FacilityIn,
    FacilityLimitChangeIn,
    FacilityOut,
    FacilityStatusIn,
    ForcedSaleOut,
    MarginCallOut,
    RepaymentOut,
    RevokeIn,
    SaleFillIn,
    SaleFillOut,
    StandingTopUpInstructionIn,
    StandingTopUpInstructionOut,
    facility_representation,
)
from api.idempotency import HEADER as IDEMPOTENCY_HEADER
from api.permissions import CallerAccess, Rule
from api.views import ApiViewSet, validated
from collateral.calculations import ratio_above
from collateral.enums import MovementKind
from collateral.models import Asset, CollateralMovement, CollateralPool
from collateral.services import pool_open
from core.exceptions import NotFound
from financing.enums import (
    FacilityStatus,
    ForcedSaleStatus,
    ForcedSaleTrigger,
    InstructionStatus,
    MarginCallStatus,
    TopUpOutcome,
    TopUpTrigger,
)
from financing.exceptions import WithdrawalRefused
from financing.lending.services import (
    collateral_top_up,
    collateral_withdraw,
    drawdown_create,
    facility_limit_change_request,
    facility_open,
    facility_status_change,
    repayment_create,
)
from financing.liquidation.forced_sales import sale_fill_record
from financing.models import (
    AutomaticTopUp,
    Drawdown,
    Facility,
    ForcedSale,
    MarginCall,
    Repayment,
    SaleFill,
    StandingTopUpInstruction,
)
from financing.selectors import (
    FacilityValuation,
    cash_top_ups_to_target,
    facility_read,
    facility_valuations,
    open_margin_calls_of,
)
from financing.top_ups.instructions import standing_top_up_request, standing_top_up_revoke

# --- facilities ----------------------------------------------------------------------------------


class FacilityFilter(FilterSet):
    client = IdFilter(field_name="client_id")
    reference = django_filters.CharFilter(max_length=20)
    status = django_filters.ChoiceFilter(choices=FacilityStatus.choices)

    class Meta:
        model = Facility
        fields = ["client", "reference", "status"]


def _exact_cash_top_ups(valuations: dict[int, FacilityValuation]) -> dict[int, Decimal]:
    """The least cash that reaches target where a concentration cut binds and the ratio is above target (what
    a margin call states: ``cash_top_ups_to_target``); elsewhere ``D/T − LV`` is exact and needs nothing more."""
    binding = [
        pk
        for pk, valuation in valuations.items()
        if ratio_above(valuation.debt.total, valuation.margin_value, valuation.thresholds.target)
        and any(position.excess_over_limit > 0 for position in valuation.valuation.positions)
    ]
    return cash_top_ups_to_target(binding) if binding else {}


class FacilityViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Facilities with their valuation, computed live from current prices, FX, haircuts and the ledger: one
    facility with ``facility_valuation``; a page of a list with the same arithmetic, reading prices, FX,
    assets and balances once for the whole page (a fixed number of queries, whatever the page size)."""

    read_rule = Rule(Scope.READ, "financing.view_facility", client_users=True)
    client_field = "client"
    serializer_class = FacilityOut
    filterset_class = FacilityFilter
    ordering_fields = ["reference", "opened_on", "limit", "created_at"]
    lookup_value_regex = "[0-9]+"

    write_rules = {
        "create": Rule(Scope.ADMIN, "financing.add_facility"),
        "limit_change_requests": Rule(Scope.ADMIN, "financing.change_facility"),
        "suspend": Rule(Scope.ADMIN, "financing.change_facility"),
        "resume": Rule(Scope.ADMIN, "financing.change_facility"),
        "close": Rule(Scope.ADMIN, "financing.change_facility"),
    }

    def get_queryset(self):
        return self.scoped(Facility.objects.select_related("client", "policy"))

    def _read(self, facility_id: int, status_code: int = status.HTTP_200_OK) -> Response:
        """The facility with its live valuation, read in one statement (``facility_read``) and written without
        a serializer's set-up (``facility_representation``, held equal to ``FacilityOut`` by a test). A client
        user reads only their own client's facility; anyone else's is a 404, as an unknown id is."""
        caller = self.caller
        read = None
        if facility_id <= MAX_ID:
            read = facility_read(facility_id, client_id=caller.client_id if caller.is_client_user else None)
        if read is None:
            raise Http404
        self.check_object_permissions(self.request, read)
        cash_top_up = _exact_cash_top_ups({read.id: read.valuation}).get(read.id)
        body = facility_representation(read, cash_top_up=cash_top_up, valued_at=timezone.now())
        return Response(body, status=status_code)

    @extend_schema(
        request=FacilityIn,
        responses={201: FacilityOut},
        summary="Open a facility",
        description=(
            "A limit, a fixed rate (`rate_kind` fixed, `fixed_rate`) or a base rate plus a spread (`rate_kind` "
            "floating, `base_rate_name`, `spread`), and a margin policy (null: the default). Refused: 400 "
            "`facility_exists` (the client has an open facility), 400 `invalid` (a fixed rate without its rate, "
            "a floating one without its base rate)."
        ),
    )
    def create(self, request):
        data = validated(FacilityIn, request)
        facility = facility_open(actor=self.caller.actor, **data)
        return self._read(facility.pk, status.HTTP_201_CREATED)

    @extend_schema(
        request=FacilityLimitChangeIn,
        responses={201: ApprovalRequestOut},
        summary="Ask for a new facility limit (four-eyes)",
        description=(
            "Creates an approval request; the limit changes only when a second credit officer approves it in "
            "the staff admin or console. A four-eyes request needs a named person as its maker, so only staff "
            "logged in with a session may ask: an API key gets 403 `staff_session_required`. Refused: 409 "
            "`duplicate_pending_request`, 400 `no_change`."
        ),
    )
    @action(detail=True, methods=["post"], url_path="limit-change-requests")
    def limit_change_requests(self, request, pk=None):
        facility = self.get_object()
        if self.caller.api_key is not None:
            raise StaffSessionRequired(
                "A facility-limit change is a four-eyes request made by a named member of staff; log in to "
                "ask for one. An API key cannot."
            )
        data = validated(FacilityLimitChangeIn, request)
        approval = facility_limit_change_request(
            facility=facility, limit=data["limit"], actor=self.caller.actor, reason=data["reason"]
        )
        return Response(ApprovalRequestOut(approval).data, status=status.HTTP_201_CREATED)

    def _status_change(self, request, new_status: str) -> Response:
        facility = self.get_object()
        data = validated(FacilityStatusIn, request)
        facility_status_change(
            facility=facility, status=new_status, actor=self.caller.actor, reason=data["reason"]
        )
        return self._read(facility.pk)

    @extend_schema(
        request=FacilityStatusIn,
        responses={200: FacilityOut},
        summary="Suspend: no new drawdowns",
        description="Repayments, top-ups and margin calls go on. Refused: 409 `invalid_transition` (closed), "
        "409 `no_change` (already suspended).",
    )
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        return self._status_change(request, FacilityStatus.SUSPENDED)

    @extend_schema(
        request=FacilityStatusIn,
        responses={200: FacilityOut},
        summary="Resume a suspended facility",
        description="Refused: 409 `invalid_transition` (closed), 409 `no_change` (already active).",
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._status_change(request, FacilityStatus.ACTIVE)

    @extend_schema(
        request=FacilityStatusIn,
        responses={200: FacilityOut},
        summary="Close a facility",
        description=(
            "Refused while anything remains: 409 `facility_has_debt` (principal, interest or fees), "
            "`open_margin_call`, `open_forced_sale`; 409 `invalid_transition` when it is closed already."
        ),
    )
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        return self._status_change(request, FacilityStatus.CLOSED)

    def list(self, request, *args, **kwargs):
        page = list(self.paginate_queryset(self.filter_queryset(self.get_queryset())))
        valuations = facility_valuations(page)
        context = {
            "valuations": valuations,
            "open_margin_calls": open_margin_calls_of([facility.pk for facility in page]),
            "cash_top_ups": _exact_cash_top_ups(valuations),
            "valued_at": timezone.now(),
        }
        return self.get_paginated_response(FacilityOut(page, many=True, context=context).data)

    def retrieve(self, request, *args, **kwargs):
        return self._read(int(self.kwargs["pk"]))


# --- drawdowns and repayments --------------------------------------------------------------------


def _service_idempotency_key(request, caller) -> str | None:
    """The ledger's own idempotency key for this request: a second guard behind the API's store."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if not key:
        return None
    return hashlib.sha256(f"{caller.credential}\n{key}".encode()).hexdigest()


class CashMovementFilter(FilterSet):
    facility = IdFilter(field_name="facility_id")
    client = IdFilter(field_name="facility__client_id")
    created_after = TimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimeFilter(field_name="created_at", lookup_expr="lt")


class DrawdownFilter(CashMovementFilter):
    class Meta:
        model = Drawdown
        fields = ["facility", "client"]


class RepaymentFilter(CashMovementFilter):
    class Meta:
        model = Repayment
        fields = ["facility", "client"]


class DrawdownViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Cash lent against the pool. A drawdown is refused (422, nothing written) when the client is not
    eligible (``not_eligible``), the facility has an open margin call (``open_margin_call``), the facility,
    credit or firm-wide limits would be passed (``facility_limit_exceeded``, ``credit_limit_exceeded``,
    ``firm_limit_exceeded``, ``client_concentration_exceeded``), or the margin ratio would go above max
    advance (``max_advance_exceeded``). A client user may draw down on their own facility."""

    read_rule = Rule(Scope.READ, "financing.view_drawdown", client_users=True)
    write_rules = {"create": Rule(Scope.LENDING, "financing.add_drawdown", client_users=True)}
    self_contained_actions = frozenset({"create"})  # drawdown_create
    client_field = "facility__client"
    serializer_class = DrawdownOut
    filterset_class = DrawdownFilter
    ordering_fields = ["created_at", "amount"]
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        return self.scoped(Drawdown.objects.select_related("facility"))

    @extend_schema(request=CashMovementIn, responses={201: DrawdownOut}, summary="Draw down")
    def create(self, request):
        # The facility is looked up by the drawdown's lock (a client user's own only), not read first here:
        # one round trip fewer. A missing one is answered as the serializer's related field answers it.
        data = validated(DrawdownIn, request)
        caller = self.caller
        try:
            drawdown = drawdown_create(
                facility=Facility(pk=data["facility"]),
                amount=data["amount"],
                actor=caller.actor,
                idempotency_key=_service_idempotency_key(request, caller),
                of_client=caller.client_id if caller.is_client_user else None,
            )
        except Facility.DoesNotExist:
            message = FacilityIdField.default_error_messages["does_not_exist"]
            raise serializers.ValidationError(
                {"facility": [message.format(pk_value=request.data.get("facility"))]}, code="does_not_exist"
            ) from None
        return Response(DrawdownOut(drawdown).data, status=status.HTTP_201_CREATED)


class RepaymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Cash received from the client: unpaid fees first, then interest, then principal. More than the debt
    is refused (``repayment_refused``). Recorded by the broker's systems or staff, not by client users."""

    read_rule = Rule(Scope.READ, "financing.view_repayment", client_users=True)
    write_rules = {"create": Rule(Scope.LENDING, "financing.add_repayment")}
    self_contained_actions = frozenset({"create"})  # repayment_create
    client_field = "facility__client"
    serializer_class = RepaymentOut
    filterset_class = RepaymentFilter
    ordering_fields = ["created_at", "amount"]
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        return self.scoped(Repayment.objects.select_related("facility"))

    @extend_schema(request=CashMovementIn, responses={201: RepaymentOut}, summary="Record a repayment")
    def create(self, request):
        data = validated(CashMovementIn, request, facilities=Facility.objects.select_related("client"))
        repayment = repayment_create(
            facility=data["facility"],
            amount=data["amount"],
            actor=self.caller.actor,
            idempotency_key=_service_idempotency_key(request, self.caller),
        )
        return Response(RepaymentOut(repayment).data, status=status.HTTP_201_CREATED)


# --- collateral movements ------------------------------------------------------------------------


class CollateralMovementFilter(FilterSet):
    client = IdFilter(field_name="pool__client_id")
    kind = django_filters.ChoiceFilter(choices=MovementKind.choices)
    asset = django_filters.CharFilter(field_name="asset_id", max_length=20)
    external_reference = django_filters.CharFilter(max_length=100)
    created_after = TimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = TimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = CollateralMovement
        fields = ["client", "kind", "asset", "external_reference"]


class CollateralMovementViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Deposits into and withdrawals from a client's collateral pool, as the custody system reports them. A
    custody reference is recorded once per client: sending it again returns the movement already recorded
    (200), or 409 ``external_reference_conflict`` if it described a different movement. A withdrawal the
    pool does not hold, or that would lift the margin ratio above max advance, is refused (422
    ``insufficient_holdings`` / ``max_advance_exceeded``); a deposit of an asset that is not eligible is
    refused (422 ``asset_not_eligible``)."""

    read_rule = Rule(Scope.READ, "collateral.view_collateralmovement", client_users=True)
    write_rules = {"create": Rule(Scope.COLLATERAL, "collateral.add_collateralmovement")}
    client_field = "pool__client"
    serializer_class = CollateralMovementOut
    filterset_class = CollateralMovementFilter
    ordering_fields = ["created_at", "quantity"]
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        return self.scoped(CollateralMovement.objects.select_related("pool__client"))

    @extend_schema(
        request=CollateralMovementIn,
        responses={
            201: CollateralMovementOut,
            200: OpenApiResponse(CollateralMovementOut, description="already recorded under this reference"),
        },
        summary="Record a deposit or a withdrawal",
    )
    def create(self, request):
        data = validated(CollateralMovementIn, request)
        client, asset = movement_client_and_asset(data)
        reference = data["external_reference"]
        earlier = self._earlier(client, reference)
        if earlier is not None:
            return self._already_recorded(earlier, data, asset)
        actor = self.caller.actor
        try:
            if data["kind"] == MovementKind.DEPOSIT:
                pool = pool_open(client=client, actor=actor)
                movement = collateral_top_up(
                    pool=pool,
                    asset=asset,
                    quantity=data["quantity"],
                    actor=actor,
                    external_reference=reference,
                )
            else:
                pool = CollateralPool.objects.filter(client=client).first()
                if pool is None:
                    raise WithdrawalRefused(
                        f"{client} has no collateral pool; nothing can be withdrawn.",
                        code="insufficient_holdings",
                    )
                movement = collateral_withdraw(
                    pool=pool,
                    asset=asset,
                    quantity=data["quantity"],
                    actor=actor,
                    external_reference=reference,
                )
        except IntegrityError:
            # A concurrent request recorded the same custody reference first; our savepoint was rolled back.
            earlier = self._earlier(client, reference)
            if earlier is None:
                raise
            return self._already_recorded(earlier, data, asset)
        return Response(CollateralMovementOut(movement).data, status=status.HTTP_201_CREATED)

    @staticmethod
    def _earlier(client: Client, reference: str) -> CollateralMovement | None:
        if not reference:
            return None
        return (
            CollateralMovement.objects.select_related("pool__client")
            .filter(pool__client=client, external_reference=reference)
            .first()
        )

    @staticmethod
    def _already_recorded(earlier: CollateralMovement, data: dict, asset: Asset) -> Response:
        if (earlier.kind, earlier.asset_id, earlier.quantity) != (
            data["kind"],
            asset.symbol,
            data["quantity"],
        ):
            raise ExternalReferenceConflict(
                f"The custody reference {earlier.external_reference} was already recorded for a "
                f"{earlier.get_kind_display().lower()} of {earlier.quantity.normalize():f} {earlier.asset_id} "
                f"(movement #{earlier.pk}); this request describes a different movement.",
                details={"movement": earlier.pk},
            )
        return Response(CollateralMovementOut(earlier).data, status=status.HTTP_200_OK)


# --- margin calls and forced sales ---------------------------------------------------------------


class MarginCallFilter(FilterSet):
    facility = IdFilter(field_name="facility_id")
    client = IdFilter(field_name="facility__client_id")
    status = django_filters.ChoiceFilter(choices=MarginCallStatus.choices)
    issued_after = TimeFilter(field_name="issued_at", lookup_expr="gte")
    issued_before = TimeFilter(field_name="issued_at", lookup_expr="lt")

    class Meta:
        model = MarginCall
        fields = ["facility", "client", "status"]


class MarginCallViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Margin calls: what cures each (a repayment, or a cash top-up, to the policy's target) and by when."""

    read_rule = Rule(Scope.READ, "financing.view_margincall", client_users=True)
    client_field = "facility__client"
    serializer_class = MarginCallOut
    filterset_class = MarginCallFilter
    ordering_fields = ["issued_at", "deadline"]
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        return self.scoped(MarginCall.objects.select_related("facility"))


class ForcedSaleFilter(FilterSet):
    facility = IdFilter(field_name="facility_id")
    client = IdFilter(field_name="facility__client_id")
    status = django_filters.ChoiceFilter(choices=ForcedSaleStatus.choices)
    trigger = django_filters.ChoiceFilter(choices=ForcedSaleTrigger.choices)
    requested_after = TimeFilter(field_name="requested_at", lookup_expr="gte")

    class Meta:
        model = ForcedSale
        fields = ["facility", "client", "status", "trigger"]


class ForcedSaleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Forced sales of collateral, their orders and where each stands. The broker's order system reports
    the fills of securities orders here."""

    read_rule = Rule(Scope.READ, "financing.view_forcedsale", client_users=True)
    write_rules = {"fills": Rule(Scope.LENDING, "financing.record_fill")}
    client_field = "facility__client"
    serializer_class = ForcedSaleOut
    filterset_class = ForcedSaleFilter
    ordering_fields = ["requested_at"]
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        return self.scoped(ForcedSale.objects.select_related("facility").prefetch_related("orders"))

    @extend_schema(
        request=SaleFillIn,
        responses={
            201: SaleFillOut,
            200: OpenApiResponse(SaleFillOut, description="this fill was recorded before"),
        },
        summary="Report a fill of a securities sell order",
    )
    @action(detail=True, methods=["post"])
    def fills(self, request, pk=None):
        sale = self.get_object()
        data = validated(SaleFillIn, request)
        order = sale.orders.filter(client_order_id=data["client_order_id"]).first()
        if order is None:
            raise NotFound(
                f"Forced sale #{sale.pk} has no order {data['client_order_id']}.", code="unknown_order"
            )
        earlier = SaleFill.objects.filter(order=order, fill_key=data["fill_id"]).first()
        fill = sale_fill_record(
            order=order,
            fill_key=data["fill_id"],
            quantity=data["quantity"],
            price=data["price"],
            fee=data["fee"],
            actor=self.caller.actor,
        )
        return Response(
            SaleFillOut(fill).data, status=status.HTTP_200_OK if earlier else status.HTTP_201_CREATED
        )
        return self.scoped(ForcedSale.objects.select_related("facility"))


# --- automatic top-up ---


class ReadWithReadOrLendingScope(CallerAccess):
    """Standing instructions are read by the broker's lending systems too: an API key with the ``lending``
    scope may read them as well as one with ``read``. Everything else as ``CallerAccess``."""

    def has_permission(self, request, view) -> bool:
        caller = caller_of(request)
        if (
            caller is not None
            and caller.api_key is not None
            and request.method in permissions.SAFE_METHODS
            and caller.api_key.has_scope(Scope.LENDING)
        ):
            return True
        return super().has_permission(request, view)


class StandingTopUpInstructionFilter(FilterSet):
    client = IdFilter(field_name="client_id")
    status = django_filters.ChoiceFilter(choices=InstructionStatus.choices)
    trigger = django_filters.ChoiceFilter(choices=TopUpTrigger.choices)
    requested_after = TimeFilter(field_name="requested_at", lookup_expr="gte")

    class Meta:
        model = StandingTopUpInstruction
        fields = ["client", "status", "trigger"]


class StandingTopUpInstructionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Standing instructions to top up the pool from the client's free custody holdings: at a margin call (or
    already at the warning level), cash first (HKD, then other currencies), then ``asset_order``, just enough
    to bring the margin ratio to target. A client user asks for one for their own client, or staff for any
    client (``POST``): it waits for sign-off by a second person, a member of staff, in the staff admin's
    approval queue. The client or staff revoke it at any time (``POST …/{id}/revoke/``), with effect at once.
    Asking and revoking are for named people: an API key may read (``read`` or ``lending`` scope) but not
    write. Refusals: 409 ``duplicate_pending_request`` (one waits for sign-off already), 422
    ``asset_not_eligible``, 400 ``invalid`` (cash in the order, an unknown asset), 409 ``invalid_transition``
    (already revoked)."""

    permission_classes = [ReadWithReadOrLendingScope]
    read_rule = Rule(Scope.READ, "financing.view_standingtopupinstruction", client_users=True)
    write_rules = {
        "create": Rule(Scope.LENDING, "financing.add_standingtopupinstruction", client_users=True),
        "revoke": Rule(Scope.LENDING, "financing.change_standingtopupinstruction", client_users=True),
    }
    client_field = "client"
    serializer_class = StandingTopUpInstructionOut
    filterset_class = StandingTopUpInstructionFilter
    ordering_fields = ["requested_at", "status"]
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        return self.scoped(
            StandingTopUpInstruction.objects.select_related(
                "client", "requested_by", "signed_off_by", "revoked_by"
            )
        )

    def clients(self):
        caller = self.caller
        return Client.objects.filter(pk=caller.client_id) if caller.is_client_user else Client.objects.all()

    @extend_schema(
        request=StandingTopUpInstructionIn,
        responses={201: StandingTopUpInstructionOut},
        summary="Ask for a standing top-up instruction (signed off by staff)",
    )
    def create(self, request):
        data = validated(StandingTopUpInstructionIn, request, clients=self.clients())
        instruction = standing_top_up_request(
            client=data["client"],
            trigger=data["trigger"],
            asset_order=data["asset_order"],
            actor=self.caller.actor,
            reason=data["reason"],
        )
        return Response(
            StandingTopUpInstructionOut(self.get_queryset().get(pk=instruction.pk)).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(request=RevokeIn, responses={200: StandingTopUpInstructionOut}, summary="Revoke, at once")
    @action(detail=True, methods=["post"], url_path="revoke")
    def revoke(self, request, pk=None):
        instruction = self.get_object()
        data = validated(RevokeIn, request)
        instruction = standing_top_up_revoke(
            instruction=instruction, actor=self.caller.actor, reason=data["reason"]
        )
        return Response(StandingTopUpInstructionOut(self.get_queryset().get(pk=instruction.pk)).data)


class AutomaticTopUpFilter(FilterSet):
    facility = IdFilter(field_name="facility_id")
    client = IdFilter(field_name="facility__client_id")
    margin_call = IdFilter(field_name="margin_call_id")
    outcome = django_filters.ChoiceFilter(choices=TopUpOutcome.choices)
    created_after = TimeFilter(field_name="created_at", lookup_expr="gte")

    class Meta:
        model = AutomaticTopUp
        fields = ["facility", "client", "margin_call", "outcome"]


class AutomaticTopUpViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Every automatic top-up: what moved from the client's free custody holdings into the pool, asset by asset
    (one ledger transaction), the margin ratio before and after, and what was still due — or that nothing free
    could be moved, and why."""

    read_rule = Rule(Scope.READ, "financing.view_automatictopup", client_users=True)
    client_field = "facility__client"
    serializer_class = AutomaticTopUpOut
    filterset_class = AutomaticTopUpFilter
    ordering_fields = ["created_at"]
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        return self.scoped(AutomaticTopUp.objects.select_related("facility").prefetch_related("transfers"))
