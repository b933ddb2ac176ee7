"""Template filters for money, prices, quantities, ratios and times: ``{% load formatting %}`` then ``{{ amount|hkd }}``."""

from django import template

from web import formatting

register = template.Library()

register.filter("hkd", formatting.hkd)
register.filter("percent", formatting.percent)
register.filter("hk_time", formatting.hk_time)
register.filter("quantity", formatting.quantity)
register.filter("price_in", formatting.price_in)
register.filter("shock", formatting.shock)
register.filter("price_exact", formatting.price_exact)
register.filter("ratio_or_infinite", formatting.ratio_or_infinite)
