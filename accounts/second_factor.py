"""The second factor every member of staff signs in with: a TOTP authenticator (django-otp), and recovery
codes for when it is lost. Enrolling, each verification, each failure and a reset are audited; failed codes
are throttled by django-otp (docs/security.md)."""

from __future__ import annotations

import re
from base64 import b32encode

import django_otp
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.audit import Actor, actor_user, audit_event_record
from accounts.models import User
from core.exceptions import InvalidInput, PermissionRefused
from core.locks import lock_one

RECOVERY_CODES = 10
AUTHENTICATOR = "authenticator"
RECOVERY = "recovery codes"
RESET_PERMISSION = "accounts.change_user"
TOTP_CODE = re.compile(r"^[0-9]{6}$")


class CodeRefused(InvalidInput):
    code = "second_factor_refused"


def needs_second_factor(user) -> bool:
    """Staff (and superusers) sign in with a second factor; client users do not (yet)."""
    return bool(user.is_authenticated and (user.is_staff or user.is_superuser))


def is_enrolled(user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def secret_of(device: TOTPDevice) -> str:
    """The device's secret as authenticator apps take it when typed in: base32."""
    return b32encode(device.bin_key).decode("ascii")


def enrolment_device(*, user: User) -> TOTPDevice:
    """The authenticator the user is enrolling: their unconfirmed device, made on first use. Its secret is
    shown until a code from it confirms it."""
    if is_enrolled(user):
        raise InvalidInput(f"{user.get_username()} already has an authenticator.", code="already_enrolled")
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name=AUTHENTICATOR, confirmed=False)


def _fresh_recovery_codes(user: User) -> list[str]:
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY, confirmed=True)
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


WRONG_CODE = "That code is not right: check the authenticator's clock and try the newest code."


def _check(device, code: str) -> str | None:
    """Verify ``code`` on ``device`` (django-otp counts a failure and throttles the next try); the refusal in
    words, or None when it is right."""
    allowed, extra = device.verify_is_allowed()
    if not allowed:
        until = (extra or {}).get("locked_until")
        when = f" after {timezone.localtime(until):%H:%M:%S}" if until else " later"
        return f"Too many wrong codes: try again{when}."
    return None if device.verify_token(code) else WRONG_CODE


def second_factor_enrol(*, request, user: User, code: str) -> list[str]:
    """Confirm the user's new authenticator with a code from it, issue their recovery codes (returned, to be
    shown once; only they are kept) and mark the session verified. A wrong code is throttled, audited and
    refused."""
    with transaction.atomic():
        device = lock_one(TOTPDevice, enrolment_device(user=user).pk)
        refusal = _check(device, code.strip())
        if refusal is None:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            codes = _fresh_recovery_codes(user)
            audit_event_record(
                actor=user,
                action="second_factor.enrolled",
                target=user,
                after={"authenticator": device.name, "recovery_codes": len(codes)},
            )
        else:
            audit_event_record(
                actor=user,
                action="second_factor.failed",
                target=user,
                after={"with": AUTHENTICATOR, "while": "enrolling", "refusal": refusal},
            )
    if refusal is not None:  # after the commit: the throttle and the audit event are kept
        raise CodeRefused(refusal)
    django_otp.login(request, device)
    return codes


def second_factor_verify(*, request, user: User, code: str) -> None:
    """Mark the session verified with a code from the user's authenticator, or one of their recovery codes
    (each works once). A wrong code is throttled, audited and refused."""
    code = code.strip().replace(" ", "")
    recovery = not TOTP_CODE.match(code)
    model = StaticDevice if recovery else TOTPDevice
    with transaction.atomic():
        device = model.objects.select_for_update().filter(user=user, confirmed=True).order_by("pk").first()
        if device is None:
            refusal = "You have no recovery codes left." if recovery else "You have no authenticator yet."
        else:
            refusal = _check(device, code.lower() if recovery else code)
        facts = {"with": "recovery code" if recovery else AUTHENTICATOR}
        if refusal is None and recovery:
            facts["recovery_codes_left"] = device.token_set.count()
        audit_event_record(
            actor=user,
            action="second_factor.failed" if refusal else "second_factor.verified",
            target=user,
            after={**facts, "refusal": refusal} if refusal else facts,
        )
    if refusal is not None:
        raise CodeRefused(refusal)
    django_otp.login(request, device)


@transaction.atomic
def recovery_codes_renew(*, user: User) -> list[str]:
    """New recovery codes for a verified member of staff (the old ones stop working); shown once."""
    if not is_enrolled(user):
        raise InvalidInput("Enrol an authenticator first.", code="not_enrolled")
    codes = _fresh_recovery_codes(user)
    audit_event_record(
        actor=user,
        action="second_factor.recovery_codes_renewed",
        target=user,
        after={"recovery_codes": len(codes)},
    )
    return codes


@transaction.atomic
def second_factor_reset(*, user: User, actor: Actor) -> None:
    """Forget a user's authenticator and recovery codes (a lost phone): they enrol again at their next login.
    Another administrator does it, never the user themself."""
    staff = actor_user(actor)
    if staff is None or not staff.is_active or not staff.has_perm(RESET_PERMISSION):
        raise PermissionRefused(f"{getattr(staff, 'username', 'This actor')} may not reset a second factor.")
    if staff.pk == user.pk:
        raise PermissionRefused("Another administrator resets your second factor, not you.")
    user = lock_one(User, user.pk)
    removed = {
        AUTHENTICATOR: TOTPDevice.objects.filter(user=user).delete()[1].get(TOTPDevice._meta.label, 0),
        RECOVERY: StaticDevice.objects.filter(user=user).delete()[1].get(StaticDevice._meta.label, 0),
    }
    if not any(removed.values()):
        raise InvalidInput(f"{user.get_username()} has no second factor to reset.", code="no_change")
    audit_event_record(actor=actor, action="second_factor.reset", target=user, before=removed, after={})
