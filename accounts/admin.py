import django_otp.plugins.otp_static.admin
import django_otp.plugins.otp_totp.admin  # noqa: F401  registered there, unregistered below
from axes.admin import AccessAttemptAdmin as AxesAccessAttemptAdmin
from axes.admin import AccessFailureLogAdmin as AxesAccessFailureLogAdmin
from axes.admin import AccessLogAdmin as AxesAccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminDateWidget
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils.html import format_html_join
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import second_factor, services, sign_in, users
from accounts.approvals import approval_kind_get, approval_kinds
from accounts.enums import ApprovalStatus, KycStatus
from accounts.models import ApprovalRequest, AuditEvent, Client, CreditProfile, User
from core.admin import ReadOnlyAdminMixin, ServiceAdminMixin, run_for_each
from core.exceptions import DomainError
from core.forms import PlainDecimalField

# A device admin would let an administrator plant an authenticator whose secret they know in someone else's
# account: second factors are enrolled by their owner only, and reset (audited) from the user list.
admin.site.unregister(TOTPDevice)
admin.site.unregister(StaticDevice)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["username", "email", "is_staff", "client", "role_names", "has_second_factor", "is_active",
                    "last_login"]  # fmt: skip
    list_filter = ["is_staff", "is_active", "groups"]
    fieldsets = [*DjangoUserAdmin.fieldsets, ("Client portal", {"fields": ["client"]})]
    autocomplete_fields = ["client"]

    actions = ["lift_login_lockout", "reset_second_factor"]
    readonly_fields = ["last_login", "date_joined"]

    @admin.display(description="roles")
    def role_names(self, user: User) -> str:
        return ", ".join(group.name for group in user.groups.all())

    @admin.display(description="second factor", boolean=True)
    def has_second_factor(self, user: User) -> bool | None:
        return second_factor.is_enrolled(user) if second_factor.needs_second_factor(user) else None

    @admin.action(
        description="Reset the second factor of the selected users (they enrol again)", permissions=["change"]
    )
    def reset_second_factor(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            lambda user: second_factor.second_factor_reset(user=user, actor=request.user),
            "second factor(s) reset",
        )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("client").prefetch_related("groups")

    # Every change goes through the audited services in accounts.users (the admin's change views already
    # run in one transaction: the change and its audit events commit together).
    def save_model(self, request, obj: User, form, change: bool) -> None:
        if change:
            changes = {
                name: form.cleaned_data[name] for name in form.changed_data if name in users.USER_FIELDS
            }
            users.user_update(user=obj, actor=request.user, **changes)
        else:
            usable = form.cleaned_data.get("set_usable_password", True)
            created = users.user_create(
                actor=request.user,
                username=form.cleaned_data["username"],
                password=form.cleaned_data.get("password1") if usable else None,
            )
            obj.pk, obj.password = created.pk, created.password
            obj._state.adding, obj._state.db = False, created._state.db

    def save_related(self, request, form, formsets, change: bool) -> None:
        if change:
            users.user_roles_set(
                user=form.instance,
                actor=request.user,
                groups=form.cleaned_data.get("groups"),
                permissions=form.cleaned_data.get("user_permissions"),
            )
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the audit trail names its users: deactivate one instead

    def user_change_password(self, request, id, form_url=""):
        with transaction.atomic():
            before = User.objects.filter(pk=id).values_list("password", flat=True).first()
            response = super().user_change_password(request, id, form_url)
            user = User.objects.filter(pk=id).first()
            if user is not None and user.password != before:
                users.user_password_changed_record(user=user, actor=request.user)
        return response

    def has_lift_lockout_permission(self, request) -> bool:
        return request.user.has_perm(sign_in.LIFT_PERMISSION)

    @admin.action(description="Lift the login lockout of the selected users", permissions=["lift_lockout"])
    def lift_login_lockout(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            lambda user: sign_in.login_lockout_lift_for_user(user=user, actor=request.user),
            "lockout(s) lifted",
        )


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    """Roles: what each may do. Changes go through the audited services; the built-in roles are brought
    back in line with the code (``accounts.roles``) at the next migration, audited too."""

    def save_model(self, request, obj: Group, form, change: bool) -> None:
        if change:
            users.group_rename(group=obj, actor=request.user, name=form.cleaned_data["name"])
        else:
            created = users.group_create(actor=request.user, name=form.cleaned_data["name"])
            obj.pk = created.pk
            obj._state.adding, obj._state.db = False, created._state.db

    def save_related(self, request, form, formsets, change: bool) -> None:
        users.group_permissions_set(
            group=form.instance, actor=request.user, permissions=form.cleaned_data.get("permissions", [])
        )
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def delete_model(self, request, obj: Group) -> None:
        users.group_delete(group=obj, actor=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for group in queryset:
            users.group_delete(group=group, actor=request.user)


admin.site.unregister(AccessLog)
admin.site.unregister(AccessFailureLog)


@admin.register(AccessLog)
class AccessLogAdmin(ReadOnlyAdminMixin, AxesAccessLogAdmin):
    """django-axes' log of logins and logouts: history, read-only (the audit trail has every attempt too)."""


@admin.register(AccessFailureLog)
class AccessFailureLogAdmin(ReadOnlyAdminMixin, AxesAccessFailureLogAdmin):
    """django-axes' log of failed logins: history, read-only."""


admin.site.unregister(AccessAttempt)


@admin.register(AccessAttempt)
class AccessAttemptAdmin(AxesAccessAttemptAdmin):
    """Failed logins counted towards a lockout (django-axes). Deleting them lifts the lockout, through the
    audited service; nothing here is edited."""

    actions = ["lift_lockout"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj) -> None:
        sign_in.login_lockout_lift(attempts=[obj], actor=request.user)

    def delete_queryset(self, request, queryset) -> None:
        sign_in.login_lockout_lift(attempts=list(queryset), actor=request.user)

    @admin.action(description="Lift the lockout (forget these failed logins)", permissions=["delete"])
    def lift_lockout(self, request, queryset):
        try:
            forgotten = sign_in.login_lockout_lift(attempts=list(queryset), actor=request.user)
        except DomainError as error:
            self.message_user(request, str(error), level=messages.ERROR)
        else:
            self.message_user(request, f"Lockout lifted: {forgotten} failed login(s) forgotten.")


class CreditProfileInline(admin.StackedInline):
    model = CreditProfile
    can_delete = False
    readonly_fields = ["internal_rating", "credit_limit", "next_review_on"]
    extra = 0

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ClientChangeForm(forms.ModelForm):
    """A client's details change at once; a new KYC status or professional-investor evidence is a request that
    takes effect when a second member of staff approves it. Empty fields ask for no change."""

    new_kyc_status = forms.ChoiceField(
        choices=[("", "(no change)"), *KycStatus.choices], required=False, label="KYC status"
    )
    new_pi_portfolio_value = forms.DecimalField(
        required=False, max_digits=20, decimal_places=2, min_value=0, label="Portfolio value (HKD)"
    )
    new_pi_total_assets = forms.DecimalField(
        required=False, max_digits=20, decimal_places=2, min_value=0, label="Total assets (HKD)"
    )
    new_pi_assessed_on = forms.DateField(required=False, widget=AdminDateWidget, label="Assessment date")
    new_pi_expires_on = forms.DateField(
        required=False, widget=AdminDateWidget, label="Expires on", help_text="default: the validity period"
    )
    assessment_reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Why")

    class Meta:
        model = Client
        fields = ["name", "kind", "email"]

    def assessment_changes(self) -> dict:
        return {
            name.removeprefix("new_"): self.cleaned_data[name]
            for name in self.fields
            if name.startswith("new_") and self.cleaned_data.get(name) not in (None, "")
        }


@admin.register(Client)
class ClientAdmin(ServiceAdminMixin, admin.ModelAdmin):
    list_display = [
        "reference",
        "name",
        "kind",
        "kyc_status",
        "eligible",
        "pi_expires_on",
        "credit_limit",
    ]
    list_filter = ["kind", "kyc_status", "pi_expires_on"]
    search_fields = ["reference", "name", "email"]
    readonly_fields = ["reference", "eligibility_reasons", "created_at", "updated_at"]
    assessment_fields = [
        "kyc_status",
        "pi_portfolio_value",
        "pi_total_assets",
        "pi_assessed_on",
        "pi_expires_on",
    ]
    inlines = [CreditProfileInline]
    fieldsets = [
        (None, {"fields": ["reference", "name", "kind", "email", "kyc_status"]}),
        (
            "Professional investor assessment",
            {
                "fields": [
                    "pi_portfolio_value",
                    "pi_total_assets",
                    "pi_assessed_on",
                    "pi_expires_on",
                    "eligibility_reasons",
                ]
            },
        ),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]
    change_fieldsets = [
        (None, {"fields": ["reference", "name", "kind", "email", "kyc_status"]}),
        (
            "Professional investor assessment",
            {"fields": [*assessment_fields[1:], "eligibility_reasons", "pending_assessment_change"]},
        ),
        (
            "Ask for an assessment change (four-eyes: a second member of staff approves it)",
            {"fields": [*(f"new_{name}" for name in assessment_fields), "assessment_reason"]},
        ),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            kwargs["form"] = ClientChangeForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        return self.change_fieldsets if obj is not None else self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return self.readonly_fields
        return [*self.readonly_fields, *self.assessment_fields, "pending_assessment_change"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("credit_profile")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(boolean=True, description="eligible for financing")
    def eligible(self, client: Client) -> bool:
        return client.eligibility().eligible

    @admin.display(description="eligibility")
    def eligibility_reasons(self, client: Client) -> str:
        if client.pk is None:
            return "-"
        result = client.eligibility()
        if result.eligible:
            return "Eligible for financing"
        return format_html_join("", "<div>✗ {}</div>", ((reason,) for reason in result.reasons))

    @admin.display(description="pending assessment change")
    def pending_assessment_change(self, client: Client) -> str:
        pending = ApprovalRequest.objects.filter(
            kind=services.CLIENT_ASSESSMENT_CHANGE.key,
            target_id=str(client.pk),
            status=ApprovalStatus.PENDING,
        ).first()
        return (
            f"#{pending.pk}: {services.CLIENT_ASSESSMENT_CHANGE.describe(pending.proposed)}"
            if pending
            else "-"
        )

    @admin.display(description="credit limit", ordering="credit_profile__credit_limit")
    def credit_limit(self, client: Client):
        profile = getattr(client, "credit_profile", None)
        return profile.credit_limit if profile else "-"

    def save_model(self, request, obj: Client, form, change: bool) -> None:
        if not change:
            # The record is created; the KYC status and evidence typed with it become an assessment change
            # request (four-eyes), as for a change and as through the API: a client is never eligible on one
            # person's word.
            data = {
                name: form.cleaned_data[name]
                for name in services.CLIENT_FIELDS
                if name in form.cleaned_data and name not in services.ASSESSMENT_FIELDS
            }
            saved = services.client_create(actor=request.user, **data)
            obj.pk, obj.reference = saved.pk, saved.reference
            assessment = {
                name: getattr(value, "amount", value)  # a Money field's amount
                for name in services.ASSESSMENT_FIELDS
                if (value := form.cleaned_data.get(name)) not in (None, "", KycStatus.PENDING)
            }
            if assessment:
                approval = services.client_assessment_change_request(
                    client=saved, actor=request.user, reason="Assessment at onboarding", **assessment
                )
                self.message_user(
                    request,
                    f"{saved.reference} is created with KYC pending; the KYC status and evidence entered are "
                    f"request #{approval.pk}: they take effect when a second member of staff approves it.",
                    level=messages.WARNING,
                )
            return
        details = {
            name: form.cleaned_data[name] for name in form.changed_data if name in services.CLIENT_FIELDS
        }
        services.client_update(client=obj, actor=request.user, **details)
        assessment = form.assessment_changes()
        if assessment:
            approval = services.client_assessment_change_request(
                client=obj, actor=request.user, reason=form.cleaned_data["assessment_reason"], **assessment
            )
            self.message_user(
                request,
                f"The assessment change is request #{approval.pk}: it takes effect when a second member of staff "
                "approves it.",
            )


class CreditProfileForm(forms.ModelForm):
    requested_credit_limit = PlainDecimalField(
        required=False,
        max_digits=20,
        decimal_places=2,
        label="Request a new credit limit (HKD)",
        help_text="Takes effect only when a second member of staff approves it.",
    )
    request_reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    class Meta:
        model = CreditProfile
        fields = ["client", "internal_rating", "next_review_on"]


@admin.register(CreditProfile)
class CreditProfileAdmin(ServiceAdminMixin, admin.ModelAdmin):
    form = CreditProfileForm
    list_display = ["client", "internal_rating", "credit_limit", "next_review_on", "pending_change"]
    list_filter = ["internal_rating", "next_review_on"]
    search_fields = ["client__reference", "client__name"]
    readonly_fields = ["credit_limit"]
    autocomplete_fields = ["client"]

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "client"] if obj else self.readonly_fields

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="pending limit change")
    def pending_change(self, profile: CreditProfile) -> str:
        pending = ApprovalRequest.objects.filter(
            kind="credit_limit", target_id=str(profile.pk), status=ApprovalStatus.PENDING
        ).first()
        return f"#{pending.pk}: HKD {pending.proposed['credit_limit']}" if pending else "-"

    def save_model(self, request, obj: CreditProfile, form, change: bool) -> None:
        if change:
            profile = services.credit_profile_update(
                profile=obj,
                actor=request.user,
                internal_rating=form.cleaned_data["internal_rating"],
                next_review_on=form.cleaned_data["next_review_on"],
            )
        else:
            profile = services.credit_profile_create(
                client=form.cleaned_data["client"],
                internal_rating=form.cleaned_data["internal_rating"],
                next_review_on=form.cleaned_data["next_review_on"],
                actor=request.user,
            )
        obj.pk = profile.pk
        requested = form.cleaned_data.get("requested_credit_limit")
        if requested is not None:
            approval = services.credit_limit_change_request(
                profile=profile,
                credit_limit=requested,
                actor=request.user,
                reason=form.cleaned_data["request_reason"],
            )
            self.message_user(
                request, f"Credit limit change submitted for approval as request #{approval.pk}."
            )


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind_label",
        "target_repr",
        "change",
        "requested_by",
        "requested_at",
        "status",
        "decided_by",
    ]
    list_filter = ["status", "kind", "requested_at"]
    search_fields = ["target_repr", "reason", "requested_by__username"]
    readonly_fields = [
        "kind",
        "target_repr",
        "current",
        "proposed",
        "reason",
        "status",
        "requested_by",
        "requested_at",
        "decided_by",
        "decided_at",
        "decision_note",
    ]
    exclude = ["target_type", "target_id"]
    actions = ["approve", "reject", "cancel"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("requested_by", "decided_by")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="kind", ordering="kind")
    def kind_label(self, approval: ApprovalRequest) -> str:
        return approval_kind_get(approval.kind).label

    @admin.display(description="change")
    def change(self, approval: ApprovalRequest) -> str:
        return approval_kind_get(approval.kind).describe(approval.proposed)

    def has_decide_permission(self, request) -> bool:
        """Staff who may decide some kind of request (each decision still checks its own kind)."""
        return any(request.user.has_perm(kind.approve_permission) for kind in approval_kinds())

    def has_ask_permission(self, request) -> bool:
        return any(request.user.has_perm(kind.request_permission) for kind in approval_kinds())

    @admin.action(description="Approve selected requests (four-eyes: not your own)", permissions=["decide"])
    def approve(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            lambda approval: services.approval_request_approve(request=approval, actor=request.user),
            "request(s) approved",
        )

    @admin.action(description="Reject selected requests", permissions=["decide"])
    def reject(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            lambda approval: services.approval_request_reject(
                request=approval, actor=request.user, note="rejected in the admin"
            ),
            "request(s) rejected",
        )

    @admin.action(description="Cancel selected requests (your own only)", permissions=["ask"])
    def cancel(self, request, queryset):
        run_for_each(
            self,
            request,
            queryset,
            lambda approval: services.approval_request_cancel(request=approval, actor=request.user),
            "request(s) cancelled",
        )


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "actor_label", "action", "target_repr"]
    list_filter = ["action", "target_type", "created_at"]
    search_fields = ["action", "actor_label", "target_repr", "target_id"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "created_at",
        "actor",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "target_repr",
        "before",
        "after",
    ]

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("accounts.view_auditevent")
