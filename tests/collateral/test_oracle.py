"""The crypto price oracle through real ccxt clients against fake venues on loopback."""

from __future__ import annotations

import logging
import re
import socket
import time
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.audit import SYSTEM
from accounts.models import AuditEvent
from collateral.models import CurrentPrice, Price, PriceQuote, PriceStatus, QuoteStatus
from collateral.oracle import crypto_prices_refresh
from collateral.selectors import current_prices, price_freshness
from fake_exchange.testing import running_fake_exchanges
from tests.collateral.conftest import point_oracle_at, venue_config

pytestmark = pytest.mark.django_db


def quotes_of(result, symbol: str) -> dict[str, PriceQuote]:
    return {
        quote.venue: quote
        for quote in PriceQuote.objects.filter(refresh_id=result.refresh_id, asset_id=symbol).select_related(
            "chosen_price"
        )
    }


def test_when_all_venues_agree_the_median_is_recorded_with_its_sources(oracle):
    _bitstamp_1, bitstamp_2, kraken_1 = oracle
    bitstamp_2.set_price("BTC/USD", "98100.50")
    kraken_1.set_price("BTC/USD", "97950.25")
    kraken_1.set_price("ETH/USD", "3401.10")
    before = timezone.now()

    result = crypto_prices_refresh(actor=SYSTEM)

    assert result.repriced == ("BTC", "ETH")
    assert result.stale == {}
    btc = Price.objects.get(pk=result.assets["BTC"].price.pk)
    assert btc.price == Decimal("98000")  # the middle of 97950.25, 98000, 98100.50
    assert btc.source == "oracle"
    assert before <= btc.observed_at == result.as_of <= timezone.now()
    assert [(s["venue"], s["market"], Decimal(s["price"])) for s in btc.sources] == [
        ("bitstamp-1", "BTC/USD", Decimal("98000")),
        ("bitstamp-2", "BTC/USD", Decimal("98100.50")),
        ("kraken-1", "BTC/USD", Decimal("97950.25")),
    ]
    assert all(s["quoted_at"] and s["received_at"] for s in btc.sources)
    assert current_prices()["BTC"].price == Decimal("98000")
    assert current_prices()["ETH"].price == Decimal("3400")  # 3400, 3400, 3401.10

    quotes = quotes_of(result, "BTC")
    assert {venue: (q.price, q.status, q.chosen_price_id, q.error) for venue, q in quotes.items()} == {
        "bitstamp-1": (Decimal("98000"), QuoteStatus.ACCEPTED, btc.pk, ""),
        "bitstamp-2": (Decimal("98100.50"), QuoteStatus.ACCEPTED, btc.pk, ""),
        "kraken-1": (Decimal("97950.25"), QuoteStatus.ACCEPTED, btc.pk, ""),
    }
    assert PriceQuote.objects.filter(refresh_id=result.refresh_id).count() == 6

    current = CurrentPrice.objects.get(asset_id="BTC")
    assert (current.price_id, current.is_stale, current.stale_reason, current.checked_at) == (
        btc.pk,
        False,
        "",
        result.as_of,
    )
    event = AuditEvent.objects.filter(action="price.recorded", target_id="BTC").first()
    assert event.after["price"] == "98000.0000000000"
    assert event.after["source"] == "oracle"
    assert result.summary() == {
        "refresh_id": str(result.refresh_id),
        "as_of": result.as_of.isoformat(),
        "repriced": ["BTC", "ETH"],
        "prices": {"BTC": "98000.0000000000", "ETH": "3400.0000000000"},
        "stale": {},
    }


def test_an_even_number_of_agreeing_quotes_gives_the_mean_of_the_middle_two(oracle):
    bitstamp_1, bitstamp_2, _kraken_1 = oracle
    bitstamp_1.fail("ticker", "http_500")
    bitstamp_2.set_price("BTC/USD", "98101")

    result = crypto_prices_refresh(actor=SYSTEM)

    assert result.assets["BTC"].price.price == Decimal("98050.5")
    assert current_prices()["BTC"].price == Decimal("98050.5")


def test_a_venue_printing_minus_90_percent_is_ignored_as_an_outlier(oracle):
    _bitstamp_1, bitstamp_2, kraken_1 = oracle
    bitstamp_2.set_price("BTC/USD", "9800")
    kraken_1.set_price("BTC/USD", "98100")

    result = crypto_prices_refresh(actor=SYSTEM)

    btc = result.assets["BTC"].price
    assert btc.price == Decimal("98050")  # median of 98000 and 98100; 9800 is 90% below the median 98000
    assert [s["venue"] for s in Price.objects.get(pk=btc.pk).sources] == ["bitstamp-1", "kraken-1"]
    outlier = quotes_of(result, "BTC")["bitstamp-2"]
    assert (outlier.price, outlier.status, outlier.chosen_price_id) == (
        Decimal("9800"),
        QuoteStatus.OUTLIER,
        None,
    )
    assert outlier.error == "9800 is 90.00% below the median 98000 of the fresh quotes; the band is 5%"
    assert CurrentPrice.objects.get(asset_id="BTC").is_stale is False


def test_a_quote_exactly_on_the_edge_of_the_band_is_kept(oracle):
    _bitstamp_1, bitstamp_2, kraken_1 = oracle
    bitstamp_2.set_price("BTC/USD", "93100")  # the median 98000 − 5% exactly
    kraken_1.set_price("BTC/USD", "102900.01")  # just above 98000 + 5%

    result = crypto_prices_refresh(actor=SYSTEM)

    statuses = {venue: q.status for venue, q in quotes_of(result, "BTC").items()}
    assert statuses == {
        "bitstamp-1": QuoteStatus.ACCEPTED,
        "bitstamp-2": QuoteStatus.ACCEPTED,
        "kraken-1": QuoteStatus.OUTLIER,
    }
    assert result.assets["BTC"].price.price == Decimal("95550")


def test_a_venue_answering_http_500_is_logged_and_left_out(oracle, caplog):
    _bitstamp_1, bitstamp_2, kraken_1 = oracle
    kraken_1.fail("ticker", "http_500")
    bitstamp_2.set_price("BTC/USD", "98200")

    with caplog.at_level(logging.WARNING, logger="collateral.oracle"):
        result = crypto_prices_refresh(actor=SYSTEM)

    assert result.assets["BTC"].price.price == Decimal("98100")
    failed = quotes_of(result, "BTC")["kraken-1"]
    assert (failed.price, failed.status, failed.chosen_price_id, failed.quoted_at) == (
        None,
        QuoteStatus.ERROR,
        None,
        None,
    )
    assert failed.error.startswith("ExchangeNotAvailable: kraken GET http://127.0.0.1:")
    assert "500 Internal Server Error" in failed.error
    records = [r for r in caplog.records if r.name == "collateral.oracle" and r.levelno == logging.WARNING]
    assert {r.getMessage().split(" (")[0] for r in records} == {
        "Price venue kraken-1 gave no usable BTC quote",
        "Price venue kraken-1 gave no usable ETH quote",
    }
    assert all("ExchangeNotAvailable" in r.getMessage() for r in records)


def test_a_venue_that_times_out_is_left_out_without_holding_up_the_others(settings, oracle, caplog):
    bitstamp_1, bitstamp_2, _kraken_1 = oracle
    point_oracle_at(settings, oracle, timeout_ms=500)
    bitstamp_1.fail("ticker", "delay", seconds=5)
    bitstamp_2.set_price("ETH/USD", "3402")

    with caplog.at_level(logging.WARNING, logger="collateral.oracle"):
        started = time.monotonic()
        result = crypto_prices_refresh(actor=SYSTEM)
        elapsed = time.monotonic() - started

    assert elapsed < 2.5  # one timeout, not one per request
    assert result.assets["ETH"].price.price == Decimal("3401")
    timed_out = quotes_of(result, "ETH")["bitstamp-1"]
    assert timed_out.status == QuoteStatus.ERROR
    assert timed_out.error.startswith("RequestTimeout: bitstamp GET http://127.0.0.1:")
    assert any("bitstamp-1" in r.getMessage() and "RequestTimeout" in r.getMessage() for r in caplog.records)


def test_a_venue_nobody_answers_at_is_a_network_error(settings, oracle):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    closed_port = listener.getsockname()[1]
    listener.close()  # nothing listens there any more: connection refused
    venues = [venue_config(fake) for fake in oracle]
    venues[2]["base_url"] = f"http://127.0.0.1:{closed_port}"
    settings.PRICE_VENUES = venues

    result = crypto_prices_refresh(actor=SYSTEM)

    assert result.assets["BTC"].price.price == Decimal("98000")
    failed = quotes_of(result, "BTC")["kraken-1"]
    assert failed.status == QuoteStatus.ERROR
    # the client's first request is the markets download, as in production
    assert failed.error == f"NetworkError: kraken GET http://127.0.0.1:{closed_port}/0/public/Assets"


def test_the_venues_are_asked_at_the_same_time(oracle):
    for fake in oracle:
        fake.fail("ticker", "delay", seconds="0.8")

    started = time.monotonic()
    result = crypto_prices_refresh(actor=SYSTEM)
    elapsed = time.monotonic() - started

    assert elapsed < 2.4  # six requests of 0.8 s each: 4.8 s one after the other
    assert result.repriced == ("BTC", "ETH")
    assert sum(len(fake.requests("ticker")) for fake in oracle) == 6


def test_when_every_venue_is_stale_the_last_good_price_is_kept_and_marked_stale(settings, market):
    with running_fake_exchanges("bitstamp", "bitstamp", "bitstamp") as fakes:
        point_oracle_at(settings, fakes)
        for fake in fakes:
            fake.set_ticker_age(300)
        last_good = CurrentPrice.objects.get(asset_id="BTC").price
        prices_before = Price.objects.count()

        result = crypto_prices_refresh(actor=SYSTEM)

    assert result.repriced == ()
    assert set(result.stale) == {"BTC", "ETH"}
    assert Price.objects.count() == prices_before
    reason = result.stale["BTC"]
    assert re.fullmatch(
        r"none of the 3 venues gave a fresh quote within 5% of the median; quorum is 2 "
        r"\(bitstamp-1: 30[01] s old; bitstamp-2: 30[01] s old; bitstamp-3: 30[01] s old\)",
        reason,
    ), reason
    current = CurrentPrice.objects.get(asset_id="BTC")
    assert (current.price_id, current.is_stale, current.stale_reason, current.checked_at) == (
        last_good.pk,
        True,
        reason,
        result.as_of,
    )
    assert current_prices()["BTC"].price == Decimal("100000")
    for quote in quotes_of(result, "BTC").values():
        assert (quote.status, quote.price, quote.chosen_price_id) == (
            QuoteStatus.STALE,
            Decimal("98000"),
            None,
        )
        assert re.fullmatch(r"quoted 30[01] s ago; the limit is 60 s", quote.error)
        assert 299 <= (quote.received_at - quote.quoted_at).total_seconds() <= 302

    assert price_freshness(current.asset) == (False, f"the price of BTC is marked stale: {reason}")
    event = AuditEvent.objects.get(action="price.marked_stale", target_id="BTC")
    assert event.before == {"is_stale": False}
    assert event.after == {"is_stale": True, "reason": reason, "refresh_id": str(result.refresh_id)}


def test_fewer_fresh_quotes_than_the_quorum_make_the_asset_stale(oracle):
    bitstamp_1, bitstamp_2, _kraken_1 = oracle
    bitstamp_1.fail("ticker", "http_500")
    bitstamp_2.set_ticker_age(120)

    result = crypto_prices_refresh(actor=SYSTEM)

    assert result.repriced == ()
    assert re.fullmatch(
        r"only 1 of 3 venues gave a fresh quote within 5% of the median; quorum is 2 "
        r"\(bitstamp-1: error \(ExchangeNotAvailable\); bitstamp-2: 12[01] s old\)",
        result.stale["BTC"],
    )
    lonely = quotes_of(result, "BTC")["kraken-1"]
    assert (lonely.status, lonely.price, lonely.chosen_price_id) == (
        QuoteStatus.ACCEPTED,
        Decimal("98000"),
        None,
    )
    assert lonely.error == (
        "fresh and within the band, but too few quotes agreed for the quorum: no price recorded"
    )
    assert current_prices()["BTC"].price == Decimal("100000")
    assert CurrentPrice.objects.get(asset_id="BTC").is_stale is True


def test_two_fresh_quotes_too_far_apart_to_tell_which_is_right_make_the_asset_stale(oracle):
    _bitstamp_1, bitstamp_2, kraken_1 = oracle
    kraken_1.fail("ticker", "http_500")
    bitstamp_2.set_price("ETH/USD", "3000")  # the median is 3200: both are 6.25% away

    result = crypto_prices_refresh(actor=SYSTEM)

    assert result.repriced == ("BTC",)
    assert result.stale == {
        "ETH": "none of the 3 venues gave a fresh quote within 5% of the median; quorum is 2 "
        "(bitstamp-1: outlier (+6.25%); bitstamp-2: outlier (-6.25%); kraken-1: error (ExchangeNotAvailable))"
    }
    assert current_prices()["ETH"].price == Decimal("4000")


def test_a_stale_asset_becomes_fresh_again_with_the_next_good_refresh(oracle):
    bitstamp_1, bitstamp_2, _kraken_1 = oracle
    bitstamp_1.fail("ticker", "http_500", times=2)
    bitstamp_2.fail("ticker", "http_500", times=2)
    first = crypto_prices_refresh(actor=SYSTEM)
    assert set(first.stale) == {"BTC", "ETH"}

    second = crypto_prices_refresh(actor=SYSTEM)

    assert second.repriced == ("BTC", "ETH")
    current = CurrentPrice.objects.get(asset_id="BTC")
    assert (current.is_stale, current.stale_reason, current.price.price) == (False, "", Decimal("98000"))
    assert price_freshness(current.asset) == (True, "")
    assert list(
        AuditEvent.objects.filter(target_id="BTC", action__startswith="price.")
        .order_by("pk")
        .values_list("action", flat=True)
    )[-3:] == ["price.marked_stale", "price.recorded", "price.fresh_again"]


def test_a_crash_the_venues_agree_on_is_used_at_once_not_held_like_a_pushed_price(oracle):
    """A pushed price 40% away is held for a second person; the oracle's median of agreeing venues is not:
    a margin call cannot wait for a confirmation in a crash."""
    for venue in oracle:
        venue.set_price("BTC/USD", "58800")  # 98,000 - 40%

    result = crypto_prices_refresh(actor=SYSTEM)

    assert result.repriced == ("BTC", "ETH")
    btc = Price.objects.get(pk=result.assets["BTC"].price.pk)
    assert (btc.price, btc.status) == (Decimal("58800"), PriceStatus.ACCEPTED)
    assert current_prices()["BTC"].price == Decimal("58800")


def test_kraken_gives_no_ticker_time_so_the_time_received_is_used(oracle):
    bitstamp_1, _bitstamp_2, _kraken_1 = oracle
    bitstamp_1.set_ticker_age(30)
    before = timezone.now()

    result = crypto_prices_refresh(actor=SYSTEM)

    after = timezone.now()
    quotes = quotes_of(result, "BTC")
    kraken = quotes["kraken-1"]
    assert kraken.quoted_at == kraken.received_at
    assert before <= kraken.received_at <= after
    bitstamp = quotes["bitstamp-1"]  # bitstamp's own time, whole seconds, 30 s ago
    assert bitstamp.quoted_at.microsecond == 0
    assert 29 <= (bitstamp.received_at - bitstamp.quoted_at).total_seconds() <= 32
    assert bitstamp.status == kraken.status == QuoteStatus.ACCEPTED
    sources = {s["venue"]: s for s in Price.objects.get(pk=result.assets["BTC"].price.pk).sources}
    assert sources["kraken-1"]["quoted_at"] == kraken.quoted_at.isoformat()


def test_a_market_in_another_currency_is_refused_without_asking(settings, oracle):
    venues = [venue_config(fake) for fake in oracle]
    venues[0]["markets"] = {"BTC": "BTC/EUR", "ETH": "ETH/USD"}
    settings.PRICE_VENUES = venues

    result = crypto_prices_refresh(actor=SYSTEM)

    refused = quotes_of(result, "BTC")["bitstamp-1"]
    assert refused.status == QuoteStatus.ERROR
    assert refused.error == (
        "the market BTC/EUR is quoted in EUR, but BTC is priced in USD: fix PRICE_VENUES"
    )
    assert [r.path for r in oracle[0].requests("ticker")] == ["/api/v2/ticker/ethusd/"]
    assert result.assets["BTC"].price.price == Decimal("98000")


def test_markets_are_loaded_once_per_venue_and_reused_by_the_next_refresh(oracle):
    """The oracle's clients have no preset markets: the first refresh loads them once per venue, although
    two threads (BTC and ETH) ask each venue at the same time, and the next refresh loads nothing."""
    first = crypto_prices_refresh(actor=SYSTEM)
    # bitstamp: GET /api/v2/markets/; kraken: GET /0/public/Assets and /0/public/AssetPairs
    assert [len(fake.requests("markets")) for fake in oracle] == [1, 1, 2]

    second = crypto_prices_refresh(actor=SYSTEM)

    assert [len(fake.requests("markets")) for fake in oracle] == [1, 1, 2]
    assert first.repriced == second.repriced == ("BTC", "ETH")
    assert second.assets["BTC"].price.price == Decimal("98000")


def test_a_refresh_without_any_crypto_asset_records_nothing(settings, fake_venues, db):
    point_oracle_at(settings, fake_venues)

    result = crypto_prices_refresh(actor=SYSTEM)

    assert (result.repriced, result.stale) == ((), {})
    assert PriceQuote.objects.count() == 0
    assert sum(len(fake.requests("ticker")) for fake in fake_venues) == 0
