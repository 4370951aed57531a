//! `processors._native`: the crowd store of `processors/crowd_state.py` in native code.
//!
//! Every purchase is applied to six crowd keys (`processors/crowd.py`), on every worker
//! (`streams/entity_replica.py`) and in replay; in Python that was a sixth of a purchase's
//! CPU. The contract is the one `processors/crowd_state.py` documents, and the answers are
//! the same to the bit (`tests/unit/test_decision_path_equivalence.py` compares them with
//! the frozen Python reference, `tests/support/legacy_path/crowd_state.py`):
//!
//! - a key keeps time-sorted rows `(ts, wallet, card or "", small 0/1)` for
//!   `rows_retention_ms` (capped at `rows_cap`, oldest dropped) and purchases per whole hour
//!   for `hours_kept` hours; rows go at most every `prune_every_ms` of the key's floor;
//! - queries read rows strictly BEFORE the asking purchase's time, so a store that has read
//!   ahead answers as an in-order replay does;
//! - a purchase id is applied once (`seen`, kept `seen_retention_ms`); keys idle for
//!   `idle_ms` before the floor are dropped by the hourly sweep, in order of last use;
//! - the floor is the earliest time still to be asked about: the one a live reader announced
//!   (`advance_floor`), never past the watermark; the watermark when none was (replay).
//!
//! Arithmetic is done as Python does it: integer counts, then one IEEE division each.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

const MISSING: f64 = -1.0;

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

#[derive(Clone)]
struct Row {
    ts: i64,
    wallet: Arc<str>,
    card: Arc<str>, // "" when the purchase named no card
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

#[derive(Default)]
struct CrowdState {
    rows: Vec<Row>,
    hours: HashMap<i64, i64>,
    watermark_ms: i64,
    pruned_ms: i64,
    first_hour: Option<i64>, // the earliest hour in `hours` (None: not known yet)
}

impl CrowdState {
    fn observe(&mut self, row: Row, floor_ms: Option<i64>, lim: &Limits) {
        let ts = row.ts;
        // insert_row: after every row at the same time; the oldest go over the cap
        if self.rows.last().map_or(true, |last| ts >= last.ts) {
            self.rows.push(row);
        } else {
            let at = self.rows.partition_point(|r| r.ts <= ts);
            self.rows.insert(at, row);
        }
        if self.rows.len() > lim.rows_cap {
            let over = self.rows.len() - lim.rows_cap;
            self.rows.drain(..over);
        }
        let hour = floor_div(ts, lim.hour_ms);
        if let Some(count) = self.hours.get_mut(&hour) {
            *count += 1;
        } else {
            self.hours.insert(hour, 1);
            if let Some(first) = self.first_hour {
                if hour < first {
                    self.first_hour = Some(hour);
                }
            }
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
        let cutoff = floor - lim.rows_retention_ms;
        if self.rows.first().is_some_and(|r| r.ts <= cutoff) {
            let upto = self.rows.partition_point(|r| r.ts <= cutoff);
            self.rows.drain(..upto);
        }
        let oldest = floor_div(floor, lim.hour_ms) - lim.hours_kept;
        if self.first_hour.map_or(true, |first| first < oldest) {
            self.hours.retain(|&h, _| h >= oldest);
            self.first_hour = self.hours.keys().min().copied();
        }
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
        if (self.hours.len() as i64) < hours {
            self.hours.iter().filter(|(&h, _)| hour - hours <= h && h < hour).map(|(_, &n)| n).sum()
        } else {
            (hour - hours..hour).map(|h| self.hours.get(&h).copied().unwrap_or(0)).sum()
        }
    }
}

/// Distinct wallets among `rows` and `me`, capped.
fn distinct_wallets(rows: &[Row], me: &str, cap: usize) -> f64 {
    let mut seen: HashSet<&str> = HashSet::with_capacity(rows.len() + 1);
    seen.insert(me);
    for r in rows {
        seen.insert(&r.wallet);
    }
    seen.len().min(cap) as f64
}

/// Every crowd state, in order of last use, and the purchase ids applied.
#[pyclass(module = "processors._native")]
pub struct CrowdStore {
    lim: Limits,
    states: HashMap<String, (u64, CrowdState)>, // key -> (last use, state)
    order: BTreeMap<u64, String>,               // last use -> key
    next_use: u64,
    seen: HashSet<String>,
    arrivals: VecDeque<(String, i64)>, // purchase ids in order of arrival, with their time
    #[pyo3(get)]
    watermark_ms: i64,
    #[pyo3(get)]
    floor_ms: Option<i64>,
    swept_ms: i64,
}

impl CrowdStore {
    fn state(&self, key: Option<&str>) -> Option<&CrowdState> {
        key.and_then(|k| self.states.get(k)).map(|(_, s)| s)
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
}

#[pymethods]
impl CrowdStore {
    #[new]
    #[pyo3(signature = (*, rows_retention_ms, rows_cap, hours_kept, prune_every_ms,
                        seen_retention_ms, idle_ms, hour_ms, recent_ms, wallets_cap, pace_hours))]
    #[allow(clippy::too_many_arguments)]
    fn new(rows_retention_ms: i64, rows_cap: usize, hours_kept: i64, prune_every_ms: i64,
           seen_retention_ms: i64, idle_ms: i64, hour_ms: i64, recent_ms: i64,
           wallets_cap: usize, pace_hours: i64) -> Self {
        CrowdStore {
            lim: Limits { rows_retention_ms, rows_cap, hours_kept, prune_every_ms,
                          seen_retention_ms, idle_ms, hour_ms, recent_ms, wallets_cap,
                          pace_hours },
            states: HashMap::new(),
            order: BTreeMap::new(),
            next_use: 0,
            seen: HashSet::new(),
            arrivals: VecDeque::new(),
            watermark_ms: 0,
            floor_ms: None,
            swept_ms: 0,
        }
    }

    /// Apply a purchase (`row`: `processors.crowd.order_crowd_row`) to each of `keys`, once
    /// per purchase id.
    fn apply_row(&mut self, purchase_id: &str, row: (i64, String, String, i64), keys: Vec<String>) {
        if self.seen.contains(purchase_id) {
            return;
        }
        let (ts, wallet, card, small) = row;
        self.seen.insert(purchase_id.to_owned());
        self.arrivals.push_back((purchase_id.to_owned(), ts));
        if ts > self.watermark_ms {
            self.watermark_ms = ts;
        }
        let lim = self.lim;
        let floor = self.floor();
        let fresh_floor = if floor < ts { floor } else { ts };
        // A new key's first row, kept and pruned as `observe` would do it (the usual case).
        let fresh = ts > fresh_floor - lim.rows_retention_ms && fresh_floor >= lim.prune_every_ms;
        let row = Row { ts, wallet: Arc::from(wallet.as_str()), card: Arc::from(card.as_str()), small };
        for key in keys {
            let state = match self.states.remove(&key) {
                Some((used, mut state)) => {
                    self.order.remove(&used);
                    state.observe(row.clone(), Some(floor), &lim);
                    state
                }
                None if fresh => {
                    let hour = floor_div(ts, lim.hour_ms);
                    CrowdState {
                        rows: vec![row.clone()],
                        hours: HashMap::from([(hour, 1)]),
                        watermark_ms: ts,
                        pruned_ms: fresh_floor,
                        first_hour: Some(hour),
                    }
                }
                None => {
                    let mut state = CrowdState::default();
                    state.observe(row.clone(), Some(floor), &lim);
                    state
                }
            };
            let used = self.next_use;
            self.next_use += 1;
            self.order.insert(used, key.clone());
            self.states.insert(key, (used, state));
        }
        if floor - self.swept_ms >= lim.hour_ms {
            self.sweep();
        }
    }

    /// The earliest event time still to be asked about.
    fn floor(&self) -> i64 {
        query_floor(self.floor_ms, self.watermark_ms)
    }

    /// Live: no query will come for an event time before `ts_ms`.
    fn advance_floor(&mut self, ts_ms: i64) {
        self.floor_ms = Some(self.floor_ms.map_or(ts_ms, |f| f.max(ts_ms)));
    }

    /// Drop the keys idle for `idle_ms` before the floor (in order of last use: stops at the
    /// first still in use) and the purchase ids older than `seen_retention_ms`.
    fn sweep(&mut self) {
        let floor = self.floor();
        let idle_before = floor - self.lim.idle_ms;
        loop {
            let Some((&used, key)) = self.order.iter().next() else { break };
            if self.states[key].1.watermark_ms > idle_before {
                break;
            }
            let key = key.clone();
            self.order.remove(&used);
            self.states.remove(&key);
        }
        let seen_before = floor - self.lim.seen_retention_ms;
        while let Some((_, ts)) = self.arrivals.front() {
            if *ts > seen_before {
                break;
            }
            let (id, _) = self.arrivals.pop_front().expect("a front element");
            self.seen.remove(&id);
        }
        self.swept_ms = floor;
    }

    /// The crowd features this store answers for a purchase at `ts` by `me`, from its keys
    /// (`processors.crowd.crowd_keyed`; None where the purchase has no such key) and its
    /// card fingerprint: tier_wallets_10m, tier_rate_ratio, coord_wallets_10m,
    /// net_wallets_1h, asn_rate_ratio, bin_wallets_1h, bin_cards_1h, bin_small_1h,
    /// ua_rate_ratio (MISSING where the key is absent).
    #[pyo3(signature = (tier, coord, net, asn, card_bin, ua, me, ts, card))]
    #[allow(clippy::too_many_arguments)]
    fn values(&self, tier: &str, coord: &str, net: Option<&str>, asn: Option<&str>,
              card_bin: Option<&str>, ua: &str, me: &str, ts: i64, card: Option<&str>)
              -> (f64, f64, f64, f64, f64, f64, f64, f64, f64) {
        let lim = &self.lim;
        let recent = ts - lim.recent_ms;
        let (tier_wallets, tier_rate) = match self.state(Some(tier)) {
            None => (1.0, 1.0),
            Some(s) => {
                let rows = s.between(recent, ts);
                (distinct_wallets(rows, me, lim.wallets_cap),
                 (rows.len() as f64 + 1.0) / self.pace(s, ts))
            }
        };
        let coord_wallets = self.wallets(self.state(Some(coord)), me, recent, ts);
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
                let mut cards: HashSet<&str> = rows.iter().map(|r| &*r.card).filter(|c| !c.is_empty()).collect();
                if let Some(c) = card.filter(|c| !c.is_empty()) {
                    cards.insert(c);
                }
                (distinct_wallets(rows, me, lim.wallets_cap),
                 cards.len().min(lim.wallets_cap) as f64,
                 rows.iter().map(|r| r.small).sum::<i64>() as f64)
            }
        };
        let ua_rate = self.rate_ratio(self.state(Some(ua)), ts);
        (tier_wallets, tier_rate, coord_wallets, net_wallets, asn_rate, bin_wallets, bin_cards,
         bin_small, ua_rate)
    }

    /// Rows kept under `key` (None: no such key): for tests.
    fn rows_of(&self, key: &str) -> Option<Vec<(i64, String, String, i64)>> {
        self.state(Some(key)).map(|s| {
            s.rows.iter().map(|r| (r.ts, r.wallet.to_string(), r.card.to_string(), r.small)).collect()
        })
    }

    /// Purchases under `key` in the `hours` whole hours before `hour` (None: no such key):
    /// for tests.
    fn hourly_before(&self, key: &str, hour: i64, hours: i64) -> Option<i64> {
        self.state(Some(key)).map(|s| s.hourly_before(hour, hours))
    }

    /// Keys, rows, hours, purchase ids held, and an estimate of their bytes (memory report).
    fn sizes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let rows: usize = self.states.values().map(|(_, s)| s.rows.len()).sum();
        let hours: usize = self.states.values().map(|(_, s)| s.hours.len()).sum();
        let key_bytes: usize = self.states.keys().map(|k| k.len() + 96).sum();
        let seen_bytes: usize = self.arrivals.iter().map(|(id, _)| 2 * id.len() + 64).sum();
        // a row: its fields and the wallet and card text it shares with the purchase's keys
        let bytes = key_bytes + seen_bytes + rows * (std::mem::size_of::<Row>() + 24) + hours * 24;
        let out = PyDict::new(py);
        out.set_item("keys", self.states.len())?;
        out.set_item("rows", rows)?;
        out.set_item("hours", hours)?;
        out.set_item("seen", self.seen.len())?;
        out.set_item("bytes", bytes)?;
        Ok(out)
    }

    fn __len__(&self) -> usize {
        self.states.len()
    }

    fn __contains__(&self, key: &str) -> bool {
        self.states.contains_key(key)
    }

    fn has_seen(&self, purchase_id: &str) -> bool {
        self.seen.contains(purchase_id)
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<CrowdStore>()?;
    Ok(())
}
