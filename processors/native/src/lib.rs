//! `processors._native`: the stores every purchase is applied to, in native code.
//!
//! Every worker applies every purchase (`streams/entity_replica.py`), and replay every
//! purchase of its span, to two stores: the crowd store (six aggregate keys per purchase,
//! `processors/crowd.py`) and the entity store (its IP, device, card and show,
//! `processors/entity_state.py`). In Python they were about a third of a purchase's CPU. The
//! contracts are the ones those modules document, and the answers are the same to the bit
//! (`tests/unit/test_decision_path_equivalence.py` compares every feature, decision and entity
//! state with the frozen Python reference in `tests/support/legacy_path`). Both stores:
//!
//! - keep time-sorted rows, capped (the oldest go), pruned at most every `prune_every_ms` of
//!   a state's floor;
//! - answer queries from rows strictly BEFORE the asking purchase's time, so a store that has
//!   read ahead answers as an in-order replay does;
//! - apply a purchase id once (`Seen`, kept `seen_retention_ms`), and drop states idle before
//!   the floor in an hourly sweep, in order of last use (`Lru`);
//! - have a floor, the earliest time still to be asked about: the one a live reader
//!   announced (`advance_floor`), never past the watermark; the watermark when none was
//!   (replay).
//!
//! Arithmetic is done as Python does it: integer counts, then one IEEE division each. The
//! limits are Python's, passed to the constructors.
//!
//! The crowd store's keys come from `CrowdReader` (`crowd_read.rs`: `processors.crowd.crowd_read`),
//! whose `CrowdRead` the store applies and reads without a Python string made for a key.
//!
//! A third piece, `WalletFeatures` (`wallet.rs`), computes a purchase's features from its
//! wallet's state and the order itself (`processors.compute.order_features`: its whole row,
//! asking the entity store here for the entity, show and mint-to-resale values and the crowd
//! store for the crowd values in the same call, the mark values appended as given);
//! `wallet.rs` documents how it keeps Python's floats to the bit. A fourth, `WalletUpdates` (`updates.rs`), then applies the purchase to
//! that state in place and prunes it (`processors.apply.apply_order`, `WalletState.observe`).
//! `PurchaseStep` (`purchase.rs`) runs the four, with the wallet's admission and expiry filing
//! (`events.rs`), as one call per purchase for `processors.features.FeatureEngine`. They read
//! and store the `WalletState`'s fields by slot (`slots.rs`), not by getattr / setattr.
//!
//! Apart from the stores, `Forest` (`trees.rs`) scores feature rows with the champion's trees,
//! to the bit what XGBoost gives, without XGBoost's fixed cost a call (`models/forest.py`),
//! and `GeoIp4` (`geo.rs`) answers an IPv4 address's country and AS as geoip2fast does
//! (`QuadReader`: a dotted quad's whole `ip_info`). `RuleProgram` (`rules.rs`) evaluates a
//! ruleset view's rules over a batch's feature columns in one call, with the booleans of
//! their text fields from `TextLeaves` (`leaves.rs`), as the rules' column engine does to the
//! bit (`processors/rules/program.py`).

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::exceptions::PyValueError;
use pyo3::types::{IntoPyDict, PyDict, PyTuple};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

/// The stores' maps and sets: aHash, keyed at random per process as std's SipHash is (their
/// keys are texts a purchase supplies, so a key an attacker could aim at a bucket is no
/// better known than before) and several times cheaper a lookup. Nothing the stores answer
/// depends on the maps' order: the order of use is kept apart (`Lru`), ticket caps sort
/// (`cap_tickets`), and counts and sums read the maps whole.
type Map<K, V> = HashMap<K, V, ahash::RandomState>;
type Set<K> = HashSet<K, ahash::RandomState>;

mod columns;
mod crowd_read;
mod leaves;
mod rules;
mod order;
mod purchase;
mod decide;
mod events;
mod geo;
mod trees;
mod updates;
mod slots;
mod wallet;

use crowd_read::{kind, CrowdRead};
use wallet::{order as field, ORDER_FIELDS};

const MISSING: f64 = -1.0;

// ---------------------------------------------------------------------------------------
// The crowd store (`processors/crowd_state.py`): rows `(ts, wallet, card or "", small 0/1)`
// per key for `rows_retention_ms`, and purchases per whole hour for `hours_kept` hours.

/// The limits (`processors/crowd_state.py` holds their values and reasons).
#[derive(Clone, Copy)]
struct Limits {
    rows_retention_ms: i64,
    rows_cap: usize,
    hours_kept: i64,
    prune_every_ms: i64,
    seen_retention_ms: i64,
    idle_ms: i64,
    hour_ms: i64,
    recent_ms: i64,
    wallets_cap: usize,
    pace_hours: i64,
}

/// `processors.ring.insert_row` / `insert_ts`: after every row at the same time; the oldest
/// go over the cap.
fn insert_sorted<T>(rows: &mut Vec<T>, row: T, ts_of: impl Fn(&T) -> i64, cap: usize) {
    let ts = ts_of(&row);
    if rows.last().is_none_or(|last| ts >= ts_of(last)) {
        rows.push(row);
    } else {
        let at = rows.partition_point(|r| ts_of(r) <= ts);
        rows.insert(at, row);
    }
    if rows.len() > cap {
        let over = rows.len() - cap;
        rows.drain(..over);
    }
}

/// `processors.ring.drop_rows_until`: drop the rows at or before `cutoff`.
fn drop_until<T>(rows: &mut Vec<T>, cutoff: i64, ts_of: impl Fn(&T) -> i64) {
    if rows.first().is_some_and(|r| ts_of(r) <= cutoff) {
        let upto = rows.partition_point(|r| ts_of(r) <= cutoff);
        rows.drain(..upto);
    }
}

#[derive(Clone)]
struct Row {
    ts: i64,
    wallet: Arc<str>,
    card: Option<Arc<str>>, // None when the purchase named no card (or ""): no text kept
    small: i64,
}

/// Python's `a // b` (towards minus infinity).
fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

/// `processors.timeutil.query_floor`.
fn query_floor(floor_ms: Option<i64>, watermark_ms: i64) -> i64 {
    match floor_ms {
        Some(f) if f <= watermark_ms => f,
        _ => watermark_ms,
    }
}

/// A store's event clock: the largest event time applied, the floor a live reader announced,
/// and when the last sweep ran (both stores keep the same three).
#[derive(Default)]
struct Clock {
    watermark_ms: i64,
    floor_ms: Option<i64>,
    swept_ms: i64,
}

impl Clock {
    fn see(&mut self, ts: i64) {
        if ts > self.watermark_ms {
            self.watermark_ms = ts;
        }
    }

    /// The earliest event time still to be asked about.
    fn floor(&self) -> i64 {
        query_floor(self.floor_ms, self.watermark_ms)
    }

    /// Live: no query will come for an event time before `ts_ms`.
    fn advance(&mut self, ts_ms: i64) {
        self.floor_ms = Some(self.floor_ms.map_or(ts_ms, |f| f.max(ts_ms)));
    }
}

#[derive(Default)]
struct CrowdState {
    rows: Vec<Row>,
    // (hour, purchases), sorted by hour: a few dozen, nearly always counted at the end, and
    // the pace sums a run of them; no hashing, and no key an attacker could aim at
    hours: Vec<(i64, i64)>,
    watermark_ms: i64,
    pruned_ms: i64,
}

impl CrowdState {
    fn observe(&mut self, row: Row, floor_ms: Option<i64>, lim: &Limits) {
        let ts = row.ts;
        insert_sorted(&mut self.rows, row, |r| r.ts, lim.rows_cap);
        let hour = floor_div(ts, lim.hour_ms);
        match self.hours.last_mut() {
            Some((last, count)) if *last == hour => *count += 1,
            _ => match self.hours.binary_search_by_key(&hour, |&(h, _)| h) {
                Ok(at) => self.hours[at].1 += 1,
                Err(at) => self.hours.insert(at, (hour, 1)),
            },
        }
        if ts > self.watermark_ms {
            self.watermark_ms = ts;
        }
        let floor = query_floor(floor_ms, self.watermark_ms);
        if floor - self.pruned_ms >= lim.prune_every_ms {
            self.prune(floor, lim);
        }
    }

    /// Drop rows and hours no query as of `floor` or later reads.
    fn prune(&mut self, floor: i64, lim: &Limits) {
        drop_until(&mut self.rows, floor - lim.rows_retention_ms, |r| r.ts);
        let oldest = floor_div(floor, lim.hour_ms) - lim.hours_kept;
        let stale = self.hours.partition_point(|&(h, _)| h < oldest);
        self.hours.drain(..stale);
        self.pruned_ms = floor;
    }

    /// Rows with `lo_excl < ts < hi_excl`.
    fn between(&self, lo_excl: i64, hi_excl: i64) -> &[Row] {
        let i = self.rows.partition_point(|r| r.ts <= lo_excl);
        let j = self.rows.partition_point(|r| r.ts < hi_excl);
        if j > i {
            &self.rows[i..j]
        } else {
            &[]
        }
    }

    /// Purchases in the `hours` whole hours before `hour`.
    fn hourly_before(&self, hour: i64, hours: i64) -> i64 {
        let i = self.hours.partition_point(|&(h, _)| h < hour - hours);
        let j = self.hours.partition_point(|&(h, _)| h < hour).max(i); // i > j: `hours` < 0
        self.hours[i..j].iter().map(|&(_, n)| n).sum()
    }
}

/// Distinct wallets among `rows` and `me`, capped: counted until the cap is reached (a count
/// only grows, so the rest cannot change it). On a live shop's traffic a hot key holds up to
/// `rows_cap` rows in every window, and hashing each of them was a third of a purchase's
/// features.
fn distinct_wallets(rows: &[Row], me: &str, cap: usize) -> f64 {
    let mut seen = Distinct::new();
    seen.insert(me);
    for r in rows {
        if seen.len() >= cap {
            break;
        }
        seen.insert(&r.wallet);
    }
    seen.len().min(cap) as f64
}

/// Distinct texts, as a set counts them: compared one by one while there are at most
/// `Distinct::FEW` (most windows hold a handful of rows, and a comparison costs less than a
/// hash), in a hash set beyond.
struct Distinct<'a> {
    few: [&'a str; Distinct::FEW],
    n: usize, // texts in `few`, while `many` is empty
    many: Set<&'a str>,
}

impl<'a> Distinct<'a> {
    const FEW: usize = 8;

    fn new() -> Self {
        Distinct { few: [""; Self::FEW], n: 0, many: Set::default() }
    }

    fn insert(&mut self, text: &'a str) {
        if !self.many.is_empty() {
            self.many.insert(text);
        } else if !self.few[..self.n].contains(&text) {
            if self.n < Self::FEW {
                self.few[self.n] = text;
                self.n += 1;
            } else {
                self.many.reserve(2 * Self::FEW);
                self.many.extend(self.few);
                self.many.insert(text);
            }
        }
    }

    fn len(&self) -> usize {
        if self.many.is_empty() { self.n } else { self.many.len() }
    }

    fn iter(&self) -> impl Iterator<Item = &'a str> + '_ {
        let few = if self.many.is_empty() { &self.few[..self.n] } else { &[] };
        few.iter().copied().chain(self.many.iter().copied())
    }
}

/// States by key in order of last use: `touch` moves a key to the back, as the Python stores
/// did by popping and re-inserting into a dict; sweeps read from the front.
///
/// The order is kept the way CPython keeps a dict's: a vector of keys in which a key used
/// again leaves a hole (None) where it was and goes to the back, the holes squeezed out when
/// they outnumber the keys. A move is then one hash lookup and a push, with no allocation
/// (the key's `Arc` moves from its old place to the new one), where a time-keyed BTreeMap
/// cost two tree updates and two copies of the key per use; the map and the order share one
/// copy of each key. `head`: every place before it is a hole (the keys a sweep dropped from
/// the front), so the next sweep starts there instead of walking them again.
struct Lru<S> {
    states: Map<Arc<str>, (usize, S)>, // key -> (its place in `order`, state)
    order: Vec<Option<Arc<str>>>,      // keys, least recently used first; None: a hole
    head: usize,                       // order[..head] are all holes
}

impl<S> Lru<S> {
    fn new() -> Self {
        Lru { states: Map::default(), order: Vec::new(), head: 0 }
    }

    fn get(&self, key: &str) -> Option<&S> {
        self.states.get(key).map(|(_, s)| s)
    }

    /// The state under `key` without changing the order.
    fn get_mut(&mut self, key: &str) -> Option<&mut S> {
        self.states.get_mut(key).map(|(_, s)| s)
    }

    /// The state under `key`, now the most recently used; None when not held.
    fn touch(&mut self, key: &str) -> Option<&mut S> {
        self.squeeze_if_holey();
        let (place, state) = self.states.get_mut(key)?;
        let key = self.order[*place].take().expect("a held key has its place");
        *place = self.order.len();
        self.order.push(Some(key));
        Some(state)
    }

    /// Hold `state` under `key` (not held yet), as the most recently used.
    fn insert(&mut self, key: &str, state: S) {
        self.squeeze_if_holey();
        let key: Arc<str> = Arc::from(key);
        self.states.insert(key.clone(), (self.order.len(), state));
        self.order.push(Some(key));
    }

    fn remove(&mut self, key: &str) {
        if let Some((place, _)) = self.states.remove(key) {
            self.order[place] = None;
        }
    }

    /// Drop states from the front (least recently used) up to the first for which `stop`
    /// holds: one lookup a state dropped (the one that stops is put back where it was).
    fn drop_front_until(&mut self, stop: impl Fn(&S) -> bool) {
        while self.head < self.order.len() {
            if let Some(key) = &self.order[self.head] {
                let (key, (place, state)) = self.states.remove_entry(key).expect("a held key");
                if stop(&state) {
                    self.states.insert(key, (place, state));
                    return;
                }
                self.order[self.head] = None;
            }
            self.head += 1;
        }
    }

    /// Squeeze the holes out of `order` once they outnumber the keys, so that it stays within
    /// about twice the keys held and every move costs O(1) in the long run.
    fn squeeze_if_holey(&mut self) {
        if self.order.len() < 2 * self.states.len() + 32 {
            return;
        }
        let mut new_place = Vec::with_capacity(self.order.len());
        let mut kept = 0;
        for slot in &self.order {
            new_place.push(kept);
            kept += usize::from(slot.is_some());
        }
        self.order.retain(Option::is_some);
        self.head = 0;
        for (place, _) in self.states.values_mut() {
            *place = new_place[*place];
        }
    }

    /// The keys in order of last use, least recent first.
    fn keys(&self) -> impl Iterator<Item = &Arc<str>> {
        self.order[self.head..].iter().flatten()
    }

    /// The keys from the front (least recently used) up to the first for which `stop` holds.
    fn front_until(&self, stop: impl Fn(&S) -> bool) -> Vec<Arc<str>> {
        let mut keys = Vec::new();
        for key in self.keys() {
            if stop(&self.states[key].1) {
                break;
            }
            keys.push(key.clone());
        }
        keys
    }

    fn len(&self) -> usize {
        self.states.len()
    }

    fn values(&self) -> impl Iterator<Item = &S> {
        self.states.values().map(|(_, s)| s)
    }
}

/// Purchase ids applied, in order of arrival with their event time (a redelivery is one seen);
/// the set and the queue share one copy of each id.
struct Seen {
    ids: Set<Arc<str>>,
    arrivals: VecDeque<(Arc<str>, i64)>,
}

impl Seen {
    fn new() -> Self {
        Seen { ids: Set::default(), arrivals: VecDeque::new() }
    }

    /// Remember `id` (one lookup: nearly every id is new); false when it was seen already.
    fn first(&mut self, id: &Arc<str>, ts: i64) -> bool {
        if !self.ids.insert(id.clone()) {
            return false;
        }
        self.arrivals.push_back((id.clone(), ts));
        true
    }

    /// Forget ids from the front while their time is at or before `cutoff`.
    fn drop_until(&mut self, cutoff: i64) {
        while let Some((_, ts)) = self.arrivals.front() {
            if *ts > cutoff {
                break;
            }
            let (id, _) = self.arrivals.pop_front().expect("a front element");
            self.ids.remove(&id);
        }
    }

    fn bytes(&self) -> usize {
        self.arrivals.iter().map(|(id, _)| 2 * id.len() + 64).sum()
    }
}

/// A purchase's id and wallet as the stores keep them (`Seen`, rows): made once a purchase
/// and shared by both stores when it is applied to both (`apply_stores`).
struct Kept {
    purchase_id: Arc<str>,
    wallet: Arc<str>,
}

impl Kept {
    fn of(purchase_id: &str, wallet: &str) -> Self {
        Kept { purchase_id: Arc::from(purchase_id), wallet: Arc::from(wallet) }
    }
}

/// Values in `processors.crowd.CROWD_FEATURES`.
const CROWD_LEN: usize = 11;

/// Every crowd state, in order of last use, and the purchase ids applied.
#[pyclass(module = "processors._native")]
pub struct CrowdStore {
    lim: Limits,
    small_amount_minor: Py<PyAny>,
    states: Lru<CrowdState>,
    seen: Seen,
    clock: Clock,
}

impl CrowdStore {
    /// `apply_row`'s work, the row given by its parts.
    fn apply<'k>(&mut self, kept: &Kept, ts: i64, card: &str, small: i64,
                 keys: impl IntoIterator<Item = &'k str>) {
        if !self.seen.first(&kept.purchase_id, ts) {
            return;
        }
        self.clock.see(ts);
        let lim = self.lim;
        let floor = self.clock.floor();
        let fresh_floor = if floor < ts { floor } else { ts };
        // A new key's first row, kept and pruned as `observe` would do it (the usual case).
        let fresh = ts > fresh_floor - lim.rows_retention_ms && fresh_floor >= lim.prune_every_ms;
        let card = (!card.is_empty()).then(|| Arc::from(card));
        let row = Row { ts, wallet: kept.wallet.clone(), card, small };
        for key in keys {
            if let Some(state) = self.states.touch(key) {
                state.observe(row.clone(), Some(floor), &lim);
                continue;
            }
            let state = if fresh {
                let hour = floor_div(ts, lim.hour_ms);
                CrowdState {
                    rows: vec![row.clone()],
                    hours: vec![(hour, 1)],
                    watermark_ms: ts,
                    pruned_ms: fresh_floor,
                }
            } else {
                let mut state = CrowdState::default();
                state.observe(row.clone(), Some(floor), &lim);
                state
            };
            self.states.insert(key, state);
        }
        if floor - self.clock.swept_ms >= lim.hour_ms {
            self.sweep();
        }
    }

    /// `apply_order`'s work.
    fn apply_order_of(&mut self, o: &Bound<'_, PyTuple>, read: &CrowdRead) -> PyResult<()> {
        let purchase_id: PyBackedStr = o.get_item(field::PURCHASE_ID)?.extract()?;
        let ts: i64 = o.get_item(field::TS)?.extract()?;
        let wallet: PyBackedStr = o.get_item(field::WALLET)?.extract()?;
        let card = o.get_item(field::CARD)?;
        let card: Option<PyBackedStr> = if card.is_truthy()? { Some(card.extract()?) } else { None };
        let small = self.small(o)?;
        self.apply(&Kept::of(&purchase_id, &wallet), ts, card.as_deref().unwrap_or(""), small,
                   read.present());
        Ok(())
    }

    /// `int(o.amount <= small_amount_minor)`.
    fn small(&self, o: &Bound<'_, PyTuple>) -> PyResult<i64> {
        Ok(i64::from(o.get_item(field::AMOUNT)?.le(self.small_amount_minor.bind(o.py()))?))
    }

    fn state(&self, key: Option<&str>) -> Option<&CrowdState> {
        key.and_then(|k| self.states.get(k))
    }

    /// Normal purchases per 10 minutes over the whole hours before `ts`'s hour, + 1.
    fn pace(&self, state: &CrowdState, ts: i64) -> f64 {
        let lim = &self.lim;
        let per_slot = (lim.pace_hours * lim.hour_ms / lim.recent_ms) as f64;
        state.hourly_before(floor_div(ts, lim.hour_ms), lim.pace_hours) as f64 / per_slot + 1.0
    }

    /// (purchases in the 10 min before `ts` + 1) / pace; 1.0 for a key never seen.
    fn rate_ratio(&self, state: Option<&CrowdState>, ts: i64) -> f64 {
        match state {
            None => 1.0,
            Some(s) => (s.between(ts - self.lim.recent_ms, ts).len() as f64 + 1.0) / self.pace(s, ts),
        }
    }

    fn wallets(&self, state: Option<&CrowdState>, me: &str, lo: i64, ts: i64) -> f64 {
        let rows = state.map_or(&[][..], |s| s.between(lo, ts));
        distinct_wallets(rows, me, self.lim.wallets_cap)
    }

    /// `values` of a read (`CrowdRead`).
    fn values_of(&self, read: &CrowdRead, me: &str, ts: i64, card: Option<&str>) -> [f64; CROWD_LEN] {
        let (net, asn, card_bin) = (read.key(kind::NET), read.key(kind::ASN), read.key(kind::BIN));
        let lim = &self.lim;
        let recent = ts - lim.recent_ms;
        let (tier_wallets, tier_rate) = match self.state(read.key(kind::TIER)) {
            None => (1.0, 1.0),
            Some(s) => {
                let rows = s.between(recent, ts);
                (distinct_wallets(rows, me, lim.wallets_cap),
                 (rows.len() as f64 + 1.0) / self.pace(s, ts))
            }
        };
        let coord_wallets = self.wallets(self.state(read.key(kind::COORD)), me, recent, ts);
        let net_wallets = match net {
            Some(_) => self.wallets(self.state(net), me, ts - lim.hour_ms, ts),
            None => MISSING,
        };
        let asn_rate = match asn {
            Some(_) => self.rate_ratio(self.state(asn), ts),
            None => MISSING,
        };
        let (bin_wallets, bin_cards, bin_small) = match card_bin {
            None => (MISSING, MISSING, MISSING),
            Some(_) => {
                let rows = self.state(card_bin).map_or(&[][..], |s| s.between(ts - lim.hour_ms, ts));
                let mut cards = Distinct::new();
                for card in rows.iter().filter_map(|r| r.card.as_deref()) {
                    if cards.len() >= lim.wallets_cap {
                        break; // capped below: the rest cannot change it
                    }
                    cards.insert(card);
                }
                if let Some(c) = card.filter(|c| !c.is_empty()) {
                    cards.insert(c);
                }
                (distinct_wallets(rows, me, lim.wallets_cap),
                 cards.len().min(lim.wallets_cap) as f64,
                 rows.iter().map(|r| r.small).sum::<i64>() as f64)
            }
        };
        let ua_rate = self.rate_ratio(self.state(read.key(kind::UA)), ts);
        [tier_wallets, tier_rate, coord_wallets, net_wallets, asn_rate, read.asn_hosting,
         read.ip_country_mismatch, bin_wallets, bin_cards, bin_small, ua_rate]
    }
}

#[pymethods]
impl CrowdStore {
    #[new]
    #[pyo3(signature = (*, rows_retention_ms, rows_cap, hours_kept, prune_every_ms,
                        seen_retention_ms, idle_ms, hour_ms, recent_ms, wallets_cap, pace_hours,
                        small_amount_minor, order_fields))]
    #[allow(clippy::too_many_arguments)]
    fn new(rows_retention_ms: i64, rows_cap: usize, hours_kept: i64, prune_every_ms: i64,
           seen_retention_ms: i64, idle_ms: i64, hour_ms: i64, recent_ms: i64,
           wallets_cap: usize, pace_hours: i64, small_amount_minor: Py<PyAny>,
           order_fields: Vec<String>) -> PyResult<Self> {
        if order_fields.iter().map(String::as_str).ne(ORDER_FIELDS.iter().copied()) {
            return Err(PyValueError::new_err(format!(
                "Order fields {order_fields:?}: the native reader expects {ORDER_FIELDS:?}")));
        }
        Ok(CrowdStore {
            lim: Limits { rows_retention_ms, rows_cap, hours_kept, prune_every_ms,
                          seen_retention_ms, idle_ms, hour_ms, recent_ms, wallets_cap,
                          pace_hours },
            small_amount_minor,
            states: Lru::new(),
            seen: Seen::new(),
            clock: Clock::default(),
        })
    }

    /// Apply a purchase (`row`: `processors.crowd.crowd_row`) to each of `keys` (None: a
    /// kind the purchase has no key of, `processors.crowd.CrowdRead.keys`), once per purchase
    /// id. The texts are borrowed from Python's strings, not copied, until a row or a new key
    /// keeps one.
    fn apply_row(&mut self, purchase_id: &str, row: (i64, PyBackedStr, PyBackedStr, i64),
                 keys: Vec<Option<PyBackedStr>>) {
        let (ts, wallet, card, small) = row;
        self.apply(&Kept::of(purchase_id, &wallet), ts, &card, small,
                   keys.iter().flatten().map(|k| &**k));
    }

    /// `apply_row` of a purchase read as `o` (`processors.records.Order`, its fields by
    /// position as `wallet.rs` reads them) to the keys of its crowd read (`CrowdRead`), its
    /// row made here as `processors.crowd.crowd_row` makes it from the purchase: `(o.ts,
    /// o.wallet, o.card or "", int(o.amount <= small_amount_minor))`.
    fn apply_order(&mut self, o: &Bound<'_, PyTuple>, read: &Bound<'_, CrowdRead>)
                   -> PyResult<()> {
        self.apply_order_of(o, read.get())
    }

    /// The earliest event time still to be asked about.
    fn floor(&self) -> i64 {
        self.clock.floor()
    }

    /// Live: no query will come for an event time before `ts_ms`.
    fn advance_floor(&mut self, ts_ms: i64) {
        self.clock.advance(ts_ms);
    }

    #[getter]
    fn watermark_ms(&self) -> i64 {
        self.clock.watermark_ms
    }

    #[getter]
    fn floor_ms(&self) -> Option<i64> {
        self.clock.floor_ms
    }

    /// Drop the keys idle for `idle_ms` before the floor (in order of last use: stops at the
    /// first still in use) and the purchase ids older than `seen_retention_ms`.
    fn sweep(&mut self) {
        let floor = self.clock.floor();
        let idle_before = floor - self.lim.idle_ms;
        self.states.drop_front_until(|s| s.watermark_ms > idle_before);
        self.seen.drop_until(floor - self.lim.seen_retention_ms);
        self.clock.swept_ms = floor;
    }

    /// `processors.crowd.CROWD_FEATURES` of a purchase at `ts` by `me` with card fingerprint
    /// `card`, from what was read of it (`processors.crowd.crowd_read`: its keys, None where
    /// it has no such key, and the two features no store holds, placed as they come):
    /// tier_wallets_10m, tier_rate_ratio, coord_wallets_10m, net_wallets_1h, asn_rate_ratio,
    /// asn_hosting, ip_country_mismatch, bin_wallets_1h, bin_cards_1h, bin_small_1h,
    /// ua_rate_ratio (MISSING where the key is absent).
    #[pyo3(signature = (read, me, ts, card))]
    fn values<'py>(&self, read: &Bound<'py, CrowdRead>, me: &str, ts: i64, card: Option<&str>)
                   -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(read.py(), self.values_of(read.get(), me, ts, card))
    }

    /// Rows kept under `key` (None: no such key): for tests.
    fn rows_of(&self, key: &str) -> Option<Vec<(i64, String, String, i64)>> {
        self.state(Some(key)).map(|s| {
            s.rows.iter()
                .map(|r| (r.ts, r.wallet.to_string(), r.card.as_deref().unwrap_or("").to_owned(), r.small))
                .collect()
        })
    }

    /// Purchases under `key` in the `hours` whole hours before `hour` (None: no such key):
    /// for tests.
    fn hourly_before(&self, key: &str, hour: i64, hours: i64) -> Option<i64> {
        self.state(Some(key)).map(|s| s.hourly_before(hour, hours))
    }

    /// Keys, rows, hours, purchase ids held, and an estimate of their bytes (memory report).
    fn sizes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let rows: usize = self.states.values().map(|s| s.rows.len()).sum();
        let hours: usize = self.states.values().map(|s| s.hours.len()).sum();
        let key_bytes: usize = self.states.states.keys().map(|k| k.len() + 96).sum();
        let seen_bytes = self.seen.bytes();
        // a row: its fields and the wallet and card text it shares with the purchase's keys
        let bytes = key_bytes + seen_bytes + rows * (std::mem::size_of::<Row>() + 24) + hours * 24;
        let out = PyDict::new(py);
        out.set_item("keys", self.states.len())?;
        out.set_item("rows", rows)?;
        out.set_item("hours", hours)?;
        out.set_item("seen", self.seen.ids.len())?;
        out.set_item("bytes", bytes)?;
        Ok(out)
    }

    fn __len__(&self) -> usize {
        self.states.len()
    }

    fn __contains__(&self, key: &str) -> bool {
        self.states.get(key).is_some()
    }

    fn has_seen(&self, purchase_id: &str) -> bool {
        self.seen.ids.contains(purchase_id)
    }
}


// ---------------------------------------------------------------------------------------
// The entity store: IP, device, card and show states (`processors/entity_state.py`).

/// The limits of the entity store (`processors/entity_state.py` holds their values).
#[derive(Clone, Copy)]
struct EntityLimits {
    entity_retention_ms: i64,
    slack_ms: i64,
    entity_rows_cap: usize,
    entity_wallets_cap: usize,
    show_retention_ms: i64,
    show_prices_cap: usize,
    show_price_rows_cap: usize,
    popularity_window_ms: i64,
    show_sales_cap: usize,
    show_tickets_cap: usize,
    ticket_retention_ms: i64,
    prune_every_ms: i64,
    seen_retention_ms: i64,
    sweep_every_ms: i64,
    second_ms: i64,
    minute_ms: i64,
    day_ms: i64,
}

/// The fields of a `processors.records.Order` the entity store reads (its texts borrowed from
/// the order's strs, not copied).
#[derive(FromPyObject)]
struct OrderIn {
    ts: i64,
    purchase_id: PyBackedStr,
    wallet: PyBackedStr,
    show_id: PyBackedStr,
    ticket_id: PyBackedStr,
    channel: PyBackedStr,
    unit: i64,
    card: Option<PyBackedStr>,
    ip: PyBackedStr,
    device: Option<PyBackedStr>,
    sale_opens_ms: Option<i64>,
}

/// An IP, device or card: (ts, wallet) sightings, time-sorted.
#[derive(Default)]
struct EntityState {
    rows: Vec<(i64, Arc<str>)>,
    watermark_ms: i64,
    pruned_ms: i64,
}

impl EntityState {
    fn observe(&mut self, wallet: &Arc<str>, ts: i64, floor_ms: Option<i64>, lim: &EntityLimits) {
        insert_sorted(&mut self.rows, (ts, wallet.clone()), |r| r.0, lim.entity_rows_cap);
        if ts > self.watermark_ms {
            self.watermark_ms = ts;
        }
        let floor = query_floor(floor_ms, self.watermark_ms);
        if floor - self.pruned_ms >= lim.prune_every_ms {
            drop_until(&mut self.rows, floor - lim.entity_retention_ms - lim.slack_ms, |r| r.0);
            self.pruned_ms = floor;
        }
    }

    /// Wallets seen with `lo_excl < ts < hi_excl`.
    fn wallets_between(&self, lo_excl: i64, hi_excl: i64) -> &[(i64, Arc<str>)] {
        let i = self.rows.partition_point(|r| r.0 <= lo_excl);
        let j = self.rows.partition_point(|r| r.0 < hi_excl);
        if j > i {
            &self.rows[i..j]
        } else {
            &[]
        }
    }
}

/// A show: unit prices per channel, sale times, its sale opening, first primary sales.
#[derive(Default)]
struct ShowState {
    primary_prices: Vec<(i64, i64)>,
    resale_prices: Vec<(i64, i64)>,
    sales: Vec<i64>,
    sale_open_ms: Option<i64>,
    tickets: Map<String, (i64, i64)>,
    watermark_ms: i64,
    pruned_ms: i64,
}

impl ShowState {
    fn observe(&mut self, o: &OrderIn, floor_ms: Option<i64>, lim: &EntityLimits) {
        let (ts, price, primary) = (o.ts, o.unit, &*o.channel == "PRIMARY");
        let prices = if primary { &mut self.primary_prices } else { &mut self.resale_prices };
        insert_sorted(prices, (ts, price), |r| r.0, lim.show_price_rows_cap);
        insert_sorted(&mut self.sales, ts, |t| *t, lim.show_sales_cap);
        if o.sale_opens_ms.is_some() {
            self.sale_open_ms = o.sale_opens_ms;
        }
        if primary && self.tickets.get(&*o.ticket_id).is_none_or(|sale| sale.0 > ts) {
            self.tickets.insert(o.ticket_id.to_string(), (ts, price));
            cap_tickets(&mut self.tickets, lim.show_tickets_cap);
        }
        if ts > self.watermark_ms {
            self.watermark_ms = ts;
        }
        let floor = query_floor(floor_ms, self.watermark_ms);
        if floor - self.pruned_ms >= lim.prune_every_ms {
            let cutoff = floor - lim.show_retention_ms - lim.slack_ms;
            drop_until(&mut self.primary_prices, cutoff, |r| r.0);
            drop_until(&mut self.resale_prices, cutoff, |r| r.0);
            let upto = self.sales.partition_point(|&t| t <= floor - lim.popularity_window_ms - lim.slack_ms);
            self.sales.drain(..upto);
            self.pruned_ms = floor;
        }
    }

    /// The latest `show_prices_cap` unit prices with `lo_excl < ts < hi_excl`, their median.
    fn median_price(&self, primary: bool, lo_excl: i64, hi_excl: i64, lim: &EntityLimits) -> Option<f64> {
        let ring = if primary { &self.primary_prices } else { &self.resale_prices };
        let i = ring.partition_point(|r| r.0 <= lo_excl);
        let j = ring.partition_point(|r| r.0 < hi_excl);
        if j <= i {
            return None;
        }
        let mut prices: Vec<i64> = ring[i.max(j.saturating_sub(lim.show_prices_cap))..j].iter().map(|r| r.1).collect();
        // the middle one or two of the sorted prices, found without sorting them all
        let (n, mid) = (prices.len(), prices.len() / 2);
        let (below, &mut upper, _) = prices.select_nth_unstable(mid);
        Some(if n % 2 == 1 {
            upper as f64
        } else {
            let lower = *below.iter().max().expect("an even count has a lower middle");
            (lower + upper) as f64 / 2.0
        })
    }

    /// (ts, unit price) of the ticket's first primary sale, if before `before_ms` and no more
    /// than `ticket_retention_ms` before it.
    fn first_sale(&self, ticket: &str, before_ms: i64, lim: &EntityLimits) -> Option<(i64, i64)> {
        let sale = *self.tickets.get(ticket)?;
        (before_ms - lim.ticket_retention_ms < sale.0 && sale.0 < before_ms).then_some(sale)
    }
}

/// `processors.ring.cap_dict` keyed by the first sale's time: over `cap`, drop the oldest
/// (by time, then ticket) down to three quarters of `cap`.
fn cap_tickets(tickets: &mut Map<String, (i64, i64)>, cap: usize) {
    if tickets.len() <= cap {
        return;
    }
    let keep = cap - cap / 4;
    let mut order: Vec<(i64, String)> = tickets.iter().map(|(k, v)| (v.0, k.clone())).collect();
    order.sort();
    for (_, key) in order.into_iter().take(tickets.len() - keep) {
        tickets.remove(&key);
    }
}

/// Every IP, device, card and show state, applied once per purchase id, in any order.
#[pyclass(module = "processors._native")]
pub struct EntityStore {
    lim: EntityLimits,
    ips: Lru<EntityState>,
    devices: Lru<EntityState>,
    cards: Lru<EntityState>,
    shows: Lru<ShowState>,
    seen: Seen,
    clock: Clock,
}

impl EntityStore {
    fn kind(&self, kind: &str) -> PyResult<&Lru<EntityState>> {
        match kind {
            "ip" => Ok(&self.ips),
            "device" => Ok(&self.devices),
            "card" => Ok(&self.cards),
            _ => Err(pyo3::exceptions::PyValueError::new_err(format!("no entity kind {kind:?}"))),
        }
    }

    /// The order's IP, device and card states (None: absent or never seen).
    fn states_of(&self, o: &OrderIn) -> [Option<&EntityState>; 3] {
        [self.ips.get(&o.ip),
         o.device.as_deref().and_then(|d| self.devices.get(d)),
         o.card.as_deref().and_then(|c| self.cards.get(c))]
    }

    /// The wallets sharing the order's IP, device or card in the 24 h before it, and its own.
    fn linked<'a>(&'a self, o: &'a OrderIn) -> Set<&'a str> {
        let mut linked: Set<&str> = Set::from_iter([&*o.wallet]);
        for state in self.states_of(o).into_iter().flatten() {
            linked.extend(state.wallets_between(o.ts - self.lim.day_ms, o.ts).iter().map(|r| &*r.1));
        }
        linked
    }

    /// wallets_per_ip_24h, wallets_per_device_24h, wallets_per_card_24h, linked_wallets
    /// (`FEATURE_NAMES`): wallets sharing the IP, device or card in the 24 h before the
    /// order, its own included, capped; MISSING for an absent device or card.
    fn entity_values_of(&self, o: &OrderIn) -> (f64, f64, f64, f64) {
        let cap = self.lim.entity_wallets_cap;
        let (lo, me) = (o.ts - self.lim.day_ms, &*o.wallet);
        let present = [true, o.device.is_some(), o.card.is_some()];
        let mut linked = Distinct::new();
        linked.insert(me);
        let mut out = [MISSING; 3];
        for ((slot, state), present) in out.iter_mut().zip(self.states_of(o)).zip(present) {
            if !present {
                continue;
            }
            *slot = match state {
                None => 1.0,
                Some(state) => {
                    let mut wallets = Distinct::new();
                    wallets.insert(me);
                    for r in state.wallets_between(lo, o.ts) {
                        if wallets.len() >= cap {
                            break; // this count and `linked`'s are capped: both are reached
                        }
                        wallets.insert(&r.1);
                    }
                    for wallet in wallets.iter() {
                        linked.insert(wallet);
                    }
                    wallets.len().min(cap) as f64
                }
            };
        }
        (out[0], out[1], out[2], linked.len().min(cap) as f64)
    }

    /// price_deviation, resale_markup, show_popularity_1h, secs_since_sale_open,
    /// before_sale_open (`FEATURE_NAMES`), from the show's rows strictly before the order.
    fn show_values_of(&self, o: &OrderIn) -> (f64, f64, f64, f64, f64) {
        let lim = &self.lim;
        let ts = o.ts;
        let (mut deviation, mut markup, mut popularity) = (MISSING, MISSING, MISSING);
        let mut opens = o.sale_opens_ms;
        if let Some(show) = self.shows.get(&o.show_id) {
            let lo = ts - lim.show_retention_ms;
            if let Some(median) = show.median_price(&*o.channel == "PRIMARY", lo, ts, lim) {
                if median != 0.0 {
                    deviation = o.unit as f64 / median;
                }
            }
            let sales = &show.sales;
            let n = sales.partition_point(|&t| t < ts) as i64
                - sales.partition_point(|&t| t <= ts - lim.popularity_window_ms) as i64;
            popularity = n as f64;
            if opens.is_none() {
                opens = show.sale_open_ms;
            }
            if &*o.channel == "RESALE" {
                let base = match show.first_sale(&o.ticket_id, ts, lim) {
                    Some(sale) => Some(sale.1 as f64),
                    None => show.median_price(true, lo, ts, lim),
                };
                if let Some(base) = base.filter(|&b| b > 0.0) {
                    markup = o.unit as f64 / base;
                }
            }
        }
        match opens {
            None => (deviation, markup, popularity, MISSING, MISSING),
            Some(opens) => (deviation, markup, popularity,
                            ((ts - opens) as f64 / lim.second_ms as f64).max(0.0),
                            if ts < opens { 1.0 } else { 0.0 }),
        }
    }

    /// `apply_order`'s work, the order's id and wallet as `kept`.
    fn apply(&mut self, o: &OrderIn, kept: &Kept) {
        let ts = o.ts;
        if !self.seen.first(&kept.purchase_id, ts) {
            return;
        }
        self.clock.see(ts);
        let lim = self.lim;
        let floor = self.clock.floor();
        let wallet = &kept.wallet;
        // A new IP, device or card gets its first sighting as `observe` would leave it.
        let first = if floor < ts { floor } else { ts };
        let fresh = ts > first - lim.entity_retention_ms - lim.slack_ms && first >= lim.prune_every_ms;
        let values = [Some(&*o.ip), o.device.as_deref(), o.card.as_deref()];
        for (states, value) in [&mut self.ips, &mut self.devices, &mut self.cards].into_iter().zip(values) {
            let Some(value) = value.filter(|v| !v.is_empty()) else { continue };
            if let Some(state) = states.touch(value) {
                state.observe(wallet, ts, Some(floor), &lim);
            } else if fresh {
                states.insert(value, EntityState { rows: vec![(ts, wallet.clone())], watermark_ms: ts, pruned_ms: first });
            } else {
                let mut state = EntityState::default();
                state.observe(wallet, ts, Some(floor), &lim);
                states.insert(value, state);
            }
        }
        if !o.show_id.is_empty() {
            if let Some(show) = self.shows.touch(&o.show_id) {
                show.observe(o, Some(floor), &lim);
            } else {
                let mut show = ShowState::default();
                show.observe(o, Some(floor), &lim);
                self.shows.insert(&o.show_id, show);
            }
        }
        if floor - self.clock.swept_ms >= lim.sweep_every_ms {
            self.sweep();
        }
    }

    /// mint_to_resale_min (`FEATURE_NAMES`): minutes from the ticket's
    /// first primary sale to this resale; MISSING when not a resale or not known.
    fn mint_to_resale_of(&self, o: &OrderIn) -> f64 {
        if &*o.channel != "RESALE" {
            return MISSING;
        }
        match self.shows.get(&o.show_id).and_then(|s| s.first_sale(&o.ticket_id, o.ts, &self.lim)) {
            Some((then, _)) if then <= o.ts => (o.ts - then) as f64 / self.lim.minute_ms as f64,
            _ => MISSING,
        }
    }
}

#[pymethods]
impl EntityStore {
    #[new]
    #[pyo3(signature = (*, entity_retention_ms, slack_ms, entity_rows_cap, entity_wallets_cap,
                        show_retention_ms, show_prices_cap, show_price_rows_cap,
                        popularity_window_ms, show_sales_cap, show_tickets_cap,
                        ticket_retention_ms, prune_every_ms, seen_retention_ms, sweep_every_ms,
                        second_ms, minute_ms, day_ms))]
    #[allow(clippy::too_many_arguments)]
    fn new(entity_retention_ms: i64, slack_ms: i64, entity_rows_cap: usize,
           entity_wallets_cap: usize, show_retention_ms: i64, show_prices_cap: usize,
           show_price_rows_cap: usize, popularity_window_ms: i64, show_sales_cap: usize,
           show_tickets_cap: usize, ticket_retention_ms: i64, prune_every_ms: i64,
           seen_retention_ms: i64, sweep_every_ms: i64, second_ms: i64, minute_ms: i64,
           day_ms: i64) -> Self {
        EntityStore {
            lim: EntityLimits { entity_retention_ms, slack_ms, entity_rows_cap,
                                entity_wallets_cap, show_retention_ms, show_prices_cap,
                                show_price_rows_cap, popularity_window_ms, show_sales_cap,
                                show_tickets_cap, ticket_retention_ms, prune_every_ms,
                                seen_retention_ms, sweep_every_ms, second_ms, minute_ms,
                                day_ms },
            ips: Lru::new(),
            devices: Lru::new(),
            cards: Lru::new(),
            shows: Lru::new(),
            seen: Seen::new(),
            clock: Clock::default(),
        }
    }

    /// Apply a purchase (`processors.records.Order`) to its IP, device, card and show, once
    /// per purchase id.
    fn apply_order(&mut self, o: OrderIn) {
        self.apply(&o, &Kept::of(&o.purchase_id, &o.wallet));
    }

    /// The earliest event time still to be asked about.
    fn floor(&self) -> i64 {
        self.clock.floor()
    }

    /// Live: no query will come for an event time before `ts_ms`.
    fn advance_floor(&mut self, ts_ms: i64) {
        self.clock.advance(ts_ms);
    }

    #[getter]
    fn watermark_ms(&self) -> i64 {
        self.clock.watermark_ms
    }

    #[getter]
    fn floor_ms(&self) -> Option<i64> {
        self.clock.floor_ms
    }

    /// Drop states idle beyond their longest window before the floor (in order of last use:
    /// stops at the first still in use); a show idle past its 7-day windows keeps only its
    /// first primary sales still within `ticket_retention_ms` (`processors.entity_state`).
    fn sweep(&mut self) {
        let lim = self.lim;
        let floor = self.clock.floor();
        let cutoff = floor - lim.entity_retention_ms - lim.slack_ms;
        for states in [&mut self.ips, &mut self.devices, &mut self.cards] {
            states.drop_front_until(|s| s.watermark_ms > cutoff);
        }
        let idle = floor - lim.show_retention_ms - lim.slack_ms;
        let kept_after = floor - lim.ticket_retention_ms - lim.slack_ms;
        for key in self.shows.front_until(|s| s.watermark_ms > idle) {
            let show = self.shows.get_mut(&key).expect("a key just listed");
            show.tickets.retain(|_, sale| sale.0 > kept_after);
            if show.tickets.is_empty() {
                self.shows.remove(&key);
            } else {
                show.primary_prices.clear();
                show.resale_prices.clear();
                show.sales.clear();
            }
        }
        self.seen.drop_until(floor - lim.seen_retention_ms);
        self.clock.swept_ms = floor;
    }

    /// wallets_per_ip_24h, wallets_per_device_24h, wallets_per_card_24h, linked_wallets.
    fn entity_values(&self, o: OrderIn) -> (f64, f64, f64, f64) {
        self.entity_values_of(&o)
    }

    /// price_deviation, resale_markup, show_popularity_1h, secs_since_sale_open,
    /// before_sale_open.
    fn show_values(&self, o: OrderIn) -> (f64, f64, f64, f64, f64) {
        self.show_values_of(&o)
    }

    /// mint_to_resale_min.
    fn mint_to_resale(&self, o: OrderIn) -> f64 {
        self.mint_to_resale_of(&o)
    }

    /// The 1-hop cluster (`processors.marks`): wallets that shared the order's IP, device or
    /// card in the 24 h before it, its own included.
    fn linked_wallets(&self, o: OrderIn) -> HashSet<String> {
        self.linked(&o).into_iter().map(str::to_owned).collect()
    }

    /// The smallest address of the order's linked cluster (`processors.marks.cluster_id`).
    fn cluster_min(&self, o: OrderIn) -> String {
        self.linked(&o).into_iter().min().unwrap_or("").to_owned()
    }

    /// (ts, wallet) rows of an IP, device or card (`kind`), None when not held: for tests.
    fn entity_rows(&self, kind: &str, key: &str) -> PyResult<Option<Vec<(i64, String)>>> {
        Ok(self.kind(kind)?.get(key).map(|s| s.rows.iter().map(|r| (r.0, r.1.to_string())).collect()))
    }

    /// The keys of an entity kind ("ip", "device", "card" or "show") in order of last use
    /// (the order the sweep reads them in): for tests.
    fn keys(&self, kind: &str) -> PyResult<Vec<String>> {
        if kind == "show" {
            return Ok(self.shows.keys().map(|k| k.to_string()).collect());
        }
        Ok(self.kind(kind)?.keys().map(|k| k.to_string()).collect())
    }

    /// A show's state as plain values (None when not held): for tests and inspection; its
    /// tickets in ticket order.
    fn show<'py>(&self, py: Python<'py>, show_id: &str) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(s) = self.shows.get(show_id) else { return Ok(None) };
        let out = PyDict::new(py);
        out.set_item("primary_prices", s.primary_prices.clone())?;
        out.set_item("resale_prices", s.resale_prices.clone())?;
        out.set_item("sales", s.sales.clone())?;
        out.set_item("sale_open_ms", s.sale_open_ms)?;
        let mut tickets: Vec<_> = s.tickets.iter().collect();
        tickets.sort_unstable(); // by ticket: the same order whatever the map's
        out.set_item("tickets", tickets.into_py_dict(py)?)?;
        out.set_item("watermark_ms", s.watermark_ms)?;
        Ok(Some(out))
    }

    fn has_seen(&self, purchase_id: &str) -> bool {
        self.seen.ids.contains(purchase_id)
    }

    /// States, rows and purchase ids held, and an estimate of their bytes (memory report).
    fn sizes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let entity_rows: usize = [&self.ips, &self.devices, &self.cards].iter()
            .map(|m| m.values().map(|s| s.rows.len()).sum::<usize>()).sum();
        let show_rows: usize = self.shows.values()
            .map(|s| s.primary_prices.len() + s.resale_prices.len() + s.sales.len()).sum();
        let tickets: usize = self.shows.values().map(|s| s.tickets.len()).sum();
        let keys = self.ips.len() + self.devices.len() + self.cards.len() + self.shows.len();
        let bytes = keys * 160 + entity_rows * 40 + show_rows * 16 + tickets * 96 + self.seen.bytes();
        let out = PyDict::new(py);
        out.set_item("keys", keys)?;
        out.set_item("ips", self.ips.len())?;
        out.set_item("devices", self.devices.len())?;
        out.set_item("cards", self.cards.len())?;
        out.set_item("shows", self.shows.len())?;
        out.set_item("entity_rows", entity_rows)?;
        out.set_item("show_rows", show_rows)?;
        out.set_item("tickets", tickets)?;
        out.set_item("seen", self.seen.ids.len())?;
        out.set_item("bytes", bytes)?;
        Ok(out)
    }

    fn __len__(&self) -> usize {
        self.ips.len() + self.devices.len() + self.cards.len() + self.shows.len()
    }
}

/// A purchase read as `o` (`processors.records.Order`) with its crowd read (`CrowdRead`)
/// applied to both stores, as `entities.apply_order(o)` then `crowds.apply_order(o, read)`
/// (once per purchase id in each), in one call: what every path that applies a purchase calls.
#[pyfunction]
fn apply_stores(mut entities: PyRefMut<'_, EntityStore>, mut crowds: PyRefMut<'_, CrowdStore>,
                  o: &Bound<'_, PyTuple>, read: &Bound<'_, CrowdRead>) -> PyResult<()> {
    apply_to_stores(&mut entities, &mut crowds, o, &wallet::entity_order(o)?, read.get())
}

/// `apply_stores` of an order whose fields the entity store reads are read already
/// (`order_in`, `wallet::entity_order(o)`) and a crowd read held natively (`purchase.rs`).
pub(crate) fn apply_to_stores(entities: &mut EntityStore, crowds: &mut CrowdStore,
                              o: &Bound<'_, PyTuple>, order_in: &OrderIn, read: &CrowdRead)
                              -> PyResult<()> {
    let kept = Kept::of(&order_in.purchase_id, &order_in.wallet);
    entities.apply(order_in, &kept);
    let small = crowds.small(o)?;
    crowds.apply(&kept, order_in.ts, order_in.card.as_deref().unwrap_or(""), small,
                 read.present());
    Ok(())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CrowdStore>()?;
    m.add_class::<crowd_read::CrowdRead>()?;
    m.add_class::<crowd_read::CrowdReader>()?;
    m.add_class::<crowd_read::PurchaseReader>()?;
    m.add_function(wrap_pyfunction!(apply_stores, m)?)?;
    m.add_class::<EntityStore>()?;
    m.add_class::<wallet::WalletFeatures>()?;
    m.add_class::<slots::WalletSlots>()?;
    m.add_class::<updates::WalletUpdates>()?;
    m.add_class::<order::OrderReader>()?;
    m.add_class::<events::TransferReader>()?;
    m.add_class::<events::EventAdmission>()?;
    m.add_class::<purchase::PurchaseStep>()?;
    m.add_class::<events::ExpiryWheel>()?;
    m.add_class::<events::ExpiryRules>()?;
    decide::register(m)?;
    columns::register(m)?;
    rules::register(m)?;
    m.add_class::<trees::Forest>()?;
    m.add_class::<geo::GeoIp4>()?;
    m.add_class::<geo::QuadReader>()?;
    Ok(())
}
