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

use crate::order::{int, Record};

/// `processors.netinfo.IpInfo`'s fields, read by position.
const IP_INFO_FIELDS: [&str; 5] = ["country", "asn", "hosting", "network", "private"];
const COUNTRY: usize = 0;
const ASN: usize = 1;
const HOSTING: usize = 2;
const NETWORK: usize = 3;

/// `processors.crowd.KINDS`, the order of the keys.
pub(crate) const KINDS: usize = 6;

/// What the crowd features read of a purchase: its key of each kind in `KINDS` order (tier,
/// coord, net, asn, bin, ua; None where the purchase has none: no network or AS for its IP,
/// no card BIN), and the two features no store holds.
#[pyclass(module = "processors._native", frozen)]
pub struct CrowdRead {
    pub(crate) keys: [Option<Box<str>>; KINDS],
    pub(crate) asn_hosting: f64,
    pub(crate) ip_country_mismatch: f64,
}

impl CrowdRead {
    /// The keys the purchase has, in `KINDS` order.
    pub(crate) fn present(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().flatten().map(|k| &**k)
    }

    pub(crate) fn key(&self, kind: usize) -> Option<&str> {
        self.keys[kind].as_deref()
    }
}

#[pymethods]
impl CrowdRead {
    /// A read made of its parts (tests, and readers of another kind of record).
    #[new]
    fn new(keys: (String, String, Option<String>, Option<String>, Option<String>, String),
           asn_hosting: f64, ip_country_mismatch: f64) -> Self {
        let (tier, coord, net, asn, card_bin, ua) = keys;
        let keys = [Some(tier), Some(coord), net, asn, card_bin, Some(ua)]
            .map(|k| k.map(String::into_boxed_str));
        CrowdRead { keys, asn_hosting, ip_country_mismatch }
    }

    /// The keys as Python strs (None where absent), in `KINDS` order.
    #[getter]
    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.keys.iter().map(|k| k.as_deref()))
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
            o.keys == self.keys && o.asn_hosting.to_bits() == self.asn_hosting.to_bits()
                && o.ip_country_mismatch.to_bits() == self.ip_country_mismatch.to_bits()
        })
    }

    fn __repr__(&self) -> String {
        format!("CrowdRead(keys={:?}, asn_hosting={:?}, ip_country_mismatch={:?})",
                self.keys, self.asn_hosting, self.ip_country_mismatch)
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
    fn read(&self, p: &Bound<'_, PyAny>, unit_ref: Option<&Bound<'_, PyAny>>) -> PyResult<CrowdRead> {
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
        let mut tier = String::from("tier:");
        self.push_text(&mut tier, &show)?;
        tier.push(':');
        self.push_text(&mut tier, &band)?;
        let mut coord = String::with_capacity(tier.len() + 4);
        coord.push_str("coord");
        coord.push_str(&tier[4..]);
        coord.push(':');
        self.push_text(&mut coord, &int(&r.item(intern!(py, "quantity"))?)?)?;
        let net = self.key_if("net:", &network)?;
        let has_asn = asn.is_truthy()?;
        let asn_key = if has_asn { Some(self.key("asn:", &asn)?) } else { None };
        let bin = self.key_if("bin:", &card_bin)?;
        let family = self.ua_family.call1(py, (r.get(intern!(py, "user_agent"))?,))?;
        let ua = self.key("ua:", family.bind(py))?;
        let asn_hosting = match has_asn {
            true => if info.get_item(HOSTING)?.is_truthy()? { 1.0 } else { 0.0 },
            false => self.missing,
        };
        let ip_country_mismatch = self.country_mismatch(&r, &info.get_item(COUNTRY)?)?;
        let keys = [Some(tier), Some(coord), net, asn_key, bin, Some(ua)]
            .map(|k| k.map(String::into_boxed_str));
        Ok(CrowdRead { keys, asn_hosting, ip_country_mismatch })
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

    /// `f"{prefix}{value}"` (the prefix with its colon).
    fn key(&self, prefix: &str, value: &Bound<'_, PyAny>) -> PyResult<String> {
        let mut key = String::with_capacity(prefix.len() + 24);
        key.push_str(prefix);
        self.push_text(&mut key, value)?;
        Ok(key)
    }

    /// `key(prefix, value) if value else None`.
    fn key_if(&self, prefix: &str, value: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
        Ok(if value.is_truthy()? { Some(self.key(prefix, value)?) } else { None })
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
        let ascii = |v: &Bound<'_, PyAny>| {
            v.downcast_exact::<PyString>().ok().and_then(|s| s.to_str().ok().map(str::to_owned))
                .filter(|s| s.is_ascii())
        };
        let differ = match (ascii(ip_country), ascii(&claimed)) {
            (Some(ip), Some(claimed)) => ip != claimed.to_ascii_uppercase(),
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
