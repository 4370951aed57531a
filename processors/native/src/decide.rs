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
//!   interpreter around each row; under CPython 3.11, each value stored straight into its
//!   key's entry (`CopiedEntries`), as `PyDict_SetItem` stores it once it has found the key.
//! - `ipv4_column`: a column of texts read as IPv4 addresses by `inet_pton`'s own grammar
//!   (`processors.rules.functions.ParsedIps`).
//! - `reasons_batch`: each row's Decision `reasons` (`processors.explain.reasons`).
//! - `decision_dicts`: a batch's Decision records (`processors.decide._decisions_by_row`),
//!   their values stored as `feature_dicts` stores them.
//! - `arrival_latencies`: each record's `latency_ms` (`processors.decide._decisions`).
//! - `rows_matrix`: feature rows as a float64 matrix (`processors.decide.as_matrix`).
//! - `policy_columns`: each row's verdict code and final score (`processors.policy.decide_columns`).

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType};
use std::cmp::Ordering;

use crate::order::utc_ms;

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
    let direct = CopiedEntries::known(py);
    let out = PyList::empty(py);
    for row in rows.iter() {
        let (row_ptr, is_tuple) = (row.as_ptr(), row.is_exact_instance_of::<PyTuple>());
        // SAFETY: PyDict_Copy returns a new reference (or NULL with an exception set), which
        // Bound takes over.
        let dict =
            unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyDict_Copy(template.as_ptr()))? };
        // SAFETY: a dict just made, exactly a dict, that nothing else holds
        let entries = if direct { unsafe { CopiedEntries::of(dict.as_ptr(), &keys) } } else { None };
        for (j, &key) in keys.iter().enumerate() {
            // SAFETY: `names` (held by the caller) keeps the keys alive; the row is a tuple or
            // a list (checked above) and its Get_Item checks the index (NULL and IndexError
            // past its end), so item j is a borrowed live reference, which PyDict_SetItem
            // (or `CopiedEntries::set`) takes its own reference to before anything else runs.
            let set = unsafe {
                let value = if is_tuple {
                    // (j is below its length: every row's was checked above)
                    ffi::PyTuple_GET_ITEM(row_ptr, j as ffi::Py_ssize_t)
                } else {
                    ffi::PyList_GetItem(row_ptr, j as ffi::Py_ssize_t)
                };
                if value.is_null() {
                    return Err(PyErr::fetch(py));
                }
                match &entries {
                    Some(entries) => {
                        entries.set(j, value);
                        0
                    }
                    None => ffi::PyDict_SetItem(dict.as_ptr(), key, value),
                }
            };
            if set < 0 {
                return Err(PyErr::fetch(py));
            }
        }
        out.append(dict)?;
    }
    Ok(out)
}

/// The entries of a copy of a template dict (`feature_dicts`', `decision_dicts`'), where
/// `PyDict_SetItem(dict, key, value)` of one of its keys stores the value once the key is
/// found: so the value goes there directly, without the key's hash lookup (~200 instructions
/// a key; 70 a Decision's features, 16 its record).
///
/// What it relies on, CPython 3.11's dict (`Include/internal/pycore_dict.h`,
/// `Objects/dictobject.c`), checked for each dict before any store: a combined table
/// (`ma_values` NULL) of str keys only (`DICT_KEYS_UNICODE`: entries of (key, value)), its
/// entries exactly the keys in order, none deleted (`dk_nentries` and `ma_used` the number of
/// keys, each entry's key the very object). `insertdict` on an existing key of such a table
/// has the cycle collector track the dict when the value may hold a reference cycle
/// (`MAINTAIN_TRACKING`; str keys never do), takes a reference to the value, stores it in the
/// entry, then releases the old value: `set` does that. Not done, and not needed by a dict
/// nobody has seen yet: its `ma_version_tag` is not renewed (a dict's version guards caches of
/// globals and builtins dicts). Under another CPython, `known` is false and every value goes
/// through `PyDict_SetItem`.
struct CopiedEntries {
    dict: *mut ffi::PyObject,
    entries: *mut UnicodeEntry,
}

/// `struct _dictkeysobject` up to its indices (3.11).
#[repr(C)]
struct KeysHead {
    dk_refcnt: ffi::Py_ssize_t,
    dk_log2_size: u8,
    dk_log2_index_bytes: u8,
    dk_kind: u8,
    dk_version: u32,
    dk_usable: ffi::Py_ssize_t,
    dk_nentries: ffi::Py_ssize_t,
}

/// `PyDictUnicodeEntry` (3.11).
#[repr(C)]
struct UnicodeEntry {
    me_key: *mut ffi::PyObject,
    me_value: *mut ffi::PyObject,
}

const DICT_KEYS_UNICODE: u8 = 1;

impl CopiedEntries {
    /// Whether the running CPython lays its dicts out as said above.
    fn known(py: Python<'_>) -> bool {
        let v = py.version_info();
        (v.major, v.minor) == (3, 11)
    }

    /// `dict`'s entries when they are `keys` in order, as said above; None otherwise.
    ///
    /// SAFETY: `dict` is a live object of exactly type dict, under CPython 3.11 (`known`).
    unsafe fn of(dict: *mut ffi::PyObject, keys: &[*mut ffi::PyObject]) -> Option<CopiedEntries> {
        let d = dict.cast::<ffi::PyDictObject>();
        let n = keys.len() as ffi::Py_ssize_t;
        if ffi::PyDict_CheckExact(dict) == 0 || !(*d).ma_values.is_null() || (*d).ma_used != n {
            return None;
        }
        let head = (*d).ma_keys.cast::<KeysHead>();
        if (*head).dk_kind != DICT_KEYS_UNICODE || (*head).dk_nentries != n
            || u32::from((*head).dk_log2_index_bytes) >= usize::BITS {
            return None;
        }
        // DK_ENTRIES: past the indices, which follow the head
        let indices = head.cast::<u8>().add(std::mem::size_of::<KeysHead>());
        let entries = indices.add(1usize << (*head).dk_log2_index_bytes).cast::<UnicodeEntry>();
        for (j, &key) in keys.iter().enumerate() {
            if (*entries.add(j)).me_key != key {
                return None;
            }
        }
        Some(CopiedEntries { dict, entries })
    }

    /// The value of the `j`-th key set to `value` (a borrowed reference).
    ///
    /// SAFETY: `j` below the number of keys `of` checked, the dict alive and unchanged since.
    unsafe fn set(&self, j: usize, value: *mut ffi::PyObject) {
        // MAINTAIN_TRACKING, with _PyObject_GC_MAY_BE_TRACKED(value)
        if ffi::PyObject_GC_IsTracked(self.dict) == 0
            && ffi::PyObject_IS_GC(value) != 0
            && (ffi::PyTuple_CheckExact(value) == 0 || ffi::PyObject_GC_IsTracked(value) != 0)
        {
            ffi::PyObject_GC_Track(self.dict.cast());
        }
        let entry = self.entries.add(j);
        ffi::Py_INCREF(value);
        let old = std::mem::replace(&mut (*entry).me_value, value);
        ffi::Py_XDECREF(old);
    }
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
pub(crate) fn inet_pton4(src: &[u8]) -> Option<[u8; 4]> {
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
    let key_ptrs: Vec<*mut ffi::PyObject> = keys.iter().map(Bound::as_ptr).collect();
    let direct = CopiedEntries::known(py);
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
        // SAFETY: a dict just made, exactly a dict, that nothing else holds
        let entries = if direct { unsafe { CopiedEntries::of(record.as_ptr(), &key_ptrs) } } else { None };
        for (j, (key, value)) in keys.iter().zip(values.iter()).enumerate() {
            // SAFETY: live objects; PyDict_SetItem (or `CopiedEntries::set`, j below the 16
            // keys it checked) takes its own references.
            match &entries {
                Some(entries) => unsafe { entries.set(j, value.as_ptr()) },
                None => {
                    if unsafe { ffi::PyDict_SetItem(record.as_ptr(), key.as_ptr(), value.as_ptr()) } < 0 {
                        return Err(PyErr::fetch(py));
                    }
                }
            }
        }
        out.append(record)?;
    }
    Ok(out)
}

/// Each purchase's Decision `latency_ms`: `float(max(0, decided_ms - (to_ms(p.get("ingested_at")
/// or p["occurred_at"]) or 0)))`, as `processors.decide._decisions` wrote it. A `datetime`
/// (exactly) in `utc` is converted here as `to_ms` converts it (`value - epoch` split into
/// days, seconds and microseconds: `order.rs` does the same), anything else by `to_ms`
/// itself, which converts or raises. ValueError, before anything is made, unless the purchases
/// are dicts (exactly); KeyError without an `occurred_at` where it is read; OverflowError for
/// a time beyond 64 bits of ms.
#[pyfunction]
pub fn arrival_latencies<'py>(
    py: Python<'py>,
    purchases: &Bound<'py, PyList>,
    decided_ms: i64,
    datetime: &Bound<'py, PyType>,
    utc: &Bound<'py, PyAny>,
    epoch: &Bound<'py, PyAny>,
    to_ms: &Bound<'py, PyAny>,
) -> PyResult<Vec<f64>> {
    let dicts = purchases
        .iter()
        .map(|p| p.downcast_into_exact::<PyDict>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| PyValueError::new_err("purchases must be dicts"))?;
    let (ingested_at, occurred_at) = (intern!(py, "ingested_at"), intern!(py, "occurred_at"));
    let overflow = || pyo3::exceptions::PyOverflowError::new_err("a latency beyond 64 bits of ms");
    let mut out = Vec::with_capacity(dicts.len());
    for purchase in dicts {
        let arrived = match purchase.get_item(ingested_at)? {
            Some(value) if value.is_truthy()? => value,
            _ => purchase
                .get_item(occurred_at)?
                .ok_or_else(|| pyo3::exceptions::PyKeyError::new_err("occurred_at"))?,
        };
        let ms = match utc_ms(&arrived, datetime, utc, epoch)? {
            Some(ms) => ms,
            None => {
                let ms = to_ms.call1((arrived,))?;
                if ms.is_none() {
                    0
                } else {
                    ms.downcast_into::<PyInt>()
                        .map_err(|_| PyValueError::new_err("to_ms gave what is not an int"))?
                        .extract::<i64>()?
                }
            }
        };
        let latency = decided_ms.checked_sub(ms).ok_or_else(overflow)?;
        out.push(latency.max(0) as f64);
    }
    Ok(out)
}

/// Fills `out` (a writable C-contiguous float64 matrix, one row a row) with the rows' values,
/// each converted as `struct.pack("d", value)` converts it (`PyFloat_AsDouble`: a float's
/// own value, else its `__float__` or `__index__`). ValueError, with `out` perhaps written in
/// part, when a row is not a tuple or a list exactly as wide as `out` or a value does not
/// convert.
#[pyfunction]
pub fn rows_matrix<'py>(
    py: Python<'py>,
    rows: &Bound<'py, PyList>,
    out: PyBuffer<f64>,
) -> PyResult<()> {
    let width = match out.shape() {
        [n, width] if *n == rows.len() && !out.readonly() && out.is_c_contiguous() => *width,
        _ => {
            return Err(PyValueError::new_err(
                "out must be a writable C-contiguous float64 matrix, one row a row",
            ))
        }
    };
    let Some(cells) = out.as_mut_slice(py) else {
        return Err(PyValueError::new_err("out must be contiguous"));
    };
    let refuse = || PyValueError::new_err("rows must be tuples or lists of floats, as wide as out");
    for (row, cells) in rows.iter().zip(cells.chunks_exact(width)) {
        let (row_ptr, is_tuple) = if let Ok(t) = row.downcast_exact::<PyTuple>() {
            if t.len() != width {
                return Err(refuse());
            }
            (t.as_ptr(), true)
        } else if let Ok(l) = row.downcast_exact::<PyList>() {
            if l.len() != width {
                return Err(refuse());
            }
            (l.as_ptr(), false)
        } else {
            return Err(refuse());
        };
        for (j, cell) in cells.iter().enumerate() {
            // SAFETY: `row` (a tuple or a list, checked above) is held here; Get_Item checks
            // the index (NULL and IndexError past the end: a list a `__float__` shrank) and
            // gives a borrowed reference: a tuple's holds its values; a list's is made our own
            // at once, so that a `__float__` taking the value out of its list cannot free it
            // while it converts.
            let value = unsafe {
                if is_tuple {
                    // (j is below the tuple's length, checked above, and a tuple's length
                    // does not change)
                    let item = ffi::PyTuple_GET_ITEM(row_ptr, j as ffi::Py_ssize_t);
                    if ffi::PyFloat_CheckExact(item) != 0 {
                        // what PyFloat_AsDouble reads of a float, without the call
                        cell.set((*item.cast::<ffi::PyFloatObject>()).ob_fval);
                        continue;
                    }
                    ffi::PyFloat_AsDouble(item)
                } else {
                    let item = ffi::PyList_GetItem(row_ptr, j as ffi::Py_ssize_t);
                    if item.is_null() {
                        PyErr::fetch(py);
                        return Err(refuse());
                    }
                    ffi::PyFloat_AsDouble(Bound::from_borrowed_ptr(py, item).as_ptr())
                }
            };
            if value == -1.0 && PyErr::occurred(py) {
                PyErr::fetch(py);
                return Err(refuse());
            }
            cell.set(value);
        }
    }
    Ok(())
}

/// `processors.policy._clamp` (and `_clamp_columns`): over 1 → 1, at least 0 → itself (-0.0
/// too), negative or NaN → 0.
fn clamp(x: f64) -> f64 {
    if x > 1.0 {
        1.0
    } else if x >= 0.0 {
        x
    } else {
        0.0
    }
}

/// `processors.policy.decide_columns(scores, rule_scores, hard, thresholds, rule_weight)` with
/// the thresholds' four columns (block, review, two_fa, two_fa_model) of row i
/// `distinct[index[i]]`: each row's verdict code (into `VERDICTS`) and final score, by the
/// same float64 operations in the same order (`model + (1 - model) * rule_weight * rule`,
/// each clamped as there). ValueError unless the columns are as long as each other and every
/// index is one of `distinct`'s.
#[pyfunction]
pub fn policy_columns(
    scores: Vec<f64>,
    rule_scores: Vec<f64>,
    hard: Vec<bool>,
    distinct: Vec<(f64, f64, f64, f64)>,
    index: Vec<usize>,
    rule_weight: f64,
) -> PyResult<(Vec<usize>, Vec<f64>)> {
    let n = scores.len();
    if rule_scores.len() != n || hard.len() != n || index.len() != n {
        return Err(PyValueError::new_err("columns of different lengths"));
    }
    if index.iter().any(|&k| k >= distinct.len()) {
        return Err(PyValueError::new_err("an index past the thresholds"));
    }
    let mut codes = Vec::with_capacity(n);
    let mut finals = Vec::with_capacity(n);
    for i in 0..n {
        if hard[i] {
            codes.push(3);
            finals.push(1.0);
            continue;
        }
        let (block, review, two_fa, two_fa_model) = distinct[index[i]];
        let (model, rule) = (clamp(scores[i]), clamp(rule_scores[i]));
        let final_ = clamp(model + (1.0 - model) * rule_weight * rule);
        let mut code = usize::from(final_ > block)
            + usize::from(final_ > review)
            + usize::from(final_ > two_fa);
        if code == 0 && model > two_fa_model {
            code = 1;
        }
        codes.push(code);
        finals.push(final_);
    }
    Ok((codes, finals))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(policy_columns, m)?)?;
    m.add_function(wrap_pyfunction!(arrival_latencies, m)?)?;
    m.add_function(wrap_pyfunction!(rows_matrix, m)?)?;
    m.add_function(wrap_pyfunction!(decision_dicts, m)?)?;
    m.add_function(wrap_pyfunction!(feature_dicts, m)?)?;
    m.add_function(wrap_pyfunction!(reasons_batch, m)?)?;
    m.add_function(wrap_pyfunction!(ipv4_column, m)?)
}
