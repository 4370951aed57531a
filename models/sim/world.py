"""The simulated world: cities, legit users (arrays) and shows, drawn once per seed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from models.sim.config import SimConfig
from models.sim.ids import address, hexid
from models.sim.netpool import address_in, host, pick_prefix
from processors.money import default_rates

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000

# (name, lat, lon, country, weight of legit users living there)
CITIES: tuple[tuple[str, float, float, str, float], ...] = (
    ("New York", 40.71, -74.01, "US", 10),
    ("Los Angeles", 34.05, -118.24, "US", 8),
    ("Chicago", 41.88, -87.63, "US", 6),
    ("Houston", 29.76, -95.37, "US", 4),
    ("Miami", 25.76, -80.19, "US", 4),
    ("Seattle", 47.61, -122.33, "US", 3),
    ("Toronto", 43.65, -79.38, "CA", 4),
    ("Mexico City", 19.43, -99.13, "MX", 3),
    ("Sao Paulo", -23.55, -46.63, "BR", 3),
    ("London", 51.51, -0.13, "GB", 8),
    ("Paris", 48.86, 2.35, "FR", 6),
    ("Berlin", 52.52, 13.40, "DE", 5),
    ("Madrid", 40.42, -3.70, "ES", 4),
    ("Amsterdam", 52.37, 4.90, "NL", 3),
    ("Rome", 41.90, 12.50, "IT", 3),
    ("Stockholm", 59.33, 18.07, "SE", 2),
    ("Warsaw", 52.23, 21.01, "PL", 2),
    ("Dublin", 53.35, -6.26, "IE", 2),
    ("Lisbon", 38.72, -9.14, "PT", 2),
    ("Tokyo", 35.68, 139.69, "JP", 3),
    ("Seoul", 37.57, 126.98, "KR", 2),
    ("Singapore", 1.35, 103.82, "SG", 2),
    ("Sydney", -33.87, 151.21, "AU", 3),
    ("Mumbai", 19.08, 72.88, "IN", 2),
    ("Lagos", 6.52, 3.38, "NG", 1),
    ("Johannesburg", -26.20, 28.05, "ZA", 1),
    ("Dubai", 25.20, 55.27, "AE", 1),
    ("Jakarta", -6.21, 106.85, "ID", 1),
    ("Buenos Aires", -34.60, -58.38, "AR", 1),
    ("Bucharest", 44.43, 26.10, "RO", 1),
)
CITY_LAT = np.array([c[1] for c in CITIES])
CITY_LON = np.array([c[2] for c in CITIES])
CITY_COUNTRY = tuple(c[3] for c in CITIES)
CITY_WEIGHT = np.array([c[4] for c in CITIES]) / sum(c[4] for c in CITIES)

PAYMENT_METHODS = ("CARD", "APPLE_PAY", "GOOGLE_PAY", "PAYPAL", "CRYPTO", "BANK_TRANSFER")
PAYMENT_WEIGHTS = np.array([0.55, 0.15, 0.1, 0.1, 0.08, 0.02])
CARD_METHODS = frozenset({"CARD", "APPLE_PAY", "GOOGLE_PAY", "PAYPAL"})
EMAIL_DOMAINS = (
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "icloud.com",
    "hotmail.com",
    "gmx.de",
    "orange.fr",
    "proton.me",
)
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 Safari/605.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/124.0 Mobile Safari/537.36",
    "SentinelTickets/3.2 (iOS 17.4)",
    "SentinelTickets/3.2 (Android 14)",
)
CURRENCIES = ("USD", "EUR", "GBP", "MXN", "BRL", "JPY")
# Local prices are rounded to a sensible step in each currency's minor units.
PRICE_STEP = {"USD": 50, "EUR": 50, "GBP": 50, "MXN": 1000, "BRL": 500, "JPY": 100}


class Geo(NamedTuple):
    lat: float
    lon: float
    country: str

    def record(self) -> dict:
        return {
            "lat": round(float(self.lat), 4),
            "lon": round(float(self.lon), 4),
            "country": self.country,
        }


class Identity(NamedTuple):
    """Who buys: account facts copied onto every Purchase."""

    user_id: str
    wallet: str
    created_ms: int
    email_domain: str
    mfa: bool
    phone: bool
    email_verified: bool


def city_geo(city: int, jitter: tuple[float, float] = (0.0, 0.0)) -> Geo:
    return Geo(CITY_LAT[city] + jitter[0], CITY_LON[city] + jitter[1], CITY_COUNTRY[city])


def haversine_km(a: Geo, b: Geo) -> float:
    lat1, lon1, lat2, lon2 = map(np.radians, (a.lat, a.lon, b.lat, b.lon))
    h = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return float(6371.0 * 2 * np.arcsin(np.sqrt(h)))


@dataclass
class Shows:
    organizer: np.ndarray  # int index
    price: np.ndarray  # base unit price, minor units
    popularity: np.ndarray  # weights, sum 1
    sale_open_ms: np.ndarray
    event_ms: np.ndarray

    def show_id(self, s: int) -> str:
        return f"show_{s:04d}"


@dataclass
class Users:
    seed: int
    city: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    rate: np.ndarray  # legit purchases per day
    peak_hour_utc: np.ndarray
    n_devices: np.ndarray
    n_cards: np.ndarray
    payment: np.ndarray  # index into PAYMENT_METHODS
    mfa: np.ndarray
    phone: np.ndarray
    email_verified: np.ndarray
    email: np.ndarray
    agent: np.ndarray
    created_ms: np.ndarray
    household: np.ndarray  # index of the user whose first device, IP and card are shared
    nat: np.ndarray  # shared public IP group (campus, office), -1 for none
    _identities: dict[int, Identity] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.city)

    def identity(self, i: int) -> Identity:
        found = self._identities.get(i)
        if found is None:
            found = self._identities[i] = Identity(
                "usr_" + hexid(self.seed, "user", i, size=6),
                address(self.seed, "wallet", i),
                int(self.created_ms[i]),
                EMAIL_DOMAINS[self.email[i]],
                bool(self.mfa[i]),
                bool(self.phone[i]),
                bool(self.email_verified[i]),
            )
        return found

    def home(self, i: int) -> Geo:
        return Geo(float(self.lat[i]), float(self.lon[i]), CITY_COUNTRY[self.city[i]])

    def device(self, i: int, j: int) -> str:
        owner = self.household[i] if j == 0 else i
        return "dev_" + hexid(self.seed, "device", owner, j, size=8)

    def card(self, i: int, j: int) -> str:
        owner = self.household[i] if j == 0 else i
        return "card_" + hexid(self.seed, "card", owner, j, size=12)

    def country(self, i: int) -> str:
        return CITY_COUNTRY[self.city[i]]

    def ip(self, i: int, mobile: bool = False) -> str:
        """Home broadband (shared by the household, or a campus/office NAT) or the phone's
        carrier IP, in real networks of the user's country."""
        country = self.country(i)
        if mobile:  # carrier-grade NAT: a carrier /24, a host per user and day-ish
            return address_in(country, "mobile", self.seed, "mobile", i)
        if self.nat[i] >= 0:
            prefix = pick_prefix(country, "residential", self.seed, "nat", self.nat[i])
            return host(prefix, self.seed, "nat", self.nat[i])
        return address_in(country, "residential", self.seed, "ip", self.household[i])


@dataclass
class World:
    config: SimConfig
    users: Users
    shows: Shows
    contracts: tuple[str, ...]
    currencies: tuple[str, ...]

    def local_price(self, show: int, usd_minor: float) -> int:
        """``usd_minor`` (USD cents) in the show's currency, rounded to a local price step."""
        currency = self.currencies[self.shows.organizer[show]]
        local = default_rates().from_ref_minor(int(usd_minor), currency)
        step = PRICE_STEP.get(currency, 1)
        return max(step, int(round(local / step)) * step)


def build_world(config: SimConfig, rng: np.random.Generator) -> World:
    contracts = tuple(address(config.seed, "contract", o) for o in range(config.n_organizers))
    mix = config.currencies
    currencies = tuple(mix[o % len(mix)] for o in range(config.n_organizers))
    world = World(config, _users(config, rng), _shows(config, rng), contracts, currencies)
    # Show prices are drawn in USD cents and stated in the organizer's currency.
    world.shows.price = np.array(
        [world.local_price(s, p) for s, p in enumerate(world.shows.price)], dtype=np.int64
    )
    return world


def _users(config: SimConfig, rng: np.random.Generator) -> Users:
    n, start = config.n_users, config.start_ms
    city = rng.choice(len(CITIES), size=n, p=CITY_WEIGHT)
    rate = config.purchase_rate * rng.lognormal(0.0, 0.8, n) / np.exp(0.32)
    local_peak = rng.normal(19.5, 2.5, n)
    # Most accounts are old; some are weeks old and about 6 % sign up during the run.
    age_days = np.where(rng.random(n) < 0.1, rng.uniform(1, 30, n), rng.lognormal(5.5, 1.0, n))
    new = rng.random(n) < 0.06
    created = np.where(new, start + rng.random(n) * config.days * DAY_MS, start - age_days * DAY_MS)
    shared = rng.random(n) < 0.1
    household = np.where(shared & (np.arange(n) > 0), np.arange(n) - 1, np.arange(n))
    # Campus, office and carrier-grade NAT: about 4 % of users share an IP with ~30 others.
    nat = np.where(rng.random(n) < 0.04, rng.integers(0, max(1, n // 750), n), -1)
    return Users(
        seed=config.seed,
        city=city,
        lat=CITY_LAT[city] + rng.normal(0, 0.08, n),
        lon=CITY_LON[city] + rng.normal(0, 0.08, n),
        rate=rate,
        peak_hour_utc=(local_peak - CITY_LON[city] / 15.0) % 24,
        n_devices=rng.choice([1, 2, 3], size=n, p=[0.5, 0.35, 0.15]),
        n_cards=rng.choice([1, 2, 3], size=n, p=[0.6, 0.3, 0.1]),
        payment=rng.choice(len(PAYMENT_METHODS), size=n, p=PAYMENT_WEIGHTS),
        mfa=rng.random(n) < 0.35,
        phone=rng.random(n) < 0.65,
        email_verified=rng.random(n) < 0.92,
        email=rng.choice(len(EMAIL_DOMAINS), size=n),
        agent=rng.choice(len(USER_AGENTS), size=n),
        created_ms=created.astype(np.int64),
        household=household,
        nat=nat,
    )


def _shows(config: SimConfig, rng: np.random.Generator) -> Shows:
    n = config.n_shows
    popularity = 1.0 / np.arange(1, n + 1) ** 1.1
    popularity = rng.permutation(popularity / popularity.sum())
    price = np.round(rng.lognormal(np.log(6500), 0.6, n) / 50) * 50
    # Sales open at 15:00 UTC on days spread over the run (a fifth were already open).
    open_day = rng.integers(-config.days // 2 - 3, config.days, n)
    sale_open = config.start_ms + open_day * DAY_MS + 15 * HOUR_MS
    event = sale_open + rng.integers(20, 90, n) * DAY_MS
    return Shows(
        organizer=rng.integers(0, config.n_organizers, n),
        price=price.astype(np.int64),
        popularity=popularity,
        sale_open_ms=sale_open.astype(np.int64),
        event_ms=event.astype(np.int64),
    )
