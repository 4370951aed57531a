"""Fraud episodes, each labelled with its pattern name. ``fraud_day`` schedules enough of
them to make the configured share of the day's purchases fraudulent."""

from __future__ import annotations

import numpy as np

from models.sim import careful
from models.sim.actors import (
    BOT_AGENTS,
    far_city,
    fresh,
    legit_victim,
    pick_show,
    resell,
)
from models.sim.config import PATTERNS
from models.sim.emit import Buy, Emitter
from models.sim.legit import home_buy
from models.sim.world import (
    CITY_COUNTRY,
    CITY_LAT,
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    USER_AGENTS,
    city_geo,
)

# Mean fraud purchases per episode, to turn a target count into a number of episodes.
MEAN_SIZE = {
    "scalper_bot": 16.0,
    "slow_scalper": 18.0,
    "card_testing": 6.0,
    "distributed_card_testing": 26.0,
    "device_farm": 21.0,
    "account_takeover": 2.5,
    "fraud_ring": 7.0,
    "impossible_travel": 2.0,
    "friendly_fraud": 1.0,
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
        show = pick_show(em, t0)
    stealth = False  # careful operators are the slow_scalper pattern (models/sim/careful.py)
    ips = [em.names.ip(datacenter=not stealth) for _ in range(r.int(2, 5))]
    devices = [em.names.device() for _ in range(r.int(1, 4))]
    cards = [em.names.card() for _ in range(r.int(2, 5))]
    agent, geo = r.pick(BOT_AGENTS), city_geo(r.int(0, len(CITY_LAT)))
    payment = "CARD" if r.u() < 0.7 else "CRYPTO"
    for _ in range(r.int(6, 17)):
        who = fresh(em, t0 - r.int(DAY_MS, 20 * DAY_MS), phone=0.3)
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
                resell(em, token, t + r.int(30 * MINUTE_MS, 12 * HOUR_MS), 2 + 3 * r.u())


def card_testing(em: Emitter, day_start: int) -> None:
    """A new wallet probes several stolen cards with small buys, then buys big (a quarter skip
    the probes)."""
    r, shows, names = em.rand, em.world.shows, em.names
    t = day_start + r.int(HOUR_MS, 22 * HOUR_MS)
    geo = city_geo(r.int(0, len(CITY_LAT)), (r.normal() * 0.05, r.normal() * 0.05))
    device, agent = names.device(), r.pick(USER_AGENTS[:4])
    wallets = [fresh(em, t - r.int(5 * MINUTE_MS, 6 * HOUR_MS)) for _ in range(r.int(1, 3))]
    cards = [names.card() for _ in range(r.int(3, 9))]
    card_country = geo.country if r.u() < 0.4 else r.pick(CITY_COUNTRY)
    ip = names.ip(datacenter=r.u() < 0.3)
    probes = 0 if r.u() < 0.25 else r.int(3, 8)  # some go straight to the big buys
    for k in range(probes):
        t += r.int(30_000, 180_000)
        show = pick_show(em, t, "cheap")
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
        show = pick_show(em, t, "dear")
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
    i = legit_victim(em, t, 60)
    who, home = users.identity(i), users.home(i)
    city = far_city(r, home, 1500) if r.u() < 0.7 else r.int(0, len(CITY_LAT))
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
        show = pick_show(em, t, "dear" if r.u() < 0.6 else "popular")
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
    members = [fresh(em, t - r.int(2 * DAY_MS, 40 * DAY_MS), phone=0.6) for _ in range(size)]
    devices, cards = (
        [names.device() for _ in range(r.int(1, 3))],
        [names.card() for _ in range(r.int(1, 3))],
    )
    geo, ip, agent = city_geo(r.int(0, len(CITY_LAT))), names.ip(), r.pick(USER_AGENTS)
    payment = "CARD" if r.u() < 0.6 else "CRYPTO"

    def buy() -> Buy:
        card = r.pick(cards) if payment == "CARD" else None
        return Buy(geo, ip, r.pick(devices), agent, payment, card, geo.country if card else None)

    show = pick_show(em, t)
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
    i = legit_victim(em, t)
    who, home = users.identity(i), users.home(i)
    u = np.array([r.u() for _ in range(4)])
    show = pick_show(em, t)
    em.purchase(t, who, show, 1 + int(r.u() * 2), int(shows.price[show]), home_buy(em.world, i, u))
    city = far_city(r, home, 1000)
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
        show = pick_show(em, t)
        em.purchase(
            t, who, show, r.int(1, 5), int(shows.price[show] * 1.4), buy, fraud="impossible_travel"
        )
        t += r.int(2 * MINUTE_MS, 15 * MINUTE_MS)


EPISODES = {
    "scalper_bot": scalper_bot,
    "slow_scalper": careful.slow_scalper,
    "card_testing": card_testing,
    "distributed_card_testing": careful.distributed_card_testing,
    "device_farm": careful.device_farm,
    "account_takeover": account_takeover,
    "fraud_ring": fraud_ring,
    "impossible_travel": impossible_travel,
    "friendly_fraud": careful.friendly_fraud,
}
