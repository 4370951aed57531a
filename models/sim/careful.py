"""Fraud that looks careful: no single wallet does anything odd; only the crowd does.

- ``slow_scalper``: aged wallets (accounts months old, a small ordinary purchase days earlier)
  buy 2-4 tickets each of one show's tier over hours after a sale opens, from residential
  proxies in the show's market, one browser device each, logged in hours before; resold later.
- ``distributed_card_testing``: stolen cards from a few issuers (BINs) probed with small
  amounts, each card used 1-3 times across many wallets (some on aged accounts) and devices,
  spread over hours; then a few large orders on the cards that worked.
- ``device_farm``: dozens of fresh accounts with verified phones (a SIM farm), a device id each,
  the same app build, behind a carrier's few addresses, buying one show within an hour.
- ``friendly_fraud``: an ordinary customer's ordinary purchase, disputed weeks later.
"""

from __future__ import annotations

import numpy as np

from models.sim.actors import pick_show, resell
from models.sim.emit import Buy, Emitter
from models.sim.ids import card_bin
from models.sim.legit import home_buy
from models.sim.world import (
    CITY_COUNTRY,
    CITY_LAT,
    DAY_MS,
    EMAIL_DOMAINS,
    HOUR_MS,
    MINUTE_MS,
    USER_AGENTS,
    Identity,
    city_geo,
)

APP_AGENTS = ("SentinelTickets/3.2 (Android 14)", "SentinelTickets/3.2 (iOS 17.4)")


def _account(em: Emitter, created_ms: int, aged: bool, phone: float = 0.6) -> Identity:
    """A fraudster's account with an ordinary e-mail provider (bought, farmed or made)."""
    r = em.rand
    if aged:
        created_ms -= r.int(60, 900) * DAY_MS
    return Identity(em.names.user_id(), em.names.wallet(), int(created_ms),
                    r.pick(EMAIL_DOMAINS[:5]), aged and r.u() < 0.3, r.u() < phone,
                    r.u() < 0.9)


def _market_city(em: Emitter, show: int) -> int:
    """A city in the show's market (same currency area when there is one)."""
    r = em.rand
    for _ in range(20):
        city = r.int(0, len(CITY_LAT))
        if em.world.currencies[em.world.shows.organizer[show]] in ("USD", "EUR", "GBP"):
            return city
        if CITY_COUNTRY[city] in ("MX", "BR", "JP"):
            return city
    return city


def _age(em: Emitter, who: Identity, t: int, buy: Buy) -> None:
    """The wallet's cover: one small ordinary purchase some days before (not fraud)."""
    show = pick_show(em, t)
    em.purchase(t, who, show, 1, int(em.world.shows.price[show]), buy, scenario="legit_aging")


def slow_scalper(em: Emitter, day_start: int) -> None:
    r, shows = em.rand, em.world.shows
    t0 = day_start + r.int(2 * DAY_MS, 6 * DAY_MS)  # the target sale, days ahead
    show = pick_show(em, t0)
    t0 = max(t0, int(shows.sale_open_ms[show]))
    tier = 1.4 if r.u() < 0.5 else 2.2
    city = _market_city(em, show)
    country = CITY_COUNTRY[city]
    bins = [card_bin(country, "scalper", em.names.card()) for _ in range(r.int(1, 3))]
    for _ in range(r.int(8, 21)):
        who = _account(em, day_start, aged=r.u() < 0.8)
        buy = Buy(city_geo(city, (0.2 * r.normal(), 0.2 * r.normal())),
                  em.names.ip(country=country), em.names.device(), r.pick(USER_AGENTS[:4]),
                  "CARD", em.names.card(), country, r.pick(bins))
        _age(em, who, day_start + r.int(HOUR_MS, 20 * HOUR_MS), buy)
        t = t0 + int(r.u() ** 1.5 * 6 * HOUR_MS)
        buy.ip = em.names.ip(country=country)  # a fresh proxy exit for the buy
        if r.u() < 0.6:
            em.login(t, who, buy, lead_ms=r.int(HOUR_MS, 8 * HOUR_MS))
        for _ in range(1 + int(r.u() < 0.3)):
            token = em.purchase(t, who, show, r.int(2, 5), int(shows.price[show] * tier), buy,
                                fraud="slow_scalper")
            if r.u() < 0.7:
                resell(em, token, t + r.int(6 * HOUR_MS, 5 * DAY_MS), 1.5 + 1.5 * r.u())
            t += r.int(20 * MINUTE_MS, 2 * HOUR_MS)


def distributed_card_testing(em: Emitter, day_start: int) -> None:
    r, names, shows = em.rand, em.names, em.world.shows
    t0 = day_start + r.int(HOUR_MS, 18 * HOUR_MS)
    country = r.pick(("US", "US", "GB", "DE", "FR", "MX", "BR"))
    bins = [card_bin(country, "stolen", names.card()) for _ in range(r.int(1, 4))]
    cards = [(names.card(), r.pick(bins)) for _ in range(r.int(6, 16))]
    wallets = [_account(em, t0 - r.int(10 * MINUTE_MS, 3 * DAY_MS), aged=r.u() < 0.4, phone=0.3)
               for _ in range(r.int(4, 11))]
    datacenter = r.u() < 0.4
    working = []
    for card, issuer in cards:
        for _ in range(r.int(1, 4)):
            who = r.pick(wallets)
            t = t0 + int(r.u() * 3 * HOUR_MS)
            city = r.int(0, len(CITY_LAT))
            buy = Buy(city_geo(city), names.ip(datacenter, CITY_COUNTRY[city]), names.device(),
                      r.pick(USER_AGENTS[:4]), "CARD", card, country, issuer)
            if r.u() < 0.3:
                em.login(t, who, buy, lead_ms=r.int(MINUTE_MS, HOUR_MS))
            show = pick_show(em, t, "cheap")
            em.purchase(t, who, show, 1, em.world.local_price(show, r.int(100, 500)), buy,
                        fraud="distributed_card_testing")
        if r.u() < 0.3:
            working.append(buy)
    for buy in working[:4]:
        t = t0 + 3 * HOUR_MS + r.int(10 * MINUTE_MS, 3 * HOUR_MS)
        show = pick_show(em, t, "dear")
        em.purchase(t, r.pick(wallets), show, r.int(2, 7), int(shows.price[show] * 1.4), buy,
                    fraud="distributed_card_testing")


def device_farm(em: Emitter, day_start: int) -> None:
    r, names, shows = em.rand, em.names, em.world.shows
    t0 = day_start + r.int(2 * HOUR_MS, 20 * HOUR_MS)
    show = pick_show(em, t0)
    city = _market_city(em, show)
    country = CITY_COUNTRY[city]
    hosting = r.u() < 0.3
    ips = [names.ip(hosting, country, "mobile") for _ in range(r.int(1, 4))]
    agent, tier = r.pick(APP_AGENTS), r.pick((1.0, 1.4))
    for _ in range(r.int(12, 31)):
        who = _account(em, t0 - r.int(HOUR_MS, 10 * DAY_MS), aged=False, phone=0.95)
        t = t0 + int(r.u() * HOUR_MS)
        buy = Buy(city_geo(city, (0.05 * r.normal(), 0.05 * r.normal())), r.pick(ips),
                  names.device(), agent, r.pick(("APPLE_PAY", "GOOGLE_PAY", "CARD")),
                  names.card(), country, None)
        em.login(t, who, buy, lead_ms=r.int(30_000, 10 * MINUTE_MS))
        token = em.purchase(t, who, show, r.int(2, 5), int(shows.price[show] * tier), buy,
                            fraud="device_farm")
        if r.u() < 0.5:
            resell(em, token, t + r.int(2 * HOUR_MS, 3 * DAY_MS), 1.5 + r.u())


def friendly_fraud(em: Emitter, day_start: int) -> None:
    """An ordinary purchase by a long-standing customer, charged back later."""
    from models.sim.actors import legit_victim

    r, shows = em.rand, em.world.shows
    t = day_start + r.int(8 * HOUR_MS, 23 * HOUR_MS)
    i = legit_victim(em, t, 30)
    buy = home_buy(em.world, i, np.array([r.u() for _ in range(4)]))
    buy.payment, buy.card = "CARD", em.world.users.card(i, 0)
    buy.card_country = em.world.users.country(i)
    buy.card_bin = card_bin(buy.card_country, buy.card)
    show = pick_show(em, t)
    em.purchase(t, em.world.users.identity(i), show, r.int(1, 5), int(shows.price[show]), buy,
                fraud="friendly_fraud")
