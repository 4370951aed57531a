//! A rules batch's text columns (`processors.rules.batch.RuleBatch`), each the same objects
//! its Python form gives (`tests/unit/test_rules_column_pieces.py` compares them), each
//! refusing (ValueError) what it cannot make so, which the caller then makes the Python way:
//!
//! - `text_column`: one field of every record (`batch.record_values`): `record.get(name)`, or for
//!   `country` `record.get("geo")`'s `get("country")` (`batch.country_of`);
//! - `text_columns`: several fields of every record in one pass: `read_columns`, which the
//!   rules' `TextLeaves.fill_records` reads with (`leaves.rs`); exported so that
//!   `test_rules_column_pieces` holds that reading to the Python one;
//! - `distinct_values`: a column's distinct values and each row's index among them, as
//!   `dict.fromkeys` tells values apart (`batch.distinct_of`).

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// `[record.get(name) for record in records]`; with `inner`, `[g.get(inner) if g else None
/// for g in (record.get(name) for record in records)]`. Every record must be a dict (not a
/// subclass, whose `get` could differ), and with `inner` every truthy `record.get(name)` too:
/// else ValueError, before anything is made.
#[pyfunction]
#[pyo3(signature = (records, name, inner=None))]
pub fn text_column<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyList>,
    name: &Bound<'py, PyString>,
    inner: Option<&Bound<'py, PyString>>,
) -> PyResult<Bound<'py, PyList>> {
    let mut values = Vec::with_capacity(records.len());
    for record in records.iter() {
        let record = record.downcast_exact::<PyDict>().map_err(|_| refuse())?;
        values.push(field(py, record, name, inner)?);
    }
    PyList::new(py, values)
}

fn refuse() -> PyErr {
    PyValueError::new_err("records must be dicts (and their inner values dicts)")
}

/// `record.get(name)`, or with `inner` `g.get(inner) if g else None` of it; None for None.
fn field<'py>(
    py: Python<'py>,
    record: &Bound<'py, PyDict>,
    name: &Bound<'py, PyString>,
    inner: Option<&Bound<'py, PyString>>,
) -> PyResult<Bound<'py, PyAny>> {
    let value = match (inner, record.get_item(name)?) {
        (None, value) => value,
        (Some(_), None) => None,
        (Some(key), Some(outer)) => {
            if !outer.is_truthy()? {
                None
            } else {
                outer
                    .downcast_exact::<PyDict>()
                    .map_err(|_| refuse())?
                    .get_item(key)?
            }
        }
    };
    Ok(value.unwrap_or_else(|| py.None().into_bound(py)))
}

/// `text_column` of each of `fields` ((name, inner) pairs), in one pass over the records:
/// each record is read once for all of them (its dict is fetched into the cache once, which
/// is most of the cost of a pass). Refuses (ValueError) as `text_column` does.
#[pyfunction]
pub fn text_columns<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyList>,
    fields: Vec<(Bound<'py, PyString>, Option<Bound<'py, PyString>>)>,
) -> PyResult<Vec<Bound<'py, PyList>>> {
    read_columns(py, records, &fields)?
        .into_iter()
        .map(|values| PyList::new(py, values))
        .collect()
}

/// `text_columns`' values, as vectors.
pub(crate) fn read_columns<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyList>,
    fields: &[(Bound<'py, PyString>, Option<Bound<'py, PyString>>)],
) -> PyResult<Vec<Vec<Bound<'py, PyAny>>>> {
    let mut columns: Vec<Vec<Bound<'py, PyAny>>> = fields
        .iter()
        .map(|_| Vec::with_capacity(records.len()))
        .collect();
    for record in records.iter() {
        let record = record.downcast_exact::<PyDict>().map_err(|_| refuse())?;
        for ((name, inner), column) in fields.iter().zip(columns.iter_mut()) {
            column.push(field(py, record, name, inner.as_ref())?);
        }
    }
    Ok(columns)
}

/// The distinct values of `values` in first-seen order and, packed as native `isize`s, each
/// value's index among them: what `dict.fromkeys(values)` keeps and finds (a value's hash,
/// then the same object or an equal one among the kept values of that hash). None when a
/// value is unhashable (TypeError from its hash, as `dict.fromkeys` raises); any other error
/// of a hash or a comparison is raised.
#[pyfunction]
pub fn distinct_values<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyList>,
) -> PyResult<Option<(Bound<'py, PyList>, Bound<'py, PyBytes>)>> {
    let mut kept: Vec<Bound<'py, PyAny>> = Vec::new();
    // the first kept value of each hash, and after each kept value the next one of its hash
    let mut first: HashMap<isize, usize, BuildHasherDefault<PythonHash>> = HashMap::default();
    let mut next: Vec<usize> = Vec::new();
    let mut codes: Vec<u8> = Vec::with_capacity(values.len() * std::mem::size_of::<isize>());
    for value in values.iter() {
        let hash = match value.hash() {
            Ok(hash) => hash,
            Err(err) if err.is_instance_of::<PyTypeError>(py) => return Ok(None),
            Err(err) => return Err(err),
        };
        let mut slot = first.get(&hash).copied().unwrap_or(usize::MAX);
        let mut last = usize::MAX;
        while slot != usize::MAX {
            // SAFETY: both are live objects held here; PyObject_RichCompareBool (which
            // answers 1 for the same object, as a dict's lookup does) returns -1 with an
            // exception set on error.
            let equal = unsafe {
                ffi::PyObject_RichCompareBool(kept[slot].as_ptr(), value.as_ptr(), ffi::Py_EQ)
            };
            if equal < 0 {
                return Err(PyErr::fetch(py));
            }
            if equal == 1 {
                break;
            }
            last = slot;
            slot = next[slot];
        }
        if slot == usize::MAX {
            slot = kept.len();
            kept.push(value.clone());
            next.push(usize::MAX);
            if last == usize::MAX {
                first.insert(hash, slot);
            } else {
                next[last] = slot;
            }
        }
        codes.extend_from_slice(&(slot as isize).to_ne_bytes());
    }
    Ok(Some((PyList::new(py, kept)?, PyBytes::new(py, &codes))))
}

/// A Python hash used as it is (already mixed; `str` hashes are SipHash-based).
#[derive(Default)]
struct PythonHash(u64);

impl Hasher for PythonHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_isize(&mut self, value: isize) {
        self.0 = value as u64;
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(text_column, m)?)?;
    m.add_function(wrap_pyfunction!(text_columns, m)?)?;
    m.add_function(wrap_pyfunction!(distinct_values, m)?)
}
