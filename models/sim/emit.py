"""Record builders: Purchase, ChainTransfer, AuthEvent and Label dicts (the Avro shapes),
pushed onto one event-time heap, with the ticket tokens they create and move."""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from models.sim.ids import ZERO_ADDRESS, Namer, card_bin, tx_hash
from models.sim.world import CARD_METHODS, DAY_MS, HOUR_MS, Geo, Identity, World

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BLOCK_MS = 12_000
GENESIS_BLOCK = 19_000_000
WEI_PER_MINOR = 10**13


def to_datetime(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=int(ms))


class Randoms:
    """Uniform and normal draws from the run's generator, fetched in blocks (fast scalars)."""

    def __init__(self, rng: np.random.Generator, block: int = 1 << 16):
        self.rng, self.block = rng, block
        self._u, self._n, self._iu, self._in = rng.random(block), rng.standard_normal(block), 0, 0

    def u(self) -> float:
        if self._iu == self.block:
            self._u, self._iu = self.rng.random(self.block), 0
        self._iu += 1
        return float(self._u[self._iu - 1])

    def normal(self) -> float:
        if self._in == self.block:
            self._n, self._in = self.rng.standard_normal(self.block), 0
        self._in += 1
        return float(self._n[self._in - 1])

    def int(self, low: int, high: int) -> int:
        """An integer in [low, high)."""
        return low + int(self.u() * (high - low))

    def pick(self, seq):
        return seq[int(self.u() * len(seq))]


@dataclass(slots=True)
class Token:
    token_id: int
    show: int
    holder: str
    minted_ms: int
    unit_price: int
    quantity: int


@dataclass(slots=True)
class Buy:
    """Where and how a purchase is made (the session facts)."""

    geo: Geo
    ip: str
    device: str
    agent: str
    payment: str
    card: str | None = None
    card_country: str | None = None
    card_bin: str | None = None


class Emitter:
    def __init__(self, world: World, rng: np.random.Generator):
        self.world, self.config = world, world.config
        self.rand = Randoms(rng)
        self.names = Namer(world.config.seed)
        self.heap: list[tuple[int, int, str, dict]] = []
        self.tokens: dict[int, Token] = {}
        self.seq = self.n_purchases = self.n_fraud = 0
        # purchase_id -> scenario (fraud pattern or legit scenario), when the caller asks.
        self.scenarios: dict[str, str] | None = None
        self.floor_ms = 0  # events before this were already yielded: none may go there

    def push(self, t_ms: int, kind: str, record: dict) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t_ms, self.seq, kind, record))

    def pop_until(self, t_ms: int | None) -> Iterator[tuple[str, dict]]:
        heap = self.heap
        while heap and (t_ms is None or heap[0][0] < t_ms):
            _, _, kind, record = heapq.heappop(heap)
            yield kind, record

    # -- purchases -------------------------------------------------------------------------

    def purchase(
        self,
        t: int,
        who: Identity,
        show: int,
        quantity: int,
        unit_price: int,
        buy: Buy,
        *,
        resale: Token | None = None,
        fraud: str | None = None,
        scenario: str | None = None,
    ) -> Token:
        """A purchase, its mint or sale transfer and its label; returns the ticket token."""
        shows, seed = self.world.shows, self.config.seed
        self.n_purchases += 1
        pid = f"pur_{seed}_{self.n_purchases:08d}"
        token = resale or self._mint(t, show, who.wallet, unit_price, quantity)
        record = {
            "purchase_id": pid,
            "occurred_at": to_datetime(t),
            "wallet": who.wallet,
            "user_id": who.user_id,
            "organizer_id": f"org_{shows.organizer[show]:03d}",
            "show_id": shows.show_id(show),
            "ticket_id": self.ticket_id(token),
            "quantity": int(quantity),
            "unit_price_minor": int(unit_price),
            "currency": self.world.currencies[shows.organizer[show]],
            "channel": "RESALE" if resale else "PRIMARY",
            "seller_wallet": resale.holder if resale else None,
            "payment_method": buy.payment,
            "card_fingerprint": buy.card,
            "card_country": buy.card_country,
            "email_domain": who.email_domain,
            "ip": buy.ip,
            "geo": buy.geo.record(),
            "device_id": buy.device,
            "user_agent": buy.agent,
            "account_created_at": to_datetime(who.created_ms),
            "sale_opens_at": to_datetime(shows.sale_open_ms[show]),
            "mfa_enabled": who.mfa,
            "phone_verified": who.phone,
            "email_verified": who.email_verified,
            "ingested_at": None,
            # Some producers send the card's issuer number, some do not.
            "card_bin": self._card_bin(buy) if shows.organizer[show] % 10 < 7 else None,
        }
        self.push(t, "purchase", record)
        if self.scenarios is not None:
            self.scenarios[pid] = fraud or scenario or "legit"
        if resale:
            price_wei = str(unit_price * quantity * WEI_PER_MINOR)
            self.transfer(t + self.rand.int(15_000, 90_000), token, who.wallet, "SALE", price_wei)
        self._label(t, pid, buy.payment, fraud)
        return token

    @staticmethod
    def _card_bin(buy: Buy) -> str | None:
        if buy.card is None:
            return None
        return buy.card_bin or card_bin(buy.card_country or "US", buy.card)

    def ticket_id(self, token: Token) -> str:
        """The backend spells a ticket as its chain token: "<contract>:<token_id>"."""
        return f"{self.world.contracts[self.world.shows.organizer[token.show]]}:{token.token_id}"

    def _mint(self, t: int, show: int, wallet: str, unit_price: int, quantity: int) -> Token:
        token = Token(len(self.tokens) + 1, show, ZERO_ADDRESS, t, unit_price, quantity)
        self.tokens[token.token_id] = token
        self.transfer(t + self.rand.int(15_000, 60_000), token, wallet, "MINT")
        return token

    def _label(self, t: int, pid: str, payment: str, fraud: str | None) -> None:
        cfg = self.config
        if fraud is None:
            delay, source = (
                cfg.legit_label_delay_days * DAY_MS + self.rand.u() * 6 * HOUR_MS,
                "SIMULATOR",
            )
        elif payment in CARD_METHODS:
            days = float(
                np.clip(cfg.chargeback_median_days * np.exp(0.6 * self.rand.normal()), 2, 60)
            )
            delay, source = days * DAY_MS, "CHARGEBACK"
        else:
            delay, source = (1 + 4 * self.rand.u()) * DAY_MS, "SIMULATOR"
        self.n_fraud += fraud is not None
        self.push(
            t + int(delay),
            "label",
            {
                "purchase_id": pid,
                "occurred_at": to_datetime(t + int(delay)),
                "is_fraud": fraud is not None,
                "source": source,
                "pattern": fraud,
                "reviewer": None,
            },
        )

    # -- chain and auth --------------------------------------------------------------------

    def transfer(
        self, t: int, token: Token, to: str, kind: str, price_wei: str | None = None
    ) -> None:
        """Move ``token`` to ``to`` in the block that contains ``t`` (event time = block time)."""
        cfg = self.config
        block = GENESIS_BLOCK + (t - cfg.start_ms) // BLOCK_MS
        block_ms = cfg.start_ms + (block - GENESIS_BLOCK) * BLOCK_MS
        self.seq += 1
        record = {
            "chain_id": cfg.chain_id,
            "block_number": int(block),
            "block_hash": tx_hash(cfg.seed, "block", block),
            "block_time": to_datetime(block_ms),
            "tx_hash": tx_hash(cfg.seed, "tx", self.seq),
            "log_index": 0,
            "contract": self.world.contracts[self.world.shows.organizer[token.show]],
            "standard": "ERC721",
            "token_id": str(token.token_id),
            "amount": "1",
            "from_address": token.holder,
            "to_address": to,
            "kind": kind,
            "price_wei": price_wei,
        }
        token.holder = to
        self.push(block_ms, "transfer", record)

    def auth(self, t: int, kind: str, who: Identity, buy: Buy) -> None:
        self.push(
            t,
            "auth",
            {
                "event_id": f"auth_{self.config.seed}_{self.seq + 1:09d}",
                "occurred_at": to_datetime(t),
                "kind": kind,
                "user_id": who.user_id,
                "wallet": who.wallet,
                "ip": buy.ip,
                "geo": buy.geo.record(),
                "device_id": buy.device,
                "user_agent": buy.agent,
            },
        )

    def login(
        self, t: int, who: Identity, buy: Buy, failures: int = 0, lead_ms: int = 10_000
    ) -> None:
        """``failures`` LOGIN_FAILED, then LOGIN_OK (and MFA_OK when enabled) ``lead_ms``
        before ``t``."""
        step, t = 20_000, t - lead_ms
        if t - failures * step < self.floor_ms:
            return  # the session began on an earlier day: no event now
        for k in range(failures):
            self.auth(t - (failures - k) * step, "LOGIN_FAILED", who, buy)
        self.auth(t, "LOGIN_OK", who, buy)
        if who.mfa:
            self.auth(t + 5_000, "MFA_OK", who, buy)
