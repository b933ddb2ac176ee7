"""Who may do what: the role × action matrix, written once. tests/accounts/test_role_matrix.py walks it for
every role against the admin, the approval kinds and the API, and checks that every action the platform has
is in it; docs/roles.md shows it (``python -m tests.accounts.role_matrix --write`` renders it there)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

CO, RO, OP, CP, AD = "Credit officer", "Risk officer", "Operations", "Compliance", "Administrator"
ROLES = [CO, RO, OP, CP, AD]
SHORT = {CO: "credit", RO: "risk", OP: "ops", CP: "compliance", AD: "admin"}
NOBODY: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Row:
    """One action. ``key``: for the admin ``app.model:add|change|delete`` or ``app.model:<action>``; for the
    approvals ``ask:<kind>`` and ``decide:<kind>``; for the API ``METHOD /api/v1/path/`` ({id} for a record)."""

    key: str
    what: str
    may: frozenset[str]


def row(key: str, what: str, *may: str) -> Row:
    return Row(key, what, frozenset(may))


ADMIN = [
    row("accounts.client:add", "onboard a client (with the evidence it arrives with)", CO),
    row("accounts.client:change", "change a client's details; ask for an assessment change", CO),
    row("accounts.creditprofile:add", "open a credit profile", CO),
    row("accounts.creditprofile:change", "change rating and review date; ask for a new limit", CO),
    row("accounts.approvalrequest:approve", "approve requests (each also checks its kind, below)", CO, RO),
    row("accounts.approvalrequest:reject", "reject requests (each also checks its kind, below)", CO, RO),
    row("accounts.approvalrequest:cancel", "cancel one's own requests", CO, RO),
    row("accounts.user:add", "create a login", AD),
    row("accounts.user:change", "change a login, its roles and permissions", AD),
    row("accounts.user:lift_login_lockout", "lift a user's login lockout", AD),
    row("accounts.user:reset_second_factor", "reset a lost second factor (not one's own)", AD),
    row("auth.group:add", "create a role", AD),
    row("auth.group:change", "change what a role may do", AD),
    row("auth.group:delete", "delete a role", AD),
    row("axes.accessattempt:delete", "forget failed logins (lifts a lockout)", AD),
    row("axes.accessattempt:lift_lockout", "lift the lockout of the selected attempts", AD),
    row("api.apikey:add", "create an API key", AD),
    row("api.apikey:change", "(the add page only: keys are never edited)", AD),
    row("api.apikey:revoke", "revoke an API key", AD),
    row("collateral.asset:add", "add an asset", RO),
    row("collateral.asset:change", "change an asset; ask for a haircut change", RO),
    row("collateral.price:add", "record a price (one, or a file)", RO, OP),
    row("collateral.fxrate:add", "record an FX rate", RO, OP),
    row("collateral.price:confirm", "confirm a held price (not one's own)", RO),
    row("collateral.price:reject", "reject a held price (not one's own)", RO),
    row("collateral.fxrate:confirm", "confirm a held FX rate (not one's own)", RO),
    row("collateral.fxrate:reject", "reject a held FX rate (not one's own)", RO),
    row("collateral.collateralmovement:add", "record a collateral deposit or withdrawal", OP),
    row("collateral.custodymovement:add", "record a custody movement", OP),
    row("financing.baserate:add", "record a base rate (HIBOR)", OP),
    row("financing.facility:add", "open a facility", CO),
    row("financing.facility:change", "(the page of an open facility is read-only)", CO),
    row("financing.drawdown:add", "draw down for a client", CO),
    row("financing.repayment:add", "record a repayment", CO, OP),
    row("financing.marginpolicy:add", "add a margin policy", RO),
    row("financing.marginpolicy:change", "change a margin policy", RO),
    row("financing.forcedsale:approve", "approve a forced sale the policy holds", RO),
    row("financing.forcedsale:resume", "resume a paused forced sale", RO),
    row("financing.salefill:add", "record a fill from the order system", OP),
    row("financing.killswitch:change", "engage the kill switch; ask to lift it", RO),
    row("financing.standingtopupinstruction:add", "ask for a standing top-up instruction", CO),
    row("financing.standingtopupinstruction:change", "(instructions are never edited)", CO, RO),
    row("financing.standingtopupinstruction:revoke", "revoke a standing instruction", CO, RO),
    row("financing.standingtopupinstruction:run_now", "run an automatic top-up now", CO, RO),
    row("oversight.stressscenario:add", "add a stress scenario", RO),
    row("oversight.stressscenario:change", "change a stress scenario's shocks, sale cost or schedule", RO),
    row("notifications.outboxmessage:retry", "retry failed messages", OP),
    row("notifications.webhookendpoint:add", "register a webhook endpoint", OP),
    row("notifications.webhookendpoint:change", "change a webhook endpoint", OP),
    row("notifications.webhookendpoint:deactivate", "deactivate a webhook endpoint", OP),
    row("django_celery_beat.periodictask:add", "add a schedule", RO),
    row(
        "django_celery_beat.periodictask:change",
        "change a schedule (margin-critical: weakening is four-eyes)",
        RO,
    ),
    row("django_celery_beat.periodictask:delete", "delete a schedule (margin-critical: four-eyes)", RO),
    row("django_celery_beat.periodictask:enable_tasks", "enable schedules", RO),
    row(
        "django_celery_beat.periodictask:disable_tasks", "disable schedules (margin-critical: four-eyes)", RO
    ),
    row(
        "django_celery_beat.periodictask:toggle_tasks",
        "toggle schedules (margin-critical off: four-eyes)",
        RO,
    ),
    row("django_celery_beat.periodictask:run_tasks", "run schedules now", RO),
    row("django_celery_beat.periodictask:request_deletion", "ask to delete margin-critical schedules", RO),
    *(
        row(f"django_celery_beat.{timing}:{op}", f"{op} a {timing.removesuffix('schedule')} timing", RO)
        for timing in ("intervalschedule", "crontabschedule", "solarschedule", "clockedschedule")
        for op in ("add", "change", "delete")
    ),
]

APPROVALS = [
    row("ask:credit_limit", "ask for a credit-limit change", CO),
    row("decide:credit_limit", "approve or reject another's credit-limit change", CO),
    row("ask:client_assessment", "ask for a KYC / professional-investor change", CO),
    row("decide:client_assessment", "approve or reject another's KYC / professional-investor change", CO),
    row("ask:haircut", "ask for a haircut change", RO),
    row("decide:haircut", "approve or reject another's haircut change", RO),
    row("ask:kill_switch_lift", "ask to lift the kill switch", RO),
    row("decide:kill_switch_lift", "lift the kill switch (another's request)", RO),
    row("ask:standing_top_up", "ask for a standing top-up (client users too, for themselves)", CO),
    row("decide:standing_top_up", "sign off another's standing top-up", CO, RO),
    row("ask:schedule_change", "ask to disable, delete or slow a margin-critical schedule", RO),
    row("decide:schedule_change", "approve another's change to a margin-critical schedule", RO),
    row("ask:margin_call_deadline", "ask to extend a margin call's deadline", RO),
    row("decide:margin_call_deadline", "extend a margin call's deadline (another's request)", RO),
    row("ask:facility_limit", "ask for a facility-limit change", CO),
    row("decide:facility_limit", "approve or reject another's facility-limit change", CO),
    row("ask:margin_policy", "ask for new margin-policy thresholds, or a new default policy", RO),
    row("decide:margin_policy", "approve or reject another's margin-policy threshold change", RO),
]

API = [
    row("POST /api/v1/clients/", "onboard a client", CO),
    row("PATCH /api/v1/clients/{id}/", "change a client's details", CO),
    row("POST /api/v1/clients/{id}/assessment-change-requests/", "ask for a KYC / evidence change", CO),
    row("POST /api/v1/credit-profiles/", "open a credit profile", CO),
    row("POST /api/v1/credit-profiles/{id}/limit-change-requests/", "ask for a new credit limit", CO),
    row("POST /api/v1/facilities/", "open a facility", CO),
    row("POST /api/v1/facilities/{id}/limit-change-requests/", "ask for a new facility limit", CO),
    row("POST /api/v1/facilities/{id}/suspend/", "suspend a facility", CO),
    row("POST /api/v1/facilities/{id}/resume/", "resume a facility", CO),
    row("POST /api/v1/facilities/{id}/close/", "close a facility", CO),
    row("POST /api/v1/margin-policies/", "create a margin policy", RO),
    row("PATCH /api/v1/margin-policies/{id}/", "change a margin policy's terms", RO),
    row("POST /api/v1/margin-policies/{id}/change-requests/", "ask for new margin-policy thresholds", RO),
    row("POST /api/v1/assets/", "add an asset", RO),
    row("POST /api/v1/prices/", "push prices", RO, OP),
    row("POST /api/v1/collateral-movements/", "record a collateral movement", OP),
    row("POST /api/v1/custody-movements/", "record a custody movement", OP),
    row("POST /api/v1/drawdowns/", "draw down", CO),
    row("POST /api/v1/repayments/", "record a repayment", CO, OP),
    row("POST /api/v1/forced-sales/{id}/fills/", "report a fill", OP),
    row("POST /api/v1/standing-top-up-instructions/", "ask for a standing top-up instruction", CO),
    row("POST /api/v1/standing-top-up-instructions/{id}/revoke/", "revoke a standing instruction", CO, RO),
    row("POST /api/v1/webhook-endpoints/", "register a webhook endpoint", OP),
    row("PATCH /api/v1/webhook-endpoints/{id}/", "change a webhook endpoint", OP),
    row("POST /api/v1/webhook-endpoints/{id}/deactivate/", "deactivate a webhook endpoint", OP),
    row("POST /api/v1/stress-scenarios/", "add a stress scenario", RO),
    row("POST /api/v1/stress-tests/", "run a stress test on the live book", RO),
    row("POST /api/v1/daily-reports/", "make the daily margin report of a day", RO),
]

# The staff console is not built yet: its actions join here, and the test walks them like the others.
CONSOLE: list[Row] = [
    row("console:extend_deadline", "ask to extend a margin call's deadline (four-eyes)", RO),
    row("console:approve_sale", "approve a forced sale the policy holds", RO),
    row("console:pause_sale", "pause a running forced sale", RO),
    row("console:resume_sale", "resume a paused forced sale", RO),
    row("console:run_top_up", "run the automatic top-up now", CO, RO),
    row("console:engage_kill_switch", "engage the kill switch", RO),
    row("console:ask_to_lift_kill_switch", "ask to lift the kill switch (four-eyes)", RO),
    row("console:decide_held_price", "confirm or reject a held price or FX rate (never one's own)", RO),
]

SECTIONS = [
    ("Admin: pages and actions", ADMIN),
    ("Four-eyes approvals: asking and deciding (never one's own)", APPROVALS),
    ("REST API writes with a staff session", API),
    ("Staff console: actions (every role reads every page)", CONSOLE),
]
START, END = (
    "<!-- role matrix: start (generated from tests/accounts/role_matrix.py) -->",
    "<!-- role matrix: end -->",
)
DOC = Path(__file__).resolve().parents[2] / "docs" / "roles.md"


def render() -> str:
    lines = [START]
    header = "| action | what | " + " | ".join(SHORT[role] for role in ROLES) + " |"
    rule = "|---|---|" + "|".join(":-:" for _ in ROLES) + "|"
    for title, rows in SECTIONS:
        lines += ["", f"### {title}", ""]
        if not rows:
            lines.append("No actions yet.")
            continue
        lines += [header, rule]
        for item in rows:
            marks = " | ".join("✓" if role in item.may else "·" for role in ROLES)
            lines.append(f"| `{item.key}` | {item.what} | {marks} |")
    lines += ["", END]
    return "\n".join(lines)


def doc_with_matrix(text: str) -> str:
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    return before + render() + after


if __name__ == "__main__":
    if "--write" in sys.argv:
        DOC.write_text(doc_with_matrix(DOC.read_text()))
    else:
        print(render())
