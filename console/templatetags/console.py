"""``{% sale_steps sale as steps %}``: which of approve, pause and resume a sale's status allows now (the
services decide; this only keeps the pages from offering a button that would be refused). ``{{ value|figure:"hkd" }}``:
a figure kept as JSON text (a report's), formatted by its kind (``console.stress.display``)."""

from django import template

from console.stress.display import figure
from financing.enums import ForcedSaleStatus
from financing.liquidation.forced_sales import AUTO_RESUMING, PAUSABLE_BY_STAFF

register = template.Library()
register.filter("figure", figure)


@register.simple_tag
def sale_steps(sale) -> dict[str, bool]:
    return {
        "approve": sale.status == ForcedSaleStatus.AWAITING_APPROVAL,
        "pause": sale.status in PAUSABLE_BY_STAFF,
        "resume": sale.status == ForcedSaleStatus.PAUSED and sale.pause_reason not in AUTO_RESUMING,
    }
