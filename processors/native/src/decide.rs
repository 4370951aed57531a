//! Pieces of `processors.decide.decide_batch` over a whole batch in one call, each the same
//! objects its Python form makes (the tests compare them: `tests/unit/test_decide_*.py`,
//! `tests/unit/test_rules_column_pieces.py`), each refusing (ValueError) what it cannot make
//! so, which the caller then makes the Python way:
//!
//! - `feature_dicts`: a batch's Decision `features` dicts (`processors.decide._features`).
//!   Each dict is a copy of the template (`FEATURE_NAMES` → 0.0, keys in that order, its
//!   table sized for them) with every value set from the row, key by key in order: the same C
//!   calls (`PyDict_Copy`, then `PyDict_SetItem` of each existing key) that
//!   `template.copy().update(zip(names, row))` makes, without the zip's tuple and the
//!   interpreter around each row.
//! - `ipv4_column`: a column of texts read as IPv4 addresses by `inet_pton`'s own grammar
//!   (`processors.rules.functions.ParsedIps`).
//! - `reasons_batch`: each row's Decision `reasons` (`processors.explain.reasons`).
//! - `decision_dicts`: a batch's Decision records (`processors.decide._decisions_by_row`).

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyList, PyString, PyTuple};
use std::cmp::Ordering;

/// One dict per row: `template` copied, then `names[j]` → `row[j]` for every name. Rows
/// must be tuples or lists exactly `len(names)` long (else ValueError, before any dict is
/// made); `names` must be the template's keys.
#[pyfunction]
pub fn feature_dicts<'py>(
    py: Python<'py>,
    template: &Bound<'py, PyDict>,
    names: &Bound<'py, PyTuple>,
    rows: &Bound<'py, PyList>,
) -> PyResult<Bound<'py, PyList>> {
    let width = names.len();
    for row in rows.iter() {
        let len = if let Ok(t) = row.downcast_exact::<PyTuple>() {
            t.len()
        } else if let Ok(l) = row.downcast_exact::<PyList>() {
            l.len()
        } else {
            return Err(PyValueError::new_err("every row must be a tuple or a list"));
        };
        if len != width {
            return Err(PyValueError::new_err(format!(
                "every row must hold {width} values"
            )));
        }
    }
    let keys: Vec<*mut ffi::PyObject> = names.iter().map(|k| k.as_ptr()).collect();
    let out = PyList::empty(py);
    for row in rows.iter() {
        let (row_ptr, is_tuple) = (row.as_ptr(), row.is_exact_instance_of::<PyTuple>());
        // SAFETY: PyDict_Copy returns a new reference (or NULL with an exception set), which
        // Bound takes over.
        let dict =
            unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyDict_Copy(template.as_ptr()))? };
        for (j, &key) in keys.iter().enumerate() {
            // SAFETY: `names` (held by the caller) keeps the keys alive; the row is a tuple or
            // a list (checked above) and its Get_Item checks the index (NULL and IndexError
            // past its end), so item j is a borrowed live reference, which PyDict_SetItem
            // takes its own reference to before anything else runs.
            let set = unsafe {
                let value = if is_tuple {
                    ffi::PyTuple_GetItem(row_ptr, j as ffi::Py_ssize_t)
                } else {
                    ffi::PyList_GetItem(row_ptr, j as ffi::Py_ssize_t)
                };
                if value.is_null() {
                    return Err(PyErr::fetch(py));
                }
                ffi::PyDict_SetItem(dict.as_ptr(), key, value)
            };
            if set < 0 {
                return Err(PyErr::fetch(py));
            }
        }
        out.append(dict)?;
    }
    Ok(out)
}

/// `ipv4_column`: a column of texts (`processors.rules.functions.ParsedIps`) read as IPv4
/// addresses by exactly the grammar of `inet_pton(AF_INET, text)` (glibc's `inet_pton4`: four
/// groups of decimal digits separated by single dots, each at most 255, none with a leading
/// zero, nothing else). Gives the addresses packed as 4 big-endian bytes each (zeros where a
/// value is not one) and the indices of the values that are not (not a text, or a text this
/// grammar refuses), which the caller reads its own way.
#[pyfunction]
pub fn ipv4_column<'py>(
    py: Python<'py>,
    values: &Bound<'py, PyList>,
) -> PyResult<(Bound<'py, PyBytes>, Vec<usize>)> {
    let mut packed = vec![0u8; 4 * values.len()];
    let mut others = Vec::new();
    for (i, value) in values.iter().enumerate() {
        let address = value
            .downcast_exact::<PyString>()
            .ok()
            .and_then(|text| text.to_str().ok().and_then(|t| inet_pton4(t.as_bytes())));
        match address {
            Some(octets) => packed[4 * i..4 * i + 4].copy_from_slice(&octets),
            None => others.push(i),
        }
    }
    Ok((PyBytes::new(py, &packed), others))
}

/// glibc's `inet_pton4`, step by step: the address, or None where it returns 0.
fn inet_pton4(src: &[u8]) -> Option<[u8; 4]> {
    let mut octets_seen = 0;
    let mut saw_digit = false;
    let mut tmp = [0u8; 4];
    let mut at = 0;
    for &ch in src {
        if ch.is_ascii_digit() {
            let new = u32::from(tmp[at]) * 10 + u32::from(ch - b'0');
            if saw_digit && tmp[at] == 0 {
                return None; // a leading zero
            }
            if new > 255 {
                return None;
            }
            tmp[at] = new as u8;
            if !saw_digit {
                octets_seen += 1;
                if octets_seen > 4 {
                    return None;
                }
                saw_digit = true;
            }
        } else if ch == b'.' && saw_digit {
            if octets_seen == 4 {
                return None;
            }
            at += 1;
            tmp[at] = 0;
            saw_digit = false;
        } else {
            return None;
        }
    }
    if octets_seen < 4 {
        return None;
    }
    Some(tmp)
}

/// `processors.explain.reasons(results, limit)` of each row's rule results, `[]` for a row
/// without any: the results ranked hard first, then by score, highest first, then by rule id
/// (a stable sort, as the three stable sorts there), the first `limit` as
/// `{"code", "category", "score", "detail"}` dicts holding the results' own objects. Rows must
/// be lists of 5-tuples (rule id a str, score a float that is not NaN, hard a bool): else
/// ValueError, before any row is made.
#[pyfunction]
pub fn reasons_batch<'py>(
    py: Python<'py>,
    rows: &Bound<'py, PyList>,
    limit: usize,
) -> PyResult<Bound<'py, PyList>> {
    let refuse = || PyValueError::new_err("rows must be lists of (str, _, float, _, bool) results");
    let out = PyList::empty(py);
    // a row's results with their keys (hard, score, rule id), reused row after row
    let mut keyed: Vec<(bool, f64, Bound<'py, PyString>, Bound<'py, PyTuple>)> = Vec::new();
    for row in rows.iter() {
        let results = row.downcast_exact::<PyList>().map_err(|_| refuse())?;
        keyed.clear();
        for result in results.iter() {
            let result = result.downcast_into::<PyTuple>().map_err(|_| refuse())?;
            if result.len() != 5 {
                return Err(refuse());
            }
            let rule_id = result
                .get_item(0)?
                .downcast_into_exact::<PyString>()
                .map_err(|_| refuse())?;
            rule_id.to_str().map_err(|_| refuse())?; // UTF-8 (no lone surrogate): compared below
            let score = result.get_item(2)?;
            let score = score
                .downcast_exact::<PyFloat>()
                .map_err(|_| refuse())?
                .value();
            let hard = result.get_item(4)?;
            let hard = hard
                .downcast_exact::<PyBool>()
                .map_err(|_| refuse())?
                .is_true();
            if score.is_nan() {
                return Err(refuse());
            }
            keyed.push((hard, score, rule_id, result));
        }
        // hard first, highest score first, then rule id (UTF-8 bytes order: code points'); a
        // stable sort, as Python's three are
        keyed.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal))
                .then_with(|| match (a.2.to_str(), b.2.to_str()) {
                    (Ok(x), Ok(y)) => x.cmp(y),
                    _ => Ordering::Equal, // not reached: every id was read above
                })
        });
        let reasons = PyList::empty(py);
        for (_, _, rule_id, result) in keyed.iter().take(limit) {
            let reason = PyDict::new(py);
            reason.set_item(intern!(py, "code"), rule_id)?;
            reason.set_item(intern!(py, "category"), result.get_item(1)?)?;
            reason.set_item(intern!(py, "score"), result.get_item(2)?)?;
            reason.set_item(intern!(py, "detail"), result.get_item(3)?)?;
            reasons.append(reason)?;
        }
        out.append(reasons)?;
    }
    Ok(out)
}

/// The Decision records of a batch, as `decide._decisions` builds them row by row: each a
/// copy of `template` (the record's keys in order) with its values set, in that order:
/// `decision_id` "dec_" + the purchase's `purchase_id`, its `purchase_id`, `wallet`,
/// `organizer_id` (None without one), the row's verdict, final score, model score, rule score,
/// the two versions, its reasons, a new empty `contributions` dict, its features, the
/// purchase's `occurred_at`, `decided_at` and the row's latency. ValueError, before any
/// record is made, unless the purchases are dicts with a str `purchase_id`, a `wallet` and an
/// `occurred_at`, and every column is as long as the purchases.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn decision_dicts<'py>(
    py: Python<'py>,
    template: &Bound<'py, PyDict>,
    purchases: &Bound<'py, PyList>,
    columns: Vec<Bound<'py, PyList>>,
    model_version: &Bound<'py, PyAny>,
    rules_version: &Bound<'py, PyAny>,
    decided_at: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let refuse = || PyValueError::new_err("purchases or columns the records cannot be made of");
    // columns: verdicts, finals, scores, rule scores, reasons, features, latencies
    let n = purchases.len();
    if columns.len() != 7 || columns.iter().any(|c| c.len() != n) {
        return Err(refuse());
    }
    let (purchase_id, wallet, organizer_id, occurred_at) = (
        intern!(py, "purchase_id"),
        intern!(py, "wallet"),
        intern!(py, "organizer_id"),
        intern!(py, "occurred_at"),
    );
    let mut read = Vec::with_capacity(n);
    for purchase in purchases.iter() {
        let purchase = purchase
            .downcast_into_exact::<PyDict>()
            .map_err(|_| refuse())?;
        let id = purchase.get_item(purchase_id)?.ok_or_else(refuse)?;
        let id = id.downcast_into_exact::<PyString>().map_err(|_| refuse())?;
        let wallet = purchase.get_item(wallet)?.ok_or_else(refuse)?;
        let organizer = purchase
            .get_item(organizer_id)?
            .unwrap_or_else(|| py.None().into_bound(py));
        let occurred = purchase.get_item(occurred_at)?.ok_or_else(refuse)?;
        read.push((id, wallet, organizer, occurred));
    }
    let keys: Vec<Bound<'py, PyAny>> = template.keys().iter().collect();
    if keys.len() != 16 {
        return Err(refuse());
    }
    let prefix = intern!(py, "dec_");
    let out = PyList::empty(py);
    for (i, (id, wallet, organizer, occurred)) in read.into_iter().enumerate() {
        let column = |c: usize| columns[c].get_item(i);
        // SAFETY: PyDict_Copy returns a new reference (or NULL with an exception set), which
        // Bound takes over; PyUnicode_Concat likewise.
        let record =
            unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyDict_Copy(template.as_ptr()))? };
        let decision_id = unsafe {
            Bound::from_owned_ptr_or_err(py, ffi::PyUnicode_Concat(prefix.as_ptr(), id.as_ptr()))?
        };
        let values: [Bound<'py, PyAny>; 16] = [
            decision_id,
            id.into_any(),
            wallet,
            organizer,
            column(0)?,
            column(1)?,
            column(2)?,
            column(3)?,
            model_version.clone(),
            rules_version.clone(),
            column(4)?,
            PyDict::new(py).into_any(),
            column(5)?,
            occurred,
            decided_at.clone(),
            column(6)?,
        ];
        for (key, value) in keys.iter().zip(values.iter()) {
            // SAFETY: live objects; PyDict_SetItem takes its own references.
            if unsafe { ffi::PyDict_SetItem(record.as_ptr(), key.as_ptr(), value.as_ptr()) } < 0 {
                return Err(PyErr::fetch(py));
            }
        }
        out.append(record)?;
    }
    Ok(out)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(decision_dicts, m)?)?;
    m.add_function(wrap_pyfunction!(feature_dicts, m)?)?;
    m.add_function(wrap_pyfunction!(reasons_batch, m)?)?;
    m.add_function(wrap_pyfunction!(ipv4_column, m)?)
}
