"""On-sale crowds: legit buyers who look like a distributed attack.

When a popular sale opens, groups of people buy together from behind one address: a campus
or a venue's wifi (one NAT address) or a mobile carrier's carrier-grade NAT (a few addresses
of one /24). Many have just signed up for this sale (accounts minutes to days old), log in
minutes before, and buy one or two tickets each within minutes of the opening.
"""

from __future__ import annotations

from models.sim.emit import Buy, Emitter
from models.sim.ids import card_bin
from models.sim.world import (
    CITY_COUNTRY,
    CITY_WEIGHT,
    DAY_MS,
    EMAIL_DOMAINS,
    MINUTE_MS,
    USER_AGENTS,
    Identity,
    city_geo,
)

KINDS = ("campus", "venue", "carrier")
MOBILE_AGENTS = USER_AGENTS[2:]


def crowd_day(em: Emitter, day_start: int) -> None:
    """Crowd groups at the popular sales opening on this day."""
    shows, r = em.world.shows, em.rand
    for show in range(len(shows.price)):
        opens = int(shows.sale_open_ms[show])
        if not day_start <= opens < day_start + DAY_MS:
            continue
        expected = em.config.crowd_groups * min(1.0, 40 * float(shows.popularity[show]))
        groups = int(em.rand.rng.poisson(expected))
        for _ in range(groups):
            _group(em, show, opens, r.pick(KINDS))


def _group(em: Emitter, show: int, opens: int, kind: str) -> None:
    r, names = em.rand, em.names
    city = _city(em)
    country = CITY_COUNTRY[city]
    net = "mobile" if kind == "carrier" else "residential"
    ips = [names.ip(country=country, kind=net)]
    if kind == "carrier":  # a few addresses of one carrier /24
        prefix = ips[0].rsplit(".", 1)[0]
        ips += [f"{prefix}.{r.int(1, 255)}" for _ in range(r.int(1, 5))]
    for _ in range(r.int(15, 61)):
        fresh = r.u() < 0.6
        created = opens - (r.int(5 * MINUTE_MS, DAY_MS) if fresh else r.int(DAY_MS, 400 * DAY_MS))
        who = Identity(names.user_id(), names.wallet(), created, r.pick(EMAIL_DOMAINS),
                       r.u() < 0.1, r.u() < 0.5, r.u() < 0.8)
        card = names.card()
        buy = Buy(city_geo(city, (0.01 * r.normal(), 0.01 * r.normal())), r.pick(ips),
                  names.device(), r.pick(MOBILE_AGENTS),
                  r.pick(("CARD", "CARD", "APPLE_PAY", "GOOGLE_PAY", "PAYPAL")), card, country,
                  card_bin(country, card))
        t = max(opens + int(em.rand.rng.exponential(6 * MINUTE_MS)), created + 2 * MINUTE_MS)
        if r.u() < 0.8:
            em.login(t, who, buy, lead_ms=r.int(20_000, 10 * MINUTE_MS))
        quantity = 1 + int(r.u() < 0.45)
        em.purchase(t, who, show, quantity, int(em.world.shows.price[show]), buy,
                    scenario=f"legit_{kind}_onsale")


def _city(em: Emitter) -> int:
    u, acc = em.rand.u(), 0.0
    for city, weight in enumerate(CITY_WEIGHT):
        acc += weight
        if u < acc:
            return city
    return len(CITY_WEIGHT) - 1
