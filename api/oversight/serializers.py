"""API representations of stress scenarios, stress runs (the firm's figures) and a run's per-facility rows."""

from __future__ import annotations

from rest_framework import serializers

from api.fields import MoneyOutField, PlainDecimalOutField, RatioOutField, fraction_field
from oversight.models import DailyReport, StressResult, StressRun, StressScenario


class StressScenarioOut(serializers.ModelSerializer):
    shocks = serializers.DictField(
        child=serializers.CharField(),
        help_text='relative changes by asset, class or FX pair: {"BTC": "-0.40"}',
    )
    sale_cost = PlainDecimalOutField(allow_null=True, help_text="null: each facility's policy's")

    class Meta:
        model = StressScenario
        fields = ["id", "key", "name", "description", "source", "shocks", "sale_cost", "in_library", "active",
                  "created_at"]  # fmt: skip
        read_only_fields = fields


class StressScenarioIn(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    key = serializers.SlugField(max_length=50, required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    shocks = serializers.DictField(
        child=serializers.JSONField(),
        help_text='relative changes as strings: {"BTC": "-0.40", "USD/HKD": "0.005"}',
    )
    sale_cost = fraction_field(required=False, allow_null=True)


class StressTestIn(serializers.Serializer):
    """A library (or saved) scenario by its key, or a scenario of one's own (saved, then run)."""

    scenario = serializers.SlugField(required=False, help_text="the key of a saved scenario")
    name = serializers.CharField(required=False, max_length=200)
    shocks = serializers.DictField(child=serializers.JSONField(), required=False)
    sale_cost = fraction_field(required=False, allow_null=True)

    def validate(self, data):
        if data.get("scenario"):
            if {"name", "shocks", "sale_cost"} & set(data):
                raise serializers.ValidationError(
                    "Give either a scenario's key, or a name and shocks, not both."
                )
            return data
        if not data.get("name") or "shocks" not in data:
            raise serializers.ValidationError(
                'Give a scenario\'s key ({"scenario": "2020-03-12"}), or a name and shocks.'
            )
        return data


class StressRunOut(serializers.ModelSerializer):
    scenario_key = serializers.CharField(source="scenario.key", read_only=True)
    scenario_name = serializers.CharField(source="scenario.name", read_only=True)
    shocks = serializers.DictField(child=serializers.CharField())
    sale_cost = PlainDecimalOutField(allow_null=True)
    market_value_before = MoneyOutField()
    market_value_after = MoneyOutField()
    margin_value_before = MoneyOutField()
    margin_value_after = MoneyOutField()
    amount_due = MoneyOutField(help_text="HKD: the repayments that would cure every call to target")
    sale_proceeds = MoneyOutField()
    shortfall = MoneyOutField(help_text="HKD of debt left when the pools are gone")
    capital = MoneyOutField()
    shortfall_share_of_capital = serializers.SerializerMethodField()
    lending = MoneyOutField()
    lending_after_sales = MoneyOutField()
    lending_cap = MoneyOutField(help_text="the firm-wide cap: capital × the multiple (5)")
    sale_volume = serializers.JSONField(
        help_text="per asset: quantity, market value, the day's liquidity and the share of it"
    )
    prices = serializers.JSONField(help_text="per asset and FX pair: before and after the shock")

    class Meta:
        model = StressRun
        fields = ["id", "scenario", "scenario_key", "scenario_name", "shocks", "sale_cost", "trigger", "status",
                  "error", "requested_by_label", "started_at", "finished_at", "duration_ms", "previous",
                  "facilities", "by_status_before", "by_status_after", "market_value_before", "market_value_after",
                  "margin_value_before", "margin_value_after", "amount_due", "sale_proceeds", "shortfall", "capital",
                  "shortfall_share_of_capital", "lending", "lending_after_sales", "lending_cap", "sale_volume",
                  "prices"]  # fmt: skip
        read_only_fields = fields

    def get_shortfall_share_of_capital(self, run) -> str | None:
        from oversight.calculations import share

        value = share(run.shortfall, run.capital)
        return None if value is None else f"{value:f}"


class StressResultOut(serializers.ModelSerializer):
    facility_reference = serializers.CharField(source="facility.reference", read_only=True)
    market_value_before = MoneyOutField(allow_null=True)
    margin_value_before = MoneyOutField(allow_null=True)
    debt_before = MoneyOutField(allow_null=True)
    ratio_before = RatioOutField(allow_null=True, help_text="null: infinite, or no valuation yet")
    market_value = MoneyOutField()
    margin_value = MoneyOutField()
    debt = MoneyOutField()
    ratio_after = RatioOutField(allow_null=True, help_text="null: infinite")
    repayment_to_cure = MoneyOutField()
    sale_plan = serializers.JSONField(
        help_text="in the policy's order: asset, quantity, lot size, market value, proceeds"
    )
    sale_proceeds = MoneyOutField()
    ratio_after_sale = RatioOutField(allow_null=True)
    shortfall = MoneyOutField()

    class Meta:
        model = StressResult
        fields = ["facility", "facility_reference", "market_value_before", "margin_value_before", "debt_before",
                  "ratio_before", "status_before", "market_value", "margin_value", "debt", "ratio_after",
                  "status_after", "repayment_to_cure", "sale_plan", "sale_proceeds", "ratio_after_sale",
                  "shortfall"]  # fmt: skip
        read_only_fields = fields


class DailyReportOut(serializers.ModelSerializer):
    figures = serializers.JSONField(help_text="the headline figures; amounts and shares as strings")
    content = serializers.JSONField(help_text="the report as made: its lines and tables")

    class Meta:
        model = DailyReport
        fields = ["id", "day", "made_at", "made_by_label", "trigger", "emailed_at", "figures", "content"]
        read_only_fields = fields


class DailyReportIn(serializers.Serializer):
    day = serializers.DateField(help_text="the Hong Kong day the report is as of (its end)")
