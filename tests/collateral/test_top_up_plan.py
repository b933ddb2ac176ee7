"""The automatic top-up planner: worked examples with exact decimals, and properties that must always
hold (hypothesis). Throughout, BTC is at US$80,000 (a call: 1 BTC lends HK$249,600 against HK$265,200 of
debt, 106.25%) unless said otherwise; USD/HKD 7.8; target 85%."""

from decimal import Decimal as D

from hypothesis import event, given, settings
from hypothesis import strategies as st

from collateral.calculations import (
    PositionInput,
    SkippedHolding,
    cash_top_up_to_target,
    cure_amounts,
    market_value,
    pool_valuation,
    ratio_above,
    top_up_plan,
    top_up_sequence,
)
from core.money import places

TARGET = D("0.85")
DEBT = D("265200.00")


def position(symbol, quantity, *, price, fx="1", haircut, kind, decimals, limit=None, eligible=True):
    return PositionInput(
        symbol=symbol, quantity=D(quantity), price=None if price is None else D(price),
        fx_to_hkd=None if fx is None else D(fx), haircut=D(haircut), concentration_limit=D(limit) if limit else None,
        eligible=eligible, lot_size=D(1), decimals=decimals, kind=kind,
    )  # fmt: skip


def hkd(amount):
    return position("HKD", amount, price="1", haircut="0", kind="cash", decimals=2)


def usd(amount):
    return position("USD", amount, price="1", fx="7.8", haircut="0.02", kind="cash", decimals=2)


def btc(quantity, price="80000"):
    return position("BTC", quantity, price=price, fx="7.8", haircut="0.60", kind="crypto", decimals=8)


def eth(quantity, price="4000"):
    return position("ETH", quantity, price=price, fx="7.8", haircut="0.65", kind="crypto", decimals=18)


def tencent(quantity, limit="0.50", eligible=True):
    return position(
        "0700.HK",
        quantity,
        price="400",
        haircut="0.30",
        kind="security",
        decimals=0,
        limit=limit,
        eligible=eligible,
    )


def hsbc(quantity, price="100", haircut="0.25"):
    return position(
        "0005.HK", quantity, price=price, haircut=haircut, kind="security", decimals=0, limit="0.50"
    )


def moved(plan) -> dict[str, D]:
    return {t.symbol: t.quantity for t in plan.transfers}


# --- worked examples ---------------------------------------------------------------------------


def test_cash_cures_to_the_cent():
    # D/T − LV = 265,200 / 0.85 − 249,600 = 62,400.00 of HKD: no haircut, so exactly that.
    plan = top_up_plan([btc("1")], [hkd("100000.00")], debt=DEBT, target=TARGET, order=[])
    assert moved(plan) == {"HKD": D("62400.00")}
    assert plan.margin_value_after == D("312000.00")
    assert plan.ratio_before == D("1.06250000")
    assert plan.ratio_after == D("0.85000000")
    assert plan.reaches_target
    assert plan.still_due == cure_amounts(DEBT, D("312000.00"), TARGET)
    assert plan.still_due.cash_top_up == 0


def test_cash_first_then_the_clients_assets_each_rounded_up_to_its_decimals():
    # HK$20,000 cash, then ETH for the remaining 42,400.00 of margin value. ETH lends 35% of
    # 4,000 × 7.8 = 31,200 a unit. Margin value is rounded down to the cent and market value half-up, so the
    # position must be worth at least 121,142.86 (× 0.35 = 42,400.001): q × 31,200 ≥ 121,142.855, so
    # q ≥ 3.882783814102564102564…, rounded up to ETH's 18 places. BTC is free too but comes later.
    plan = top_up_plan(
        [btc("1")], [btc("1"), eth("10"), hkd("20000.00")], debt=DEBT, target=TARGET, order=["ETH", "BTC"]
    )
    assert moved(plan) == {"HKD": D("20000.00"), "ETH": D("3.882783814102564103")}
    assert [t.symbol for t in plan.transfers] == ["HKD", "ETH"]
    assert plan.transfers[1].market_value == D("121142.86")
    assert plan.margin_value_after == D("312000.00")
    assert plan.reaches_target


def test_other_cash_after_hkd_then_an_asset_already_in_the_pool():
    # HK$20,000, then US$1,000 (7,800 × 0.98 = 7,644 of margin value), then BTC for the remaining 34,756.
    # The BTC joins the pool's 1 BTC: (1 + q) × 624,000 must be worth 710,890 (× 0.4 = 284,356), so
    # q ≥ 0.1392467868…, rounded up to 8 places.
    plan = top_up_plan(
        [btc("1")], [btc("1"), usd("1000.00"), hkd("20000.00")], debt=DEBT, target=TARGET, order=["BTC"]
    )
    assert [(t.symbol, t.quantity) for t in plan.transfers] == [
        ("HKD", D("20000.00")),
        ("USD", D("1000.00")),
        ("BTC", D("0.13924679")),
    ]
    assert plan.transfers[2].market_value == D("86890.00")
    assert plan.margin_value_after == D("312000.00")


def test_a_concentration_limit_is_met_with_less_cash_than_the_closed_form():
    # Tencent 1,000 × 400 = 400,000 alone in a pool with a 50% limit: only 200,000 counts, LV 140,000.
    # Debt 150,000 needs LV ≥ 176,470.59. The closed form asks 36,470.59 of cash, but cash also lifts
    # Tencent's cap by half its amount: LV = 0.7 × (200,000 + C/2) + C = 140,000 + 1.35 C, so C = 27,015.26
    # (27,015.25 leaves it at 176,470.58, a cent short).
    pool, debt = [tencent("1000")], D("150000.00")
    assert cure_amounts(debt, D("140000.00"), TARGET).cash_top_up == D("36470.59")
    plan = top_up_plan(pool, [hkd("100000.00")], debt=debt, target=TARGET, order=[])
    assert moved(plan) == {"HKD": D("27015.26")}
    assert plan.margin_value_after == D("176470.60")
    assert plan.ratio_after == D("0.84999994")
    short = pool_valuation([*pool, hkd("27015.25")]).margin_value
    assert short == D("176470.58")
    assert ratio_above(debt, short, TARGET)


def test_shares_are_moved_in_whole_units_not_lots():
    # HSBC (lot 400) into the same pool: each share adds 75 of its own margin value and lifts Tencent's cap
    # by 50 × 0.7 = 35, so 110 a share: 140,000 + 110 n ≥ 176,470.59 → n = 332, not a lot of 400.
    plan = top_up_plan(
        [tencent("1000")], [hsbc("2000")], debt=D("150000.00"), target=TARGET, order=["0005.HK"]
    )
    assert moved(plan) == {"0005.HK": D("332")}
    assert plan.margin_value_after == D("176520.00")


def test_a_partial_top_up_moves_everything_usable_and_says_what_is_still_due():
    plan = top_up_plan([btc("1")], [hkd("20000.00")], debt=DEBT, target=TARGET, order=[])
    assert moved(plan) == {"HKD": D("20000.00")}
    assert not plan.reaches_target
    assert plan.ratio_after == D("0.98367953")  # 265,200 / 269,600
    assert plan.still_due.cash_top_up == D("42400.00")  # 265,200 / 0.85 − 269,600
    assert plan.still_due.repayment == D("36040.00")  # 265,200 − 0.85 × 269,600


def test_with_nothing_free_nothing_moves_and_the_whole_cure_is_still_due():
    plan = top_up_plan([btc("1")], [], debt=DEBT, target=TARGET, order=["BTC"])
    assert plan.transfers == ()
    assert not plan.moves_anything
    assert plan.still_due.cash_top_up == D("62400.00")
    assert plan.still_due.repayment == D("53040.00")


def test_what_cannot_be_moved_is_skipped_with_the_reason():
    free = [
        tencent("100", eligible=False),
        position("0388.HK", "100", price=None, haircut="0.30", kind="security", decimals=0),
        position("XYZ", "100", price="10", haircut="1", kind="security", decimals=0),
        hsbc("400"),
        eth("1"),
    ]
    plan = top_up_plan([btc("1")], free, debt=DEBT, target=TARGET, order=["0700.HK", "0388.HK", "XYZ", "ETH"])
    assert moved(plan) == {"ETH": D("1")}  # 10,920 of margin value: far from enough
    assert set(plan.skipped) == {
        SkippedHolding("0700.HK", "not eligible collateral"),
        SkippedHolding("0388.HK", "no price"),
        SkippedHolding("XYZ", "adds no margin value"),
        SkippedHolding("0005.HK", "not in the standing instruction"),
    }
    assert not plan.reaches_target


def test_a_pool_already_at_target_or_without_debt_needs_nothing():
    at_target = top_up_plan([btc("1", price="100000")], [hkd("1000.00")], debt=DEBT, target=TARGET, order=[])
    assert at_target.transfers == ()
    assert at_target.reaches_target
    no_debt = top_up_plan([], [hkd("1000.00")], debt=D(0), target=TARGET, order=[])
    assert no_debt.transfers == ()
    assert no_debt.ratio_after == 0


def test_the_sequence_is_hkd_then_other_cash_then_the_clients_order():
    free = [eth("1"), usd("1"), btc("1"), hkd("1"), hsbc("1"), position("USDT", "1", price="1", haircut="0.05",
            kind="cash", decimals=2)]  # fmt: skip
    assert top_up_sequence(free, ["BTC", "ETH", "BTC"]) == ["HKD", "USD", "USDT", "BTC", "ETH"]
    assert top_up_sequence(free, []) == ["HKD", "USD", "USDT"]
    assert top_up_sequence([eth("0")], ["ETH"]) == []


# --- properties ------------------------------------------------------------------------------------

POOL_SYMBOLS = ["BTC", "0700.HK", "0005.HK"]
FREE_SYMBOLS = ["HKD", "USD", "BTC", "ETH", "0700.HK", "0005.HK"]
MAKERS = {"HKD": hkd, "USD": usd, "BTC": btc, "ETH": eth, "0700.HK": tencent, "0005.HK": hsbc}
DECIMALS = {"HKD": 2, "USD": 2, "BTC": 8, "ETH": 18, "0700.HK": 0, "0005.HK": 0}


def quantity_for(symbol):
    scale = {"HKD": 500000, "USD": 50000, "BTC": 2, "ETH": 40, "0700.HK": 2000, "0005.HK": 4000}[symbol]
    return st.decimals(min_value=0, max_value=D(scale), places=DECIMALS[symbol])


@st.composite
def situations(draw):
    pool = [MAKERS[s](draw(quantity_for(s))) for s in POOL_SYMBOLS]
    free = [MAKERS[s](draw(quantity_for(s))) for s in FREE_SYMBOLS]
    order = draw(st.permutations(["BTC", "ETH", "0700.HK", "0005.HK"]))
    order = order[: draw(st.integers(min_value=0, max_value=4))]
    ratio = draw(st.decimals(min_value=D("0.5"), max_value=D("2.5"), places=4))
    target = draw(st.sampled_from([D("0.85"), D("0.70"), D("0.95")]))
    margin_value = pool_valuation(pool).margin_value
    debt = max(margin_value, D(1000)) * ratio
    return pool, free, order, debt.quantize(D("0.01")), target


def margin_value_after(pool, free, transfers) -> D:
    by_symbol = {p.symbol: p for p in [*pool, *free]}
    quantities = {p.symbol: p.quantity for p in pool}
    for symbol, quantity in transfers.items():
        quantities[symbol] = quantities.get(symbol, D(0)) + quantity
    return pool_valuation(
        [PositionInput(**{**by_symbol[s].__dict__, "quantity": q}) for s, q in quantities.items()]
    ).margin_value


@settings(max_examples=150, deadline=None)
@given(situations())
def test_a_plan_moves_only_what_is_free_in_order_and_its_figures_are_a_revaluation(situation):
    pool, free, order, debt, target = situation
    plan = top_up_plan(pool, free, debt=debt, target=target, order=order)
    held = {p.symbol: p.quantity for p in free}
    sequence = top_up_sequence(free, order)
    transfers = moved(plan)
    assert [t.symbol for t in plan.transfers] == [s for s in sequence if s in transfers]
    for symbol, quantity in transfers.items():
        assert 0 < quantity <= held[symbol]
        assert quantity == quantity.quantize(places(DECIMALS[symbol]))
    assert plan.margin_value_after == margin_value_after(pool, free, transfers)
    assert plan.margin_value_after >= plan.margin_value_before
    assert plan.still_due == cure_amounts(debt, plan.margin_value_after, target)
    assert plan.reaches_target == (not ratio_above(debt, plan.margin_value_after, target))
    # Every transfer but the last takes all that is free: nothing is left behind for a later asset.
    for transfer in plan.transfers[:-1]:
        assert transfer.quantity == held[transfer.symbol]


@settings(max_examples=150, deadline=None)
@given(situations())
def test_a_plan_reaches_the_target_with_no_more_than_needed_or_moves_all_it_may(situation):
    pool, free, order, debt, target = situation
    plan = top_up_plan(pool, free, debt=debt, target=target, order=order)
    transfers = moved(plan)
    event(f"transfers: {len(transfers)}; reaches the target: {plan.reaches_target}")
    if not ratio_above(debt, plan.margin_value_before, target):
        assert transfers == {}
        return
    if plan.reaches_target:
        last = plan.transfers[-1]
        one_unit_less = {**transfers, last.symbol: last.quantity - places(DECIMALS[last.symbol])}
        assert ratio_above(debt, margin_value_after(pool, free, one_unit_less), target)
    else:
        assert plan.still_due.cash_top_up > 0
        skipped = {s.symbol for s in plan.skipped}
        for symbol in top_up_sequence(free, order):
            assert symbol in skipped or transfers.get(symbol) == {p.symbol: p.quantity for p in free}[symbol]


def test_a_transfers_market_value_is_at_the_valuation_price():
    plan = top_up_plan([btc("1")], [eth("2")], debt=DEBT, target=TARGET, order=["ETH"])
    assert plan.transfers[0].market_value == market_value(D(2), D(4000), D("7.8"))


# --- the cash top-up a margin call states ---------------------------------------------------------------


def btc_limited(quantity, price="100000", limit="0.60"):
    return position(
        "BTC", quantity, price=price, fx="7.8", haircut="0.60", kind="crypto", decimals=8, limit=limit
    )


def with_cash(pool, amount):
    """The pool after ``amount`` of HKD is added to it."""
    held = {p.symbol: p for p in pool}
    cash = hkd(D(amount) + (held["HKD"].quantity if "HKD" in held else 0))
    return [p for p in pool if p.symbol != "HKD"] + [cash]


def test_under_a_binding_cut_the_call_states_less_cash_than_the_closed_form():
    """1 BTC (MV 780,000, limit 60%) and HK$20,000: BTC counts for 0.6 × 800,000 × 0.4 = 192,000, LV 212,000;
    debt 230,000 (108.49%). The closed form asks 230,000 / 0.85 − 212,000 = 58,588.24. But x of cash lifts the
    cap too: LV(x) = 0.24 × (800,000 + x) + 20,000 + x = 212,000 + 1.24x (each part floored to the cent), and
    LV ≥ 270,588.2353 needs x = 47,248.59: 203,339.66 + 67,248.59 = 270,588.25; at 47,248.58 the BTC part
    floors to 203,339.65 and LV = 270,588.23, short."""
    pool = [btc_limited("1"), hkd("20000")]
    debt = D("230000.00")
    assert cure_amounts(debt, pool_valuation(pool).margin_value, TARGET).cash_top_up == D("58588.24")
    stated = cash_top_up_to_target(pool, hkd("0"), debt=debt, target=TARGET)
    assert stated == D("47248.59")
    assert pool_valuation(with_cash(pool, stated)).margin_value == D("270588.25")
    assert pool_valuation(with_cash(pool, stated - D("0.01"))).margin_value == D("270588.23")


def test_with_no_binding_cut_the_call_states_the_closed_form():
    pool = [btc("1")]  # LV 249,600; debt 265,200: 265,200 / 0.85 − 249,600 = 62,400.00
    assert cash_top_up_to_target(pool, hkd("0"), debt=DEBT, target=TARGET) == D("62400.00")
    pool = [btc("1"), tencent("100")]  # Tencent 40,000 of 664,000: its 50% limit does not bind
    closed = cure_amounts(DEBT, pool_valuation(pool).margin_value, TARGET).cash_top_up
    assert cash_top_up_to_target(pool, hkd("0"), debt=DEBT, target=TARGET) == closed == D("34400.00")


def test_at_or_below_target_no_cash_is_due():
    assert cash_top_up_to_target([btc("1")], hkd("0"), debt=D("212160.00"), target=TARGET) == 0  # 85.00%


@settings(max_examples=150, deadline=None)
@given(
    btc_quantity=st.decimals(min_value=D("0.01"), max_value=D("5"), places=8),
    tencent_quantity=st.integers(min_value=0, max_value=5000),
    cash=st.decimals(min_value=D("0"), max_value=D("200000"), places=2),
    btc_limit=st.sampled_from([None, "0.30", "0.50", "0.60", "0.80"]),
    tencent_limit=st.sampled_from([None, "0.20", "0.50"]),
    ratio=st.decimals(min_value=D("0.86"), max_value=D("1.60"), places=4),
)
def test_the_stated_cash_top_up_reaches_the_target_and_a_cent_less_does_not(
    btc_quantity, tencent_quantity, cash, btc_limit, tencent_limit, ratio
):
    pool = [btc_limited(str(btc_quantity), price="80000", limit=btc_limit)]
    if tencent_quantity:
        pool.append(tencent(tencent_quantity, limit=tencent_limit))
    if cash:
        pool.append(hkd(str(cash)))
    margin_value = pool_valuation(pool).margin_value
    debt = (margin_value * ratio).quantize(D("0.01"))
    if not ratio_above(debt, margin_value, TARGET):
        return
    stated = cash_top_up_to_target(pool, hkd("0"), debt=debt, target=TARGET)
    closed = cure_amounts(debt, margin_value, TARGET).cash_top_up
    event("a cut binds" if stated < closed else "the closed form")
    assert 0 < stated <= closed
    assert not ratio_above(debt, pool_valuation(with_cash(pool, stated)).margin_value, TARGET)
    assert ratio_above(debt, pool_valuation(with_cash(pool, stated - D("0.01"))).margin_value, TARGET)


def plan_search(pool, cash, *, debt, target):
    """What a call stated before the bracketing: ``top_up_plan`` with the cash as the only free holding,
    offered the closed form and doubled while short (eight times), else the closed form."""
    closed = cure_amounts(debt, pool_valuation(pool).margin_value, target).cash_top_up
    if closed <= 0:
        return D(0)
    offered = closed
    for _ in range(8):
        free = [position("HKD", offered, price="1", haircut="0", kind="cash", decimals=2, limit=cash.concentration_limit,
                         eligible=cash.eligible)]  # fmt: skip
        plan = top_up_plan(pool, free, debt=debt, target=target, order=[])
        if plan.reaches_target:
            return sum((t.quantity for t in plan.transfers), D(0))
        offered *= 2
    return closed


security_holding = st.tuples(
    st.integers(min_value=1, max_value=50_000),  # quantity
    st.sampled_from([None, "12.25", "99.5", "401.75"]),  # price (None: no price)
    st.sampled_from(["0.15", "0.30", "0.50"]),  # haircut
    st.sampled_from([None, "0.25", "0.30", "0.60", "0.90"]),  # concentration limit
    st.booleans(),  # eligible
)


@settings(max_examples=300, deadline=None)
@given(
    btc_quantity=st.decimals(min_value=D("0"), max_value=D("5"), places=8),
    btc_limit=st.sampled_from([None, "0.50", "0.70"]),
    securities=st.lists(security_holding, min_size=1, max_size=4),
    cash_held=st.decimals(min_value=D("0"), max_value=D("900000"), places=2),
    cash_limit=st.sampled_from([None, None, "0.05", "0.20", "0.50"]),
    cash_eligible=st.sampled_from([True, True, True, False]),
    ratio=st.decimals(min_value=D("0.70"), max_value=D("3.00"), places=4),
    target=st.sampled_from([TARGET, D("0.80"), D("0.7333")]),
)
def test_the_stated_cash_top_up_is_the_plans_own_search(
    btc_quantity, btc_limit, securities, cash_held, cash_limit, cash_eligible, ratio, target
):
    """The bracketing from a first guess gives what ``top_up_plan``'s search gives, to the cent, whatever
    binds: limits on the securities, on BTC or on cash itself (then more than the closed form, or the closed
    form when no amount reaches the target), positions without a price, and cash that is not eligible."""
    pool = [btc_limited(str(btc_quantity), price="80000", limit=btc_limit)] if btc_quantity else []
    for n, (quantity, price, haircut, limit, eligible) in enumerate(securities):
        pool.append(position(f"S{n}.HK", quantity, price=price, haircut=haircut, kind="security", decimals=0,
                             limit=limit, eligible=eligible))  # fmt: skip
    if cash_held:
        pool.append(
            position("HKD", cash_held, price="1", haircut="0", kind="cash", decimals=2, limit=cash_limit)
        )
    cash = position("HKD", "0", price="1", haircut="0", kind="cash", decimals=2, limit=cash_limit,
                    eligible=cash_eligible)  # fmt: skip
    margin_value = pool_valuation(pool).margin_value
    debt = (margin_value * ratio).quantize(D("0.01")) + D("0.01")
    stated = cash_top_up_to_target(pool, cash, debt=debt, target=target)
    closed = cure_amounts(debt, margin_value, target).cash_top_up
    event(
        "below the closed form" if stated < closed else "the closed form" if stated == closed else "above it"
    )
    assert stated == plan_search(pool, cash, debt=debt, target=target)
