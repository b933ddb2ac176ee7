"""API: stress scenarios, stress tests (runs of a scenario on the live book) and a run's per-facility rows.
Staff and API keys only: these are the firm's figures, about every client."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from api.enums import Scope
from api.filters import FilterSet
from api.oversight.serializers import (
    DailyReportIn,
    DailyReportOut,
    StressResultOut,
    StressRunOut,
    StressScenarioIn,
    StressScenarioOut,
    StressTestIn,
)
from api.permissions import Rule
from api.views import ApiViewSet, validated
from core.exceptions import NotFound
from financing.enums import MarginStatus
from oversight.models import DailyReport, StressResult, StressRun, StressScenario
from oversight.reports import daily_report_make
from oversight.stress import stress_run, stress_scenario_create


class StressScenarioViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, ApiViewSet
):
    """The stress-test library and the risk officers' own scenarios."""

    read_rule = Rule(Scope.READ, "oversight.view_stressscenario")
    write_rules = {"create": Rule(Scope.RISK, "oversight.add_stressscenario")}
    serializer_class = StressScenarioOut
    lookup_value_regex = "[0-9]+"
    ordering_fields = ["created_at"]

    def get_queryset(self):
        return StressScenario.objects.all()

    @extend_schema(
        request=StressScenarioIn, responses={201: StressScenarioOut}, summary="Add a stress scenario"
    )
    def create(self, request, *args, **kwargs):
        data = validated(StressScenarioIn, request)
        scenario = stress_scenario_create(
            name=data["name"], key=data.get("key", ""), description=data.get("description", ""),
            shocks=data["shocks"], sale_cost=data.get("sale_cost"), actor=self.caller.actor,
        )  # fmt: skip
        return Response(StressScenarioOut(scenario).data, status=status.HTTP_201_CREATED)


class StressResultFilter(FilterSet):
    status_after = django_filters.ChoiceFilter(choices=MarginStatus.choices)

    class Meta:
        model = StressResult
        fields = ["status_after"]


class StressTestViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, ApiViewSet
):
    """Stress tests: a scenario run read-only on the live book, with the firm's figures after the shock;
    ``facilities/`` gives the per-facility rows."""

    read_rule = Rule(Scope.READ, "oversight.view_stressrun")
    write_rules = {"create": Rule(Scope.RISK, "oversight.run_stress_test")}
    serializer_class = StressRunOut
    lookup_value_regex = "[0-9]+"
    ordering_fields = ["started_at"]

    def get_queryset(self):
        return StressRun.objects.select_related("scenario")

    @extend_schema(request=StressTestIn, responses={201: StressRunOut}, summary="Run a stress test")
    def create(self, request, *args, **kwargs):
        data = validated(StressTestIn, request)
        actor = self.caller.actor
        if data.get("scenario"):
            scenario = StressScenario.objects.filter(key=data["scenario"]).first()
            if scenario is None:
                raise NotFound(f"There is no stress scenario {data['scenario']!r}.", code="unknown_scenario")
        else:
            scenario = stress_scenario_create(
                name=data["name"], shocks=data["shocks"], sale_cost=data.get("sale_cost"), actor=actor
            )
        run = stress_run(scenario=scenario, actor=actor)
        return Response(StressRunOut(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses=StressResultOut(many=True),
        parameters=[
            OpenApiParameter("status_after", enum=MarginStatus.values, description="only this status after")
        ],
        summary="A stress test's per-facility rows",
    )
    @action(detail=True, methods=["get"])
    def facilities(self, request, pk=None):
        run = self.get_object()
        rows = StressResult.objects.filter(run=run).select_related("facility").order_by("facility_id")
        rows = StressResultFilter(request.query_params, queryset=rows)
        if not rows.is_valid():
            raise ValidationError(rows.errors)
        page = self.paginate_queryset(rows.qs)
        return self.get_paginated_response(StressResultOut(page, many=True).data)


class DailyReportViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, ApiViewSet
):
    """The daily margin financing reports, kept as made; ``POST`` makes (or makes again) the report of a day."""

    read_rule = Rule(Scope.READ, "oversight.view_dailyreport")
    write_rules = {"create": Rule(Scope.RISK, "oversight.add_dailyreport")}
    serializer_class = DailyReportOut
    lookup_field = "day"
    lookup_value_regex = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
    ordering_fields = ["day"]

    def get_queryset(self):
        return DailyReport.objects.all()

    @extend_schema(request=DailyReportIn, responses={201: DailyReportOut}, summary="Make the report of a day")
    def create(self, request, *args, **kwargs):
        data = validated(DailyReportIn, request)
        report = daily_report_make(day=data["day"], actor=self.caller.actor)
        return Response(DailyReportOut(report).data, status=status.HTTP_201_CREATED)
