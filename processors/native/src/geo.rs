//! `GeoIp4`: an IPv4 address's (country code, AS name) as `processors.netinfo` reads it from
//! geoip2fast 1.2.2's `lookup` (`_geo(_geoip().lookup(ip))`), from geoip2fast's own tables
//! copied once (`processors.geoip_tables.ipv4_lookup` builds it): a binary search over sorted
//! u32 network starts instead of the Python bisects over chunked lists and the `GeoIPDetail`
//! made around them. `tests/unit/test_native_geoip4.py` compares the two on every network
//! start and end (and the addresses either side) of both tables and on random addresses.
//!
//! What `lookup` does with an address `v` (an int below 2**32), and so does `answer`:
//!
//! - country: the last network whose start is <= `v` (table starts at 0, so there is one);
//!   `v` past its end (start + 2**(32 - prefix) - 1, the gaps between GeoLite2's networks)
//!   is "not found": the not-found code ("--") and no AS, whatever the AS table says;
//! - else the network's country id names the answer (`countries`, made by the builder from
//!   geoip2fast's `mainListNamesCountry` as `_country_lookup` and `_geo` read it: "--" for
//!   the reserved ids below 16, None for a code that is not two letters);
//! - AS: the last AS network whose start is <= `v`, WITHOUT a test that `v` is inside it:
//!   with IPv6 data loaded (this file) geoip2fast measures every network with the IPv6 sizes
//!   (2**(128 - prefix)), so an address in a gap between AS networks takes the AS of the one
//!   before it. `asn_names` holds the name of each AS id (None for an empty one).
//!
//! `QuadReader` (below) reads a whole dotted quad for `processors.netinfo.ip_info` around it.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyString, PyTuple};

/// geoip2fast's IPv4 country and AS tables, flattened.
#[pyclass(module = "processors._native", frozen)]
pub struct GeoIp4 {
    starts: Vec<u32>,         // country networks' first addresses, sorted, starts[0] == 0
    prefixes: Vec<u8>,        // their prefix lengths, 0..=32
    ids: Vec<u16>,            // their country ids (indices into `countries`)
    countries: Vec<PyObject>, // the country answer of each id: a str or None
    not_found: PyObject,      // the country answer for an address in no country network
    asn_starts: Vec<u32>,     // AS networks' first addresses, sorted, asn_starts[0] == 0
    asn_ids: Vec<u32>,        // their AS ids (indices into `asn_names`)
    asn_names: Vec<PyObject>, // the AS name of each id: a str or None
}

/// Native-endian u32s packed in `bytes` (`array("I").tobytes()`).
fn u32s(name: &str, bytes: &[u8]) -> PyResult<Vec<u32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(PyValueError::new_err(format!("{name}: not a whole number of u32s")));
    }
    Ok(bytes.chunks_exact(4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// Checks that `starts` are sorted from 0 and every id indexes `names`.
fn check_table(name: &str, starts: &[u32], ids: &[usize], names: usize) -> PyResult<()> {
    let bad = |what: &str| Err(PyValueError::new_err(format!("{name}: {what}")));
    if starts.first() != Some(&0) {
        return bad("the first network must start at 0");
    }
    if starts.windows(2).any(|w| w[0] > w[1]) {
        return bad("network starts must be sorted");
    }
    if ids.len() != starts.len() {
        return bad("one id a network");
    }
    if ids.iter().any(|&id| id >= names) {
        return bad("an id past the names");
    }
    Ok(())
}

/// Index of the last of `starts` (sorted, starts[0] == 0) that is <= `v`: Python's
/// `bisect_right(starts, v) - 1`.
fn last_at_or_before(starts: &[u32], v: u32) -> usize {
    starts.partition_point(|&s| s <= v) - 1
}

impl GeoIp4 {
    /// (country id, AS id) of `v`, None when it is in no country network.
    fn ids_of(&self, v: u32) -> Option<(usize, usize)> {
        let i = last_at_or_before(&self.starts, v);
        let end = u64::from(self.starts[i]) + (1u64 << (32 - u32::from(self.prefixes[i])));
        if u64::from(v) >= end {
            return None;
        }
        let j = last_at_or_before(&self.asn_starts, v);
        Some((usize::from(self.ids[i]), self.asn_ids[j] as usize))
    }

    /// (country, AS name) of `v` and the AS id they came from (None when not found).
    fn answer(&self, py: Python<'_>, v: u32) -> (PyObject, PyObject, Option<usize>) {
        match self.ids_of(v) {
            None => (self.not_found.clone_ref(py), py.None(), None),
            Some((country, asn)) => (self.countries[country].clone_ref(py),
                                     self.asn_names[asn].clone_ref(py), Some(asn)),
        }
    }
}

/// A str or None, as given.
fn str_or_none(value: &Bound<'_, PyAny>) -> PyResult<PyObject> {
    if value.is_none() || value.is_exact_instance_of::<PyString>() {
        Ok(value.clone().unbind())
    } else {
        Err(PyValueError::new_err("answers must be str or None"))
    }
}

#[pymethods]
impl GeoIp4 {
    #[new]
    #[pyo3(signature = (*, starts, prefixes, ids, countries, not_found, asn_starts, asn_ids,
                        asn_names))]
    #[allow(clippy::too_many_arguments)]
    fn new(starts: &[u8], prefixes: &[u8], ids: &[u8], countries: Vec<Bound<'_, PyAny>>,
           not_found: Bound<'_, PyAny>, asn_starts: &[u8], asn_ids: &[u8],
           asn_names: Vec<Bound<'_, PyAny>>) -> PyResult<Self> {
        let starts = u32s("starts", starts)?;
        if !ids.len().is_multiple_of(2) {
            return Err(PyValueError::new_err("ids: not a whole number of u16s"));
        }
        let ids: Vec<u16> = ids.chunks_exact(2).map(|b| u16::from_ne_bytes([b[0], b[1]])).collect();
        let (asn_starts, asn_ids) = (u32s("asn_starts", asn_starts)?, u32s("asn_ids", asn_ids)?);
        let wide: Vec<usize> = ids.iter().map(|&id| usize::from(id)).collect();
        check_table("countries", &starts, &wide, countries.len())?;
        let wide: Vec<usize> = asn_ids.iter().map(|&id| id as usize).collect();
        check_table("AS", &asn_starts, &wide, asn_names.len())?;
        if prefixes.len() != starts.len() || prefixes.iter().any(|&p| p > 32) {
            return Err(PyValueError::new_err("one prefix length (0 to 32) a network"));
        }
        Ok(GeoIp4 {
            starts,
            prefixes: prefixes.to_vec(),
            ids,
            countries: countries.iter().map(str_or_none).collect::<PyResult<_>>()?,
            not_found: str_or_none(&not_found)?,
            asn_starts,
            asn_ids,
            asn_names: asn_names.iter().map(str_or_none).collect::<PyResult<_>>()?,
        })
    }

    /// (country code, AS name) of the IPv4 address `value` (an int below 2**32).
    fn lookup<'py>(&self, py: Python<'py>, value: u32) -> PyResult<Bound<'py, PyTuple>> {
        let (country, asn, _) = self.answer(py, value);
        PyTuple::new(py, [country, asn])
    }

    /// Networks held: (country, AS).
    fn sizes(&self) -> (usize, usize) {
        (self.starts.len(), self.asn_starts.len())
    }
}

/// `processors.netinfo.ip_info`'s reading of a dotted quad, whole: `read(ip)` gives the
/// `IpInfo` values `(country, asn, hosting, network, private)` of an exact `str` that is four
/// canonical decimal octets ("0" to "255", no sign, space or leading zero: `_quad`'s
/// `_OCTETS`), None for anything else (which `ip_info` reads its own way). Private: inside
/// `lists.non_public`'s IPv4 ranges (merged, sorted, given here), then no country or AS;
/// hosting: `hosting_of` (`is_hosting_as`) of the AS name, asked once per AS id here.
#[pyclass(module = "processors._native", frozen)]
pub struct QuadReader {
    geo: Py<GeoIp4>,
    private_starts: Vec<u32>, // non-public IPv4 ranges' first addresses, sorted, disjoint
    private_ends: Vec<u32>,   // and their last
    hosting: Vec<bool>,       // hosting_of(asn_names[id]) of each AS id
}

/// The octets of a canonical dotted quad (`processors.netinfo._quad`), None otherwise.
fn quad(text: &[u8]) -> Option<[u8; 4]> {
    let mut octets = [0u8; 4];
    let mut parts = text.split(|&b| b == b'.');
    for octet in &mut octets {
        let part = parts.next()?;
        let canonical = !part.is_empty() && part.len() <= 3 && part.iter().all(u8::is_ascii_digit)
            && (part[0] != b'0' || part.len() == 1);
        if !canonical {
            return None;
        }
        let value = part.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
        *octet = u8::try_from(value).ok()?;
    }
    parts.next().is_none().then_some(octets)
}

#[pymethods]
impl QuadReader {
    #[new]
    #[pyo3(signature = (*, geo, private_starts, private_ends, hosting_of))]
    fn new(geo: Py<GeoIp4>, private_starts: Vec<u32>, private_ends: Vec<u32>,
           hosting_of: &Bound<'_, PyAny>) -> PyResult<Self> {
        let bad = |what: &str| Err(PyValueError::new_err(what.to_string()));
        if private_starts.len() != private_ends.len()
            || private_starts.iter().zip(&private_ends).any(|(s, e)| s > e)
            || private_ends.iter().zip(private_starts.iter().skip(1)).any(|(e, s)| e >= s) {
            return bad("private ranges: sorted, disjoint (first, last) pairs");
        }
        let hosting = geo.get().asn_names.iter()
            .map(|name| hosting_of.call1((name,))?.is_truthy())
            .collect::<PyResult<Vec<bool>>>()?;
        Ok(QuadReader { geo, private_starts, private_ends, hosting })
    }

    /// `(country, asn, hosting, network, private)` of a canonical dotted quad, else None.
    fn read<'py>(&self, ip: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let py = ip.py();
        let Ok(text) = ip.downcast_exact::<PyString>() else { return Ok(None) };
        let Ok(text) = text.to_str() else { return Ok(None) };
        let Some([a, b, c, d]) = quad(text.as_bytes()) else { return Ok(None) };
        let v = u32::from_be_bytes([a, b, c, d]);
        let network = PyString::new(py, &format!("{a}.{b}.{c}.0/24")).into_any().unbind();
        let at = self.private_starts.partition_point(|&s| s <= v);
        if at > 0 && v <= self.private_ends[at - 1] {
            let no = PyBool::new(py, false).to_owned().into_any().unbind();
            let yes = PyBool::new(py, true).to_owned().into_any().unbind();
            return Ok(Some(PyTuple::new(py, [py.None(), py.None(), no, network, yes])?));
        }
        let (country, asn, asn_id) = self.geo.get().answer(py, v);
        let hosting = asn_id.is_some_and(|id| self.hosting[id]);
        let hosting = PyBool::new(py, hosting).to_owned().into_any().unbind();
        let no = PyBool::new(py, false).to_owned().into_any().unbind();
        Ok(Some(PyTuple::new(py, [country, asn, hosting, network, no])?))
    }
}
