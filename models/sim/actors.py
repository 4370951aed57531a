"""Who and what fraud episodes use: fraudsters' accounts, victims, shows, far cities."""

from __future__ import annotations

import numpy as np

from models.sim.emit import Emitter, Randoms, Token
from models.sim.legit import home_buy
from models.sim.world import CITY_LAT, DAY_MS, Geo, Identity, World, city_geo, haversine_km

BOT_AGENTS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/122.0",
    "python-httpx/0.27.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0",
)
FRAUD_EMAILS = ("mailinator.com", "guerrillamail.com", "tempmail.dev", "proton.me", "gmail.com")


def fresh(em: Emitter, created_ms: int, phone: float = 0.2) -> Identity:
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


def far_city(r: Randoms, home: Geo, min_km: float) -> int:
    while True:
        city = r.int(0, len(CITY_LAT))
        if haversine_km(home, city_geo(city)) >= min_km:
            return city


def shows_on_sale(world: World, t: int) -> np.ndarray:
    s = world.shows
    on_sale = np.flatnonzero((s.sale_open_ms <= t) & (s.event_ms > t + DAY_MS))
    return on_sale if len(on_sale) else np.arange(len(s.price))


def pick_show(em: Emitter, t: int, by: str = "popular") -> int:
    """An on-sale show: by popularity, or among the cheapest/dearest fifth by price."""
    world, r = em.world, em.rand
    on_sale = shows_on_sale(world, t)
    if by == "popular":
        p = np.cumsum(world.shows.popularity[on_sale])
        return int(on_sale[min(np.searchsorted(p, r.u() * p[-1]), len(on_sale) - 1)])
    ranked = on_sale[np.argsort(world.shows.price[on_sale], kind="stable")]
    fifth = max(1, len(ranked) // 5)
    return int(r.pick(ranked[:fifth] if by == "cheap" else ranked[-fifth:]))


def legit_victim(em: Emitter, t: int, min_age_days: int = 30) -> int:
    users, r = em.world.users, em.rand
    while True:
        i = r.int(0, len(users))
        if users.created_ms[i] < t - min_age_days * DAY_MS:
            return i


def resell(em: Emitter, token: Token, t: int, markup: float) -> None:
    """A legit buyer buys ``token`` on the resale channel (the resale itself is not fraud)."""
    i = legit_victim(em, t, 0)
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
