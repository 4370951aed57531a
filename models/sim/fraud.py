"""Fraud episodes, each labelled with its pattern name. ``fraud_day`` schedules enough of
them to make the configured share of the day's purchases fraudulent."""

from __future__ import annotations

import numpy as np

from models.sim.config import PATTERNS
from models.sim.emit import Buy, Emitter, Randoms
from models.sim.legit import home_buy
from models.sim.world import (
    CITY_COUNTRY,
    CITY_LAT,
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    USER_AGENTS,
    Geo,
    Identity,
    World,
    city_geo,
    haversine_km,
)

BOT_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/122.0",
    "python-httpx/0.27.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0",
)
FRAUD_EMAILS = ("mailinator.com", "guerrillamail.com", "tempmail.dev", "proton.me", "gmail.com")
# Mean fraud purchases per episode, to turn a target count into a number of episodes.
MEAN_SIZE = {
    "scalper_bot": 16.0,
    "card_testing": 6.0,
    "account_takeover": 2.5,
    "fraud_ring": 7.0,
    "impossible_travel": 2.0,
}


def fraud_day(em: Emitter, day: int, n_legit: int, rng: np.random.Generator) -> None:
    cfg = em.config
    day_start = cfg.start_ms + day * DAY_MS
    target = n_legit * cfg.fraud_rate / (1 - cfg.fraud_rate)
    total = sum(cfg.pattern_mix.values()) or 1.0
    for name in PATTERNS:
        share = cfg.pattern_mix.get(name, 0.0) / total
        for _ in range(rng.poisson(target * share / MEAN_SIZE[name])):
            EPISODES[name](em, day_start)


def _fresh(em: Emitter, created_ms: int, phone: float = 0.2) -> Identity:
    """A fraudster's account: new, or (about a third) an aged account bought or farmed."""
    r = em.rand
    aged = r.u() < 0.35
    if aged:
        created_ms -= r.int(30, 900) * DAY_MS
    return Identity(
        em.names.user_id(),
        em.names.wallet(),
        int(created_ms),
        r.pick(FRAUD_EMAILS),
        aged and r.u() < 0.2,
        r.u() < (0.7 if aged else phone),
        r.u() < (0.9 if aged else 0.5),
    )


def _far_city(r: Randoms, home: Geo, min_km: float) -> int:
    while True:
        city = r.int(0, len(CITY_LAT))
        if haversine_km(home, city_geo(city)) >= min_km:
            return city


def _shows_on_sale(world: World, t: int) -> np.ndarray:
    s = world.shows
    on_sale = np.flatnonzero((s.sale_open_ms <= t) & (s.event_ms > t + DAY_MS))
    return on_sale if len(on_sale) else np.arange(len(s.price))


def _pick_show(em: Emitter, t: int, by: str = "popular") -> int:
    """An on-sale show: by popularity, or among the cheapest/dearest fifth by price."""
    world, r = em.world, em.rand
    on_sale = _shows_on_sale(world, t)
    if by == "popular":
        p = np.cumsum(world.shows.popularity[on_sale])
        return int(on_sale[min(np.searchsorted(p, r.u() * p[-1]), len(on_sale) - 1)])
    ranked = on_sale[np.argsort(world.shows.price[on_sale], kind="stable")]
    fifth = max(1, len(ranked) // 5)
    return int(r.pick(ranked[:fifth] if by == "cheap" else ranked[-fifth:]))


def _legit_victim(em: Emitter, t: int, min_age_days: int = 30) -> int:
    users, r = em.world.users, em.rand
    while True:
        i = r.int(0, len(users))
        if users.created_ms[i] < t - min_age_days * DAY_MS:
            return i


def _resell(em: Emitter, token, t: int, markup: float) -> None:
    """A legit buyer buys ``token`` on the resale channel (the resale itself is not fraud)."""
    i = _legit_victim(em, t, 0)
    u = np.array([em.rand.u() for _ in range(4)])
    em.purchase(
        t,
        em.world.users.identity(i),
        token.show,
        token.quantity,
        int(token.unit_price * markup),
        home_buy(em.world, i, u),
        resale=token,
    )


def scalper_bot(em: Emitter, day_start: int) -> None:
    """Fresh wallets behind few datacenter IPs and devices buy the maximum at a sale's open,
    then resell within hours at 2-5x."""
    r, shows = em.rand, em.world.shows
    opening = np.flatnonzero(
        (shows.sale_open_ms >= day_start) & (shows.sale_open_ms < day_start + DAY_MS)
    )
    if len(opening):
        show = int(opening[np.argmax(shows.popularity[opening])])
        t0 = int(shows.sale_open_ms[show])
    else:
        t0 = day_start + r.int(HOUR_MS, 22 * HOUR_MS)
        show = _pick_show(em, t0)
    # A third of the operators are stealthy: residential proxies, a device per wallet,
    # browser agents, fewer tickets each, spread over half an hour.
    stealth = r.u() < 0.35
    ips = [em.names.ip(datacenter=not stealth) for _ in range(r.int(2, 5))]
    devices = [em.names.device() for _ in range(r.int(1, 4))]
    cards = [em.names.card() for _ in range(r.int(2, 5))]
    agent, geo = r.pick(BOT_AGENTS), city_geo(r.int(0, len(CITY_LAT)))
    payment = "CARD" if r.u() < 0.7 else "CRYPTO"
    for _ in range(r.int(6, 17)):
        who = _fresh(em, t0 - r.int(DAY_MS, 20 * DAY_MS), phone=0.3)
        t = t0 + int(r.u() * (30 * MINUTE_MS if stealth else 120_000))
        buy = Buy(
            geo,
            em.names.ip() if stealth else r.pick(ips),
            em.names.device() if stealth else r.pick(devices),
            r.pick(USER_AGENTS[:4]) if stealth else agent,
            payment,
            r.pick(cards) if payment == "CARD" else None,
            geo.country,
        )
        em.login(t, who, buy)
        for _ in range(r.int(1, 3)):
            t += int(5_000 + r.u() * 60_000)
            quantity = r.int(3, 7) if stealth else r.int(6, 11)
            token = em.purchase(
                t, who, show, quantity, int(shows.price[show]), buy, fraud="scalper_bot"
            )
            if r.u() < 0.8:
                _resell(em, token, t + r.int(30 * MINUTE_MS, 12 * HOUR_MS), 2 + 3 * r.u())


def card_testing(em: Emitter, day_start: int) -> None:
    """A new wallet probes several stolen cards with small buys, then buys big (a quarter skip
    the probes)."""
    r, shows, names = em.rand, em.world.shows, em.names
    t = day_start + r.int(HOUR_MS, 22 * HOUR_MS)
    geo = city_geo(r.int(0, len(CITY_LAT)), (r.normal() * 0.05, r.normal() * 0.05))
    device, agent = names.device(), r.pick(USER_AGENTS[:4])
    wallets = [_fresh(em, t - r.int(5 * MINUTE_MS, 6 * HOUR_MS)) for _ in range(r.int(1, 3))]
    cards = [names.card() for _ in range(r.int(3, 9))]
    card_country = geo.country if r.u() < 0.4 else r.pick(CITY_COUNTRY)
    ip = names.ip(datacenter=r.u() < 0.3)
    probes = 0 if r.u() < 0.25 else r.int(3, 8)  # some go straight to the big buys
    for k in range(probes):
        t += r.int(30_000, 180_000)
        show = _pick_show(em, t, "cheap")
        buy = Buy(geo, ip, device, agent, "CARD", cards[k % len(cards)], card_country)
        em.purchase(
            t,
            wallets[k % len(wallets)],
            show,
            1,
            r.int(100, 600),  # a probe: a tiny add-on (parking, fee) or cheap seat
            buy,
            fraud="card_testing",
        )
    mule = names.wallet()
    for k in range(r.int(1, 4)):
        t += r.int(2 * MINUTE_MS, 30 * MINUTE_MS)
        show = _pick_show(em, t, "dear")
        buy = Buy(geo, ip, device, agent, "CARD", r.pick(cards), card_country)
        token = em.purchase(
            t,
            wallets[k % len(wallets)],
            show,
            r.int(4, 11),
            int(shows.price[show] * 2.2),
            buy,
            fraud="card_testing",
        )
        if r.u() < 0.5:
            em.transfer(t + r.int(10 * MINUTE_MS, 2 * HOUR_MS), token, mule, "TRANSFER")


def account_takeover(em: Emitter, day_start: int) -> None:
    """Failed logins, a password change, then big buys from a new device far from home; the
    tickets are moved out to the attacker."""
    r, users, names, shows = em.rand, em.world.users, em.names, em.world.shows
    t = day_start + r.int(HOUR_MS, 22 * HOUR_MS)
    i = _legit_victim(em, t, 60)
    who, home = users.identity(i), users.home(i)
    city = _far_city(r, home, 1500) if r.u() < 0.7 else r.int(0, len(CITY_LAT))
    buy = Buy(
        city_geo(city),
        names.ip(datacenter=r.u() < 0.3),
        names.device(),
        r.pick(USER_AGENTS[:4]),
        "CARD",
        users.card(i, 0),
        home.country,
    )
    if r.u() < 0.3:
        buy.card, buy.card_country = names.card(), CITY_COUNTRY[city]
    # Credential stuffing shows failed logins; phished or reused passwords do not.
    em.login(t, who, buy, failures=0 if r.u() < 0.35 else r.int(3, 13))
    t += r.int(MINUTE_MS, 3 * MINUTE_MS)
    if r.u() < 0.6:
        em.auth(t, "PASSWORD_CHANGED", who, buy)
    if r.u() < 0.3:
        em.auth(t + 30_000, "EMAIL_CHANGED", who, buy)
    attacker = names.wallet()
    for _ in range(r.int(1, 5)):
        t += r.int(3 * MINUTE_MS, 20 * MINUTE_MS)
        show = _pick_show(em, t, "dear" if r.u() < 0.6 else "popular")
        token = em.purchase(
            t, who, show, r.int(2, 9), int(shows.price[show] * 1.4), buy, fraud="account_takeover"
        )
        if r.u() < 0.8:
            em.transfer(t + r.int(5 * MINUTE_MS, HOUR_MS), token, attacker, "TRANSFER")


def fraud_ring(em: Emitter, day_start: int) -> None:
    """Wallets sharing devices, cards and an IP wash-trade a ticket round A→B→C→A at rising
    prices."""
    r, names, shows = em.rand, em.names, em.world.shows
    t = day_start + r.int(HOUR_MS, 16 * HOUR_MS)
    size = r.int(3, 6)
    members = [_fresh(em, t - r.int(2 * DAY_MS, 40 * DAY_MS), phone=0.6) for _ in range(size)]
    devices, cards = (
        [names.device() for _ in range(r.int(1, 3))],
        [names.card() for _ in range(r.int(1, 3))],
    )
    geo, ip, agent = city_geo(r.int(0, len(CITY_LAT))), names.ip(), r.pick(USER_AGENTS)
    payment = "CARD" if r.u() < 0.6 else "CRYPTO"

    def buy() -> Buy:
        card = r.pick(cards) if payment == "CARD" else None
        return Buy(geo, ip, r.pick(devices), agent, payment, card, geo.country if card else None)

    show = _pick_show(em, t)
    price = int(shows.price[show])
    token = em.purchase(t, members[0], show, r.int(2, 7), price, buy(), fraud="fraud_ring")
    for k in range(1, size * r.int(1, 3) + 1):
        t += r.int(10 * MINUTE_MS, 3 * HOUR_MS)
        price = int(price * (1.0 + 0.3 * r.u()))
        em.purchase(
            t,
            members[k % size],
            show,
            token.quantity,
            price,
            buy(),
            resale=token,
            fraud="fraud_ring",
        )


def impossible_travel(em: Emitter, day_start: int) -> None:
    """The owner buys at home; minutes later the same wallet buys from 1 000+ km away."""
    r, users, names, shows = em.rand, em.world.users, em.names, em.world.shows
    t = day_start + r.int(HOUR_MS, 22 * HOUR_MS)
    i = _legit_victim(em, t)
    who, home = users.identity(i), users.home(i)
    u = np.array([r.u() for _ in range(4)])
    show = _pick_show(em, t)
    em.purchase(t, who, show, 1 + int(r.u() * 2), int(shows.price[show]), home_buy(em.world, i, u))
    city = _far_city(r, home, 1000)
    buy = Buy(
        city_geo(city),
        names.ip(),
        names.device(),
        r.pick(USER_AGENTS[:4]),
        "CARD",
        users.card(i, 0),
        home.country,
    )
    t += r.int(3 * MINUTE_MS, 90 * MINUTE_MS)
    em.login(t, who, buy)
    for _ in range(r.int(1, 4)):
        show = _pick_show(em, t)
        em.purchase(
            t, who, show, r.int(1, 5), int(shows.price[show] * 1.4), buy, fraud="impossible_travel"
        )
        t += r.int(2 * MINUTE_MS, 15 * MINUTE_MS)


EPISODES = {
    "scalper_bot": scalper_bot,
    "card_testing": card_testing,
    "account_takeover": account_takeover,
    "fraud_ring": fraud_ring,
    "impossible_travel": impossible_travel,
}
