//! `feature_dicts`: a batch's Decision `features` dicts (`processors.decide._features`) in one
//! call.
//!
//! Each dict is a copy of the template (`FEATURE_NAMES` → 0.0, keys in that order, its table
//! sized for them) with every value set from the row, key by key in order: the same C calls
//! (`PyDict_Copy`, then `PyDict_SetItem` of each existing key) that
//! `template.copy().update(zip(names, row))` makes, without the zip's tuple and the
//! interpreter around each row. The same dicts: same keys in the same order, the row's own
//! value objects.

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};

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

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(feature_dicts, m)?)
}
