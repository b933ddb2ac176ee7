"""The portal's pages and the parts htmx refreshes: thin over ``portal.selectors`` and the apps' services."""

from __future__ import annotations

import csv
import uuid
from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_safe

from accounts.second_factor import enrolment_device, is_enrolled, second_factor_enrol, secret_of
from core.exceptions import DomainError, InvalidInput
from portal import actions, activity, inbox, second_factor, selectors, statements
from portal.access import client_required
from web.formatting import HONG_KONG

POLL_SECONDS = 5  # the overview and the banner follow the sweep at most this far behind (docs/portal.md)


def _context(request: HttpRequest, facility=None, **extra) -> dict:
    return {"facility": facility, "poll_seconds": POLL_SECONDS, **extra}


def _page(request: HttpRequest, page: str, facility=None, **extra) -> dict:
    """A whole page's context: the banner's alerts (every page shows them) and which menu item is current."""
    return _context(
        request,
        facility,
        page=page,
        unread=inbox.unread_count(request.user),
        **banner_context(request),
        **extra,
    )


@require_safe
@client_required
def home(request: HttpRequest) -> HttpResponse:
    """One facility: its overview. None or several: the list."""
    facilities = selectors.client_facilities(request.user.client_id)
    if len(facilities) == 1:
        return redirect("portal:overview", facility_id=facilities[0].pk)
    return render(request, "portal/home.html", _page(request, "home", facilities=facilities))


@require_safe
@client_required
def overview(request: HttpRequest, facility_id: int) -> HttpResponse:
    facility = selectors.client_facility(request.user.client_id, facility_id)
    overview = selectors.facility_overview(facility)
    what_if = selectors.unshocked_what_if(overview)
    return render(
        request,
        "portal/overview.html",
        _page(request, "overview", facility, overview=overview, what_if=what_if),
    )


@require_safe
@client_required
def overview_figures(request: HttpRequest, facility_id: int) -> HttpResponse:
    """The overview's live part, polled by the page."""
    facility = selectors.client_facility(request.user.client_id, facility_id)
    return render(
        request,
        "portal/fragments/overview_figures.html",
        _context(request, facility, overview=selectors.facility_overview(facility)),
    )


def _shock(request: HttpRequest, name: str) -> Decimal:
    raw = request.GET.get(name, "0") or "0"
    try:
        percent = Decimal(raw)
    except InvalidOperation:
        raise InvalidInput(f"{name}: {raw!r} is not a number.") from None
    if not percent.is_finite():
        raise InvalidInput(f"{name}: {raw!r} is not a number.")
    return percent / 100


@require_safe
@client_required
def what_if(request: HttpRequest, facility_id: int) -> HttpResponse:
    """The ratio and what would happen with BTC, ETH and Hong Kong equities moved by the sliders (percent)."""
    facility = selectors.client_facility(request.user.client_id, facility_id)
    try:
        result = selectors.what_if(
            facility,
            btc=_shock(request, "btc"),
            eth=_shock(request, "eth"),
            securities=_shock(request, "securities"),
        )
    except InvalidInput as error:
        return render(
            request,
            "portal/fragments/what_if.html",
            _context(request, facility, error=str(error)),
            status=400,
        )
    return render(request, "portal/fragments/what_if.html", _context(request, facility, what_if=result))


@require_safe
@client_required
def banner(request: HttpRequest) -> HttpResponse:
    """The margin-call banner, polled from every portal page."""
    return render(request, "portal/fragments/banner.html", banner_context(request))


def banner_context(request: HttpRequest) -> dict:
    alerts = selectors.alerts_of(request.user.client_id)
    return {
        "alerts": [
            {"alert": alert, "countdown": selectors.countdown_words(alert.seconds_left)} for alert in alerts
        ]
    }


@require_safe
@client_required
def positions(request: HttpRequest, facility_id: int) -> HttpResponse:
    facility = selectors.client_facility(request.user.client_id, facility_id)
    overview = selectors.facility_overview(facility, triggers=False)
    return render(request, "portal/positions.html", _page(request, "positions", facility, overview=overview))


ACTIVITY_PAGE_SIZE = 25


def _activity_filter(request: HttpRequest) -> str:
    kind = request.GET.get("kind", "")
    return kind if kind in activity.KINDS else ""


@require_safe
@client_required
def history(request: HttpRequest, facility_id: int) -> HttpResponse:
    """The ratio's chart over a range, and the activity list, filtered by kind and paginated."""
    facility = selectors.client_facility(request.user.client_id, facility_id)
    range_key = request.GET.get("range", "1m")
    if range_key not in selectors.RANGES:
        range_key = "1m"
    chart = selectors.ratio_chart(facility, range_key)
    kind = _activity_filter(request)
    lines = Paginator(activity.activity_of(facility, kind=kind), ACTIVITY_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "portal/history.html",
        _page(
            request,
            "history",
            facility,
            chart=chart,
            ranges=[(key, words) for key, (words, _span) in selectors.RANGES.items()],
            kinds=list(activity.KINDS.items()),
            kind=kind,
            lines=lines,
        ),
    )


@require_safe
@client_required
def history_csv(request: HttpRequest, facility_id: int) -> HttpResponse:
    """The activity list (the same filter) as CSV: every line, not a page."""
    facility = selectors.client_facility(request.user.client_id, facility_id)
    kind = _activity_filter(request)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{facility.reference}-activity.csv"'
    writer = csv.writer(response)
    writer.writerow(
        [
            gettext("Time (HKT)"),
            gettext("Kind"),
            gettext("Description"),
            gettext("Amount (HKD)"),
            gettext("Quantity"),
        ]
    )
    for line in activity.activity_of(facility, kind=kind):
        writer.writerow(
            [
                line.at.astimezone(HONG_KONG).strftime("%Y-%m-%d %H:%M:%S"),
                line.kind_words,
                line.description,
                "" if line.amount is None else f"{line.amount:.2f}",
                line.quantity,
            ]
        )
    return response


# --- actions ---


@require_safe
@client_required
def actions_list(request: HttpRequest, facility_id: int) -> HttpResponse:
    facility = selectors.client_facility(request.user.client_id, facility_id)
    return render(
        request,
        "portal/actions.html",
        _page(request, "actions", facility, actions=list(actions.ACTIONS.values())),
    )


@require_http_methods(["GET", "HEAD", "POST"])
@client_required
def action(request: HttpRequest, facility_id: int, slug: str) -> HttpResponse:
    """One action: its form (GET), its preview (POST, step=preview: the service run and rolled back), and
    the real thing (POST, step=confirm), with the refusal in the service's words when the rules say no."""
    facility = selectors.client_facility(request.user.client_id, facility_id)
    if slug not in actions.ACTIONS:
        raise Http404
    what = actions.ACTIONS[slug]
    instruction = actions.pending_or_active_instruction(facility)
    context = {
        "action": what,
        "instruction": instruction,
        "needs_code": what.moves_money and is_enrolled(request.user),
    }
    if request.method != "POST":
        initial = {"token": uuid.uuid4().hex, "switch": "off" if instruction else "on"}
        form = actions.form_for(slug, facility, initial=initial)
        return render(
            request, "portal/action.html", _page(request, "actions", facility, form=form, **context)
        )
    form = actions.form_for(slug, facility, data=request.POST)
    if not form.is_valid():
        return render(
            request, "portal/action.html", _page(request, "actions", facility, form=form, **context)
        )
    key = actions.service_key(request.user, form.cleaned_data["token"])
    run = actions.perform(slug, facility, form.cleaned_data, request.user, key)
    if request.POST.get("step") != "confirm":
        result = actions.preview(facility, run)
        return render(
            request,
            "portal/action.html",
            _page(request, "actions", facility, form=form, preview=result, **context),
        )
    if is_enrolled(request.user) and what.moves_money:
        try:
            second_factor.check_code(request, request.POST.get("code", ""))
        except ValidationError as refusal:
            return render(
                request,
                "portal/action.html",
                _page(request, "actions", facility, form=form, refusal=" ".join(refusal.messages), **context),
            )
    try:
        with transaction.atomic():
            run()
    except DomainError as refusal:
        return render(
            request,
            "portal/action.html",
            _page(request, "actions", facility, form=form, refusal=str(refusal), **context),
        )
    messages.success(request, gettext("Done: %(action)s.") % {"action": what.title})
    return redirect("portal:overview", facility_id=facility.pk)


# --- statements ---


@require_safe
@client_required
def statements_list(request: HttpRequest, facility_id: int) -> HttpResponse:
    facility = selectors.client_facility(request.user.client_id, facility_id)
    return render(
        request,
        "portal/statements.html",
        _page(request, "statements", facility, months=statements.months_of(facility)),
    )


@require_safe
@client_required
def statement(request: HttpRequest, facility_id: int, year: int, month: int) -> HttpResponse:
    facility = selectors.client_facility(request.user.client_id, facility_id)
    try:
        result = statements.monthly_statement(facility, year, month)
    except InvalidInput:
        raise Http404 from None
    return render(request, "portal/statement.html", _page(request, "statements", facility, statement=result))


@require_safe
@client_required
def statement_pdf(request: HttpRequest, facility_id: int, year: int, month: int) -> HttpResponse:
    facility = selectors.client_facility(request.user.client_id, facility_id)
    try:
        result = statements.monthly_statement(facility, year, month)
    except InvalidInput:
        raise Http404 from None
    response = HttpResponse(statements.statement_pdf(result), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{facility.reference}-{result.title}.pdf"'
    return response


# --- notifications ---

NOTIFICATIONS_PAGE_SIZE = 25


@require_safe
@client_required
def notifications(request: HttpRequest) -> HttpResponse:
    """The client's own events, newest first, unread marked; ``?show=unread`` for the unread only."""
    only_unread = request.GET.get("show") == "unread"
    rows = inbox.events_of(request.user, only_unread=only_unread)
    page = Paginator(rows, NOTIFICATIONS_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "portal/notifications.html",
        _page(
            request,
            "notifications",
            lines=inbox.lines(request.user, page),
            page_obj=page,
            only_unread=only_unread,
        ),
    )


@require_http_methods(["POST"])
@client_required
def notification_mark(request: HttpRequest, event_id) -> HttpResponse:
    """Mark one of the client's events read (``read=1``) or unread (``read=0``); another client's: 404."""
    event = inbox.event_of(request.user, event_id)
    inbox.mark(request.user, event, read=request.POST.get("read") != "0")
    return redirect(
        request.POST.get("back")
        if url_has_allowed_host_and_scheme(request.POST.get("back"), allowed_hosts={request.get_host()})
        else "portal:notifications"
    )


@require_http_methods(["POST"])
@client_required
def notifications_read_all(request: HttpRequest) -> HttpResponse:
    inbox.mark_all_read(request.user)
    return redirect("portal:notifications")


# --- second factor ---


@never_cache
@sensitive_post_parameters("code")
@client_required
def security(request: HttpRequest) -> HttpResponse:
    """Enrol an authenticator (the secret and its QR code until a code confirms it), or see that it is on."""
    user = request.user
    if is_enrolled(user):
        return render(
            request, "portal/second_factor/security.html", _page(request, "security", enrolled=True)
        )
    device = enrolment_device(user=user)
    form = second_factor.CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            codes = second_factor_enrol(request=request, user=user, code=form.cleaned_data["code"])
        except DomainError as error:
            form.add_error("code", str(error))
        else:
            context = _page(request, "security", enrolled=True, codes=codes)
            return render(request, "portal/second_factor/security.html", context)
    context = _page(
        request,
        "security",
        form=form,
        secret=secret_of(device),
        qr_code=second_factor.qr_svg(device.config_url),
    )
    return render(request, "portal/second_factor/security.html", context)
