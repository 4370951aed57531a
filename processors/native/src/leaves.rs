//! A rules program's text leaves (`processors.rules.program`: `EachLeaf`, `PairLeaf`): the
//! booleans of its expressions that read a purchase's text fields, computed from the records
//! for every row in one call, each as the compiled column node gives it (a function of one
//! text field's value, remembered per text across batches; an IPv4 address in ranges; a
//! blocklist membership; two texts compared). What it cannot answer exactly so (a value that
//! is not a text, a function that raises) is 2, deferred: the caller evaluates that row by
//! columns.

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::columns::read_columns;
use crate::decide::inet_pton4;

/// Leaves that are a function of one text field's value (`program.EachLeaf`,
/// `program.PairLeaf`), computed into rows of `out` (`fill`: a writable C-contiguous uint8
/// matrix, one row a leaf, one column a record; 0 false, 1 true, 2 deferred: the caller
/// evaluates that row by columns) from `columns` (lists of the records' values):
///
/// - `groups`: per `(column, cache, leaves)`, each record's value of `columns[column]` given
///   to each `(row, fn)` of `leaves`, its truth into `out[row]`, 2 where `fn` raises; the
///   answers of a value remembered in `cache` (a dict, emptied when it holds `cap` values);
/// - `addresses`: per `(row, column, bounds, fn)`, for a text that is an IPv4 address as
///   `inet_pton` reads it, whether it is in the ranges whose sorted bounds (each range's
///   first address and the one after its last) are `bounds` (an odd number of them at or
///   below it), or with no bounds 1 (a valid address); for another text, the truth of `fn`
///   (remembered);
/// - `pairs`: per `(row, left, right, different)`, whether two texts are equal (with
///   `different`, unequal) as Python compares them, each text `(column, fn, cache)`: the
///   value itself (no `fn`), or `fn` of it, remembered in `cache`;
/// - `members` (`fill`'s, the batch's blocklists): per `(row, column, collection, present)`,
///   whether each value is in `collection` (and with `present`, neither None nor '').
///
/// A value that is neither None nor a `str` is 2 (but one compared as it is).
#[pyclass(module = "processors._native", frozen)]
pub struct TextLeaves {
    rows: usize,
    columns: usize,
    cap: usize,
    groups: Vec<(usize, Py<PyDict>, Vec<(usize, PyObject)>)>,
    addresses: Vec<(usize, usize, Option<Vec<u64>>, PyObject, Py<PyDict>)>,
    pairs: Vec<(usize, Text, Text, bool)>,
}

/// A text of a pair: `(column, fn, cache)`.
type Text = (usize, Option<PyObject>, Py<PyDict>);

#[pymethods]
impl TextLeaves {
    /// ValueError when a leaf's row is not below `rows` or its column below `columns`.
    #[new]
    fn new(
        py: Python<'_>,
        rows: usize,
        columns: usize,
        groups: Vec<(usize, Py<PyDict>, Vec<(usize, PyObject)>)>,
        addresses: Vec<(usize, usize, Option<Vec<u64>>, PyObject)>,
        pairs: Vec<(usize, Text, Text, bool)>,
        cap: usize,
    ) -> PyResult<Self> {
        let fits = |row: usize, column: usize| row < rows && column < columns;
        let ok = groups.iter().all(|(c, _, leaves)| leaves.iter().all(|(r, _)| fits(*r, *c)))
            && addresses.iter().all(|(r, c, _, _)| fits(*r, *c))
            && pairs.iter().all(|(r, a, b, _)| fits(*r, a.0) && fits(*r, b.0));
        if !ok {
            return Err(PyValueError::new_err("a leaf's row or column is out of range"));
        }
        let addresses = addresses
            .into_iter()
            .map(|(r, c, bounds, f)| (r, c, bounds, f, PyDict::new(py).unbind()))
            .collect();
        Ok(TextLeaves { rows, columns, cap, groups, addresses, pairs })
    }

    /// The leaves into `out` from `columns`, the records' values of the fields (lists, in
    /// the declared order); `members`, the batch's blocklist leaves.
    fn fill(
        &self,
        py: Python<'_>,
        out: PyBuffer<u8>,
        columns: Vec<Bound<'_, PyList>>,
        members: Vec<(usize, usize, Bound<'_, PyAny>, bool)>,
    ) -> PyResult<()> {
        let columns: Vec<Vec<Bound<'_, PyAny>>> = columns.iter().map(|c| c.iter().collect()).collect();
        self.fill_columns(py, out, &columns, &members)
    }

    /// `fill` from the records themselves (plain dicts), each field `(name, inner)` read as
    /// `text_columns` reads it; ValueError, before anything is written, as it refuses.
    fn fill_records(
        &self,
        py: Python<'_>,
        out: PyBuffer<u8>,
        records: &Bound<'_, PyList>,
        fields: Vec<(Bound<'_, PyString>, Option<Bound<'_, PyString>>)>,
        members: Vec<(usize, usize, Bound<'_, PyAny>, bool)>,
    ) -> PyResult<()> {
        let columns = read_columns(py, records, &fields)?;
        self.fill_columns(py, out, &columns, &members)
    }
}

impl TextLeaves {
    fn fill_columns(
        &self,
        py: Python<'_>,
        out: PyBuffer<u8>,
        columns: &[Vec<Bound<'_, PyAny>>],
        members: &[(usize, usize, Bound<'_, PyAny>, bool)],
    ) -> PyResult<()> {
        let width = match out.shape() {
            [l, n] if *l == self.rows && !out.readonly() && out.is_c_contiguous() => *n,
            _ => return Err(PyValueError::new_err("out must be a writable C-contiguous uint8 matrix, one row a leaf")),
        };
        if columns.len() != self.columns || columns.iter().any(|c| c.len() != width) {
            return Err(PyValueError::new_err("columns must be as many as declared, each as long as out is wide"));
        }
        if members.iter().any(|(r, c, _, _)| *r >= self.rows || *c >= self.columns) {
            return Err(PyValueError::new_err("a leaf's row or column is out of range"));
        }
        let Some(cells) = out.as_mut_slice(py) else {
            return Err(PyValueError::new_err("out must be contiguous"));
        };
        let cell = |row: usize, i: usize| &cells[row * width + i];
        let cap = self.cap;
        for (column, cache, leaves) in &self.groups {
            let cache = cache.bind(py);
            let leaves: Vec<(usize, Bound<'_, PyAny>)> =
                leaves.iter().map(|(r, f)| (*r, f.bind(py).clone())).collect();
            for (i, value) in columns[*column].iter().enumerate() {
                group_answers(py, value, cache, &leaves, cap, |k, answer| cell(leaves[k].0, i).set(answer))?;
            }
        }
        for (row, column, collection, present) in members {
            for (i, value) in columns[*column].iter().enumerate() {
                let answer = if !text_or_none(value) {
                    2
                } else if *present && !value.is_truthy()? {
                    0 // None or '': missing, in nothing
                } else {
                    collection.contains(value).map_or(2, u8::from)
                };
                cell(*row, i).set(answer);
            }
        }
        // each column's IPv4 addresses, read once for all its address leaves
        let mut read: Vec<Option<Vec<Option<[u8; 4]>>>> = vec![None; columns.len()];
        for (row, column, bounds, fallback, known) in &self.addresses {
            let (fallback, known) = (fallback.bind(py), known.bind(py));
            let quads = read[*column].get_or_insert_with(|| columns[*column].iter().map(ipv4).collect());
            for (i, (value, quad)) in columns[*column].iter().zip(quads.iter()).enumerate() {
                let answer = match (*quad, bounds) {
                    (Some(quad), Some(bounds)) => {
                        let address = u64::from(u32::from_be_bytes(quad));
                        (bounds.partition_point(|&b| b <= address) % 2) as u8
                    }
                    (Some(_), None) => 1,
                    (None, _) if !text_or_none(value) => 2,
                    (None, _) => remembered(value, known, cap, || {
                        fallback.call1((value,)).and_then(|r| r.is_truthy()).map_or(2, u8::from)
                    })?,
                };
                cell(*row, i).set(answer);
            }
        }
        for (row, left, right, different) in &self.pairs {
            let (a, b) = (&columns[left.0], &columns[right.0]);
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                let answer = match (text_of(py, x, left, cap), text_of(py, y, right, cap)) {
                    (Some(x), Some(y)) => {
                        let same = if *different { x.ne(&y) } else { x.eq(&y) };
                        same.map_or(2, u8::from)
                    }
                    _ => 2,
                };
                cell(*row, i).set(answer);
            }
        }
        Ok(())
    }
}

/// `value` itself, or `fn` of it (remembered): None where it is deferred.
fn text_of<'py>(py: Python<'py>, value: &Bound<'py, PyAny>, text: &Text, cap: usize) -> Option<Bound<'py, PyAny>> {
    let (_, function, cache) = text;
    let Some(function) = function else { return Some(value.clone()) };
    if !text_or_none(value) {
        return None;
    }
    let cache = cache.bind(py);
    if let Ok(Some(known)) = cache.get_item(value) {
        return Some(known);
    }
    let made = function.bind(py).call1((value,)).ok()?;
    if cache.len() >= cap {
        cache.clear();
    }
    cache.set_item(value, &made).ok()?;
    Some(made)
}

/// `compute()` for `value`, remembered in `cache` (emptied when it holds `cap` values).
fn remembered(value: &Bound<'_, PyAny>, cache: &Bound<'_, PyDict>, cap: usize,
              compute: impl FnOnce() -> u8) -> PyResult<u8> {
    if let Some(known) = cache.get_item(value)? {
        return known.extract();
    }
    let answer = compute();
    if cache.len() >= cap {
        cache.clear();
    }
    cache.set_item(value, answer)?;
    Ok(answer)
}

/// A text's IPv4 address, as `inet_pton` reads it.
fn ipv4(value: &Bound<'_, PyAny>) -> Option<[u8; 4]> {
    let text = value.downcast_exact::<PyString>().ok()?;
    text.to_str().ok().and_then(|t| inet_pton4(t.as_bytes()))
}

fn text_or_none(value: &Bound<'_, PyAny>) -> bool {
    value.is_none() || value.is_exact_instance_of::<PyString>()
}

/// Each leaf's answer for `value` (`put(k, answer)` for the `k`-th): remembered in `cache`
/// (as bytes), else computed.
fn group_answers(
    py: Python<'_>,
    value: &Bound<'_, PyAny>,
    cache: &Bound<'_, PyDict>,
    leaves: &[(usize, Bound<'_, PyAny>)],
    cap: usize,
    mut put: impl FnMut(usize, u8),
) -> PyResult<()> {
    if !text_or_none(value) {
        (0..leaves.len()).for_each(|k| put(k, 2));
        return Ok(());
    }
    if let Some(known) = cache.get_item(value)? {
        let known = known.downcast::<PyBytes>()?.as_bytes();
        known.iter().enumerate().for_each(|(k, &answer)| put(k, answer));
        return Ok(());
    }
    let answers: Vec<u8> = leaves
        .iter()
        .map(|(_, f)| f.call1((value,)).and_then(|r| r.is_truthy()).map_or(2, u8::from))
        .collect();
    if cache.len() >= cap {
        cache.clear();
    }
    cache.set_item(value, PyBytes::new(py, &answers))?;
    answers.iter().enumerate().for_each(|(k, &answer)| put(k, answer));
    Ok(())
}
