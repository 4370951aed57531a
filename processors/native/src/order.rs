//! Reading a purchase record once: `OrderReader.read`, what `processors.records.read_order`
//! did in Python, for every purchase a worker, the replica or a replay reads. It takes the
//! record where it is (the Avro decoder's dict, or any mapping), converts its four timestamps
//! to ms and its price to reference minor units, and builds the `processors.records.Order`
//! NamedTuple (`tuple.__new__(Order, values)`, what `Order._make` does) holding the record's own
//! objects for every field it does not convert.
//!
//! The result is the one the Python it replaced gave (`tests/support/records_reference.py`
//! keeps it; `tests/unit/test_native_order.py` compares field by field, types included), and
//! so are its errors, raised before anything is built:
//!
//! - fields are read in Python's order (`occurred_at` first unless the caller gave the time,
//!   then price, currency, quantity, geo, ...), so the first missing field or bad value raises
//!   what Python raised first: `KeyError(name)` from `p[name]`, None from `p.get(name)`;
//! - `int(...)` of the price and quantity is Python's `int` (an int is kept, a bool or a
//!   numeric str converted as `int` converts it);
//! - a timestamp that is a `datetime` (exactly) in `datetime.timezone.utc` is converted here
//!   as `to_ms` converts it, `value - _EPOCH` split into days, seconds and microseconds, without
//!   the Python frame around it. None stays None.
//!   Anything else (another zone, a naive datetime, an int, a subclass) goes to
//!   `processors.timeutil.to_ms` itself, which converts or refuses it with its own message;
//! - the amount and unit price come from `processors.money`'s memo of orders
//!   (`default_rates()._orders`, keyed by (unit price, quantity, currency)) where
//!   `order_ref_minor` would find them, else from `order_ref_minor` itself, which converts,
//!   remembers and raises `UnknownCurrencyError` as it always did.

use pyo3::exceptions::{PyAssertionError, PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyString, PyTuple, PyType};
use pyo3::sync::GILOnceCell;
use pyo3::{ffi, intern};

use crate::wallet::ORDER_FIELDS;

const DAY_MS: i64 = 86_400_000;

/// The reader of purchase records into `Order`s.
#[pyclass(module = "processors._native", frozen)]
pub struct OrderReader {
    order: Py<PyType>,           // processors.records.Order
    clock: Clock,                // the timestamps
    default_rates: PyObject,     // processors.money.default_rates: its table holds the memo
    order_ref_minor: PyObject,   // processors.money.order_ref_minor: what the memo lacks
    tuple_new: ffi::newfunc,     // tuple's tp_new, which `tuple.__new__(cls, values)` calls
}

#[pymethods]
impl OrderReader {
    #[new]
    #[pyo3(signature = (*, order, order_fields, datetime, utc, epoch, to_ms, default_rates,
                        order_ref_minor))]
    #[allow(clippy::too_many_arguments)]
    fn new(order: Bound<'_, PyType>, order_fields: Vec<String>, datetime: Bound<'_, PyType>,
           utc: PyObject, epoch: PyObject, to_ms: PyObject, default_rates: PyObject,
           order_ref_minor: PyObject)
           -> PyResult<Self> {
        let py = order.py();
        if !order.is_subclass(&py.get_type::<PyTuple>())? {
            return Err(PyTypeError::new_err("Order must be a NamedTuple (a tuple subclass)"));
        }
        if order_fields.iter().map(String::as_str).ne(ORDER_FIELDS.iter().copied()) {
            return Err(PyValueError::new_err(format!(
                "Order fields {order_fields:?}: the native reader expects {ORDER_FIELDS:?}")));
        }
        Ok(OrderReader { order: order.unbind(), clock: Clock::new(datetime, utc, epoch, to_ms),
                         default_rates, order_ref_minor, tuple_new: tuple_new()? })
    }

    /// `processors.records.read_order(p, ts)`: ``ts`` is the caller's `to_ms(p["occurred_at"])`
    /// when it has it (taken as given), else None (converted here).
    #[pyo3(signature = (p, ts=None))]
    pub(crate) fn read<'py>(&self, p: &Bound<'py, PyAny>, ts: Option<Bound<'py, PyAny>>)
                 -> PyResult<Bound<'py, PyAny>> {
        let py = p.py();
        let r = Record::new(p);
        let ts = match ts {
            Some(ts) => ts,
            None => self.clock.required_ms(&r.item(intern!(py, "occurred_at"))?)?,
        };
        let unit_price = int(&r.item(intern!(py, "unit_price_minor"))?)?;
        let currency = r.get(intern!(py, "currency"))?;
        let quantity = int(&r.item(intern!(py, "quantity"))?)?;
        let geo = r.get(intern!(py, "geo"))?;
        let ingested = self.clock.ms(&r.get(intern!(py, "ingested_at"))?)?;
        let purchase_id = r.item(intern!(py, "purchase_id"))?;
        let wallet = r.item(intern!(py, "wallet"))?;
        let show_id = r.item(intern!(py, "show_id"))?;
        let ticket_id = r.item(intern!(py, "ticket_id"))?;
        let channel = r.item(intern!(py, "channel"))?;
        let (amount, unit) = self.ref_minor(&unit_price, &quantity, &currency)?;
        let payment_method = r.item(intern!(py, "payment_method"))?;
        let card = r.get(intern!(py, "card_fingerprint"))?;
        let ip = r.item(intern!(py, "ip"))?;
        let device = r.get(intern!(py, "device_id"))?;
        let has_geo = geo.is_truthy()?;
        let none = py.None().into_bound(py);
        let (lat, lon, country) = if has_geo {
            (geo.get_item(intern!(py, "lat"))?, geo.get_item(intern!(py, "lon"))?,
             geo.get_item(intern!(py, "country"))?)
        } else {
            (none.clone(), none.clone(), none)
        };
        let sale_opens = self.clock.ms(&r.get(intern!(py, "sale_opens_at"))?)?;
        let account_created = self.clock.ms(&r.get(intern!(py, "account_created_at"))?)?;
        let mfa = r.get(intern!(py, "mfa_enabled"))?;
        let phone = r.get(intern!(py, "phone_verified"))?;
        let email = r.get(intern!(py, "email_verified"))?;
        let values = PyTuple::new(py, [
            ts, ingested, purchase_id, wallet, show_id, ticket_id, channel, quantity, amount,
            unit, payment_method, card, ip, device,
            pyo3::types::PyBool::new(py, has_geo).to_owned().into_any(), lat, lon, country,
            sale_opens, account_created, mfa, phone, email,
        ])?;
        new_tuple(self.tuple_new, self.order.bind(py), values)
    }
}

/// An instance of `cls`, a subclass of tuple (a NamedTuple class, checked by the caller),
/// holding `values`: `tuple.__new__(cls, values)`, what a NamedTuple's `_make` does.
pub(crate) fn new_tuple<'py>(tuple_new: ffi::newfunc, cls: &Bound<'py, PyType>,
                             values: Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
    let py = cls.py();
    let args = PyTuple::new(py, [values])?;
    // SAFETY: tuple's tp_new with a subclass of tuple (checked by the caller), a tuple of args
    // and no keywords, as `tuple.__new__(cls, values)` calls it; a new reference or NULL with
    // an exception set.
    unsafe {
        let made = tuple_new(cls.as_ptr().cast(), args.as_ptr(), std::ptr::null_mut());
        Bound::from_owned_ptr_or_err(py, made)
    }
}

/// `processors.timeutil.to_ms(value)` for a `datetime.datetime` (exactly) whose tzinfo is
/// `utc`, by `to_ms`'s own steps: `delta = value - epoch` (its `_EPOCH`), then the delta's
/// days, seconds (0..86_399) and microseconds (0..999_999) in ms. None for any other value,
/// which the caller gives to `to_ms` itself (it converts or refuses it with its own message).
///
/// Both datetimes in `utc` (the same tzinfo: the subtraction is of their fields, as
/// CPython's), the difference is read from their fields in place (`RawDateTime`) when this
/// interpreter lays them out as `datetime.h` says (checked once, `raw_layout_holds`): the
/// same milliseconds, `floor((value - epoch) / 1 ms)`, without the timedelta and its three
/// attributes made in Python.
pub(crate) fn utc_ms<'py>(value: &Bound<'py, PyAny>, datetime: &Bound<'py, PyType>,
                          utc: &Bound<'py, PyAny>, epoch: &Bound<'py, PyAny>)
                          -> PyResult<Option<i64>> {
    let py = value.py();
    if !value.get_type().is(datetime) {
        return Ok(None);
    }
    if raw_layout_holds(datetime, utc) && epoch.get_type().is(datetime) {
        // SAFETY: both are exact `datetime.datetime`s, whose layout `raw_layout_holds` checked.
        let (at, since) = unsafe { (RawDateTime::of(value), RawDateTime::of(epoch)) };
        if !at.tzinfo_is(utc) {
            return Ok(None);
        }
        if since.tzinfo_is(utc) {
            return Ok(Some((at.micros() - since.micros()).div_euclid(1_000)));
        }
    } else if !value.getattr(intern!(py, "tzinfo"))?.is(utc) {
        return Ok(None);
    }
    let delta = value.sub(epoch)?;
    let field = |name: &Bound<'py, PyString>| delta.getattr(name)?.extract::<i64>();
    Ok(Some(field(intern!(py, "days"))? * DAY_MS + field(intern!(py, "seconds"))? * 1000
            + field(intern!(py, "microseconds"))? / 1000))
}

/// A `datetime.datetime` as CPython lays it out (`datetime.h`: `PyDateTime_DateTime`, whose
/// first fields the naive form shares; `tzinfo` is there only when `hastzinfo`).
#[repr(C)]
struct RawDateTime {
    head: ffi::PyObject,
    hashcode: ffi::Py_hash_t,
    hastzinfo: std::os::raw::c_char,
    // year (2 bytes), month, day, hour, minute, second, microsecond (3 bytes), big-endian
    data: [u8; 10],
    fold: u8,
    tzinfo: *mut ffi::PyObject,
}

impl RawDateTime {
    /// # Safety
    /// `value` is an exact `datetime.datetime` and `raw_layout_holds` was true.
    unsafe fn of<'a>(value: &'a Bound<'_, PyAny>) -> &'a RawDateTime {
        &*value.as_ptr().cast::<RawDateTime>()
    }

    fn tzinfo_is(&self, tz: &Bound<'_, PyAny>) -> bool {
        self.hastzinfo != 0 && std::ptr::eq(self.tzinfo, tz.as_ptr())
    }

    /// Microseconds from 0001-01-01 (proleptic Gregorian, as datetime counts) to this one's
    /// fields, its zone aside.
    fn micros(&self) -> i64 {
        let d = &self.data;
        let (year, month, day) = (i64::from(d[0]) << 8 | i64::from(d[1]), i64::from(d[2]), i64::from(d[3]));
        let seconds = i64::from(d[4]) * 3_600 + i64::from(d[5]) * 60 + i64::from(d[6]);
        let micros = i64::from(d[7]) << 16 | i64::from(d[8]) << 8 | i64::from(d[9]);
        (days_before(year, month) + day - 1) * 86_400_000_000 + seconds * 1_000_000 + micros
    }
}

/// Days from 0001-01-01 to the first of `month` in `year` (1..=9999, months 1..=12).
fn days_before(year: i64, month: i64) -> i64 {
    const BEFORE_MONTH: [i64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let y = year - 1;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    y * 365 + y / 4 - y / 100 + y / 400 + BEFORE_MONTH[(month - 1) as usize] + i64::from(leap && month > 2)
}

/// Whether this interpreter's datetimes are laid out as `RawDateTime` reads them: its size is
/// `datetime.__basicsize__`, and an aware datetime made here reads back its fields and zone.
/// Checked once a process (a failed check keeps the Python-level steps).
fn raw_layout_holds(datetime: &Bound<'_, PyType>, utc: &Bound<'_, PyAny>) -> bool {
    static HOLDS: GILOnceCell<bool> = GILOnceCell::new();
    *HOLDS.get_or_init(datetime.py(), || {
        let check = || -> PyResult<bool> {
            let size: usize = datetime.getattr(intern!(datetime.py(), "__basicsize__"))?.extract()?;
            if size != std::mem::size_of::<RawDateTime>() {
                return Ok(false);
            }
            let made = datetime.call1((2001, 2, 3, 4, 5, 6, 789_012, utc))?;
            // SAFETY: an exact datetime whose size is RawDateTime's: its bytes can be read as one.
            let raw = unsafe { RawDateTime::of(&made) };
            let fields = (raw.data, raw.tzinfo_is(utc));
            Ok(fields == ([0x07, 0xD1, 2, 3, 4, 5, 6, 0x0C, 0x0A, 0x14], true))
        };
        check().unwrap_or(false)
    })
}

/// What `processors.timeutil.to_ms` converts with: a UTC datetime converted here
/// (`utc_ms`), anything else by `to_ms` itself.
pub(crate) struct Clock {
    datetime: Py<PyType>, // datetime.datetime: converted here when in `utc`
    utc: PyObject,        // datetime.timezone.utc
    epoch: PyObject,      // processors.timeutil._EPOCH: 1970-01-01 in `utc`
    to_ms: PyObject,      // processors.timeutil.to_ms: every other timestamp
}

impl Clock {
    pub(crate) fn new(datetime: Bound<'_, PyType>, utc: PyObject, epoch: PyObject,
                      to_ms: PyObject) -> Self {
        Clock { datetime: datetime.unbind(), utc, epoch, to_ms }
    }

    /// `processors.timeutil.to_ms(value)`: a datetime in UTC and None here, the rest by it.
    pub(crate) fn ms<'py>(&self, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let py = value.py();
        if value.is_none() {
            return Ok(value.clone());
        }
        match utc_ms(value, self.datetime.bind(py), self.utc.bind(py), self.epoch.bind(py))? {
            Some(ms) => Ok(ms.into_pyobject(py)?.into_any()),
            None => self.to_ms.bind(py).call1((value,)),
        }
    }

    /// `to_ms(value)` followed by `assert ts is not None`.
    pub(crate) fn required_ms<'py>(&self, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let ts = self.ms(value)?;
        if ts.is_none() {
            return Err(PyAssertionError::new_err(()));
        }
        Ok(ts)
    }
}

impl OrderReader {

    /// `processors.money.order_ref_minor(unit_price, quantity, currency)`: (amount, unit).
    fn ref_minor<'py>(&self, unit_price: &Bound<'py, PyAny>, quantity: &Bound<'py, PyAny>,
                      currency: &Bound<'py, PyAny>)
                      -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let py = unit_price.py();
        let memo = self.default_rates.bind(py).call0()?.getattr(intern!(py, "_orders"))?;
        let key = PyTuple::new(py, [unit_price, quantity, currency])?;
        let pair = match memo.downcast::<PyDict>()?.get_item(&key)? {
            Some(pair) => pair,
            None => self.order_ref_minor.bind(py).call1(key)?,
        };
        pair.extract()
    }
}

/// A record read as `read_order` reads it: `p[name]` and `p.get(name)`, straight from the
/// dict when it is one (the decoder's), through the mapping's own methods otherwise.
pub(crate) struct Record<'a, 'py> {
    p: &'a Bound<'py, PyAny>,
    dict: Option<&'a Bound<'py, PyDict>>, // an exact dict: no `__missing__`, no `get` override
}

impl<'a, 'py> Record<'a, 'py> {
    pub(crate) fn new(p: &'a Bound<'py, PyAny>) -> Self {
        let dict = if p.is_exact_instance_of::<PyDict>() { p.downcast::<PyDict>().ok() } else { None };
        Record { p, dict }
    }

    /// `p[name]`.
    pub(crate) fn item(&self, name: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>> {
        match self.dict {
            Some(d) => d.get_item(name)?.ok_or_else(|| PyKeyError::new_err(name.clone().unbind())),
            None => self.p.get_item(name),
        }
    }

    /// `p.get(name)`.
    pub(crate) fn get(&self, name: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        match self.dict {
            Some(d) => Ok(d.get_item(name)?.unwrap_or_else(|| self.p.py().None().into_bound(self.p.py()))),
            None => self.p.call_method1(intern!(self.p.py(), "get"), (name,)),
        }
    }
}

/// Python's `int(value)`: an int as it is, anything else through `int`.
pub(crate) fn int<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if value.is_exact_instance_of::<PyInt>() {
        return Ok(value.clone());
    }
    value.py().get_type::<PyInt>().call1((value,))
}

/// tuple's `tp_new` slot.
pub(crate) fn tuple_new() -> PyResult<ffi::newfunc> {
    // SAFETY: PyType_GetSlot of a static type (allowed from 3.10) gives the slot or NULL.
    let slot = unsafe { ffi::PyType_GetSlot(std::ptr::addr_of_mut!(ffi::PyTuple_Type), ffi::Py_tp_new) };
    if slot.is_null() {
        return Err(PyValueError::new_err("tuple has no tp_new"));
    }
    // SAFETY: the Py_tp_new slot holds a newfunc.
    Ok(unsafe { std::mem::transmute::<*mut std::ffi::c_void, ffi::newfunc>(slot) })
}
