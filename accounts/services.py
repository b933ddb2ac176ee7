"""Writes for people, credit profiles and four-eyes approvals. Every service runs in one transaction,
validates before it writes, and records an audit event for each state change."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.utils import timezone
from djmoney.money import Money

from accounts.approvals import ApprovalKind, approval_kind_get, approval_kind_register
from accounts.audit import Actor, actor_user, audit_event_record, snapshot
from accounts.enums import APPROVAL_TRANSITIONS, ApprovalStatus, InternalRating, KycStatus
from accounts.exceptions import DuplicatePendingRequest, FourEyesRequired, FourEyesViolation
from accounts.models import ApprovalRequest, Client, CreditProfile, User
from core.exceptions import InvalidInput, InvalidTransition, PermissionRefused
from core.locks import lock_one
from core.parsing import parse_hkd
from core.validation import validate_model

CLIENT_FIELDS = [
    "name",
    "kind",
    "email",
    "kyc_status",
    "pi_portfolio_value",
    "pi_total_assets",
    "pi_assessed_on",
    "pi_expires_on",
]
# What makes a client eligible for financing: set when the client is onboarded, changed afterwards only through
# a four-eyes approval (``client_assessment_change_request``).
ASSESSMENT_FIELDS = ["kyc_status", "pi_portfolio_value", "pi_total_assets", "pi_assessed_on", "pi_expires_on"]
CREDIT_PROFILE_FIELDS = ["internal_rating", "credit_limit", "next_review_on"]


def _optional_hkd(value: Any, field: str) -> Money | None:
    return None if value in (None, "") else parse_hkd(value, field=field)


# --- clients -----------------------------------------------------------------------------------


def _assessment_dates_check(assessed_on: datetime.date | None, expires_on: datetime.date | None) -> None:
    """An assessment is dated today or earlier and lasts at most ``PI_ASSESSMENT_VALIDITY_DAYS``: no
    expiry in 2999."""
    if assessed_on is None:
        return
    if assessed_on > timezone.localdate():
        raise InvalidInput(
            f"pi_assessed_on: an assessment cannot be dated in the future ({assessed_on}).",
            details={"pi_assessed_on": ["in the future"]},
        )
    longest = assessed_on + datetime.timedelta(days=settings.PI_ASSESSMENT_VALIDITY_DAYS)
    if expires_on is not None and expires_on > longest:
        raise InvalidInput(
            f"pi_expires_on: an assessment made on {assessed_on} expires on {longest} at the latest "
            f"({settings.PI_ASSESSMENT_VALIDITY_DAYS} days), not {expires_on}.",
            details={"pi_expires_on": ["later than the assessment's validity"]},
        )


@transaction.atomic
def client_create(
    *,
    actor: Actor,
    name: str,
    kind: str,
    email: str = "",
    reference: str | None = None,
    kyc_status: str = KycStatus.PENDING,
    pi_portfolio_value: Any = None,
    pi_total_assets: Any = None,
    pi_assessed_on: datetime.date | None = None,
    pi_expires_on: datetime.date | None = None,
) -> Client:
    if pi_assessed_on is not None and pi_expires_on is None:
        pi_expires_on = pi_assessed_on + datetime.timedelta(days=settings.PI_ASSESSMENT_VALIDITY_DAYS)
    client = Client(
        reference=reference or "",
        name=name,
        kind=kind,
        email=email,
        kyc_status=kyc_status,
        pi_portfolio_value=_optional_hkd(pi_portfolio_value, "pi_portfolio_value"),
        pi_total_assets=_optional_hkd(pi_total_assets, "pi_total_assets"),
        pi_assessed_on=pi_assessed_on,
        pi_expires_on=pi_expires_on,
    )
    validate_model(client, exclude=["reference"])
    _assessment_dates_check(client.pi_assessed_on, client.pi_expires_on)
    if reference and Client.objects.filter(reference=reference).exists():
        raise InvalidInput(f"A client with reference {reference} already exists.", code="duplicate_reference")
    client.save()
    if not reference:
        client.reference = f"C{client.pk:06d}"
        client.save(update_fields=["reference"])
    audit_event_record(
        actor=actor, action="client.created", target=client, after=snapshot(client, CLIENT_FIELDS)
    )
    return client


@transaction.atomic
def client_update(*, client: Client, actor: Actor, **changes: Any) -> Client:
    """A client's name, kind and e-mail. The KYC status and the professional-investor evidence change only
    through a four-eyes request (``client_assessment_change_request``)."""
    assessment = sorted(set(changes) & set(ASSESSMENT_FIELDS))
    if assessment:
        raise FourEyesRequired(
            f"{', '.join(assessment)} change only through a four-eyes request that a second member of staff "
            "approves (an assessment change request); nothing was changed.",
            details={"fields": assessment},
        )
    unknown = set(changes) - set(CLIENT_FIELDS)
    if unknown:
        raise InvalidInput(f"These client fields cannot be changed here: {', '.join(sorted(unknown))}.")
    client = lock_one(Client, client.pk)
    before = snapshot(client, list(changes))
    for name, value in changes.items():
        setattr(client, name, value)
    after = snapshot(client, list(changes))
    changed = [name for name in changes if before[name] != after[name]]
    if not changed:
        return client
    validate_model(client)
    client.save(update_fields=[*changed, "updated_at"])
    audit_event_record(
        actor=actor,
        action="client.updated",
        target=client,
        before={name: before[name] for name in changed},
        after={name: after[name] for name in changed},
    )
    return client


@transaction.atomic
def client_user_create(*, client: Client, username: str, password: str, email: str, actor: Actor) -> User:
    if User.objects.filter(username=username).exists():
        raise InvalidInput(f"The username {username} is taken.", code="duplicate_username")
    user = User(username=username, email=email, client=client, is_staff=False)
    user.set_password(password)
    validate_model(user, exclude=["password"])
    user.save()
    audit_event_record(
        actor=actor,
        action="client_user.created",
        target=user,
        after={"client": client.reference, "username": username},
    )
    return user


def _assessment_values(client: Client) -> dict[str, Any]:
    return {
        "kyc_status": client.kyc_status,
        "pi_portfolio_value": _amount_text(client.pi_portfolio_value),
        "pi_total_assets": _amount_text(client.pi_total_assets),
        "pi_assessed_on": client.pi_assessed_on.isoformat() if client.pi_assessed_on else None,
        "pi_expires_on": client.pi_expires_on.isoformat() if client.pi_expires_on else None,
    }


def _amount_text(value: Money | None) -> str | None:
    return None if value is None else f"{value.amount:.2f}"  # to the cent, as stored


def _date(value: Any, field: str) -> datetime.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(
            f"{field}: {value!r} is not a date (YYYY-MM-DD).", details={field: ["not a date"]}
        ) from None


def _assessment_clean(client: Client, proposed: dict[str, Any]) -> dict[str, Any]:
    """The proposed KYC status and evidence, checked and normalised (amounts and dates as text)."""
    unknown = set(proposed) - set(ASSESSMENT_FIELDS)
    if unknown or not proposed:
        raise InvalidInput(
            f"An assessment change proposes some of {', '.join(ASSESSMENT_FIELDS)}"
            + (f"; not {', '.join(sorted(unknown))}." if unknown else ".")
        )
    cleaned: dict[str, Any] = {}
    if "kyc_status" in proposed:
        if proposed["kyc_status"] not in KycStatus.values:
            raise InvalidInput(f"kyc_status: {proposed['kyc_status']!r} is not a KYC status.")
        cleaned["kyc_status"] = str(proposed["kyc_status"])
    for field in ("pi_portfolio_value", "pi_total_assets"):
        if field in proposed:
            amount = _optional_hkd(proposed[field], field)
            if amount is not None and amount.amount < 0:
                raise InvalidInput(f"{field}: cannot be negative.", details={field: ["negative"]})
            cleaned[field] = _amount_text(amount)
    for field in ("pi_assessed_on", "pi_expires_on"):
        if field in proposed:
            cleaned[field] = _date(proposed[field], field)
    if cleaned.get("pi_assessed_on") and "pi_expires_on" not in cleaned:
        cleaned["pi_expires_on"] = cleaned["pi_assessed_on"] + datetime.timedelta(
            days=settings.PI_ASSESSMENT_VALIDITY_DAYS
        )
    for field in ("pi_assessed_on", "pi_expires_on"):
        if field in cleaned:
            cleaned[field] = cleaned[field].isoformat() if cleaned[field] else None
    current = _assessment_values(client)
    after = {**current, **cleaned}
    assessed_on, expires_on = (
        _date(after["pi_assessed_on"], "pi_assessed_on"),
        _date(after["pi_expires_on"], "pi_expires_on"),
    )
    if expires_on is not None and (assessed_on is None or expires_on < assessed_on):
        raise InvalidInput(
            "An assessment cannot expire before it is made.", details={"pi_expires_on": ["too early"]}
        )
    _assessment_dates_check(assessed_on, expires_on)
    changed = {field: value for field, value in cleaned.items() if current[field] != value}
    if not changed:
        raise InvalidInput(f"{client} already has this assessment.", code="no_change")
    return changed


def _assessment_apply(*, target: Client, proposed: dict[str, Any], actor: Actor, request) -> None:
    client = lock_one(Client, target.pk)
    before = snapshot(client, list(proposed))
    for field, value in proposed.items():
        if field in ("pi_portfolio_value", "pi_total_assets"):
            value = _optional_hkd(value, field)
        elif field in ("pi_assessed_on", "pi_expires_on"):
            value = _date(value, field)
        setattr(client, field, value)
    validate_model(client)
    client.save(update_fields=[*proposed, "updated_at"])
    audit_event_record(
        actor=actor,
        action="client.assessment_changed",
        target=client,
        before=before,
        after={**snapshot(client, list(proposed)), "approval_request": request.pk},
    )


CLIENT_ASSESSMENT_CHANGE = approval_kind_register(
    ApprovalKind(
        key="client_assessment",
        label="KYC and professional-investor assessment change",
        model=Client,
        request_permission="accounts.change_client",
        approve_permission="accounts.approve_client_assessment",
        clean=_assessment_clean,
        current=_assessment_values,
        apply=_assessment_apply,
    )
)


def client_assessment_change_request(
    *, client: Client, actor: Actor, reason: str = "", **changes: Any
) -> ApprovalRequest:
    """Ask for a new KYC status or professional-investor evidence; it takes effect when a second member of staff
    approves it."""
    return approval_request_create(
        kind=CLIENT_ASSESSMENT_CHANGE.key, target=client, proposed=changes, actor=actor, reason=reason
    )


# --- credit profiles ---------------------------------------------------------------------------


@transaction.atomic
def credit_profile_create(
    *, client: Client, internal_rating: str, next_review_on: datetime.date, actor: Actor
) -> CreditProfile:
    """A new profile starts with no credit: its limit is set through a four-eyes approval."""
    if CreditProfile.objects.filter(client=client).exists():
        raise InvalidInput(f"{client} already has a credit profile.", code="duplicate_credit_profile")
    profile = CreditProfile(
        client=client,
        internal_rating=internal_rating,
        next_review_on=next_review_on,
        credit_limit=Money(0, "HKD"),
    )
    validate_model(profile)
    profile.save()
    audit_event_record(
        actor=actor,
        action="credit_profile.created",
        target=profile,
        after=snapshot(profile, CREDIT_PROFILE_FIELDS),
    )
    return profile


@transaction.atomic
def credit_profile_update(
    *,
    profile: CreditProfile,
    actor: Actor,
    internal_rating: str | None = None,
    next_review_on: datetime.date | None = None,
) -> CreditProfile:
    """Rating and review date change at once; the limit never does (see ``credit_limit_change_request``)."""
    profile = lock_one(CreditProfile, profile.pk)
    fields = ["internal_rating", "next_review_on"]
    before = snapshot(profile, fields)
    if internal_rating is not None:
        if internal_rating not in InternalRating.values:
            raise InvalidInput(f"{internal_rating!r} is not an internal rating.")
        profile.internal_rating = internal_rating
    if next_review_on is not None:
        profile.next_review_on = next_review_on
    after = snapshot(profile, fields)
    if before == after:
        return profile
    validate_model(profile)
    profile.save(update_fields=[*fields, "updated_at"])
    audit_event_record(
        actor=actor, action="credit_profile.updated", target=profile, before=before, after=after
    )
    return profile


def _credit_limit_clean(profile: CreditProfile, proposed: dict[str, Any]) -> dict[str, Any]:
    if set(proposed) != {"credit_limit"}:
        raise InvalidInput("A credit limit change proposes exactly one value: credit_limit.")
    limit = parse_hkd(proposed["credit_limit"], field="credit_limit", positive=True)
    if limit == profile.credit_limit:
        raise InvalidInput(f"The credit limit is already {limit}.", code="no_change")
    return {"credit_limit": str(limit.amount)}


def _credit_limit_apply(*, target: CreditProfile, proposed: dict[str, Any], actor: Actor, request) -> None:
    profile = lock_one(CreditProfile, target.pk)
    before = snapshot(profile, ["credit_limit"])
    profile.credit_limit = Money(Decimal(proposed["credit_limit"]), "HKD")
    profile.save(update_fields=["credit_limit", "updated_at"])
    audit_event_record(
        actor=actor,
        action="credit_limit.changed",
        target=profile,
        before=before,
        after={**snapshot(profile, ["credit_limit"]), "approval_request": request.pk},
    )


CREDIT_LIMIT_CHANGE = approval_kind_register(
    ApprovalKind(
        key="credit_limit",
        label="Credit limit change",
        model=CreditProfile,
        request_permission="accounts.change_creditprofile",
        approve_permission="accounts.approve_credit_limit",
        clean=_credit_limit_clean,
        current=lambda profile: {"credit_limit": str(profile.credit_limit.amount)},
        apply=_credit_limit_apply,
        describe=lambda proposed: f"credit limit → HKD {Decimal(proposed['credit_limit']):,.2f}",
    )
)


def credit_limit_change_request(
    *, profile: CreditProfile, credit_limit: Any, actor: Actor, reason: str = ""
) -> ApprovalRequest:
    return approval_request_create(
        kind=CREDIT_LIMIT_CHANGE.key,
        target=profile,
        proposed={"credit_limit": credit_limit},
        actor=actor,
        reason=reason,
    )


# --- four-eyes approvals -----------------------------------------------------------------------


def _require_permission(actor: Actor, permission: str, doing: str) -> None:
    user = actor_user(actor)
    if user is None or not user.is_active or not user.has_perm(permission):
        raise PermissionRefused(f"{getattr(user, 'username', 'This actor')} may not {doing}.")


@transaction.atomic
def approval_request_create(
    *, kind: str, target, proposed: dict[str, Any], actor: Actor, reason: str = ""
) -> ApprovalRequest:
    approval_kind: ApprovalKind = approval_kind_get(kind)
    if not isinstance(target, approval_kind.model):
        raise InvalidInput(f"A {approval_kind.label.lower()} applies to a {approval_kind.model.__name__}.")
    user = actor_user(actor)
    allowed_otherwise = (
        approval_kind.may_request is not None
        and user is not None
        and user.is_active
        and approval_kind.may_request(user, target)
    )
    if not allowed_otherwise:
        _require_permission(
            actor, approval_kind.request_permission, f"request a {approval_kind.label.lower()}"
        )
    cleaned = approval_kind.clean(target, dict(proposed))
    target_type = ContentType.objects.get_for_model(target)
    pending = ApprovalRequest.objects.filter(
        kind=kind, target_type=target_type, target_id=str(target.pk), status=ApprovalStatus.PENDING
    ).first()
    if pending is not None:
        raise DuplicatePendingRequest(
            f"Request #{pending.pk} for a {approval_kind.label.lower()} of {target} is already pending; "
            "approve, reject or cancel it first."
        )
    request = ApprovalRequest(
        kind=kind,
        target_type=target_type,
        target_id=str(target.pk),
        target_repr=str(target)[:200],
        current=approval_kind.current(target),
        proposed=cleaned,
        reason=reason,
        requested_by=actor_user(actor),
    )
    try:
        with transaction.atomic():
            request.save()
    except IntegrityError as error:  # a concurrent request won the race for the pending slot
        raise DuplicatePendingRequest(
            f"A {approval_kind.label.lower()} of {target} is already pending."
        ) from error
    audit_event_record(
        actor=actor,
        action="approval.requested",
        target=request,
        after={"kind": kind, "target": request.target_repr, "current": request.current, "proposed": cleaned},
    )
    return request


def _decide(
    request_pk: int, *, actor: Actor, new_status: str, note: str
) -> tuple[ApprovalRequest, ApprovalKind]:
    request = lock_one(ApprovalRequest, request_pk)
    approval_kind = approval_kind_get(request.kind)
    if new_status not in APPROVAL_TRANSITIONS[request.status]:
        raise InvalidTransition(
            f"Request #{request.pk} is {request.get_status_display().lower()}; it cannot become {new_status}."
        )
    user = actor_user(actor)
    if new_status == ApprovalStatus.CANCELLED:
        if user is None or user.pk != request.requested_by_id:
            raise PermissionRefused("Only the person who made a request can cancel it.")
    else:
        if user is not None and user.pk == request.requested_by_id:
            raise FourEyesViolation(
                f"You made request #{request.pk}; a second member of staff must decide it (four-eyes)."
            )
        _require_permission(
            actor, approval_kind.approve_permission, f"decide a {approval_kind.label.lower()}"
        )
    request.status = new_status
    request.decided_by = user
    request.decided_at = timezone.now()
    request.decision_note = note
    return request, approval_kind


@transaction.atomic
def approval_request_approve(*, request: ApprovalRequest, actor: Actor, note: str = "") -> ApprovalRequest:
    request, approval_kind = _decide(request.pk, actor=actor, new_status=ApprovalStatus.APPROVED, note=note)
    target = approval_kind.model._default_manager.get(pk=request.target_id)
    approval_kind.clean(target, dict(request.proposed))  # still valid now, not only when asked
    request.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    approval_kind.apply(target=target, proposed=request.proposed, actor=actor, request=request)
    audit_event_record(
        actor=actor,
        action="approval.approved",
        target=request,
        before={"status": ApprovalStatus.PENDING},
        after={"status": request.status, "note": note},
    )
    return request


def _closed(request: ApprovalRequest, approval_kind: ApprovalKind, actor: Actor) -> None:
    if approval_kind.closed is not None:
        target = approval_kind.model._default_manager.get(pk=request.target_id)
        approval_kind.closed(target=target, actor=actor, request=request)


@transaction.atomic
def approval_request_reject(*, request: ApprovalRequest, actor: Actor, note: str = "") -> ApprovalRequest:
    request, approval_kind = _decide(request.pk, actor=actor, new_status=ApprovalStatus.REJECTED, note=note)
    request.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    _closed(request, approval_kind, actor)
    audit_event_record(
        actor=actor,
        action="approval.rejected",
        target=request,
        before={"status": ApprovalStatus.PENDING},
        after={"status": request.status, "note": note},
    )
    return request


@transaction.atomic
def approval_request_cancel(*, request: ApprovalRequest, actor: Actor) -> ApprovalRequest:
    request, approval_kind = _decide(
        request.pk, actor=actor, new_status=ApprovalStatus.CANCELLED, note="cancelled by requester"
    )
    # A cancellation is decided by the requester: the four-eyes constraint is about approving and
    # rejecting, so the decider is left empty and the audit event says who cancelled.
    request.decided_by = None
    request.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    _closed(request, approval_kind, actor)
    audit_event_record(
        actor=actor,
        action="approval.cancelled",
        target=request,
        before={"status": ApprovalStatus.PENDING},
        after={"status": request.status},
    )
    return request


@transaction.atomic
def approval_request_withdraw(*, request: ApprovalRequest, actor: Actor, reason: str) -> ApprovalRequest:
    """Close a pending request because the change it asks for was withdrawn outside the approval queue (a
    client revoking the standing instruction waiting for sign-off): recorded as cancelled, with who and why.
    The caller has already changed the target, so the kind's ``closed`` hook is not called."""
    request = lock_one(ApprovalRequest, request.pk)
    if ApprovalStatus.CANCELLED not in APPROVAL_TRANSITIONS[request.status]:
        raise InvalidTransition(
            f"Request #{request.pk} is {request.get_status_display().lower()}; it cannot be withdrawn."
        )
    request.status = ApprovalStatus.CANCELLED
    request.decided_by = None
    request.decided_at = timezone.now()
    request.decision_note = reason[:2000]
    request.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    audit_event_record(
        actor=actor,
        action="approval.withdrawn",
        target=request,
        before={"status": ApprovalStatus.PENDING},
        after={"status": request.status, "reason": reason},
    )
    return request
