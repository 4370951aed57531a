//! Applying an event to its wallet's state (`processors.state.WalletState`), in place: a
//! purchase (`WalletUpdates.apply_order`, `processors.apply.apply_order`), an auth event
//! (`apply_auth`, `processors.apply.apply_auth_at`) and a chain transfer (`apply_transfer`,
//! `processors.apply.apply_read_transfer`), and the state's own `first_time`, `observe` and
//! `prune`, which all three call. It changes the Python struct where it is (its lists of
//! NamedTuples, its dicts, its int fields), so any `WalletState` will do: the engine's, or one
//! the live worker decoded from its table.
//!
//! The result is the one the Python it replaced left (`tests/support/apply_reference.py`
//! keeps it; `tests/unit/test_native_wallet_updates.py` compares state by state): the same
//! rows in the same order, found by the same bisection steps as `bisect.insort_right` (a row
//! goes after every row at its time; an unsorted list gets Python's answer too); the same dict
//! insertion order (an existing key keeps its place, a deleted one comes back at the end; over
//! a cap the entries go in `sorted` order of (time, key), keys compared as Python compares
//! strs); the rows built as the NamedTuple classes passed at construction build them
//! (`tuple.__new__(cls, values)`, what a NamedTuple's `__new__` does), holding the order's own
//! objects; counters summed as Python ints.
//!
//! Assumed of the inputs (as their types say): event times (the order's, the auth event's,
//! the transfer's, the rows', the dicts' values, the marks and watermarks) are ints within
//! i64; record ids and keys strs; an auth event's kind a str (any other hashable value is no
//! kind, as it is in none of Python's sets; a str subclass is compared by its text). Anything
//! else raises TypeError where Python might have gone on.

use std::collections::HashSet;

use pyo3::exceptions::{PyAssertionError, PyValueError};
use pyo3::{ffi, intern};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple, PyType};

use crate::slots::{field, Slots};
use crate::wallet::{bisect_right, opt_ts, order, row_ts, text, ts_of, GEO_POINT_FIELDS,
                    ORDER_FIELDS, PURCHASE_FACT_FIELDS, RESALE_FACT_FIELDS};

const HOLDING_FIELDS: [&str; 2] = ["acquired_ms", "price_minor"];
pub(crate) const TRANSFER_FIELDS: [&str; 6] = ["ts", "receiver", "sender", "record_id", "key", "kind"];

/// Positions in `processors.records.Transfer`.
mod transfer {
    pub const TS: usize = 0;
    pub const RECEIVER: usize = 1;
    pub const SENDER: usize = 2;
    pub const RECORD_ID: usize = 3;
    pub const KEY: usize = 4;
    pub const KIND: usize = 5;
}

/// What an auth event records, by its kind (`processors/state.py` holds the kinds of the
/// first three; the last two are spelled in `apply_auth_at` as they were in Python).
#[derive(Clone, Copy, PartialEq)]
enum AuthKind {
    FailedLogin,
    MfaFailed,
    LoginOk,
    PasswordChanged,
    EmailChanged,
    Other,
}

const PASSWORD_CHANGED: &str = "PASSWORD_CHANGED";
const EMAIL_CHANGED: &str = "EMAIL_CHANGED";

/// Caps and retentions (`processors/state.py` holds their values and reasons).
#[derive(Clone, Copy)]
struct UpdateLimits {
    purchases_cap: usize,
    geo_cap: usize,
    devices_cap: usize,
    tokens_cap: usize,
    holdings_cap: usize,
    wash_cap: usize,
    applied_cap: usize,
    auth_cap: usize,
    resales_cap: usize,
    login_window_ms: i128, // the failed logins counted before a successful one
    slack_ms: i128,
    prune_every_ms: i128,
    purchase_retention_ms: i128,
    geo_retention_ms: i128,
    auth_retention_ms: i128,
    device_retention_ms: i128,
    token_retention_ms: i128,
}

/// The wallet updates under `processors/state.py`'s limits.
#[pyclass(module = "processors._native", frozen)]
pub struct WalletUpdates {
    lim: UpdateLimits,
    purchase_fact: Py<PyType>,
    geo_point: Py<PyType>,
    holding: Py<PyType>,
    resale_fact: Py<PyType>,
    auth_kinds: Vec<(String, AuthKind)>, // each kind's text once (checked when built)
    tuple_new: ffi::newfunc, // tuple's tp_new, which `tuple.__new__(cls, values)` calls
    pub(crate) slots: Slots, // processors.state.WalletState's fields
}

#[pymethods]
impl WalletUpdates {
    #[new]
    #[pyo3(signature = (*, purchases_cap, geo_cap, devices_cap, tokens_cap, holdings_cap,
                        wash_cap, applied_cap, auth_cap, resales_cap, login_window_ms, slack_ms,
                        prune_every_ms, purchase_retention_ms, geo_retention_ms,
                        auth_retention_ms, device_retention_ms, token_retention_ms,
                        failed_login_kinds, mfa_failed_kinds, login_ok_kinds, order_fields,
                        transfer_fields, purchase_fact, geo_point, holding, resale_fact,
                        wallet_state))]
    #[allow(clippy::too_many_arguments)]
    fn new(purchases_cap: usize, geo_cap: usize, devices_cap: usize, tokens_cap: usize,
           holdings_cap: usize, wash_cap: usize, applied_cap: usize, auth_cap: usize,
           resales_cap: usize, login_window_ms: i64, slack_ms: i64, prune_every_ms: i64,
           purchase_retention_ms: i64, geo_retention_ms: i64, auth_retention_ms: i64,
           device_retention_ms: i64, token_retention_ms: i64,
           failed_login_kinds: HashSet<String>, mfa_failed_kinds: HashSet<String>,
           login_ok_kinds: HashSet<String>, order_fields: Vec<String>,
           transfer_fields: Vec<String>, purchase_fact: Bound<'_, PyType>,
           geo_point: Bound<'_, PyType>, holding: Bound<'_, PyType>,
           resale_fact: Bound<'_, PyType>, wallet_state: Bound<'_, PyType>)
           -> PyResult<Self> {
        let py = purchase_fact.py();
        let tuple = py.get_type::<PyTuple>();
        let mut layouts = vec![("Order", order_fields, &ORDER_FIELDS[..]),
                               ("Transfer", transfer_fields, &TRANSFER_FIELDS[..])];
        for (name, cls, want) in [("PurchaseFact", &purchase_fact, &PURCHASE_FACT_FIELDS[..]),
                                  ("GeoPoint", &geo_point, &GEO_POINT_FIELDS[..]),
                                  ("Holding", &holding, &HOLDING_FIELDS[..]),
                                  ("ResaleFact", &resale_fact, &RESALE_FACT_FIELDS[..])] {
            if !cls.is_subclass(&tuple)? {
                return Err(PyValueError::new_err(format!("{name} must be a NamedTuple class")));
            }
            layouts.push((name, cls.getattr(intern!(py, "_fields"))?.extract()?, want));
        }
        for (name, got, want) in layouts {
            if got.iter().map(String::as_str).ne(want.iter().copied()) {
                return Err(PyValueError::new_err(format!(
                    "{name} fields {got:?}: the native update expects {want:?}")));
            }
        }
        // Python tests the kinds in turn (failed login, MFA failure, login, password, email):
        // with no text in two of them, one lookup gives the same answer.
        let mut auth_kinds: Vec<(String, AuthKind)> = Vec::new();
        for (kinds, kind) in [(failed_login_kinds, AuthKind::FailedLogin),
                              (mfa_failed_kinds, AuthKind::MfaFailed),
                              (login_ok_kinds, AuthKind::LoginOk),
                              (HashSet::from([PASSWORD_CHANGED.to_owned()]), AuthKind::PasswordChanged),
                              (HashSet::from([EMAIL_CHANGED.to_owned()]), AuthKind::EmailChanged)] {
            for text in kinds {
                if auth_kinds.iter().any(|(known, _)| *known == text) {
                    return Err(PyValueError::new_err(format!(
                        "auth kind {text:?} is in two of the kinds the update tells apart")));
                }
                auth_kinds.push((text, kind));
            }
        }
        let i = i128::from;
        Ok(WalletUpdates {
            lim: UpdateLimits {
                purchases_cap, geo_cap, devices_cap, tokens_cap, holdings_cap, wash_cap,
                applied_cap, auth_cap, resales_cap, login_window_ms: i(login_window_ms),
                slack_ms: i(slack_ms), prune_every_ms: i(prune_every_ms),
                purchase_retention_ms: i(purchase_retention_ms),
                geo_retention_ms: i(geo_retention_ms), auth_retention_ms: i(auth_retention_ms),
                device_retention_ms: i(device_retention_ms),
                token_retention_ms: i(token_retention_ms),
            },
            purchase_fact: purchase_fact.unbind(),
            geo_point: geo_point.unbind(),
            holding: holding.unbind(),
            resale_fact: resale_fact.unbind(),
            auth_kinds,
            tuple_new: tuple_new()?,
            slots: Slots::new(&wallet_state)?,
        })
    }

    /// `processors.apply.apply_order`: order `o` (an admitted `Order`) into `wallet`, its
    /// purchase-stream mark advanced at most to `ingested_ms + max_future_skew_ms`; False for
    /// a redelivery (nothing changed).
    pub(crate) fn apply_order(&self, o: &Bound<'_, PyTuple>, wallet: &Bound<'_, PyAny>,
                   max_future_skew_ms: i64) -> PyResult<bool> {
        let py = o.py();
        let lim = &self.lim;
        let item = |at: usize| o.get_item(at);
        let ts_obj = item(order::TS)?;
        let ts = ts_of(&ts_obj)?;
        if !self.slots.get(wallet, field::ADDRESS)?.is_truthy()? {
            self.slots.set(wallet, field::ADDRESS, item(order::WALLET)?)?;
        }
        if !self.first_time(wallet, &item(order::PURCHASE_ID)?)? {
            return Ok(false);
        }
        let (lat, lon, country) = (item(order::LAT)?, item(order::LON)?, item(order::COUNTRY)?);
        let device = item(order::DEVICE)?;
        let fact = self.make(py, &self.purchase_fact, [
            ts_obj.clone(), item(order::SHOW_ID)?, item(order::AMOUNT)?, item(order::QUANTITY)?,
            item(order::PAYMENT_METHOD)?, item(order::CARD)?, lat.clone(), lon.clone(),
            country.clone(), item(order::IP)?, device.clone(), item(order::CHANNEL)?])?;
        insert_row(&self.slots.list(wallet, field::PURCHASES)?, fact, ts, lim.purchases_cap)?;
        let total = self.slots.get(wallet, field::PURCHASES_TOTAL)?;
        self.slots.set(wallet, field::PURCHASES_TOTAL, total.add(1)?)?;
        let amount = self.slots.get(wallet, field::AMOUNT_TOTAL_MINOR)?;
        self.slots.set(wallet, field::AMOUNT_TOTAL_MINOR, amount.add(item(order::AMOUNT)?)?)?;
        let last = self.slots.get(wallet, field::LAST_PURCHASE_MS)?;
        if !last.is_truthy()? || ts_of(&last)? < ts {
            self.slots.set(wallet, field::LAST_PURCHASE_MS, &ts_obj)?;
        }
        if !lat.is_none() && !lon.is_none() {
            if country.is_none() {
                // read_order takes all three from one Geo (country required)
                return Err(PyAssertionError::new_err("an order with lat and lon has a country"));
            }
            let point = self.make(py, &self.geo_point, [ts_obj.clone(), lat, lon, country])?;
            insert_row(&self.slots.list(wallet, field::GEO_POINTS)?, point, ts, lim.geo_cap)?;
        }
        if device.is_truthy()? {
            let devices = self.slots.dict(wallet, field::DEVICES)?;
            let seen = match devices.get_item(&device)? {
                Some(seen) if ts_of(&seen)? >= ts => seen, // max(seen, ts) keeps seen on a tie
                _ => ts_obj.clone(),
            };
            devices.set_item(&device, seen)?;
            cap_dict(&devices, lim.devices_cap, ts_of)?;
        }
        self.acquire_ticket(o, wallet, &ts_obj, ts)?;
        let ingested = opt_ts(&item(order::INGESTED_MS)?)?;
        let mark = match ingested {
            Some(at) if at + i128::from(max_future_skew_ms) < ts => {
                (at + i128::from(max_future_skew_ms)).into_pyobject(py)?.into_any()
            }
            _ => ts_obj,
        };
        self.observe(wallet, &mark, intern!(py, "purchase"))?;
        Ok(true)
    }

    /// `processors.apply.apply_auth_at`: auth `event` (a mapping with `event_id`, `kind` and
    /// maybe `geo`) at `ts` (its time in ms, admitted) into `wallet`. A failed login or MFA
    /// failure is a timestamp more; a login at or after the last one is the last one, with
    /// the failed logins in the `login_window_ms` before it counted; a password or email
    /// change keeps the latest time; a geo point is kept whatever the kind. Nothing changes
    /// for a redelivery.
    pub(crate) fn apply_auth(&self, event: &Bound<'_, PyAny>, ts: &Bound<'_, PyAny>,
                  wallet: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = event.py();
        let lim = &self.lim;
        if !self.first_time(wallet, &event.get_item(intern!(py, "event_id"))?)? {
            return Ok(());
        }
        let at = ts_of(ts)?;
        match self.auth_kind(&event.get_item(intern!(py, "kind"))?)? {
            AuthKind::FailedLogin => {
                insert_ts(&self.slots.list(wallet, field::FAILED_LOGINS)?, ts, at, lim.auth_cap)?;
            }
            AuthKind::MfaFailed => {
                insert_ts(&self.slots.list(wallet, field::MFA_FAILURES)?, ts, at, lim.auth_cap)?;
            }
            AuthKind::LoginOk => {
                let last = opt_ts(&self.slots.get(wallet, field::LOGIN_OK_MS)?)?;
                if last.is_none_or(|last| at >= last) {
                    self.slots.set(wallet, field::LOGIN_OK_MS, ts)?;
                    // count_ts_between(failed_logins, ts - window, ts)
                    let fails = self.slots.list(wallet, field::FAILED_LOGINS)?;
                    let n = fails.len();
                    let upto = bisect_right(&fails, at, 0, n, ts_of)?;
                    let before = bisect_right(&fails, at - lim.login_window_ms, 0, n, ts_of)?;
                    self.slots.set(wallet, field::FAILS_BEFORE_LOGIN_OK,
                                   upto as i64 - before as i64)?;
                }
            }
            AuthKind::PasswordChanged => latest(&self.slots, wallet, field::PASSWORD_CHANGED_MS, ts, at)?,
            AuthKind::EmailChanged => latest(&self.slots, wallet, field::EMAIL_CHANGED_MS, ts, at)?,
            AuthKind::Other => {}
        }
        if let Some(geo) = get(event, intern!(py, "geo"))? {
            if geo.is_truthy()? {
                let point = self.make(py, &self.geo_point, [
                    ts.clone(), geo.get_item(intern!(py, "lat"))?,
                    geo.get_item(intern!(py, "lon"))?, geo.get_item(intern!(py, "country"))?])?;
                insert_row(&self.slots.list(wallet, field::GEO_POINTS)?, point, at, lim.geo_cap)?;
            }
        }
        self.observe(wallet, ts, intern!(py, "auth"))
    }

    /// `processors.apply.apply_read_transfer`: chain transfer `t` (a `Transfer`, admitted)
    /// on the side(s) of it that `wallet` is on, by `wallet.address` (a self-transfer is
    /// received, then sent). Nothing changes for a redelivery.
    pub(crate) fn apply_transfer(&self, t: &Bound<'_, PyTuple>, wallet: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = t.py();
        if !self.first_time(wallet, &t.get_item(transfer::RECORD_ID)?)? {
            return Ok(());
        }
        let (ts_obj, key, kind) =
            (t.get_item(transfer::TS)?, t.get_item(transfer::KEY)?, t.get_item(transfer::KIND)?);
        let ts = ts_of(&ts_obj)?;
        if t.get_item(transfer::RECEIVER)?.eq(self.slots.get(wallet, field::ADDRESS)?)? {
            self.receive_token(wallet, &key, &kind, &ts_obj, ts)?;
        }
        if t.get_item(transfer::SENDER)?.eq(self.slots.get(wallet, field::ADDRESS)?)? {
            self.send_token(wallet, &key, &kind, &ts_obj, ts)?;
        }
        self.observe(wallet, &ts_obj, intern!(py, "transfer"))
    }

    /// `_comes_back`: a token the wallet sent away returns to it at `ts` (what a purchase and
    /// a received transfer ask; exposed for the tests).
    fn comes_back(&self, wallet: &Bound<'_, PyAny>, key: &Bound<'_, PyAny>, ts: i64) -> PyResult<bool> {
        comes_back(&self.slots, wallet, &self.slots.dict(wallet, field::HOLDINGS)?, key, i128::from(ts))
    }

    /// `WalletState.first_time`: remember `record_id`; False when it was applied already.
    fn first_time(&self, wallet: &Bound<'_, PyAny>, record_id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let applied = self.slots.list(wallet, field::APPLIED)?;
        if applied.contains(record_id)? {
            return Ok(false);
        }
        applied.append(record_id)?;
        if applied.len() > self.lim.applied_cap {
            applied.del_item(0)?;
        }
        Ok(true)
    }

    /// `WalletState.observe`: advance the watermark, `stream`'s mark and the first-seen time
    /// to `ts_ms`; prune when the watermark moved `prune_every_ms` past the last prune.
    fn observe(&self, wallet: &Bound<'_, PyAny>, ts_ms: &Bound<'_, PyAny>,
               stream: &Bound<'_, PyString>) -> PyResult<()> {
        let ts = ts_of(ts_ms)?;
        let mut watermark = ts_of(&self.slots.get(wallet, field::WATERMARK_MS)?)?;
        if ts > watermark {
            self.slots.set(wallet, field::WATERMARK_MS, ts_ms)?;
            watermark = ts;
        }
        let marks = self.slots.dict(wallet, field::MARKS)?;
        let mark = match marks.get_item(stream)? {
            Some(mark) => ts_of(&mark)?,
            None => 0,
        };
        if ts > mark {
            marks.set_item(stream, ts_ms)?;
        }
        let first_seen = opt_ts(&self.slots.get(wallet, field::FIRST_SEEN_MS)?)?;
        if first_seen.is_none_or(|first| ts < first) {
            self.slots.set(wallet, field::FIRST_SEEN_MS, ts_ms)?;
        }
        let pruned = ts_of(&self.slots.get(wallet, field::PRUNED_MS)?)?;
        if watermark - pruned >= self.lim.prune_every_ms {
            self.prune(wallet)?;
        }
        Ok(())
    }

    /// `WalletState.prune`: expire rows by the slowest stream's mark (the watermark when there
    /// is none); holdings only by their cap.
    fn prune(&self, wallet: &Bound<'_, PyAny>) -> PyResult<()> {
        let lim = &self.lim;
        let marks = self.slots.dict(wallet, field::MARKS)?;
        let wm = if marks.is_empty() {
            ts_of(&self.slots.get(wallet, field::WATERMARK_MS)?)?
        } else {
            let mut low: Option<i128> = None;
            for mark in marks.values() {
                let mark = ts_of(&mark)?;
                if low.is_none_or(|low| mark < low) {
                    low = Some(mark);
                }
            }
            low.expect("marks is not empty")
        };
        let cutoff = |retention: i128| wm - retention - lim.slack_ms;
        for (name, retention) in [(field::PURCHASES, lim.purchase_retention_ms),
                                  (field::GEO_POINTS, lim.geo_retention_ms)] {
            drop_until(&self.slots.list(wallet, name)?, cutoff(retention), row_ts, true)?;
        }
        for name in [field::FAILED_LOGINS, field::MFA_FAILURES] {
            drop_until(&self.slots.list(wallet, name)?, cutoff(lim.auth_retention_ms), ts_of, false)?;
        }
        drop_until(&self.slots.list(wallet, field::RESALES)?, cutoff(lim.token_retention_ms),
                   row_ts, true)?;
        drop_until(&self.slots.list(wallet, field::WASH_CYCLES)?, cutoff(lim.token_retention_ms),
                   ts_of, false)?;
        for (name, retention, cap) in [
            (field::DEVICES, lim.device_retention_ms, lim.devices_cap),
            (field::MINTS, lim.token_retention_ms, lim.tokens_cap),
            (field::SENT, lim.token_retention_ms, lim.tokens_cap),
        ] {
            let d = self.slots.dict(wallet, name)?;
            if !d.is_empty() {
                prune_dict(&d, cutoff(retention), cap)?;
            }
        }
        let holdings = self.slots.dict(wallet, field::HOLDINGS)?;
        if holdings.len() > lim.holdings_cap {
            cap_dict(&holdings, lim.holdings_cap, row_ts)?; // by acquired_ms, a Holding's first
        }
        self.slots.set(wallet, field::PRUNED_MS, i64::try_from(wm)?)?; // a mark: within i64
        Ok(())
    }
}

impl WalletUpdates {
    /// `_acquire_ticket`: the order's ticket is held from its time at its unit price (a wash
    /// cycle when it comes back), and minted then when bought on the primary market.
    fn acquire_ticket(&self, o: &Bound<'_, PyTuple>, wallet: &Bound<'_, PyAny>,
                      ts_obj: &Bound<'_, PyAny>, ts: i128) -> PyResult<()> {
        let py = o.py();
        let key = o.get_item(order::TICKET_ID)?;
        let holdings = self.slots.dict(wallet, field::HOLDINGS)?;
        if comes_back(&self.slots, wallet, &holdings, &key, ts)? {
            insert_ts(&self.slots.list(wallet, field::WASH_CYCLES)?, ts_obj, ts, self.lim.wash_cap)?;
        }
        let holding = self.make(py, &self.holding, [ts_obj.clone(), o.get_item(order::UNIT)?])?;
        holdings.set_item(&key, holding)?;
        if o.get_item(order::CHANNEL)?.eq(intern!(py, "PRIMARY"))? {
            let mints = self.slots.dict(wallet, field::MINTS)?;
            mints.set_item(&key, ts_obj)?;
            cap_dict(&mints, self.lim.tokens_cap, ts_of)?;
        }
        Ok(())
    }

    /// What an auth event of `kind` records (Python's `kind in FAILED_LOGIN_KINDS` ... `kind
    /// == "EMAIL_CHANGED"`): a str by its text; anything else hashed, as a set lookup hashes
    /// it (an unhashable kind raises TypeError), and no kind.
    fn auth_kind(&self, kind: &Bound<'_, PyAny>) -> PyResult<AuthKind> {
        let Ok(kind) = kind.downcast::<PyString>() else {
            kind.hash()?;
            return Ok(AuthKind::Other);
        };
        let kind = text(kind.as_any())?;
        Ok(self.auth_kinds.iter()
            .find(|(known, _)| known.as_bytes() == &kind[..])
            .map_or(AuthKind::Other, |(_, what)| *what))
    }

    /// `_receive_token`: the token is held from `ts` (an earlier holding kept, a later one
    /// moved back to `ts` with its price), a wash cycle when it comes back; minted at the
    /// earliest MINT seen.
    fn receive_token(&self, wallet: &Bound<'_, PyAny>, key: &Bound<'_, PyAny>,
                     kind: &Bound<'_, PyAny>, ts_obj: &Bound<'_, PyAny>, ts: i128) -> PyResult<()> {
        let py = wallet.py();
        let holdings = self.slots.dict(wallet, field::HOLDINGS)?;
        let minted = kind.eq(intern!(py, "MINT"))?;
        if !minted && comes_back(&self.slots, wallet, &holdings, key, ts)? {
            insert_ts(&self.slots.list(wallet, field::WASH_CYCLES)?, ts_obj, ts, self.lim.wash_cap)?;
        }
        let price = match holdings.get_item(key)? {
            Some(held) if !held.is_none() => {
                // held.acquired_ms > ts: moved back, its price kept
                (row_ts(&held)? > ts).then(|| held.downcast::<PyTuple>()?.get_item(1)).transpose()?
            }
            _ => Some(int_obj(py, -1)?), // not held: price unknown
        };
        if let Some(price) = price {
            holdings.set_item(key, self.make(py, &self.holding, [ts_obj.clone(), price])?)?;
        }
        if minted {
            let mints = self.slots.dict(wallet, field::MINTS)?;
            let first = match mints.get_item(key)? {
                Some(at) if ts_of(&at)? <= ts => at, // min(at, ts) keeps `at` on a tie
                _ => ts_obj.clone(),
            };
            mints.set_item(key, first)?;
            cap_dict(&mints, self.lim.tokens_cap, ts_of)?;
        }
        Ok(())
    }

    /// `_send_token`: the token is no longer held; unless burnt, a resale (how long it was
    /// held, and mint to first SALE, -1 when unknown) and the latest time it was sent.
    fn send_token(&self, wallet: &Bound<'_, PyAny>, key: &Bound<'_, PyAny>,
                  kind: &Bound<'_, PyAny>, ts_obj: &Bound<'_, PyAny>, ts: i128) -> PyResult<()> {
        let py = wallet.py();
        let holdings = self.slots.dict(wallet, field::HOLDINGS)?;
        let held = holdings.get_item(key)?; // holdings.pop(key, None)
        if held.is_some() {
            holdings.del_item(key)?;
        }
        if kind.eq(intern!(py, "BURN"))? {
            return Ok(());
        }
        let hold_ms = match held {
            Some(held) if !held.is_none() => {
                let acquired = row_ts(&held)?;
                if acquired <= ts { ts - acquired } else { -1 }
            }
            _ => -1,
        };
        let mints = self.slots.dict(wallet, field::MINTS)?;
        let mut flip_ms = -1;
        if kind.eq(intern!(py, "SALE"))? {
            if let Some(minted) = mints.get_item(key)?.filter(|at| !at.is_none()) {
                let minted = ts_of(&minted)?;
                if minted <= ts {
                    flip_ms = ts - minted;
                    mints.del_item(key)?; // only the first resale after the mint counts
                }
            }
        }
        let fact = self.make(py, &self.resale_fact,
                             [ts_obj.clone(), int_obj(py, hold_ms)?, int_obj(py, flip_ms)?])?;
        insert_row(&self.slots.list(wallet, field::RESALES)?, fact, ts, self.lim.resales_cap)?;
        let sent = self.slots.dict(wallet, field::SENT)?;
        let last = match sent.get_item(key)? {
            Some(at) if ts_of(&at)? >= ts => at, // max(at, ts) keeps `at` on a tie
            _ => ts_obj.clone(),
        };
        sent.set_item(key, last)?;
        cap_dict(&sent, self.lim.tokens_cap, ts_of)
    }

    /// An instance of NamedTuple class `cls` holding `values` (`tuple.__new__(cls, values)`).
    fn make<'py, const N: usize>(&self, py: Python<'py>, cls: &Py<PyType>,
                                 values: [Bound<'py, PyAny>; N]) -> PyResult<Bound<'py, PyAny>> {
        let args = PyTuple::new(py, [PyTuple::new(py, values)?])?;
        // SAFETY: tuple's tp_new with a subclass of tuple (checked when built), a tuple of
        // args and no keywords, as `tuple.__new__(cls, values)` calls it; a new reference or
        // NULL with an exception set.
        unsafe {
            let made = (self.tuple_new)(cls.as_ptr().cast(), args.as_ptr(), std::ptr::null_mut());
            Bound::from_owned_ptr_or_err(py, made)
        }
    }
}

/// tuple's `tp_new` slot.
fn tuple_new() -> PyResult<ffi::newfunc> {
    // SAFETY: PyType_GetSlot of a static type (allowed from 3.10) gives the slot or NULL.
    let slot = unsafe { ffi::PyType_GetSlot(std::ptr::addr_of_mut!(ffi::PyTuple_Type), ffi::Py_tp_new) };
    if slot.is_null() {
        return Err(PyValueError::new_err("tuple has no tp_new"));
    }
    // SAFETY: the Py_tp_new slot holds a newfunc.
    Ok(unsafe { std::mem::transmute::<*mut std::ffi::c_void, ffi::newfunc>(slot) })
}

/// A Python int of `value`.
fn int_obj(py: Python<'_>, value: i128) -> PyResult<Bound<'_, PyAny>> {
    Ok(match i64::try_from(value) {
        Ok(small) => small.into_pyobject(py)?.into_any(),
        Err(_) => value.into_pyobject(py)?.into_any(),
    })
}

/// `mapping.get(key)`, None when absent: a dict's item read directly, any other mapping's
/// `get` called.
fn get<'py>(mapping: &Bound<'py, PyAny>, key: &Bound<'py, PyString>)
            -> PyResult<Option<Bound<'py, PyAny>>> {
    if let Ok(d) = mapping.downcast_exact::<PyDict>() {
        return d.get_item(key);
    }
    let value = mapping.call_method1(intern!(mapping.py(), "get"), (key,))?;
    Ok((!value.is_none()).then_some(value))
}

/// `setattr(wallet, name, max(getattr(wallet, name) or ts, ts))`: the latest time, the one
/// held kept on a tie.
fn latest(slots: &Slots, wallet: &Bound<'_, PyAny>, name: usize, ts_obj: &Bound<'_, PyAny>,
          ts: i128) -> PyResult<()> {
    let held = slots.get(wallet, name)?;
    if !held.is_truthy()? || ts_of(&held)? < ts {
        slots.set(wallet, name, ts_obj)?;
    }
    Ok(())
}

/// `_comes_back`: a token the wallet sent away returns to it (a wash-trading cycle such as
/// A→B→C→A): sent at or before `ts`, after the wallet last acquired it. Counted once: the
/// purchase and its chain transfer both record the holding.
fn comes_back(slots: &Slots, wallet: &Bound<'_, PyAny>, holdings: &Bound<'_, PyDict>, key: &Bound<'_, PyAny>,
              ts: i128) -> PyResult<bool> {
    let sent = slots.dict(wallet, field::SENT)?;
    let sent_ms = match sent.get_item(key)? {
        Some(at) if !at.is_none() => ts_of(&at)?,
        _ => return Ok(false),
    };
    if sent_ms > ts {
        return Ok(false);
    }
    match holdings.get_item(key)? {
        Some(held) if !held.is_none() => Ok(row_ts(&held)? < sent_ms),
        _ => Ok(true),
    }
}

/// `processors.ring.insert_row`: `row` (at `ts`) after every row at its time; the oldest go
/// over `cap`.
fn insert_row(ring: &Bound<'_, PyList>, row: Bound<'_, PyAny>, ts: i128, cap: usize) -> PyResult<()> {
    let n = ring.len();
    if n == 0 || ts >= row_ts(&ring.get_item(n - 1)?)? {
        ring.append(row)?;
    } else {
        ring.insert(bisect_right(ring, ts, 0, n, row_ts)?, row)?;
    }
    cap_list(ring, cap)
}

/// `processors.ring.insert_ts`: a bare timestamp, after every equal one.
fn insert_ts(ring: &Bound<'_, PyList>, ts_obj: &Bound<'_, PyAny>, ts: i128, cap: usize) -> PyResult<()> {
    ring.insert(bisect_right(ring, ts, 0, ring.len(), ts_of)?, ts_obj)?;
    cap_list(ring, cap)
}

/// `del ring[: len(ring) - cap]` over `cap`.
fn cap_list(ring: &Bound<'_, PyList>, cap: usize) -> PyResult<()> {
    let n = ring.len();
    if n > cap {
        ring.del_slice(0, n - cap)?;
    }
    Ok(())
}

/// `processors.ring.drop_rows_until` (`rows`: only when the first row is due) and
/// `drop_ts_until`: drop the leading items at or before `cutoff` by bisection. An empty ring
/// is skipped (as `prune` skips it).
fn drop_until(ring: &Bound<'_, PyList>, cutoff: i128,
              key: impl Fn(&Bound<'_, PyAny>) -> PyResult<i128>, rows: bool) -> PyResult<()> {
    let n = ring.len();
    if n == 0 || (rows && key(&ring.get_item(0)?)? > cutoff) {
        return Ok(());
    }
    let end = bisect_right(ring, cutoff, 0, n, &key)?;
    if end > 0 {
        ring.del_slice(0, end)?;
    }
    Ok(())
}

/// `prune_dict` of int times: drop the entries at or before `cutoff`, then cap.
fn prune_dict(d: &Bound<'_, PyDict>, cutoff: i128, cap: usize) -> PyResult<()> {
    let mut stale = Vec::new();
    for (k, v) in d.iter() {
        if ts_of(&v)? <= cutoff {
            stale.push(k);
        }
    }
    for k in stale {
        d.del_item(k)?;
    }
    cap_dict(d, cap, ts_of)
}

/// `processors.ring.cap_dict`: over `cap`, drop the entries first in `sorted` order of
/// (`ts_of(value)`, key) down to three quarters of `cap`; the others keep their order.
fn cap_dict(d: &Bound<'_, PyDict>, cap: usize,
            ts_of: impl Fn(&Bound<'_, PyAny>) -> PyResult<i128>) -> PyResult<()> {
    let n = d.len();
    if n <= cap {
        return Ok(());
    }
    let keep = cap - cap / 4;
    let entries = d.iter().map(|(k, v)| Ok((ts_of(&v)?, k))).collect::<PyResult<Vec<_>>>()?;
    let mut order = entries.iter()
        .map(|(ts, k)| Ok((*ts, text(k)?, k)))
        .collect::<PyResult<Vec<_>>>()?;
    order.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    for (_, _, k) in &order[..n - keep] {
        d.del_item(*k)?;
    }
    Ok(())
}
