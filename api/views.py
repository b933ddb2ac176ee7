"""The base every API view builds on: access rules, client scoping, and POSTs that run in one transaction
with the ``Idempotency-Key`` honoured (``api.idempotency``)."""

from __future__ import annotations

import functools

from django.core.exceptions import RequestDataTooBig
from django.db.models import QuerySet
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from api import idempotency
from api.authentication import Caller, caller_of
from api.errors import error_body
from api.permissions import Rule


class ApiViewMixin:
    """``read_rule`` and ``write_rules`` (by action) say who may do what (``api.permissions``).
    ``client_field`` is the lookup from a row to its client: a client user's queries are filtered by it;
    ``None`` means the records are not about one client (assets, prices) and everyone who may read sees
    them all."""

    read_rule: Rule
    write_rules: dict[str, Rule] = {}
    client_field: str | None = None
    # Actions whose work is one service call that rolls back whatever it wrote when it refuses (it runs in a
    # savepoint of its own), with nothing written before it: the work needs no savepoint of the request's
    # (``api.idempotency.run_in_transaction``), which would cost two round trips, three on a refusal.
    self_contained_actions: frozenset[str] = frozenset()

    @property
    def caller(self) -> Caller:
        return caller_of(self.request)

    def scoped(self, queryset: QuerySet) -> QuerySet:
        """Only what the caller may see: a client user, only their own client's records."""
        caller = self.caller
        if caller is not None and caller.is_client_user and self.client_field is not None:
            return queryset.filter(**{self.client_field: caller.client_id})
        return queryset

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        repeated = sorted(key for key, values in request.query_params.lists() if len(values) > 1)
        if repeated:
            raise ValidationError({key: ["Give this parameter once."] for key in repeated})

    def dispatch(self, request, *args, **kwargs):
        if request.method == "POST":
            body_error = None
            try:
                _ = request.body  # read now: DRF may parse the stream before the handler runs
            except RequestDataTooBig as error:
                body_error = error
            handler = getattr(self, "post", None)
            if handler is not None:
                self.post = self._in_transaction(handler, body_error)
        return super().dispatch(request, *args, **kwargs)

    def _in_transaction(self, handler, body_error):
        @functools.wraps(handler)
        def run(request, *args, **kwargs):
            if body_error is not None:
                raise body_error
            return idempotency.run_in_transaction(
                key=request.headers.get(idempotency.HEADER),
                credential=self.caller.credential,
                method=request.method,
                path=request.get_full_path(),
                body=request._request.body,
                work=lambda: handler(request, *args, **kwargs),
                on_error=self.handle_exception,
                savepoint=getattr(self, "action", None) not in self.self_contained_actions,
            )

        return run


class ApiViewSet(ApiViewMixin, viewsets.GenericViewSet):
    pass


def validated(serializer_class, request, **kwargs) -> dict:
    """The request body read by ``serializer_class`` (built with ``kwargs``), or a 400 listing every
    problem."""
    serializer = serializer_class(data=request.data, context={"request": request}, **kwargs)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


@csrf_exempt
def not_found(request, *args, **kwargs):
    """Any other path under /api/: a 404 in the API's error shape, not Django's HTML page."""
    return JsonResponse(
        error_body("not_found", f"There is no API resource at {request.path[:200]}; see /api/docs/."),
        status=404,
    )


class WhoAmIOut(serializers.Serializer):
    credential = serializers.CharField(help_text="`api-key:<id>` or `user:<id>`")
    kind = serializers.ChoiceField(choices=[("api_key", "API key"), ("user", "user")])
    name = serializers.CharField(help_text="the key's name, or the user's username")
    scopes = serializers.ListField(
        child=serializers.CharField(), help_text="the API key's scopes; empty for a user (roles apply)"
    )


class WhoAmIView(APIView):
    """``GET /api/v1/whoami/``: who the credentials are, and nothing else. The key check and no more (no
    throttle, no scope, no query beyond the key's): an integrator's first call, and the floor ``make
    bench-api`` measures every other read against."""

    permission_classes = [IsAuthenticated]
    throttle_classes: list = []

    @extend_schema(responses=WhoAmIOut, summary="Who am I (a check of the credentials)")
    def get(self, request):
        caller = caller_of(request)
        if caller.api_key is not None:
            body = {
                "credential": caller.credential,
                "kind": "api_key",
                "name": caller.api_key.name,
                "scopes": list(caller.api_key.scopes),
            }
        else:
            body = {
                "credential": caller.credential,
                "kind": "user",
                "name": caller.user.get_username(),
                "scopes": [],
            }
        return Response(body)
