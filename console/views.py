"""The console's pages and the fragments htmx polls: thin over ``console.selectors`` and the services.

Every action is a plain POST form that calls one service and goes back to the page it came from: a refusal
by the role matrix is a 403 with nothing written (the service refuses before it writes, inside its
transaction); any other refusal (a guard, bad input) comes back as a message on the page."""

from __future__ import annotations

import datetime
from collections.abc import Callable

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from accounts.models import ApprovalRequest
from accounts.services import approval_request_approve, approval_request_reject
from collateral.models import FxRate, Price
from collateral.services import fx_rate_confirm, fx_rate_reject, price_confirm, price_reject
from console.access import staff_required
from console.actions import actions_allowed
from console.selectors import AtRiskFilters, at_risk_page, firm_overview
from console.selectors.concentration import concentration_page
from console.selectors.facility import facility_page
from console.selectors.prices import prices_page
from console.selectors.queues import queues_for
from console.selectors.sales import sales_page
from core.exceptions import DomainError, PermissionRefused
from financing.liquidation.forced_sales import forced_sale_approve, forced_sale_pause, forced_sale_resume
from financing.liquidation.kill_switch import kill_switch_engage, kill_switch_lift_request
from financing.margin_calls.deadline import margin_call_deadline_extension_request
from financing.models import Facility, ForcedSale, MarginCall
from financing.top_ups.automatic import automatic_top_up_run_now
from web.formatting import HONG_KONG

POLL_SECONDS = 5  # lists are at most this much behind the sweep (the issue asks for 10 s at most)


def _page(request: HttpRequest, template: str, context: dict, *, section: str) -> HttpResponse:
    return render(
        request,
        template,
        {"section": section, "poll_seconds": POLL_SECONDS, "may": actions_allowed(request.user), **context},
    )


def _act(request: HttpRequest, action: Callable[[], str], back: str) -> HttpResponse:
    """Run one service; its success message on the page, its refusal as a 403 or a message."""
    try:
        done = action()
    except PermissionRefused as refused:
        raise PermissionDenied(refused.message) from refused
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, done)
    return redirect(back)


@require_safe
@staff_required
def overview(request: HttpRequest) -> HttpResponse:
    return _page(request, "console/overview.html", {"overview": firm_overview()}, section="overview")


@require_safe
@staff_required
def overview_live(request: HttpRequest) -> HttpResponse:
    return _page(
        request, "console/fragments/overview.html", {"overview": firm_overview()}, section="overview"
    )


@require_safe
@staff_required
def concentration(request: HttpRequest) -> HttpResponse:
    """Read only, for every staff role: collateral and loans against their limits (the daily report's figures)."""
    return _page(
        request, "console/concentration.html", {"page": concentration_page()}, section="concentration"
    )


@require_safe
@staff_required
def at_risk(request: HttpRequest) -> HttpResponse:
    page = at_risk_page(AtRiskFilters.from_query(request.GET))
    return _page(request, "console/at_risk.html", {"at_risk": page}, section="at_risk")


@require_safe
@staff_required
def at_risk_rows(request: HttpRequest) -> HttpResponse:
    page = at_risk_page(AtRiskFilters.from_query(request.GET))
    return _page(request, "console/fragments/at_risk_rows.html", {"at_risk": page}, section="at_risk")


# --- the facility page and its actions ---------------------------------------------------------------------


@require_safe
@staff_required
def facility(request: HttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(Facility.objects.select_related("client", "policy"), pk=pk)
    return _page(request, "console/facility.html", {"page": facility_page(record)}, section="at_risk")


def _deadline_from(text: str) -> datetime.datetime:
    """A ``datetime-local`` field's value, read as Hong Kong time."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise DomainError(_("Give the new deadline as a date and time.")) from None
    return moment.replace(tzinfo=HONG_KONG) if moment.tzinfo is None else moment


@require_POST
@staff_required
def margin_call_extend(request: HttpRequest, pk: int) -> HttpResponse:
    call = get_object_or_404(MarginCall, pk=pk)

    def ask() -> str:
        approval = margin_call_deadline_extension_request(
            call=call,
            deadline=_deadline_from(request.POST.get("deadline", "")),
            actor=request.user,
            reason=request.POST.get("reason", ""),
        )
        return _("Request #%(pk)s sent: a second risk officer must approve the new deadline.") % {
            "pk": approval.pk
        }

    return _act(request, ask, reverse_facility(call.facility_id))


@require_POST
@staff_required
def sale_approve(request: HttpRequest, pk: int) -> HttpResponse:
    sale = get_object_or_404(ForcedSale, pk=pk)

    def approve() -> str:
        forced_sale_approve(sale=sale, actor=request.user)
        return _("Forced sale #%(pk)s approved: its orders go out now.") % {"pk": sale.pk}

    return _act(request, approve, _back(request, reverse_facility(sale.facility_id)))


@require_POST
@staff_required
def sale_pause(request: HttpRequest, pk: int) -> HttpResponse:
    sale = get_object_or_404(ForcedSale, pk=pk)

    def pause() -> str:
        forced_sale_pause(sale=sale, actor=request.user, reason=request.POST.get("reason", ""))
        return _("Forced sale #%(pk)s paused.") % {"pk": sale.pk}

    return _act(request, pause, _back(request, reverse_facility(sale.facility_id)))


@require_POST
@staff_required
def sale_resume(request: HttpRequest, pk: int) -> HttpResponse:
    sale = get_object_or_404(ForcedSale, pk=pk)

    def resume() -> str:
        forced_sale_resume(sale=sale, actor=request.user)
        return _("Forced sale #%(pk)s resumed.") % {"pk": sale.pk}

    return _act(request, resume, _back(request, reverse_facility(sale.facility_id)))


@require_POST
@staff_required
def top_up_run(request: HttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(Facility, pk=pk)

    def run() -> str:
        done = automatic_top_up_run_now(facility=record, actor=request.user)
        if done is None:
            return _(
                "Nothing to do: no active instruction for this, the ratio is at or below target, or nothing has "
                "changed since the last run."
            )
        return _("Automatic top-up #%(pk)s: %(outcome)s.") % {
            "pk": done.pk,
            "outcome": done.get_outcome_display().lower(),
        }

    return _act(request, run, reverse_facility(record.pk))


# --- queues ---------------------------------------------------------------------------------------------


@require_safe
@staff_required
def queues(request: HttpRequest) -> HttpResponse:
    return _page(request, "console/queues.html", {"queues": queues_for(request.user)}, section="queues")


@require_safe
@staff_required
def queues_live(request: HttpRequest) -> HttpResponse:
    return _page(
        request, "console/fragments/queues.html", {"queues": queues_for(request.user)}, section="queues"
    )


@require_POST
@staff_required
def approval_decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    approval = get_object_or_404(ApprovalRequest, pk=pk)
    note = request.POST.get("note", "")[:1000]

    def decide() -> str:
        if decision == "approve":
            approval_request_approve(request=approval, actor=request.user, note=note)
            return _("Request #%(pk)s approved.") % {"pk": approval.pk}
        approval_request_reject(request=approval, actor=request.user, note=note)
        return _("Request #%(pk)s rejected.") % {"pk": approval.pk}

    return _act(request, decide, _back(request, reverse("console:queues")))


# --- forced sales and the kill switch ------------------------------------------------------------------


@require_safe
@staff_required
def forced_sales(request: HttpRequest) -> HttpResponse:
    return _page(request, "console/forced_sales.html", {"sales": sales_page()}, section="forced_sales")


@require_safe
@staff_required
def forced_sales_live(request: HttpRequest) -> HttpResponse:
    return _page(
        request, "console/fragments/forced_sales.html", {"sales": sales_page()}, section="forced_sales"
    )


@require_POST
@staff_required
def kill_switch_on(request: HttpRequest) -> HttpResponse:
    def engage() -> str:
        kill_switch_engage(actor=request.user, reason=request.POST.get("reason", ""))
        return _("Kill switch engaged: every forced sale pauses.")

    return _act(request, engage, reverse("console:forced_sales"))


@require_POST
@staff_required
def kill_switch_lift(request: HttpRequest) -> HttpResponse:
    def ask() -> str:
        lift = kill_switch_lift_request(actor=request.user, reason=request.POST.get("reason", ""))
        return _("Request #%(pk)s sent: a second risk officer lifts the kill switch.") % {"pk": lift.pk}

    return _act(request, ask, reverse("console:forced_sales"))


# --- prices ----------------------------------------------------------------------------------------------


@require_safe
@staff_required
def prices(request: HttpRequest) -> HttpResponse:
    return _page(request, "console/prices.html", {"prices": prices_page()}, section="prices")


@require_safe
@staff_required
def prices_live(request: HttpRequest) -> HttpResponse:
    return _page(
        request, "console/fragments/prices.html", {"prices": prices_page(chart=False)}, section="prices"
    )


@require_POST
@staff_required
def held_price_decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    held = get_object_or_404(Price, pk=pk)
    note = request.POST.get("note", "")[:1000]

    def decide() -> str:
        if decision == "confirm":
            price_confirm(price=held, actor=request.user, note=note)
            return _("Price #%(pk)s confirmed: it is used from now on.") % {"pk": held.pk}
        price_reject(price=held, actor=request.user, note=note)
        return _("Price #%(pk)s rejected: it is never used.") % {"pk": held.pk}

    return _act(request, decide, reverse("console:prices"))


@require_POST
@staff_required
def held_fx_rate_decide(request: HttpRequest, pk: int, decision: str) -> HttpResponse:
    held = get_object_or_404(FxRate, pk=pk)
    note = request.POST.get("note", "")[:1000]

    def decide() -> str:
        if decision == "confirm":
            fx_rate_confirm(rate=held, actor=request.user, note=note)
            return _("FX rate #%(pk)s confirmed: it is used from now on.") % {"pk": held.pk}
        fx_rate_reject(rate=held, actor=request.user, note=note)
        return _("FX rate #%(pk)s rejected: it is never used.") % {"pk": held.pk}

    return _act(request, decide, reverse("console:prices"))


def reverse_facility(pk: int) -> str:
    return reverse("console:facility", args=[pk])


def _back(request: HttpRequest, default: str) -> str:
    """Where a form asked to go back to (a console page only), else ``default``."""
    target = request.POST.get("next", "")
    return target if target.startswith("/console/") and "//" not in target else default
