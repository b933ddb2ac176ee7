"""Demo data for `make run`: staff of every role, clients with their credit profiles, limits approved
through the four-eyes flow. Idempotent: running it again changes nothing."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import roles
from accounts.audit import SYSTEM
from accounts.enums import ClientKind, InternalRating, KycStatus
from accounts.models import ApprovalRequest, Client, CreditProfile, User
from accounts.services import (
    approval_request_approve,
    client_create,
    client_user_create,
    credit_limit_change_request,
    credit_profile_create,
)
from accounts.users import user_create, user_roles_set
from collateral.custody import custody_holding_receive
from collateral.models import Asset, CurrentPrice, FxRate, Price
from collateral.services import asset_create, collateral_deposit, fx_rate_record, pool_open, price_record
from core.money import format_percent
from financing.enums import RateKind, TopUpTrigger
from financing.lending.interest import base_rate_record, interest_accrue_all
from financing.lending.services import drawdown_create, facility_open
from financing.models import AutomaticTopUp, BaseRate, Facility, MarginState, StandingTopUpInstruction
from financing.monitoring.cycle import monitoring_cycle_run
from financing.selectors import pending_sign_off_of
from financing.top_ups.instructions import standing_top_up_request
from oversight.enums import StressTrigger
from oversight.models import DailyReport, StressRun
from oversight.reports import HONG_KONG, daily_report_make
from oversight.stress import stress_library_run

DEMO_PASSWORD = "demo-pass-2026"
# Every demo member of staff is enrolled with this authenticator secret (printed by the banner): add it to any
# TOTP app, or run `manage.py demo_totp_code`. A real deployment has each person enrol their own.
DEMO_TOTP_KEY = b"margin-demo-2fa-key!"
DEMO_TOTP_SECRET = base64.b32encode(DEMO_TOTP_KEY).decode("ascii")
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
DEMO_CLIENT_LOGINS = [
    DemoLogin("client1", "Client, calm (Harbour View)"),
    DemoLogin("client2", "Client, open call (Repulse Bay)"),
]
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
    DemoClient(
        "DEMO07", "Lantau Digital Assets Ltd", ClientKind.CORPORATION, "30000000", "60000000", 20, "3000000"
    ),
    DemoClient(
        "DEMO08", "Repulse Bay Ventures Ltd", ClientKind.CORPORATION, "12000000", "20000000", 15, "3000000"
    ),
]

Progress = Callable[[str], None]


def _staff_user(login: DemoLogin) -> User:
    user = User.objects.filter(username=login.username).first()
    if user is None:
        user = user_create(
            actor=SYSTEM,
            username=login.username,
            password=login.password,
            email=f"{login.username}@broker.example",
            is_staff=True,
        )
        user_roles_set(user=user, actor=SYSTEM, groups=[Group.objects.get(name=login.role)])
    if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
        TOTPDevice.objects.create(user=user, name="authenticator", key=DEMO_TOTP_KEY.hex(), confirmed=True)
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
        progress("a pending credit limit request for DEMO02 (approve it as credit2)")
    for username, reference in (("client1", "DEMO01"), ("client2", "DEMO08")):
        if not User.objects.filter(username=username).exists():
            client_user_create(
                client=Client.objects.get(reference=reference),
                username=username,
                password=DEMO_PASSWORD,
                email=f"{username}@client.example",
                actor=staff["admin"],
            )
    return staff


DEMO_ASSETS = [
    # symbol, name, kind, currency, decimals, haircut, lot, concentration limit, sale rank
    ("HKD", "Hong Kong dollar", "cash", "HKD", 2, "0", "0.01", None, 90),
    ("USD", "US dollar", "cash", "USD", 2, "0.02", "0.01", None, 91),
    ("BTC", "Bitcoin", "crypto", "USD", 8, "0.60", "0.00000001", None, 1),
    ("ETH", "Ether", "crypto", "USD", 18, "0.65", "0.000000000000000001", None, 2),
    ("0700.HK", "Tencent Holdings", "security", "HKD", 0, "0.30", "100", "0.60", 10),
    ("0005.HK", "HSBC Holdings", "security", "HKD", 0, "0.25", "400", "0.60", 11),
    ("0388.HK", "Hong Kong Exchanges and Clearing", "security", "HKD", 0, "0.30", "100", "0.60", 12),
    ("2800.HK", "Tracker Fund of Hong Kong", "security", "HKD", 0, "0.20", "500", None, 13),
    ("9988.HK", "Alibaba Group", "security", "HKD", 0, "0.35", "100", None, 14),
]
DEMO_PRICES = {"BTC": "98000", "ETH": "3400", "0700.HK": "400", "0005.HK": "98", "0388.HK": "300", "2800.HK": "25",
               "9988.HK": "85"}  # fmt: skip
# client: (facility limit, holdings, drawdown)
DEMO_FACILITIES = {
    "DEMO01": ("30000000", {"BTC": "5", "ETH": "40", "0700.HK": "20000", "HKD": "2000000"}, "5000000"),
    "DEMO02": ("6000000", {"BTC": "2", "0005.HK": "8000"}, "900000"),
    "DEMO03": ("20000000", {"ETH": "100", "2800.HK": "200000", "0388.HK": "5000"}, "3000000"),
    "DEMO04": ("5000000", {"9988.HK": "30000", "BTC": "0.5"}, "1530000"),
}
# Alibaba falls after Peak Partners (DEMO04) has drawn: their margin ratio reaches about 96%, in the warning
# band, while everybody else stays comfortable; Peak's standing instruction then tops it up to 85%.
DEMO_PRICE_MOVE = ("9988.HK", "74")


def seed_market(actor, progress: Progress) -> None:

    for symbol, name, kind, currency, decimals, haircut, lot, limit, rank in DEMO_ASSETS:
        if not Asset.objects.filter(pk=symbol).exists():
            asset_create(
                symbol=symbol, name=name, kind=kind, currency=currency, decimals=decimals, haircut=haircut,
                lot_size=lot, concentration_limit=limit, sale_rank=rank, actor=actor,
            )  # fmt: skip
    if not FxRate.objects.exists():
        fx_rate_record(currency="USD", rate="7.8", source="demo", actor=actor)
        fx_rate_record(currency="USDT", quote="USD", rate="1.0", source="demo", actor=actor)
    for symbol, value in DEMO_PRICES.items():
        if not CurrentPrice.objects.filter(asset_id=symbol).exists():
            price_record(asset=Asset.objects.get(pk=symbol), price=value, source="demo", actor=actor)
    if not BaseRate.objects.exists():
        base_rate_record(
            name="HIBOR_1M", rate="0.0385", effective_on=timezone.localdate(), actor=actor, source="demo"
        )
    progress(f"assets: {', '.join(row[0] for row in DEMO_ASSETS)} with prices and USD/HKD 7.8")


def seed_lending(staff: dict[str, User], progress: Progress) -> None:

    officer = staff["credit"]
    for reference, (limit, holdings, drawn) in DEMO_FACILITIES.items():
        client = Client.objects.get(reference=reference)
        if Facility.objects.filter(client=client).exists():
            continue
        with transaction.atomic():
            floating = reference in ("DEMO01", "DEMO03")
            facility = facility_open(
                client=client,
                limit=limit,
                rate_kind=RateKind.FLOATING if floating else RateKind.FIXED,
                fixed_rate=None if floating else "0.068",
                base_rate_name="HIBOR_1M" if floating else "",
                spread="0.025" if floating else "0",
                actor=officer,
            )
            pool = pool_open(client=client, actor=officer)
            for symbol, quantity in holdings.items():
                collateral_deposit(
                    pool=pool, asset=Asset.objects.get(pk=symbol), quantity=quantity, actor=staff["ops"],
                    external_reference=f"DEMO-{reference}-{symbol}",
                )  # fmt: skip
            drawdown_create(facility=facility, amount=drawn, actor=officer)
        progress(
            f"facility {facility.reference} for {client.name}: limit HK${int(limit):,}, drawn HK${int(drawn):,}"
        )
    symbol, value = DEMO_PRICE_MOVE
    if not Price.objects.filter(asset_id=symbol, price=value).exists():
        price_record(asset=Asset.objects.get(pk=symbol), price=value, source="demo", actor=staff["ops"])
        progress(f"{symbol} fell to HK${value}: Peak Partners slides into the warning band")


def seed_forced_sale_demo(staff: dict[str, User], progress: Progress) -> None:
    """Lantau Digital Assets borrowed against 3 BTC when BTC stood at US$150,000; at the demo's US$98,000
    their ratio is about 130%, past the forced-sale threshold. The first sweep requests the sale, and once
    `make run` is up the worker sells just enough BTC on the fake venue (bitstamp-1 on 127.0.0.1:8801)."""
    client = Client.objects.get(reference="DEMO07")
    if Facility.objects.filter(client=client).exists():
        return
    btc = Asset.objects.get(pk="BTC")
    with transaction.atomic():
        facility = facility_open(client=client, limit="3000000", fixed_rate="0.07", actor=staff["credit"])
        pool = pool_open(client=client, actor=staff["credit"])
        collateral_deposit(
            pool=pool, asset=btc, quantity="3", actor=staff["ops"], external_reference="DEMO-DEMO07-BTC"
        )
        # The crypto oracle's moves, which no pushed-price band holds back (band_check=False).
        price_record(
            asset=btc, price="150000", source="demo: before the fall", actor=staff["ops"], band_check=False
        )
        drawdown_create(facility=facility, amount="1190000", actor=staff["credit"])  # 85% of 1,404,000
        price_record(asset=btc, price=DEMO_PRICES["BTC"], source="demo", actor=staff["ops"], band_check=False)
    progress(
        f"facility {facility.reference} for {client.name}: drew HK$1,190,000 against 3 BTC at US$150,000; "
        f"at US${DEMO_PRICES['BTC']} it is past the forced-sale threshold (a sale runs once `make run` is up)"
    )


def seed_margin_call_demo(staff: dict[str, User], progress: Progress) -> None:
    """Repulse Bay Ventures (client2's) borrowed against 2 BTC when BTC stood at US$118,000; at the demo's
    US$98,000 their ratio is about 102%, above the margin call and short of a forced sale: the first sweep
    issues a call, which the portal shows with its countdown."""
    client = Client.objects.get(reference="DEMO08")
    if Facility.objects.filter(client=client).exists():
        return
    btc = Asset.objects.get(pk="BTC")
    with transaction.atomic():
        facility = facility_open(client=client, limit="3000000", fixed_rate="0.068", actor=staff["credit"])
        pool = pool_open(client=client, actor=staff["credit"])
        collateral_deposit(
            pool=pool, asset=btc, quantity="2", actor=staff["ops"], external_reference="DEMO-DEMO08-BTC"
        )
        price_record(
            asset=btc, price="118000", source="demo: before the fall", actor=staff["ops"], band_check=False
        )
        drawdown_create(facility=facility, amount="625000", actor=staff["credit"])  # 85% of 736,320
        price_record(asset=btc, price=DEMO_PRICES["BTC"], source="demo", actor=staff["ops"], band_check=False)
    progress(
        f"facility {facility.reference} for {client.name}: drew HK$625,000 against 2 BTC at US$118,000; at "
        f"US${DEMO_PRICES['BTC']} its ratio is about 102%: the first sweep issues a margin call (client2)"
    )


# Peak Partners (DEMO04) keeps cash and HSBC shares free in custody at the broker, and a standing instruction
# to move them into the pool already at the warning level, HSBC after cash. When the demo's price move puts
# Peak into the warning band, the margin-call ladder runs the automatic top-up: all the cash, then just
# enough HSBC shares to bring the ratio back to the 85% target.
DEMO_TOP_UP_CLIENT = "DEMO04"
DEMO_FREE_HOLDINGS = {"HKD": "80000.00", "0005.HK": "2000"}
DEMO_TOP_UP_ORDER = ["0005.HK"]


def seed_top_up_demo(staff: dict[str, User], progress: Progress) -> None:
    """Free custody holdings and a signed-off standing top-up instruction for Peak Partners. Runs before
    the lending is seeded, so that the first sweep's ladder shows the automatic top-up itself."""
    client = Client.objects.get(reference=DEMO_TOP_UP_CLIENT)
    if StandingTopUpInstruction.objects.filter(client=client).exists():
        return
    with transaction.atomic():
        for symbol, quantity in DEMO_FREE_HOLDINGS.items():
            custody_holding_receive(
                client=client,
                asset=Asset.objects.get(pk=symbol),
                quantity=quantity,
                actor=staff["ops"],
                external_reference=f"DEMO-FREE-{DEMO_TOP_UP_CLIENT}-{symbol}",
            )
        instruction = standing_top_up_request(
            client=client,
            trigger=TopUpTrigger.WARNING,
            asset_order=DEMO_TOP_UP_ORDER,
            actor=staff["credit"],
            reason="Signed standing instruction received from the client",
        )
        approval_request_approve(
            request=pending_sign_off_of(instruction), actor=staff["risk"], note="Instruction checked"
        )
    holdings = ", ".join(f"{quantity} {symbol}" for symbol, quantity in DEMO_FREE_HOLDINGS.items())
    progress(
        f"free custody holdings for {client.name} ({holdings}) and a standing top-up instruction from the "
        "warning level, signed off by risk"
    )


def _report_top_ups(progress: Progress) -> None:
    for top_up in AutomaticTopUp.objects.select_related("facility__client").prefetch_related("transfers"):
        moved = ", ".join(f"{t.quantity.normalize():f} {t.asset_id}" for t in top_up.transfers.all())
        progress(
            f"automatic top-up on {top_up.facility.reference} ({top_up.facility.client.name}): moved {moved} "
            f"from free custody into the pool; ratio {format_percent(top_up.ratio_before)} → "
            f"{format_percent(top_up.ratio_after)}"
        )


def seed_demo(progress: Progress) -> None:
    staff = seed_people(progress)
    seed_market(staff["risk"], progress)
    seed_top_up_demo(staff, progress)
    seed_lending(staff, progress)
    seed_forced_sale_demo(staff, progress)
    seed_margin_call_demo(staff, progress)
    accrued = interest_accrue_all(accrual_date=timezone.localdate(), actor=SYSTEM)
    progress(f"interest accrued for {accrued} facilities")
    if MarginState.objects.count() != Facility.objects.count():  # a second seed values nothing again
        result = monitoring_cycle_run(trigger="demo")
        progress(
            f"margin sweep: {result.facilities_valued} facilities valued, {result.ladder_actions} ladder action(s)"
        )
        _report_top_ups(progress)
    seed_oversight(progress)


def seed_oversight(progress: Progress) -> None:
    """The stress-test library run once and today's margin report, so that the console shows both (once)."""
    if not StressRun.objects.exists():
        runs = stress_library_run(actor=SYSTEM, trigger=StressTrigger.SEED)
        progress(f"stress tests: the library's {len(runs)} scenarios run on the book")
    today = timezone.localdate(timezone=HONG_KONG)
    if not DailyReport.objects.filter(day=today).exists():
        daily_report_make(day=today, actor=SYSTEM, trigger=StressTrigger.SEED)
        progress(f"daily margin report made for {today.isoformat()}")
