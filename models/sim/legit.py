"""Legitimate traffic for one day: users buy at their usual hours from home (sometimes while
travelling), rush popular sales when they open, resell some tickets and gift a few."""

from __future__ import annotations

import heapq
from typing import NamedTuple

import numpy as np

from models.sim.emit import Buy, Emitter, Token
from models.sim.ids import card_bin
from models.sim.netpool import address_in
from models.sim.world import (
    CARD_METHODS,
    CITY_COUNTRY,
    CITY_WEIGHT,
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    PAYMENT_METHODS,
    USER_AGENTS,
    Identity,
    World,
    city_geo,
)

QUANTITIES = np.array([1, 2, 3, 4, 6, 8])
QUANTITY_P = np.array([0.45, 0.3, 0.1, 0.1, 0.04, 0.01])
TIERS = np.array([0.7, 1.0, 1.4, 2.2])
TIER_P = np.array([0.3, 0.4, 0.2, 0.1])
RUSH_QUANTITIES = np.array([2, 4, 6, 8, 10])
RUSH_QUANTITY_P = np.array([0.35, 0.3, 0.2, 0.1, 0.05])
RUSH_SHARE = 0.2  # of a day's purchases, when sales open that day


class Order(NamedTuple):
    show: int
    quantity: int
    tier: float
    away_city: int
    day: int
    rush: bool = False


class Market:
    """Tickets listed for resale by legit holders, available from a given time."""

    def __init__(self) -> None:
        self.pending: list[tuple[int, int, str]] = []  # (available_ms, token_id, lister)
        self.listed: list[tuple[int, str]] = []

    def list_later(self, available_ms: int, token: Token) -> None:
        heapq.heappush(self.pending, (available_ms, token.token_id, token.holder))

    def open_day(self, day_start: int) -> None:
        while self.pending and self.pending[0][0] <= day_start:
            _, token_id, lister = heapq.heappop(self.pending)
            self.listed.append((token_id, lister))

    def take(self, em: Emitter, t: int, u: float) -> Token | None:
        """A still-valid listed ticket (its lister holds it, its show is ahead), or None."""
        while self.listed:
            k = int(u * len(self.listed))
            self.listed[k], self.listed[-1] = self.listed[-1], self.listed[k]
            token_id, lister = self.listed.pop()
            token = em.tokens[token_id]
            if token.holder == lister and em.world.shows.event_ms[token.show] > t + DAY_MS:
                return token
        return None


def home_buy(world: World, i: int, u: np.ndarray) -> Buy:
    """The session of user ``i`` at home; ``u`` holds four uniforms that pick device, card, IP."""
    users = world.users
    payment = (
        PAYMENT_METHODS[users.payment[i]] if u[0] > 0.1 else PAYMENT_METHODS[int(u[0] * 50) % 6]
    )
    card = users.card(i, int(u[1] ** 2 * users.n_cards[i])) if payment in CARD_METHODS else None
    home = users.home(i)
    return Buy(
        geo=home,
        ip=users.ip(i, mobile=u[2] < 0.3),
        device=users.device(i, int(u[3] ** 2 * users.n_devices[i])),
        agent=USER_AGENTS[users.agent[i]],
        payment=payment,
        card=card,
        card_country=home.country if card else None,
        card_bin=card_bin(home.country, card) if card else None,
    )


def away(world: World, buy: Buy, i: int, city: int, day: int, vpn: bool) -> Buy:
    """``buy`` from another city: on a trip (hotel wifi, or the phone roaming: its IP stays
    at home) or behind a VPN exit (a hosting network, the device still at home)."""
    seed, country = world.config.seed, CITY_COUNTRY[city]
    if vpn:
        buy.ip = address_in(country, "hosting", seed, "vpn", i, day)
        return buy
    buy.geo = city_geo(city, (0.02 * ((i % 7) - 3), 0.02 * ((day % 5) - 2)))
    roaming = (i + day) % 3 == 0
    buy.ip = world.users.ip(i, mobile=True) if roaming else address_in(
        country, "residential", seed, "hotel", i, day)
    return buy


def legit_day(em: Emitter, market: Market, day: int, rng: np.random.Generator) -> int:
    """All legit purchases of day ``day``; returns how many."""
    world, cfg = em.world, em.config
    day_start = cfg.start_ms + day * DAY_MS
    users = world.users
    buyers, times = _buyers(users, day_start, rng)
    n = len(buyers)
    show, rush = _pick_shows(world, day_start, times, rng)
    times = np.maximum(times, users.created_ms[buyers] + 5 * MINUTE_MS)
    quantity = np.where(
        rush,
        rng.choice(RUSH_QUANTITIES, size=n, p=RUSH_QUANTITY_P),
        rng.choice(QUANTITIES, size=n, p=QUANTITY_P),
    )
    tier = rng.choice(TIERS, size=n, p=TIER_P)
    u = rng.random((n, 12))
    away_city = rng.choice(len(CITY_WEIGHT), size=n, p=CITY_WEIGHT)
    market.open_day(day_start)
    made = 0
    for k in range(n):
        t = int(times[k])
        if t >= day_start + DAY_MS or show[k] < 0:
            continue
        made += 1
        order = Order(
            int(show[k]), int(quantity[k]), float(tier[k]), int(away_city[k]), day, bool(rush[k])
        )
        _one_purchase(em, market, int(buyers[k]), t, order, u[k])
    return made


def _buyers(users, day_start: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Who buys today and when: users at their usual hours, new accounts soon after signup."""
    counts = rng.poisson(users.rate)
    buyers = np.repeat(np.arange(len(users)), counts)
    hours = (users.peak_hour_utc[buyers] + rng.normal(0, 3.0, len(buyers))) % 24
    times = day_start + np.maximum(hours * HOUR_MS, 10 * MINUTE_MS).astype(np.int64)
    created = users.created_ms
    joined = np.flatnonzero((created >= day_start) & (created < day_start + DAY_MS))
    joined = joined[rng.random(len(joined)) < 0.6]
    first = created[joined] + MINUTE_MS + rng.exponential(40 * MINUTE_MS, len(joined))
    return np.concatenate([buyers, joined]), np.concatenate([times, first.astype(np.int64)])


def _pick_shows(
    world: World, day_start: int, times: np.ndarray, rng
) -> tuple[np.ndarray, np.ndarray]:
    """A show per purchase: popular on-sale shows; a share rush the sales opening today."""
    shows, n = world.shows, len(times)
    on_sale = np.flatnonzero(
        (shows.sale_open_ms <= day_start) & (shows.event_ms > day_start + DAY_MS)
    )
    opening = np.flatnonzero(
        (shows.sale_open_ms >= day_start) & (shows.sale_open_ms < day_start + DAY_MS)
    )
    picked, rush = np.full(n, -1), np.zeros(n, dtype=bool)
    if len(on_sale):
        p = shows.popularity[on_sale] / shows.popularity[on_sale].sum()
        picked = rng.choice(on_sale, size=n, p=p)
    if len(opening):
        rush = rng.random(n) < RUSH_SHARE * min(1.0, 50 * shows.popularity[opening].sum())
        p = shows.popularity[opening] / shows.popularity[opening].sum()
        picked = np.where(rush, rng.choice(opening, size=n, p=p), picked)
        delay = rng.exponential(25 * MINUTE_MS, n).astype(np.int64)
        times[rush] = shows.sale_open_ms[picked[rush]] + delay[rush]
    return picked, rush


def session(em: Emitter, t: int, who: Identity, buy: Buy, u: float, fails: float) -> str | None:
    """How the buyer is signed in: a login minutes before (a third), hours or days before, or
    a session so old no login shows; now and then a mistyped password first."""
    failures = int(fails < 0.05) + 2 * int(fails < 0.01)
    if u < 0.35:
        lead = int(10_000 + em.rand.u() ** 2 * 40 * MINUTE_MS)
        em.login(t, who, buy, failures, lead_ms=lead)
        return "legit_login_minutes_before"
    if u < 0.6:
        em.login(t, who, buy, failures, lead_ms=int(HOUR_MS + em.rand.u() * 70 * HOUR_MS))
    return None


def _one_purchase(em: Emitter, market: Market, i: int, t: int, order: Order, u: np.ndarray) -> None:
    world, cfg = em.world, em.config
    who = world.users.identity(i)
    buy = home_buy(world, i, u[:4])
    tags = []
    if u[10] < 0.03:  # a new phone or laptop
        buy.device = world.users.device(i, 10 + order.day)
        tags.append("legit_new_device")
    if u[4] < cfg.travel_prob or u[4] > 0.995:
        buy = away(world, buy, i, order.away_city, order.day, vpn=u[4] > 0.995)
        tags.append("legit_vpn" if u[4] > 0.995 else "legit_travel")
    if u[11] < 0.004:  # forgot the password: failed logins, a reset, then the purchase
        em.login(t, who, buy, failures=2 + int(3 * u[6]))
        em.auth(t - 15_000, "PASSWORD_CHANGED", who, buy)
        tags.append("legit_password_reset")
    else:
        tags.append(session(em, t, who, buy, u[5], u[6]))
    if who.created_ms > t - DAY_MS:
        tags.insert(0, "legit_new_account")
    if order.rush:
        tags.insert(0, "legit_onsale_rush")
    if world.users.nat[i] >= 0:
        tags.insert(0, "legit_shared_nat")
    tags = [tag for tag in tags if tag]
    token = market.take(em, t, u[7]) if u[8] < cfg.resale_share else None
    if token is not None:
        markup = 0.85 + 0.9 * u[9] ** 2
        em.purchase(
            t, who, token.show, token.quantity, int(token.unit_price * markup), buy, resale=token,
            scenario=(tags or ["legit_resale"])[0],
        )
        return
    _primary(em, market, who, buy, t, order, u, tags)


def _primary(
    em: Emitter, market: Market, who: Identity, buy: Buy, t: int, order: Order, u: np.ndarray,
    tags: list[str],
) -> None:
    world, cfg = em.world, em.config
    base = world.shows.price[order.show]
    price, quantity = int(base * order.tier), order.quantity
    if 0.5 < u[9] < 0.53:  # an add-on (parking, merchandise): a small amount
        price, quantity = world.local_price(order.show, 100 + 500 * u[8]), 1
        tags = ["legit_small_addon", *tags]
    elif u[9] > 1 - cfg.vip_share:  # a VIP package, far above the base price
        price, quantity = int(base * (5 + 5 * u[8])), 1 + int(u[7] * 4)
        tags = ["legit_vip", *tags]
    token = em.purchase(t, who, order.show, quantity, price, buy,
                        scenario=(tags or ["legit_regular"])[0])
    if u[9] < cfg.list_share:
        market.list_later(t + int((1 + 7 * u[7]) * DAY_MS), token)
    elif u[9] > 0.96 and quantity >= 2:
        friend = world.users.identity(int(u[7] * len(world.users)))
        em.transfer(t + int((1 + 70 * u[8]) * HOUR_MS), token, friend.wallet, "TRANSFER")
