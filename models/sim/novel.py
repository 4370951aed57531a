"""A fraud pattern the committed models never saw, for the learning benchmark.

``ticket_farm``: an operation buys tickets through a handful of aged, verified accounts it
bought (each with its own fresh wallet, residential IP, device and prepaid card or crypto
funds, ordinary browser agents, ordinary e-mail providers), 2-4 tickets of popular shows at
face value, several times over a few days, and moves every ticket within the hour to a
collector wallet that resells it. Nothing in one purchase looks like a bot, a card test, a
takeover or a ring; what gives it away is each wallet's history (tickets gone within the
hour, nothing held, steady repeat buying). Labels: card payments are charged back (days to
weeks), crypto-funded ones are confirmed by the trust team's review within days.

``simulate_with_novel(config, from_day, rate)`` is ``models.simulator.simulate`` plus these
episodes from ``from_day`` on, about ``rate`` times the day's legit purchases.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from models.sim.actors import pick_show, resell
from models.sim.emit import Buy, Emitter
from models.sim.fraud import fraud_day
from models.sim.ids import address, hexid
from models.sim.legit import Market, legit_day
from models.sim.world import (
    CITY_LAT,
    DAY_MS,
    EMAIL_DOMAINS,
    HOUR_MS,
    MINUTE_MS,
    USER_AGENTS,
    Identity,
    city_geo,
)

PATTERN = "ticket_farm"
MEAN_SIZE = 4.5 * 3.0  # wallets per farm x purchases per wallet


def _fresh_wallet(em: Emitter) -> str:
    """A wallet nobody used before. Not ``Namer.wallet()``: its ids are hashes of the same
    (seed, "wallet", n) as the world's users', so they collide with existing users."""
    return address(em.config.seed, "farm-wallet", em.names.device())


def _farm_account(em: Emitter, t: int) -> Identity:
    r = em.rand
    user = "usr_" + hexid(em.config.seed, "farm-user", em.names.device(), size=6)
    return Identity(user, _fresh_wallet(em), t - r.int(200, 1500) * DAY_MS,
                    r.pick(EMAIL_DOMAINS[:5]), r.u() < 0.3, r.u() < 0.85, r.u() < 0.9)


def ticket_farm(em: Emitter, day_start: int) -> None:
    r, shows = em.rand, em.world.shows
    city = r.int(0, len(CITY_LAT))
    collector = _fresh_wallet(em)
    start = day_start + r.int(2 * HOUR_MS, 20 * HOUR_MS)
    for _ in range(r.int(3, 7)):
        who = _farm_account(em, start)
        geo = city_geo(city, (r.normal() * 0.05, r.normal() * 0.05))
        crypto = r.u() < 0.6
        buy = Buy(geo, em.names.ip(), em.names.device(), r.pick(USER_AGENTS[:4]),
                  "CRYPTO" if crypto else "CARD", None if crypto else em.names.card(),
                  None if crypto else geo.country)
        t = start + r.int(0, 3 * HOUR_MS)
        for _ in range(r.int(2, 5)):
            em.login(t, who, buy)
            show = pick_show(em, t)
            token = em.purchase(t + 30_000, who, show, r.int(2, 5), int(shows.price[show]), buy,
                                fraud=PATTERN)
            moved = t + 30_000 + r.int(5 * MINUTE_MS, 40 * MINUTE_MS)
            em.transfer(moved, token, collector, "TRANSFER")
            if r.u() < 0.6:
                resell(em, token, moved + r.int(2 * HOUR_MS, 2 * DAY_MS), 1.3 + r.u())
            t += r.int(6 * HOUR_MS, 30 * HOUR_MS)


def novel_day(em: Emitter, day: int, n_legit: int, rate: float,
              rng: np.random.Generator) -> None:
    day_start = em.config.start_ms + day * DAY_MS
    for _ in range(rng.poisson(n_legit * rate / MEAN_SIZE)):
        ticket_farm(em, day_start)


def simulate_with_novel(config, from_day: int, rate: float) -> Iterator[tuple[str, dict]]:
    """``simulate(config)`` with ``ticket_farm`` episodes from ``from_day`` (same seed, same
    legit traffic and known fraud up to the episodes' own draws)."""
    rng = np.random.default_rng(config.seed)
    from models.sim.world import build_world

    emitter = Emitter(build_world(config, rng), rng)
    market = Market()
    novel_rng = np.random.default_rng(config.seed + 7919)
    for day in range(config.days):
        n_legit = legit_day(emitter, market, day, rng)
        fraud_day(emitter, day, n_legit, rng)
        if day >= from_day:
            novel_day(emitter, day, n_legit, rate, novel_rng)
        yield from emitter.pop_until(config.start_ms + (day + 1) * DAY_MS)
    yield from emitter.pop_until(None)
