//! Chain transfers and auth events, from the record to the wallet state: reading a transfer
//! (`TransferReader.read`, `processors.records.read_transfer`), admitting an event to a wallet
//! (`EventAdmission.check_lateness`, `processors.apply.check_lateness`) and applying it
//! (`WalletUpdates.apply_transfer` / `apply_auth`, `updates.rs`), and filing the wallet in the
//! expiry wheel by the expiry rules (`ExpiryWheel` and `ExpiryRules`: `processors.expiry`'s
//! `ExpiryWheel`, `is_summary`, `worth_keeping` and `due_ms`). One call does all of an event:
//! `EventAdmission.transfer` / `auth` for the live worker's one wallet
//! (`processors.apply.apply_transfer` / `apply_auth`), `transfer_into` / `auth_into` for
//! `processors.features.FeatureEngine`'s dict of wallets and wheel; they share the reading, the
//! check and the applies.
//!
//! The results are the ones the Python they replaced gave (`tests/support/events_reference.py`
//! keeps it; `tests/unit/test_native_events.py` compares, and `tests/unit/test_engine_glue.py`
//! runs the engine against its former glue), errors included, raised in the same order: a
//! record's fields are read in Python's order (`KeyError` for the first missing one, the
//! timestamp's own error from `to_ms`, `AssertionError` for a None time), a late event raises
//! `LateEventError` with its message before anything changes (both sides of a transfer are
//! checked before either is applied), and the rare wallet idle long enough to be deleted by
//! expiry is asked of `processors.expiry.deleted_by` itself, then forgotten in place
//! (`WalletState.forget`), as `check_lateness` did.
//!
//! Assumed of the inputs, as in `updates.rs`: event times, marks and watermarks are ints
//! within i64 (anything else raises TypeError where Python might have gone on).

use std::fmt::Write;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyList, PySet, PyString, PyTuple, PyType};

use crate::order::{new_tuple, tuple_new, Clock, Record};
use crate::slots::{field, Slots};
use crate::updates::{WalletUpdates, TRANSFER_FIELDS};
use crate::wallet::{row_ts, ts_of};

/// The rules of whole-wallet expiry every event asks (`processors.expiry`'s `is_summary`,
/// `worth_keeping` and `due_ms`; its `WALLET_IDLE_MS`, `TOKEN_IDLE_MS` and
/// `SUMMARY_APPLIED_CAP`). Truth is Python's: each field as `bool` takes it.
#[pyclass(module = "processors._native", frozen)]
pub struct ExpiryRules {
    wallet_idle_ms: i128,
    token_idle_ms: i128,
    summary_applied_cap: usize,
    slots: Slots, // processors.state.WalletState's fields
}

#[pymethods]
impl ExpiryRules {
    #[new]
    #[pyo3(signature = (*, wallet_idle_ms, token_idle_ms, summary_applied_cap, wallet_state))]
    fn new(wallet_idle_ms: i64, token_idle_ms: i64, summary_applied_cap: usize,
           wallet_state: &Bound<'_, PyType>) -> PyResult<Self> {
        Ok(ExpiryRules { wallet_idle_ms: i128::from(wallet_idle_ms),
                         token_idle_ms: i128::from(token_idle_ms), summary_applied_cap,
                         slots: Slots::new(wallet_state)? })
    }

    /// `is_summary`: nothing left that summarising would drop (the rings empty, no more than
    /// `summary_applied_cap` record ids).
    fn is_summary(&self, wallet: &Bound<'_, PyAny>) -> PyResult<bool> {
        for ring in [field::PURCHASES, field::GEO_POINTS, field::FAILED_LOGINS,
                     field::MFA_FAILURES] {
            if self.slots.get(wallet, ring)?.is_truthy()? {
                return Ok(false);
            }
        }
        Ok(self.slots.get(wallet, field::APPLIED)?.len()? <= self.summary_applied_cap)
    }

    /// `worth_keeping`: a summary that bought, holds, has token history or a fraud mark.
    fn worth_keeping(&self, summary: &Bound<'_, PyAny>) -> PyResult<bool> {
        for name in [field::PURCHASES_TOTAL, field::HOLDINGS, field::FRAUD_MARKS, field::DEVICES,
                     field::MINTS, field::SENT, field::RESALES, field::WASH_CYCLES] {
            if self.slots.get(summary, name)?.is_truthy()? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `due_ms`: the event time from which `expire` may next change `wallet` (None: never):
    /// none without a watermark; its idle time (`watermark_ms + wallet_idle_ms`) unless it is a
    /// summary worth keeping; then the later of that and its latest resale or wash cycle plus
    /// `token_idle_ms` (None without either).
    fn due_ms(&self, wallet: &Bound<'_, PyAny>) -> PyResult<Option<i64>> {
        self.due(wallet)?.map(i64::try_from).transpose().map_err(Into::into)
    }
}

impl ExpiryRules {
    fn due(&self, wallet: &Bound<'_, PyAny>) -> PyResult<Option<i128>> {
        let watermark = ts_of(&self.slots.get(wallet, field::WATERMARK_MS)?)?;
        if watermark == 0 {
            return Ok(None);
        }
        let idle = watermark + self.wallet_idle_ms;
        if !self.is_summary(wallet)? || !self.worth_keeping(wallet)? {
            return Ok(Some(idle));
        }
        let mut latest: Option<i128> = None;
        for resale in self.slots.get(wallet, field::RESALES)?.try_iter()? {
            latest = latest.max(Some(row_ts(&resale?)?));
        }
        for ts in self.slots.get(wallet, field::WASH_CYCLES)?.try_iter()? {
            latest = latest.max(Some(ts_of(&ts?)?));
        }
        Ok(latest.map(|at| (at + self.token_idle_ms).max(idle)))
    }
}

/// Keys filed by the bucket (event time) from which they may next expire
/// (`processors.expiry.ExpiryWheel`): a dict of bucket number to the set of keys filed in it.
#[pyclass(module = "processors._native", frozen, subclass)]
pub struct ExpiryWheel {
    #[pyo3(get)]
    bucket_ms: i64,
    buckets: Py<PyDict>, // bucket (due // bucket_ms) -> set of keys
}

#[pymethods]
impl ExpiryWheel {
    #[new]
    #[pyo3(signature = (bucket_ms))]
    fn new(py: Python<'_>, bucket_ms: i64) -> PyResult<Self> {
        if bucket_ms <= 0 {
            return Err(pyo3::exceptions::PyValueError::new_err("bucket_ms must be positive"));
        }
        Ok(ExpiryWheel { bucket_ms, buckets: PyDict::new(py).unbind() })
    }

    /// The buckets, as they are (bucket number -> set of keys).
    #[getter]
    fn buckets<'py>(&self, py: Python<'py>) -> Bound<'py, PyDict> {
        self.buckets.bind(py).clone()
    }

    /// File `key` in the bucket of `due` (nothing when None: it never expires).
    #[pyo3(signature = (key, due))]
    fn file(&self, key: &Bound<'_, PyAny>, due: Option<i64>) -> PyResult<()> {
        match due {
            Some(due) => self.file_at(key, i128::from(due)),
            None => Ok(()),
        }
    }

    /// The keys filed in buckets that lie wholly at or before `now_ms`, bucket by bucket in
    /// time order, each bucket's in its set's order.
    fn pop_due<'py>(&self, py: Python<'py>, now_ms: i64) -> PyResult<Bound<'py, PyList>> {
        let buckets = self.buckets.bind(py);
        let width = i128::from(self.bucket_ms);
        let mut ready = Vec::new();
        for bucket in buckets.keys() {
            let b = ts_of(&bucket)?;
            if (b + 1) * width <= i128::from(now_ms) + 1 {
                ready.push((b, bucket));
            }
        }
        ready.sort_by_key(|(b, _)| *b);
        let keys = PyList::empty(py);
        for (_, bucket) in ready {
            for key in buckets.get_item(&bucket)?.expect("a bucket just listed").try_iter()? {
                keys.append(key?)?;
            }
            buckets.del_item(bucket)?;
        }
        Ok(keys)
    }

    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.buckets.bind(py).values().iter().map(|keys| keys.len()).sum()
    }
}

impl ExpiryWheel {
    fn file_at(&self, key: &Bound<'_, PyAny>, due: i128) -> PyResult<()> {
        let py = key.py();
        let bucket = i64::try_from(due.div_euclid(i128::from(self.bucket_ms)))?;
        let buckets = self.buckets.bind(py);
        match buckets.get_item(bucket)? {
            Some(keys) => keys.downcast::<PySet>()?.add(key),
            None => buckets.set_item(bucket, PySet::new(py, [key])?),
        }
    }
}

/// The reader of chain transfer records into `processors.records.Transfer`s.
#[pyclass(module = "processors._native", frozen)]
pub struct TransferReader {
    transfer: Py<PyType>, // processors.records.Transfer
    clock: Clock,         // block_time (and an auth event's occurred_at, for EventAdmission)
    format: PyObject,     // builtins.format: an f-string's field that is not a str or an int
    tuple_new: pyo3::ffi::newfunc,
}

#[pymethods]
impl TransferReader {
    #[new]
    #[pyo3(signature = (*, transfer, transfer_fields, datetime, utc, epoch, to_ms))]
    fn new(transfer: Bound<'_, PyType>, transfer_fields: Vec<String>, datetime: Bound<'_, PyType>,
           utc: PyObject, epoch: PyObject, to_ms: PyObject) -> PyResult<Self> {
        let py = transfer.py();
        if !transfer.is_subclass(&py.get_type::<PyTuple>())? {
            return Err(pyo3::exceptions::PyTypeError::new_err(
                "Transfer must be a NamedTuple (a tuple subclass)"));
        }
        if transfer_fields.iter().map(String::as_str).ne(TRANSFER_FIELDS.iter().copied()) {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "Transfer fields {transfer_fields:?}: the native reader expects {TRANSFER_FIELDS:?}")));
        }
        let format = py.import("builtins")?.getattr("format")?.unbind();
        Ok(TransferReader { transfer: transfer.unbind(), clock: Clock::new(datetime, utc, epoch, to_ms),
                            format, tuple_new: tuple_new()? })
    }

    /// `processors.records.read_transfer(t)`: `to_ms` of `block_time` (asserted not None), the
    /// sides lower-cased, the record id `f"{tx_hash}:{log_index}:{token_id}"`, the token key
    /// `f"{contract.lower()}:{token_id}"` and the kind.
    pub(crate) fn read<'py>(&self, t: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
        let py = t.py();
        let r = Record::new(t);
        let ts = self.clock.required_ms(&r.item(intern!(py, "block_time"))?)?;
        let token = r.item(intern!(py, "token_id"))?;
        let receiver = lower(&r.item(intern!(py, "to_address"))?)?;
        let sender = lower(&r.item(intern!(py, "from_address"))?)?;
        let tx_hash = r.item(intern!(py, "tx_hash"))?;
        let log_index = r.item(intern!(py, "log_index"))?;
        let record_id = self.joined([&tx_hash, &log_index, &token])?;
        let key = self.token_key(&r.item(intern!(py, "contract"))?, &token)?;
        let kind = r.item(intern!(py, "kind"))?;
        let values = PyTuple::new(py, [ts, receiver, sender, record_id, key, kind])?;
        new_tuple(self.tuple_new, self.transfer.bind(py), values)?.downcast_into::<PyTuple>()
            .map_err(Into::into)
    }

    /// `processors.records.token_key`: `f"{contract.lower()}:{token_id}"`.
    fn token_key<'py>(&self, contract: &Bound<'py, PyAny>, token_id: &Bound<'py, PyAny>)
                      -> PyResult<Bound<'py, PyAny>> {
        self.joined([&lower(contract)?, token_id])
    }
}

impl TransferReader {
    /// `":".join(format(part, "") for part in parts)`, what an f-string such as
    /// `f"{a}:{b}"` gives: a str as it is, an int's `str`, anything else through `format`;
    /// built here as UTF-8, joined by Python when a text is not (a lone surrogate).
    fn joined<'py, const N: usize>(&self, parts: [&Bound<'py, PyAny>; N])
                                   -> PyResult<Bound<'py, PyAny>> {
        let py = parts[0].py();
        let mut out = String::with_capacity(96);
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            if part.is_exact_instance_of::<PyInt>() {
                if let Ok(n) = part.extract::<i64>() {
                    write!(out, "{n}").expect("a String takes any text");
                    continue;
                }
            }
            let text = self.formatted(part)?;
            match text.downcast::<PyString>()?.to_str() {
                Ok(t) => out.push_str(t),
                Err(_) => {
                    let texts = parts.iter().map(|p| self.formatted(p)).collect::<PyResult<Vec<_>>>()?;
                    return intern!(py, ":").call_method1(intern!(py, "join"), (PyList::new(py, texts)?,));
                }
            }
        }
        Ok(PyString::new(py, &out).into_any())
    }

    /// `format(value, "")`: a str as it is, anything else through `format`.
    fn formatted<'py>(&self, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if value.is_exact_instance_of::<PyString>() {
            return Ok(value.clone());
        }
        self.format.bind(value.py()).call1((value,))
    }
}

/// `value.lower()`: an ASCII str lower-cased here (as Python lower-cases it; one already in
/// lower case as it is), anything else by its own `lower`.
fn lower<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if let Ok(s) = value.downcast_exact::<PyString>() {
        if let Ok(text) = s.to_str() {
            if text.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
                return Ok(value.clone());
            }
            if text.is_ascii() {
                return Ok(PyString::new(value.py(), &text.to_ascii_lowercase()).into_any());
            }
        }
    }
    value.call_method0(intern!(value.py(), "lower"))
}

/// Admitting an event to a wallet and applying it (see the module's documentation).
#[pyclass(module = "processors._native", frozen)]
pub struct EventAdmission {
    updates: Py<WalletUpdates>,     // processors.state.WALLET_UPDATES
    reader: Py<TransferReader>,     // processors.records.read_transfer's
    late_error: Py<PyType>,         // processors.apply.LateEventError
    rules: Py<ExpiryRules>,         // processors.expiry.RULES
    deleted_by: PyObject,           // processors.expiry.deleted_by
    wallet_state: Py<PyType>,       // processors.state.WalletState: a new wallet
    zero_address: Py<PyString>,     // a mint's sender, a burn's receiver
}

#[pymethods]
impl EventAdmission {
    #[new]
    #[pyo3(signature = (*, updates, reader, late_error, rules, deleted_by, wallet_state,
                        zero_address))]
    fn new(updates: Py<WalletUpdates>, reader: Py<TransferReader>, late_error: Bound<'_, PyType>,
           rules: Py<ExpiryRules>, deleted_by: PyObject, wallet_state: Bound<'_, PyType>,
           zero_address: Bound<'_, PyString>) -> Self {
        EventAdmission {
            updates, reader, late_error: late_error.unbind(), rules, deleted_by,
            wallet_state: wallet_state.unbind(), zero_address: zero_address.unbind(),
        }
    }

    /// `processors.apply.check_lateness`: admit an event of stream `kind` at `ts_ms` to
    /// `wallet`, or raise `LateEventError(kind, wallet.address, ts_ms, mark, lateness_ms)` when
    /// it is more than `lateness_ms` behind the stream's mark. First, a wallet idle for
    /// `WALLET_IDLE_MS` that `deleted_by(wallet, ts_ms)` says expiry deletes is forgotten.
    pub(crate) fn check_lateness(&self, kind: &Bound<'_, PyString>, ts_ms: &Bound<'_, PyAny>,
                                 wallet: &Bound<'_, PyAny>, lateness_ms: &Bound<'_, PyAny>)
                                 -> PyResult<()> {
        let py = wallet.py();
        let ts = ts_of(ts_ms)?;
        let watermark = ts_of(&self.slots().get(wallet, field::WATERMARK_MS)?)?;
        if watermark != 0 && ts - watermark >= self.rules.get().wallet_idle_ms
            && self.deleted_by.bind(py).call1((wallet, ts_ms))?.is_truthy()?
        {
            wallet.call_method0(intern!(py, "forget"))?;
        }
        let marks = self.slots().dict(wallet, field::MARKS)?;
        let Some(mark) = marks.get_item(kind)? else { return Ok(()) };
        let at = ts_of(&mark)?;
        if at != 0 && ts < at - ts_of(lateness_ms)? {
            let address = self.slots().get(wallet, field::ADDRESS)?;
            let late = self.late_error.bind(py).call1((kind, address, ts_ms, mark, lateness_ms))?;
            return Err(PyErr::from_value(late));
        }
        Ok(())
    }

    /// `processors.apply.apply_auth`: auth `event` (its `occurred_at` read by `to_ms`) admitted
    /// to `wallet` (its address, when empty, the event's wallet or "") and applied.
    fn auth(&self, event: &Bound<'_, PyAny>, wallet: &Bound<'_, PyAny>,
            lateness_ms: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = event.py();
        let r = Record::new(event);
        let ts = self.clock().required_ms(&r.item(intern!(py, "occurred_at"))?)?;
        if !self.slots().get(wallet, field::ADDRESS)?.is_truthy()? {
            let own = r.get(intern!(py, "wallet"))?;
            let own = if own.is_truthy()? { own } else { intern!(py, "").clone().into_any() };
            self.slots().set(wallet, field::ADDRESS, own)?;
        }
        self.admit_auth(event, &ts, wallet, lateness_ms)
    }

    /// `processors.apply.apply_transfer`: transfer record `transfer` read, admitted to `wallet`
    /// (its address, when empty, the receiver) and applied on the side(s) it is on.
    fn transfer(&self, transfer: &Bound<'_, PyAny>, wallet: &Bound<'_, PyAny>,
                lateness_ms: &Bound<'_, PyAny>) -> PyResult<()> {
        let t = self.reader.get().read(transfer)?;
        if !self.slots().get(wallet, field::ADDRESS)?.is_truthy()? {
            self.slots().set(wallet, field::ADDRESS, t.get_item(1)?)?;
        }
        self.admit_transfer(&t, std::slice::from_ref(wallet), lateness_ms)
    }

    /// `FeatureEngine._auth`: auth `event` into `wallets` (address -> state; a new wallet
    /// for a new address), admitted, applied and its wallet filed in `wheel`; its time, or
    /// None for an event without a wallet (nothing done).
    fn auth_into<'py>(&self, event: &Bound<'py, PyAny>, wallets: &Bound<'py, PyDict>,
                      lateness_ms: &Bound<'py, PyAny>, wheel: &Bound<'py, ExpiryWheel>)
                      -> PyResult<Option<Bound<'py, PyAny>>> {
        let py = event.py();
        let r = Record::new(event);
        let address = r.get(intern!(py, "wallet"))?;
        if !address.is_truthy()? {
            return Ok(None); // user-only auth events carry no wallet state
        }
        let wallet = self.wallet_in(wallets, &address)?;
        let ts = self.clock().required_ms(&r.item(intern!(py, "occurred_at"))?)?;
        self.admit_auth(event, &ts, &wallet, lateness_ms)?;
        self.file(&wallet, wheel)?;
        Ok(Some(ts))
    }

    /// `FeatureEngine._transfer`: transfer record `transfer` into `wallets` on the sides it
    /// has (none for zero to zero; one for a mint, a burn or a wallet to itself; else both in
    /// address order, both admitted before either is applied), each filed in `wheel`; its time.
    fn transfer_into<'py>(&self, transfer: &Bound<'py, PyAny>, wallets: &Bound<'py, PyDict>,
                          lateness_ms: &Bound<'py, PyAny>, wheel: &Bound<'py, ExpiryWheel>)
                          -> PyResult<Bound<'py, PyAny>> {
        let py = transfer.py();
        let t = self.reader.get().read(transfer)?;
        let (receiver, sender) = (t.get_item(1)?, t.get_item(2)?);
        let zero = self.zero_address.bind(py);
        let sides = if receiver.eq(&sender)? || sender.eq(zero)? || receiver.eq(zero)? {
            let side = if receiver.eq(zero)? { sender } else { receiver };
            if side.ne(zero)? { vec![side] } else { vec![] }
        } else if receiver.lt(&sender)? {
            vec![receiver, sender]
        } else {
            vec![sender, receiver]
        };
        let sides = sides.iter().map(|side| self.wallet_in(wallets, side)).collect::<PyResult<Vec<_>>>()?;
        self.admit_transfer(&t, &sides, lateness_ms)?;
        for wallet in &sides {
            self.file(wallet, wheel)?;
        }
        t.get_item(0)
    }

    /// `FeatureEngine._wallet`: the state of `address` in `wallets`, a new one
    /// (`WalletState(address=address)`) put there when it has none.
    pub(crate) fn wallet_in<'py>(&self, wallets: &Bound<'py, PyDict>, address: &Bound<'py, PyAny>)
                      -> PyResult<Bound<'py, PyAny>> {
        let py = wallets.py();
        if let Some(wallet) = wallets.get_item(address)? {
            if !wallet.is_none() {
                return Ok(wallet);
            }
        }
        let kwargs = PyDict::new(py);
        kwargs.set_item(intern!(py, "address"), address)?;
        let wallet = self.wallet_state.bind(py).call((), Some(&kwargs))?;
        wallets.set_item(address, &wallet)?;
        Ok(wallet)
    }

    /// `FeatureEngine._filed`: file `wallet` in `wheel` by its `due_ms`.
    pub(crate) fn file(&self, wallet: &Bound<'_, PyAny>, wheel: &Bound<'_, ExpiryWheel>) -> PyResult<()> {
        match self.rules.get().due(wallet)? {
            Some(due) => wheel.get().file_at(&self.slots().get(wallet, field::ADDRESS)?, due),
            None => Ok(()),
        }
    }
}

impl EventAdmission {
    /// WalletState's fields (`WALLET_UPDATES`' accessor).
    fn slots(&self) -> &Slots {
        &self.updates.get().slots
    }

    fn clock(&self) -> &Clock {
        &self.reader.get().clock
    }

    /// An auth event at `ts` admitted to `wallet` and applied.
    fn admit_auth(&self, event: &Bound<'_, PyAny>, ts: &Bound<'_, PyAny>, wallet: &Bound<'_, PyAny>,
                  lateness_ms: &Bound<'_, PyAny>) -> PyResult<()> {
        self.check_lateness(intern!(event.py(), "auth"), ts, wallet, lateness_ms)?;
        self.updates.get().apply_auth(event, ts, wallet)
    }

    /// Transfer `t` admitted to every one of `wallets`, then applied to each in turn: all or
    /// nothing when one is late.
    fn admit_transfer(&self, t: &Bound<'_, PyTuple>, wallets: &[Bound<'_, PyAny>],
                      lateness_ms: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = t.py();
        let ts = t.get_item(0)?;
        for wallet in wallets {
            self.check_lateness(intern!(py, "transfer"), &ts, wallet, lateness_ms)?;
        }
        for wallet in wallets {
            self.updates.get().apply_transfer(t, wallet)?;
        }
        Ok(())
    }
}
