//! What the crowd features read of a purchase, once: `CrowdReader.read`, which is
//! `processors.crowd.crowd_read` (the one implementation: the Python steps it replaced are
//! gone). It names the purchase's six crowd keys (`processors.crowd` lists them) as Rust
//! strings and works out the two crowd features no store holds; the `CrowdRead` it returns is
//! what `CrowdStore.apply_order` and `CrowdStore.values` (`lib.rs`) take, without a Python
//! string or tuple made for a key.
//!
//! The steps are those of the Python it replaced, in the same order, so the same keys, values
//! and errors come out (`tests/unit/test_crowd_read.py` holds it to `crowd_reference`):
//!
//! - `p["show_id"]`, then the price band: `processors.crowd.price_band`'s memo (the dict
//!   itself, read here) for the unit price given, `price_band(p, unit_ref)` for a unit price
//!   it does not hold or none given (which reads the price and fills the memo);
//! - `ip_info(p.get("ip"))` and `ua_family(p.get("user_agent"))` called (cached in Python),
//!   the `IpInfo` read by position (its fields checked when the reader is built);
//! - each key as its f-string wrote it: a str as it is, an int in decimal, anything else
//!   through `format(value)` (what an f-string calls); `int(p["quantity"])` as Python's `int`;
//! - `asn_hosting`: `info.hosting` as 1.0 or 0.0 when the IP has an AS, else MISSING;
//!   `ip_country_mismatch`: the geo point's country or else the card's, compared upper-cased
//!   with the IP's (`str(claimed).upper()`: in ASCII here, by Python's `str.upper` otherwise),
//!   MISSING when either is absent.

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyString, PyTuple};

use crate::order::{int, OrderReader, Record};
use crate::wallet::order as field;

/// `processors.netinfo.IpInfo`'s fields, read by position.
const IP_INFO_FIELDS: [&str; 5] = ["country", "asn", "hosting", "network", "private"];
const COUNTRY: usize = 0;
const ASN: usize = 1;
const HOSTING: usize = 2;
const NETWORK: usize = 3;

/// How many kinds of key a read has (`processors.crowd.KINDS`).
const KINDS: usize = 6;

/// Each kind's place in a read, in `processors.crowd.KINDS` order.
pub(crate) mod kind {
    pub const TIER: usize = 0;
    pub const COORD: usize = 1;
    pub const NET: usize = 2;
    pub const ASN: usize = 3;
    pub const BIN: usize = 4;
    pub const UA: usize = 5;
}

/// What the crowd features read of a purchase: its key of each kind in `KINDS` order (tier,
/// coord, net, asn, bin, ua; None where the purchase has none: no network or AS for its IP,
/// no card BIN), and the two features no store holds.
///
/// The keys share one buffer (`text`, each key a span of it): one allocation a read.
#[pyclass(module = "processors._native", frozen)]
pub struct CrowdRead {
    text: String,
    spans: [Option<(u32, u32)>; KINDS],
    pub(crate) asn_hosting: f64,
    pub(crate) ip_country_mismatch: f64,
}

impl CrowdRead {
    /// The keys the purchase has, in `KINDS` order.
    pub(crate) fn present(&self) -> impl Iterator<Item = &str> {
        (0..KINDS).filter_map(|kind| self.key(kind))
    }

    pub(crate) fn key(&self, kind: usize) -> Option<&str> {
        self.spans[kind].map(|(start, end)| &self.text[start as usize..end as usize])
    }
}

/// A read's keys, written one after another into one buffer.
struct Keys {
    text: String,
    spans: [Option<(u32, u32)>; KINDS],
    kind: usize,     // the next key's kind
    start: usize,    // where the key being written starts
}

impl Keys {
    fn new() -> Self {
        Keys { text: String::with_capacity(192), spans: [None; KINDS], kind: 0, start: 0 }
    }

    /// Start the next kind's key with `prefix`.
    fn open(&mut self, prefix: &str) -> &mut String {
        self.start = self.text.len();
        self.text.push_str(prefix);
        &mut self.text
    }

    /// End the key being written.
    fn close(&mut self) -> PyResult<()> {
        let span = (u32::try_from(self.start), u32::try_from(self.text.len()));
        let (Ok(start), Ok(end)) = span else {
            return Err(PyValueError::new_err("crowd keys longer than 4 GiB"));
        };
        self.spans[self.kind] = Some((start, end));
        self.kind += 1;
        Ok(())
    }

    /// The next kind has no key.
    fn none(&mut self) {
        self.kind += 1;
    }

    fn read(self, asn_hosting: f64, ip_country_mismatch: f64) -> CrowdRead {
        debug_assert_eq!(self.kind, KINDS);
        CrowdRead { text: self.text, spans: self.spans, asn_hosting, ip_country_mismatch }
    }
}

#[pymethods]
impl CrowdRead {
    /// A read made of its parts (tests, and readers of another kind of record).
    #[new]
    fn new(keys: (String, String, Option<String>, Option<String>, Option<String>, String),
           asn_hosting: f64, ip_country_mismatch: f64) -> PyResult<Self> {
        let (tier, coord, net, asn, card_bin, ua) = keys;
        let mut keys = Keys::new();
        for key in [Some(tier), Some(coord), net, asn, card_bin, Some(ua)] {
            match key {
                Some(key) => {
                    keys.open(&key);
                    keys.close()?;
                }
                None => keys.none(),
            }
        }
        Ok(keys.read(asn_hosting, ip_country_mismatch))
    }

    /// The keys as Python strs (None where absent), in `KINDS` order.
    #[getter]
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, (0..KINDS).map(|kind| self.key(kind)))
    }

    #[getter]
    fn asn_hosting(&self) -> f64 {
        self.asn_hosting
    }

    #[getter]
    fn ip_country_mismatch(&self) -> f64 {
        self.ip_country_mismatch
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.downcast::<CrowdRead>().is_ok_and(|o| {
            let o = o.get();
            (0..KINDS).all(|kind| o.key(kind) == self.key(kind)) && o.asn_hosting.to_bits() == self.asn_hosting.to_bits()
                && o.ip_country_mismatch.to_bits() == self.ip_country_mismatch.to_bits()
        })
    }

    fn __repr__(&self) -> String {
        format!("CrowdRead(keys={:?}, asn_hosting={:?}, ip_country_mismatch={:?})",
                (0..KINDS).map(|kind| self.key(kind)).collect::<Vec<_>>(), self.asn_hosting,
                self.ip_country_mismatch)
    }
}

/// The reader of purchases' crowd keys (`processors.crowd.crowd_read`).
#[pyclass(module = "processors._native", frozen)]
pub struct CrowdReader {
    ip_info: PyObject,    // processors.netinfo.ip_info
    ua_family: PyObject,  // processors.netinfo.ua_family
    price_band: PyObject, // processors.crowd.price_band: a band its memo does not hold
    bands: Py<PyDict>,    // processors.crowd._BANDS: unit price -> band
    format: PyObject,     // builtins.format: an f-string's text of anything not a str or int
    missing: f64,         // processors.signals.MISSING
}

#[pymethods]
impl CrowdReader {
    #[new]
    #[pyo3(signature = (*, ip_info, ip_info_fields, ua_family, price_band, bands, format, missing))]
    #[allow(clippy::too_many_arguments)]
    fn new(ip_info: PyObject, ip_info_fields: Vec<String>, ua_family: PyObject,
           price_band: PyObject, bands: Py<PyDict>, format: PyObject, missing: f64)
           -> PyResult<Self> {
        if ip_info_fields.iter().map(String::as_str).ne(IP_INFO_FIELDS.iter().copied()) {
            return Err(PyValueError::new_err(format!(
                "IpInfo fields {ip_info_fields:?}: the native reader expects {IP_INFO_FIELDS:?}")));
        }
        Ok(CrowdReader { ip_info, ua_family, price_band, bands, format, missing })
    }

    /// `processors.crowd.crowd_read(p, unit_ref)`.
    #[pyo3(signature = (p, unit_ref=None))]
    pub(crate) fn read(&self, p: &Bound<'_, PyAny>, unit_ref: Option<&Bound<'_, PyAny>>)
                       -> PyResult<CrowdRead> {
        let py = p.py();
        let r = Record::new(p);
        let show = r.item(intern!(py, "show_id"))?;
        let band = match unit_ref {
            Some(unit) => match self.bands.bind(py).get_item(unit)? {
                Some(band) => band,
                None => self.price_band.call1(py, (p, unit))?.into_bound(py),
            },
            None => self.price_band.call1(py, (p, py.None()))?.into_bound(py),
        };
        let info = self.ip_info.call1(py, (r.get(intern!(py, "ip"))?,))?.into_bound(py);
        let info = info.downcast::<PyTuple>()?;
        let (network, asn) = (info.get_item(NETWORK)?, info.get_item(ASN)?);
        let card_bin = r.get(intern!(py, "card_bin"))?;
        let mut keys = Keys::new();
        let text = keys.open("tier:");
        let shape = text.len() - 1; // ":{show}:{band}", the part of the tier key coord repeats
        self.push_text(text, &show)?;
        text.push(':');
        self.push_text(text, &band)?;
        let shape = shape..text.len();
        keys.close()?;
        let text = keys.open("coord");
        text.extend_from_within(shape);
        text.push(':');
        self.push_text(text, &int(&r.item(intern!(py, "quantity"))?)?)?;
        keys.close()?;
        self.key_if(&mut keys, "net:", &network)?;
        let has_asn = asn.is_truthy()?;
        if has_asn {
            self.key(&mut keys, "asn:", &asn)?;
        } else {
            keys.none();
        }
        self.key_if(&mut keys, "bin:", &card_bin)?;
        let family = self.ua_family.call1(py, (r.get(intern!(py, "user_agent"))?,))?;
        self.key(&mut keys, "ua:", family.bind(py))?;
        let asn_hosting = match has_asn {
            true => if info.get_item(HOSTING)?.is_truthy()? { 1.0 } else { 0.0 },
            false => self.missing,
        };
        let ip_country_mismatch = self.country_mismatch(&r, &info.get_item(COUNTRY)?)?;
        Ok(keys.read(asn_hosting, ip_country_mismatch))
    }
}

/// A purchase read once for every reader: `read(p, ts=None)` is `(o, crowd)` with `o =
/// OrderReader.read(p, ts)` (`processors.records.read_order`) and `crowd =
/// CrowdReader.read(p, o.unit)` (`processors.crowd.crowd_read`), in one call
/// (`processors.crowd.read_purchase`).
#[pyclass(module = "processors._native", frozen)]
pub struct PurchaseReader {
    orders: Py<OrderReader>,
    crowds: Py<CrowdReader>,
}

#[pymethods]
impl PurchaseReader {
    #[new]
    #[pyo3(signature = (*, orders, crowds))]
    fn new(orders: Py<OrderReader>, crowds: Py<CrowdReader>) -> Self {
        PurchaseReader { orders, crowds }
    }

    #[pyo3(signature = (p, ts=None))]
    pub(crate) fn read<'py>(&self, p: &Bound<'py, PyAny>, ts: Option<Bound<'py, PyAny>>)
                 -> PyResult<(Bound<'py, PyAny>, CrowdRead)> {
        let o = self.orders.get().read(p, ts)?;
        let unit = o.downcast::<PyTuple>()?.get_item(field::UNIT)?;
        let crowd = self.crowds.get().read(p, Some(&unit))?;
        Ok((o, crowd))
    }
}

impl CrowdReader {
    /// `f"{value}"` pushed onto `out`: a str as it is, an int in decimal, anything else by
    /// `format(value)`.
    fn push_text(&self, out: &mut String, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(s) = value.downcast_exact::<PyString>() {
            out.push_str(s.to_str()?);
            return Ok(());
        }
        if value.is_exact_instance_of::<PyInt>() {
            if let Ok(n) = value.extract::<i64>() {
                out.push_str(itoa(n, &mut [0; 20]));
                return Ok(());
            }
        }
        let made = self.format.bind(value.py()).call1((value,))?;
        out.push_str(made.downcast_into::<PyString>()?.to_str()?);
        Ok(())
    }

    /// The next kind's key, `f"{prefix}{value}"` (the prefix with its colon).
    fn key(&self, keys: &mut Keys, prefix: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.push_text(keys.open(prefix), value)?;
        keys.close()
    }

    /// `key(keys, prefix, value) if value else None`.
    fn key_if(&self, keys: &mut Keys, prefix: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if value.is_truthy()? {
            self.key(keys, prefix, value)
        } else {
            keys.none();
            Ok(())
        }
    }

    /// ip_country_mismatch: `claimed = (p.get("geo") or {}).get("country") or
    /// p.get("card_country")`; MISSING when the IP's country or `claimed` is falsy, else
    /// 1.0 when `ip_country != str(claimed).upper()`, 0.0 when equal.
    fn country_mismatch(&self, r: &Record<'_, '_>, ip_country: &Bound<'_, PyAny>) -> PyResult<f64> {
        let py = ip_country.py();
        let geo = r.get(intern!(py, "geo"))?;
        let mut claimed = if !geo.is_truthy()? {
            py.None().into_bound(py)
        } else if let Ok(geo) = geo.downcast_exact::<PyDict>() {
            geo.get_item(intern!(py, "country"))?.unwrap_or_else(|| py.None().into_bound(py))
        } else {
            geo.call_method1(intern!(py, "get"), (intern!(py, "country"),))?
        };
        if !claimed.is_truthy()? {
            claimed = r.get(intern!(py, "card_country"))?;
        }
        if !ip_country.is_truthy()? || !claimed.is_truthy()? {
            return Ok(self.missing);
        }
        let differ = match (ascii_text(ip_country), ascii_text(&claimed)) {
            // `ip_country != str(claimed).upper()`, in ASCII
            (Some(ip), Some(claimed)) => {
                ip.len() != claimed.len()
                    || ip.bytes().zip(claimed.bytes()).any(|(a, b)| a != b.to_ascii_uppercase())
            }
            _ => ip_country.ne(claimed.str()?.call_method0(intern!(py, "upper"))?)?,
        };
        Ok(if differ { 1.0 } else { 0.0 })
    }
}

/// `n` in decimal, as Python's `str(int)` writes it, in `buf`.
fn itoa(n: i64, buf: &mut [u8; 20]) -> &str {
    let mut at = buf.len();
    let mut rest = n.unsigned_abs();
    loop {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    std::str::from_utf8(&buf[at..]).expect("ASCII digits")
}

/// The text of an exact str in ASCII, else None.
fn ascii_text<'a>(value: &'a Bound<'_, PyAny>) -> Option<&'a str> {
    let text = value.downcast_exact::<PyString>().ok()?.to_str().ok()?;
    text.is_ascii().then_some(text)
}
