"""Demo data for `make run`: staff of every role, clients with their credit profiles, limits approved
through the four-eyes flow. Idempotent: running it again changes nothing."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from accounts import roles
from accounts.enums import ClientKind, InternalRating, KycStatus
from accounts.models import ApprovalRequest, Client, CreditProfile, User
from accounts.services import (
    approval_request_approve,
    client_create,
    client_user_create,
    credit_limit_change_request,
    credit_profile_create,
)

DEMO_PASSWORD = "demo-pass-2026"
PENDING_DEMO_REASON = "Client asked for more headroom"


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    password: str = DEMO_PASSWORD


DEMO_STAFF = [
    DemoLogin("admin", roles.ADMINISTRATOR),
    DemoLogin("credit", roles.CREDIT_OFFICER),
    DemoLogin("credit2", roles.CREDIT_OFFICER),
    DemoLogin("risk", roles.RISK_OFFICER),
    DemoLogin("ops", roles.OPERATIONS),
    DemoLogin("compliance", roles.COMPLIANCE),
]
DEMO_CLIENT_LOGINS = [DemoLogin("client1", "Client (Harbour View Capital)")]
DEMO_LOGINS = [*DEMO_STAFF, *DEMO_CLIENT_LOGINS]


@dataclass(frozen=True)
class DemoClient:
    reference: str
    name: str
    kind: str
    portfolio: str | None
    total_assets: str | None
    assessed_days_ago: int
    credit_limit: str | None
    rating: str = InternalRating.A


DEMO_CLIENTS = [
    DemoClient(
        "DEMO01", "Harbour View Capital Ltd", ClientKind.CORPORATION, "45000000", "120000000", 30, "30000000"
    ),
    DemoClient("DEMO02", "Chan Tai Man", ClientKind.INDIVIDUAL, "12000000", None, 60, "6000000"),
    DemoClient(
        "DEMO03", "Kowloon Family Trust Co", ClientKind.TRUST_CORPORATION, None, "80000000", 90, "20000000"
    ),
    DemoClient("DEMO04", "Peak Partners LP", ClientKind.PARTNERSHIP, "9500000", "15000000", 200, "5000000"),
    DemoClient(
        "DEMO05", "Lam Siu Ming", ClientKind.INDIVIDUAL, "5000000", None, 10, None, InternalRating.BBB
    ),
    DemoClient("DEMO06", "Tsim Sha Tsui Holdings Ltd", ClientKind.CORPORATION, "9000000", None, 400, None),
]

Progress = Callable[[str], None]


def _staff_user(login: DemoLogin) -> User:
    user = User.objects.filter(username=login.username).first()
    if user is None:
        user = User(username=login.username, email=f"{login.username}@broker.example", is_staff=True)
        user.set_password(login.password)
        user.save()
        user.groups.add(Group.objects.get(name=login.role))
    return user


def seed_people(progress: Progress) -> dict[str, User]:
    roles.roles_sync()
    staff = {login.username: _staff_user(login) for login in DEMO_STAFF}
    progress(f"staff users: {', '.join(staff)}")
    today = timezone.localdate()
    for spec in DEMO_CLIENTS:
        if Client.objects.filter(reference=spec.reference).exists():
            continue
        with transaction.atomic():
            client = client_create(
                actor=staff["credit"],
                reference=spec.reference,
                name=spec.name,
                kind=spec.kind,
                email=f"{spec.reference.lower()}@client.example",
                kyc_status=KycStatus.APPROVED,
                pi_portfolio_value=spec.portfolio,
                pi_total_assets=spec.total_assets,
                pi_assessed_on=today - datetime.timedelta(days=spec.assessed_days_ago),
            )
            profile = credit_profile_create(
                client=client,
                internal_rating=spec.rating,
                next_review_on=today + datetime.timedelta(days=180),
                actor=staff["credit"],
            )
            if spec.credit_limit:
                request = credit_limit_change_request(
                    profile=profile,
                    credit_limit=spec.credit_limit,
                    actor=staff["credit"],
                    reason="Onboarding",
                )
                approval_request_approve(request=request, actor=staff["credit2"], note="Checked evidence")
        progress(f"client {spec.reference} {spec.name}")
    # One request left in the queue, so the four-eyes flow can be tried in the admin.
    profile = CreditProfile.objects.get(client__reference="DEMO02")
    if not ApprovalRequest.objects.filter(
        kind="credit_limit", target_id=str(profile.pk), reason=PENDING_DEMO_REASON
    ).exists():
        credit_limit_change_request(
            profile=profile, credit_limit="8000000", actor=staff["credit"], reason=PENDING_DEMO_REASON
        )
        progress("a pending credit limit request for DEMO02 (approve it as credit2 or admin)")
    harbour = Client.objects.get(reference="DEMO01")
    if not User.objects.filter(username="client1").exists():
        client_user_create(
            client=harbour,
            username="client1",
            password=DEMO_PASSWORD,
            email="client1@client.example",
            actor=staff["admin"],
        )
    return staff


def seed_demo(progress: Progress) -> None:
    seed_people(progress)
