from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import F
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from accounts.enums import ApprovalStatus
from accounts.models import ApprovalRequest
from collateral.models import CollateralMovement
from core.admin import AddOnlyAdminMixin, ReadOnlyAdminMixin, ServiceAdminMixin, run_for_each
from core.exceptions import DomainError
from core.money import format_hkd, format_percent
from financing.enums import MarginStatus, SaleOrderStatus, SaleRoute, TopUpTrigger
from financing.lending import interest, policies, services
from financing.liquidation import forced_sales, kill_switch
from financing.models import (
    AutomaticTopUp,
    AutomaticTopUpTransfer,
    BaseRate,
    Drawdown,
    Facility,
    ForcedSale,
    InterestAccrual,
    KillSwitch,
    MarginCall,
    MarginPolicy,
    MarginState,
    RatioSnapshot,
    Repayment,
    SaleFill,
    SaleOrder,
    StandingTopUpInstruction,
    SweepRun,
)
from financing.monitoring import schedules
from financing.selectors import facility_valuation, open_facility_of, open_margin_call
from financing.top_ups import automatic, instructions


class MarginPolicyForm(forms.ModelForm):
    make_default = forms.BooleanField(
        required=False,
        label="Ask to make this the default policy",
        help_text="Every facility without a policy of its own moves to its thresholds: it takes effect only when "
        "a second risk officer approves.",
    )

    class Meta:
        model = MarginPolicy
        # ``is_default`` is shown read-only, and asked for with ``make_default``.
        fields = [name for name in policies.POLICY_FIELDS if name != "is_default"]


@admin.register(MarginPolicy)
class MarginPolicyAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """Margin policies through the same services as the API: thresholds and the default change by a four-eyes
    request (docs/api.md, "Margin policies")."""

    form = MarginPolicyForm
    readonly_fields = ["is_default"]
    list_display = [
        "name",
        "is_default",
        "max_advance",
        "warning",
        "margin_call",
        "forced_sale",
        "target",
        "pending_change",
    ]

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="pending change")
    def pending_change(self, policy: MarginPolicy) -> str:
        pending = ApprovalRequest.objects.filter(
            kind=policies.MARGIN_POLICY_CHANGE.key, target_id=str(policy.pk), status=ApprovalStatus.PENDING
        ).first()
        return f"#{pending.pk}" if pending else "-"

    def save_model(self, request, obj, form, change):
        """A new policy is created (never as the default); a change saves what is not a threshold at once; new
        thresholds, and making the policy the default, are asked for with a change request that a second risk
        officer approves (``margin_policy_change_request``): the form never writes them."""
        fields = {
            name: form.cleaned_data[name] for name in policies.POLICY_FIELDS if name in form.cleaned_data
        }
        if change:
            changed = {name: fields[name] for name in form.changed_data if name in fields}
        else:
            name = fields.pop("name")
            created = policies.margin_policy_create(actor=request.user, name=name, **fields)
            obj.pk = created.pk
            obj._state.adding, obj._state.db = False, created._state.db
            changed = {}
        four_eyes = {name: changed.pop(name) for name in policies.FOUR_EYES_FIELDS if name in changed}
        if form.cleaned_data.get("make_default"):
            four_eyes["is_default"] = True
        if changed:
            policies.margin_policy_change(policy=obj, actor=request.user, **changed)
        if four_eyes:
            # The request is made against the stored policy: ``obj`` holds the form's values.
            stored = MarginPolicy.objects.get(pk=obj.pk)
            request._margin_policy_change_request = policies.margin_policy_change_request(
                policy=stored, actor=request.user, **four_eyes
            )

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(request, "_margin_policy_change_request", None) is None:
            return super().response_add(request, obj, post_url_continue)
        return self._asked(request, obj)

    def response_change(self, request, obj):
        if getattr(request, "_margin_policy_change_request", None) is None:
            return super().response_change(request, obj)
        return self._asked(request, obj)

    def _asked(self, request, obj):
        approval = request._margin_policy_change_request
        proposed = ", ".join(
            f"{name.replace('_', ' ')} → {value}" for name, value in approval.proposed.items()
        )
        self.message_user(
            request,
            f"The thresholds and the default of {obj.name} change only when a second risk officer approves: "
            f"asked as request #{approval.pk} ({proposed}). Anything else you changed is saved.",
            level=messages.WARNING,
        )
        return HttpResponseRedirect(reverse("admin:financing_marginpolicy_changelist"))


@admin.register(BaseRate)
class BaseRateAdmin(AddOnlyAdminMixin, ServiceAdminMixin, admin.ModelAdmin):
    list_display = ["name", "rate", "effective_on", "source"]
    list_filter = ["name"]

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        record = interest.base_rate_record(
            name=data["name"],
            rate=data["rate"],
            effective_on=data["effective_on"],
            source=data["source"],
            actor=request.user,
        )
        obj.pk = record.pk


class FacilityForm(forms.ModelForm):
    class Meta:
        model = Facility
        fields = [
            "client",
            "limit",
            "rate_kind",
            "fixed_rate",
            "base_rate_name",
            "spread",
            "policy",
            "opened_on",
        ]


@admin.register(Facility)
class FacilityAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = FacilityForm
    list_display = ["reference", "client", "limit", "debt", "margin_ratio", "margin_status", "status"]
    list_filter = ["status", "rate_kind", "policy"]
    search_fields = ["reference", "client__reference", "client__name"]
    list_select_related = ["client", "policy"]
    autocomplete_fields = ["client"]
    valuation_fields = [
        "market_value",
        "margin_value",
        "debt",
        "margin_ratio",
        "market_ltv",
        "margin_surplus",
        "margin_deficiency",
        "available_to_draw",
        "margin_status",
    ]

    def get_fields(self, request, obj=None):
        if obj is None:
            return FacilityForm.Meta.fields
        return ["reference", "client", "status", "limit", "rate_kind", "fixed_rate", "base_rate_name", "spread",
                "policy", "opened_on", *self.valuation_fields]  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj else []

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def _valuation(self, facility):
        cache = self.__dict__.setdefault("_valuations", {})
        if facility.pk not in cache:
            cache[facility.pk] = facility_valuation(facility)
        return cache[facility.pk]

    def changelist_view(self, request, extra_context=None):
        self._valuations = {}
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self._valuations = {}
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="market value")
    def market_value(self, facility) -> str:
        return format_hkd(self._valuation(facility).market_value)

    @admin.display(description="margin value")
    def margin_value(self, facility) -> str:
        return format_hkd(self._valuation(facility).margin_value)

    @admin.display(description="debt")
    def debt(self, facility) -> str:
        debt = self._valuation(facility).debt
        return f"{format_hkd(debt.total)} (principal {format_hkd(debt.principal)}, interest {format_hkd(debt.interest)}, fees {format_hkd(debt.fees)})"

    @admin.display(description="margin ratio")
    def margin_ratio(self, facility) -> str:
        return format_percent(self._valuation(facility).margin_ratio)

    @admin.display(description="market LTV")
    def market_ltv(self, facility) -> str:
        return format_percent(self._valuation(facility).market_ltv)

    @admin.display(description="margin surplus")
    def margin_surplus(self, facility) -> str:
        return format_hkd(self._valuation(facility).margin_surplus)

    @admin.display(description="margin deficiency")
    def margin_deficiency(self, facility) -> str:
        return format_hkd(self._valuation(facility).margin_deficiency)

    @admin.display(description="available to draw (to max advance)")
    def available_to_draw(self, facility) -> str:
        return format_hkd(self._valuation(facility).available_to_draw)

    @admin.display(description="margin status")
    def margin_status(self, facility) -> str:
        status = self._valuation(facility).status
        colour = {"warning": "#b58900", "margin_call": "#cb4b16", "forced_sale": "#dc322f"}.get(
            status, "inherit"
        )
        return format_html('<strong style="color:{}">{}</strong>', colour, status.label)

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        facility = services.facility_open(
            client=data["client"],
            limit=data["limit"],
            rate_kind=data["rate_kind"],
            fixed_rate=data["fixed_rate"],
            base_rate_name=data["base_rate_name"],
            spread=data["spread"],
            policy=data["policy"],
            opened_on=data["opened_on"],
            actor=request.user,
        )
        obj.pk = facility.pk


class CashMovementAdmin(AddOnlyAdminMixin, ServiceAdminMixin, admin.ModelAdmin):
    """Drawdowns and repayments: entered through their services, never edited."""

    list_display = ["created_at", "facility", "amount", "actor_label"]
    list_filter = ["created_at"]
    search_fields = ["facility__reference", "facility__client__name"]
    list_select_related = ["facility__client"]
    fields = ["facility", "amount"]
    autocomplete_fields = ["facility"]
    service = None

    def save_model(self, request, obj, form, change):
        created = type(self).service(
            facility=form.cleaned_data["facility"], amount=form.cleaned_data["amount"], actor=request.user
        )
        obj.pk = created.pk


@admin.register(Drawdown)
class DrawdownAdmin(CashMovementAdmin):
    list_display = [*CashMovementAdmin.list_display, "margin_ratio_after"]
    service = staticmethod(services.drawdown_create)


@admin.register(Repayment)
class RepaymentAdmin(CashMovementAdmin):
    list_display = [*CashMovementAdmin.list_display, "to_fees", "to_interest", "to_principal"]
    service = staticmethod(services.repayment_create)


class CollateralMovementForm(forms.ModelForm):
    class Meta:
        model = CollateralMovement
        fields = ["pool", "kind", "asset", "quantity", "external_reference"]


@admin.register(CollateralMovement)
class CollateralMovementAdmin(AddOnlyAdminMixin, ServiceAdminMixin, admin.ModelAdmin):
    """Registered here rather than in ``collateral`` because a withdrawal is a lending decision."""

    form = CollateralMovementForm
    list_display = ["created_at", "pool", "kind", "asset", "quantity", "external_reference", "actor_label"]
    list_filter = ["kind", "asset", "created_at"]
    search_fields = ["pool__client__reference", "pool__client__name", "external_reference"]
    list_select_related = ["pool__client"]
    autocomplete_fields = ["pool"]

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        arguments = {
            "pool": data["pool"],
            "asset": data["asset"],
            "quantity": data["quantity"],
            "actor": request.user,
            "external_reference": data["external_reference"],
        }
        movement = (
            services.collateral_top_up(**arguments)
            if data["kind"] == "deposit"
            else services.collateral_withdraw(**arguments)
        )
        obj.pk = movement.pk


@admin.register(InterestAccrual)
class InterestAccrualAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["accrual_date", "facility", "days", "principal", "annual_rate", "amount"]
    list_filter = ["accrual_date"]
    search_fields = ["facility__reference"]


class AtRiskFilter(admin.SimpleListFilter):
    title = "risk"
    parameter_name = "risk"

    def lookups(self, request, model_admin):
        return [("at_risk", "At risk (warning or worse)")]

    def queryset(self, request, queryset):
        if self.value() == "at_risk":
            return queryset.filter(
                status__in=[MarginStatus.WARNING, MarginStatus.MARGIN_CALL, MarginStatus.FORCED_SALE]
            )
        return queryset


@admin.register(MarginState)
class MarginStateAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The at-risk list: every facility as the last sweep valued it, highest ratio first."""

    list_display = [
        "facility",
        "client",
        "ratio",
        "status",
        "market_value",
        "margin_value",
        "debt",
        "status_since",
        "valued_at",
    ]
    list_filter = [AtRiskFilter, "status"]
    search_fields = ["facility__reference", "facility__client__reference", "facility__client__name"]
    list_select_related = ["facility__client"]
    ordering = [F("margin_ratio").desc(nulls_first=True)]

    @admin.display(description="client")
    def client(self, state) -> str:
        return state.facility.client.name

    @admin.display(description="margin ratio", ordering="margin_ratio")
    def ratio(self, state) -> str:
        return "-" if state.status == MarginStatus.NO_DEBT else format_percent(state.margin_ratio)


@admin.register(RatioSnapshot)
class RatioSnapshotAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["taken_at", "facility", "margin_ratio", "status", "market_value", "margin_value", "debt"]
    list_filter = ["status", "taken_at"]
    search_fields = ["facility__reference"]
    date_hierarchy = "taken_at"
    list_select_related = ["facility"]


@admin.register(SweepRun)
class SweepRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["started_at", "trigger", "scope", "symbols", "facilities_valued", "states_changed", "snapshots_written",
                    "ladder_actions", "duration_ms", "scope_ms", "ladder_ms", "valued_from_fixed_part"]  # fmt: skip
    list_filter = ["trigger", "scope", "started_at"]


class SaleOrderInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = SaleOrder
    fields = ["client_order_id", "asset", "route", "venue", "quantity", "status", "limit_price", "filled_quantity",
              "fees", "errors", "last_error", "placed_at"]  # fmt: skip
    readonly_fields = fields
    extra = 0


@admin.register(ForcedSale)
class ForcedSaleAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "facility", "trigger", "status", "pause_reason", "ratio_at_request", "proceeds", "shortfall",
                    "requested_at", "closed_at"]  # fmt: skip
    list_filter = ["status", "trigger", "pause_reason", "requested_at"]
    search_fields = ["facility__reference", "facility__client__name"]
    list_select_related = ["facility__client"]
    readonly_fields = ["facility", "margin_call", "trigger", "status", "pause_reason", "status_reason",
                       "ratio_at_request", "requested_at", "planned_at", "plan", "proceeds", "shortfall",
                       "approved_by", "approved_at", "closed_at"]  # fmt: skip
    inlines = [SaleOrderInline]
    actions = ["approve", "resume"]

    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm("financing.approve_forcedsale")

    @admin.action(
        description="Approve the selected sales (policy requires approval)", permissions=["approve"]
    )
    def approve(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            lambda sale: forced_sales.forced_sale_approve(sale=sale, actor=request.user),
            "sale(s) approved",
        )

    @admin.action(
        description="Resume the selected sales (after a bad fill price or venue errors)",
        permissions=["approve"],
    )
    def resume(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            lambda sale: forced_sales.forced_sale_resume(sale=sale, actor=request.user),
            "sale(s) resumed",
        )


class SaleFillForm(forms.ModelForm):
    fill_id = forms.CharField(max_length=100, help_text="the order system's id for the fill")

    class Meta:
        model = SaleFill
        fields = ["order", "fill_id", "quantity", "price", "fee"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["order"].queryset = SaleOrder.objects.filter(
            route=SaleRoute.BROKER, status=SaleOrderStatus.OPEN
        )
        self.fields["order"].help_text = "open securities orders at the broker's order system"


@admin.register(SaleFill)
class SaleFillAdmin(AddOnlyAdminMixin, ServiceAdminMixin, admin.ModelAdmin):
    """Fills of securities orders, entered by operations as the order system reports them (the API does the
    same for the order system itself); crypto fills come from the venue."""

    form = SaleFillForm
    list_display = ["created_at", "order", "quantity", "price", "fee", "proceeds"]
    search_fields = ["order__client_order_id", "fill_key"]
    list_select_related = ["order"]

    def has_add_permission(self, request) -> bool:
        return request.user.has_perm("financing.record_fill")

    def get_readonly_fields(self, request, obj=None):
        return ["order", "fill_key", "quantity", "price", "fee", "proceeds", "transaction"] if obj else []

    def get_fields(self, request, obj=None):
        return (
            self.get_readonly_fields(request, obj)
            if obj
            else ["order", "fill_id", "quantity", "price", "fee"]
        )

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        fill = forced_sales.sale_fill_record(
            order=data["order"],
            fill_key=data["fill_id"],
            quantity=data["quantity"],
            price=data["price"],
            fee=data["fee"],
            actor=request.user,
        )
        obj.pk = fill.pk


class KillSwitchForm(forms.ModelForm):
    request_lift_reason = forms.CharField(
        required=False,
        label="Ask to lift it (four-eyes)",
        help_text="a second risk officer approves in the approval queue",
    )

    class Meta:
        model = KillSwitch
        fields = ["reason"]


@admin.register(KillSwitch)
class KillSwitchAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """Engaging stops every forced sale at once; lifting it is a request a second member of staff approves."""

    form = KillSwitchForm
    list_display = ["__str__", "reason", "changed_by", "changed_at"]
    readonly_fields = ["engaged", "changed_by", "changed_at"]
    actions = ["engage"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("financing.engage_killswitch")

    def get_queryset(self, request):
        kill_switch.kill_switch()  # the single row exists
        return super().get_queryset(request)

    def save_model(self, request, obj, form, change):
        lift = form.cleaned_data.get("request_lift_reason")
        if lift:
            approval = kill_switch.kill_switch_lift_request(actor=request.user, reason=lift)
            self.message_user(
                request,
                f"Lifting the kill switch is request #{approval.pk}: a second risk officer approves it.",
            )
        elif not obj.engaged and form.cleaned_data.get("reason"):
            kill_switch.kill_switch_engage(actor=request.user, reason=form.cleaned_data["reason"])
            self.message_user(
                request,
                "Kill switch engaged: every forced sale pauses at its next step.",
                level=messages.WARNING,
            )


@admin.register(MarginCall)
class MarginCallAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "facility",
        "status",
        "ratio",
        "repayment_due",
        "top_up_due",
        "deadline",
        "issued_at",
    ]
    list_filter = ["status", "issued_at"]
    search_fields = ["facility__reference", "facility__client__name"]

    @admin.display(description="ratio at issue")
    def ratio(self, call) -> str:
        return format_percent(call.ratio_at_issue)


# --- automatic top-up ---


class StandingTopUpInstructionForm(forms.ModelForm):
    assets = forms.CharField(
        required=False,
        label="Assets after cash, in order",
        help_text="Symbols separated by commas, e.g. 0005.HK, BTC. Cash (HKD, then other currencies) always "
        "goes first; leave it out. Empty: cash only.",
    )
    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    class Meta:
        model = StandingTopUpInstruction
        fields = ["client", "trigger"]


@admin.register(StandingTopUpInstruction)
class StandingTopUpInstructionAdmin(ServiceAdminMixin, admin.ModelAdmin):
    """Standing instructions to top up from free custody holdings. Asked for here on a client's behalf (or
    by the client in the portal); signed off by a second member of staff in the approval queue; revoked
    with the action below, with effect at once."""

    form = StandingTopUpInstructionForm
    list_display = ["id", "client", "status", "trigger", "order", "requested_by", "signed_off_by", "revoked_by",
                    "requested_at"]  # fmt: skip
    list_filter = ["status", "trigger"]
    search_fields = ["client__reference", "client__name"]
    list_select_related = ["client", "requested_by", "signed_off_by", "revoked_by"]
    autocomplete_fields = ["client"]
    actions = ["revoke", "run_now"]
    read_fields = ["client", "status", "trigger", "order", "requested_by", "requested_at", "signed_off_by",
                   "signed_off_at", "revoked_by", "revoked_at", "revoke_reason"]  # fmt: skip

    def get_fields(self, request, obj=None):
        return self.read_fields if obj else ["client", "trigger", "assets", "reason"]

    def get_readonly_fields(self, request, obj=None):
        return self.read_fields if obj else []

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="moves")
    def order(self, instruction) -> str:
        return instruction.order_in_words

    def change_view(self, request, object_id, form_url="", extra_context=None):
        nothing_to_save = {
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
        }
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **nothing_to_save})

    def save_model(self, request, obj, form, change):
        if change:
            return  # an instruction is never edited: revoke it and ask for a new one
        data = form.cleaned_data
        instruction = instructions.standing_top_up_request(
            client=data["client"],
            trigger=data["trigger"],
            asset_order=[s for s in (part.strip() for part in data["assets"].split(",")) if s],
            actor=request.user,
            reason=data["reason"],
        )
        obj.pk = instruction.pk
        self.message_user(
            request, f"{instruction} waits for sign-off by a second member of staff in the approval queue."
        )

    @admin.action(description="Revoke selected instructions (at once)", permissions=["change"])
    def revoke(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            lambda instruction: instructions.standing_top_up_revoke(
                instruction=instruction, actor=request.user, reason=f"revoked in the admin by {request.user}"
            ),
            "instruction(s) revoked",
        )

    @admin.action(
        description="Run the automatic top-up now (open margin call, or warning)", permissions=["change"]
    )
    def run_now(self, request, queryset):
        for instruction in queryset.select_related("client"):
            facility = open_facility_of(instruction.client)
            if facility is None:
                self.message_user(
                    request, f"{instruction.client} has no open facility.", level=messages.WARNING
                )
                continue
            trigger = TopUpTrigger.MARGIN_CALL if open_margin_call(facility) else TopUpTrigger.WARNING
            try:
                with transaction.atomic():
                    done = automatic.automatic_top_up_run(
                        facility=facility, actor=request.user, trigger=trigger
                    )
            except DomainError as error:
                self.message_user(request, f"{facility}: {error}", level=messages.ERROR)
                continue
            if done is None:
                self.message_user(
                    request,
                    f"{facility}: nothing to do (no active instruction for this, the ratio is at or below target, "
                    "or nothing has changed since the last run).",
                )
            else:
                self.message_user(request, f"{facility}: {done.get_outcome_display().lower()} (#{done.pk}).")


class AutomaticTopUpTransferInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = AutomaticTopUpTransfer
    fields = ["position", "asset", "quantity", "market_value"]
    readonly_fields = fields
    extra = 0


@admin.register(AutomaticTopUp)
class AutomaticTopUpAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "created_at", "facility", "trigger", "outcome", "moved", "ratio_before_words",
                    "ratio_after_words", "still_due_top_up", "margin_call"]  # fmt: skip
    list_filter = ["outcome", "trigger", "created_at"]
    search_fields = ["facility__reference", "facility__client__reference", "facility__client__name"]
    list_select_related = ["facility"]
    inlines = [AutomaticTopUpTransferInline]
    fields = ["facility", "instruction", "margin_call", "trigger", "outcome", "transaction", "debt",
              "margin_value_before", "margin_value_after", "ratio_before", "ratio_after", "still_due_repayment",
              "still_due_top_up", "skipped", "free_holdings_after", "actor_label", "created_at"]  # fmt: skip
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("transfers")

    @admin.display(description="moved")
    def moved(self, top_up) -> str:
        return (
            ", ".join(f"{t.quantity.normalize():f} {t.asset_id}" for t in top_up.transfers.all()) or "nothing"
        )

    @admin.display(description="ratio before")
    def ratio_before_words(self, top_up) -> str:
        return format_percent(top_up.ratio_before)

    @admin.display(description="ratio after")
    def ratio_after_words(self, top_up) -> str:
        return format_percent(top_up.ratio_after)


# --- schedules (django-celery-beat) ---

for beat_model in (PeriodicTask, IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule):
    admin.site.unregister(beat_model)

SCHEDULE_FORM_FIELDS = [field.removesuffix("_id") for field in schedules.FIELDS]


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(ServiceAdminMixin, beat_admin.PeriodicTaskAdmin):
    """django-celery-beat's schedules, through audited services: each action needs the change permission, and a
    margin-critical schedule is disabled, deleted, slowed or otherwise weakened only by a four-eyes request."""

    list_display = (*beat_admin.PeriodicTaskAdmin.list_display, "margin_critical")
    actions = ("enable_tasks", "disable_tasks", "toggle_tasks", "run_tasks", "request_deletion")

    @admin.display(boolean=True, description="margin-critical")
    def margin_critical(self, periodic_task) -> bool:
        return schedules.is_margin_critical(periodic_task)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and schedules.is_margin_critical(obj):
            return False  # "Ask a second person to delete" instead
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        fields = {name: form.cleaned_data[name] for name in SCHEDULE_FORM_FIELDS if name in form.cleaned_data}
        if not change:
            created = schedules.periodic_task_create(actor=request.user, **fields)
            obj.pk = created.pk
            obj._state.adding, obj._state.db = False, created._state.db
            return
        approval = schedules.schedule_change(periodic_task=obj, actor=request.user, **fields)
        if approval is not None:
            request._schedule_change_request = approval

    def response_change(self, request, obj):
        approval = getattr(request, "_schedule_change_request", None)
        if approval is None:
            return super().response_change(request, obj)
        self.message_user(
            request,
            f"{obj.name} keeps margin monitoring running: the change is request #{approval.pk} "
            f"({schedules.SCHEDULE_CHANGE.describe(approval.proposed)}), made when a second person approves it.",
            level=messages.WARNING,
        )
        return HttpResponseRedirect(reverse("admin:django_celery_beat_periodictask_changelist"))

    def delete_model(self, request, obj) -> None:
        schedules.periodic_task_delete(periodic_task=obj, actor=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for periodic_task in queryset:
            schedules.periodic_task_delete(periodic_task=periodic_task, actor=request.user)

    def _change_each(self, request, queryset, changes_of, done: str) -> None:
        applied, requested = 0, []
        for periodic_task in queryset:
            try:
                with transaction.atomic():
                    approval = schedules.schedule_change(
                        periodic_task=periodic_task, actor=request.user, **changes_of(periodic_task)
                    )
            except DomainError as error:
                self.message_user(request, f"{periodic_task.name}: {error}", level=messages.ERROR)
                continue
            if approval is None:
                applied += 1
            else:
                requested.append(f"{periodic_task.name} (request #{approval.pk})")
        if applied:
            self.message_user(request, f"{applied} schedule(s) {done}.", level=messages.SUCCESS)
        if requested:
            self.message_user(
                request,
                "Margin-critical, so a second person approves: " + ", ".join(requested) + ".",
                level=messages.WARNING,
            )

    @admin.action(description="Enable selected tasks", permissions=["change"])
    def enable_tasks(self, request, queryset):
        self._change_each(request, queryset, lambda task: {"enabled": True}, "enabled")

    @admin.action(description="Disable selected tasks (margin-critical: four-eyes)", permissions=["change"])
    def disable_tasks(self, request, queryset):
        self._change_each(request, queryset, lambda task: {"enabled": False}, "disabled")

    @admin.action(description="Toggle activity of selected tasks", permissions=["change"])
    def toggle_tasks(self, request, queryset):
        self._change_each(request, queryset, lambda task: {"enabled": not task.enabled}, "toggled")

    @admin.action(description="Run selected tasks now", permissions=["change"])
    def run_tasks(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            lambda task: schedules.periodic_task_run_now(periodic_task=task, actor=request.user),
            "task(s) queued",
        )

    @admin.action(
        description="Ask a second person to delete the selected margin-critical tasks", permissions=["delete"]
    )
    def request_deletion(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            lambda task: schedules.schedule_change_request(
                periodic_task=task, actor=request.user, delete=True
            ),
            "deletion request(s) made: a second person approves them",
        )


class ScheduleTimingAdmin(ServiceAdminMixin):
    """The timings schedules share: changed and deleted through audited services; one a margin-critical
    schedule uses is not deleted, and an interval it uses only gets shorter."""

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and schedules.critical_schedules_using(obj):
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        schedules.timing_save(timing=obj, actor=request.user)

    def delete_model(self, request, obj) -> None:
        schedules.timing_delete(timing=obj, actor=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for timing in queryset:
            schedules.timing_delete(timing=timing, actor=request.user)


@admin.register(IntervalSchedule)
class IntervalScheduleAdmin(ScheduleTimingAdmin, beat_admin.IntervalScheduleAdmin):
    pass


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(ScheduleTimingAdmin, beat_admin.CrontabScheduleAdmin):
    pass


@admin.register(SolarSchedule)
class SolarScheduleAdmin(ScheduleTimingAdmin, beat_admin.SolarScheduleAdmin):
    pass


@admin.register(ClockedSchedule)
class ClockedScheduleAdmin(ScheduleTimingAdmin, beat_admin.ClockedScheduleAdmin):
    pass
