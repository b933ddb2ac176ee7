from django.contrib import admin

from core.admin import ReadOnlyAdminMixin
from ledger.models import Account, Balance, Instrument, Leg, Transaction


class LegInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Leg
    fields = ["account", "instrument", "amount"]
    readonly_fields = fields
    extra = 0


@admin.register(Transaction)
class TransactionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "posted_at", "kind", "memo", "actor_label", "reverses"]
    list_filter = ["kind", "posted_at"]
    search_fields = ["memo", "actor_label", "idempotency_key", "legs__account__code"]
    date_hierarchy = "posted_at"
    inlines = [LegInline]
    readonly_fields = ["kind", "memo", "posted_at", "actor_label", "reverses", "idempotency_key"]


@admin.register(Account)
class AccountAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["code", "name", "kind", "client"]
    list_filter = ["kind"]
    search_fields = ["code", "name", "client__reference", "client__name"]


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["account", "instrument", "amount"]
    list_filter = ["account__kind", "instrument"]
    search_fields = ["account__code", "account__name", "instrument__code"]
    list_select_related = ["account"]


@admin.register(Instrument)
class InstrumentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["code", "kind", "decimals"]
    list_filter = ["kind"]
