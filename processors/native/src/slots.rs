//! `processors.state.WalletState`'s fields read and stored in their slots directly.
//!
//! Why: a native `wallet.getattr("watermark_ms")` is `PyObject_GetAttr`, a lookup of the name
//! in the type's MRO, the member descriptor's `__get__`, then `PyMember_GetOne`; the feature
//! loop does ~70 a purchase (issue 8: ~11 % of it in callgrind). Here each field's offset is
//! found once, from the type's member descriptors, and `get` / `set` read or store it.
//!
//! What a direct store relies on, checked when `WalletSlots::new` runs (it refuses otherwise):
//! every field is a `member_descriptor` of exactly this type, `T_OBJECT_EX` and not
//! `READONLY`, found first in the MRO; the type is not tracked by the cycle collector (msgspec's
//! `gc=False`): msgspec's `Struct_setattro_default` is then `PyObject_GenericSetAttr` and
//! nothing more (it tracks a gc'd struct when given a container), and its getattr is
//! `PyObject_GenericGetAttr`. `PyMember_SetOne` stores `T_OBJECT_EX` as `set` does (new
//! reference in, old one released after), `PyMember_GetOne` reads as `get` does.
//!
//! Each call checks that the object's type IS the struct (a subclass, another object: the
//! ordinary getattr / setattr), and an empty slot (a deleted field) takes getattr too, for the
//! very same AttributeError.

use std::ptr;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyType};
use pyo3::{ffi, BoundObject};

/// WalletState's fields, in declaration order (`fields` are checked against
/// `__struct_fields__` when built); the positions below index them.
pub(crate) const FIELDS: [&str; 24] = [
    "address", "watermark_ms", "pruned_ms", "first_seen_ms", "purchases", "purchases_total",
    "amount_total_minor", "last_purchase_ms", "geo_points", "failed_logins", "mfa_failures",
    "login_ok_ms", "fails_before_login_ok", "password_changed_ms", "email_changed_ms",
    "devices", "holdings", "mints", "sent", "resales", "wash_cycles", "marks", "applied",
    "fraud_marks",
];

/// Positions in `FIELDS`.
#[allow(dead_code)] // the whole layout, named; not every field is read natively
pub(crate) mod field {
    pub const ADDRESS: usize = 0;
    pub const WATERMARK_MS: usize = 1;
    pub const PRUNED_MS: usize = 2;
    pub const FIRST_SEEN_MS: usize = 3;
    pub const PURCHASES: usize = 4;
    pub const PURCHASES_TOTAL: usize = 5;
    pub const AMOUNT_TOTAL_MINOR: usize = 6;
    pub const LAST_PURCHASE_MS: usize = 7;
    pub const GEO_POINTS: usize = 8;
    pub const FAILED_LOGINS: usize = 9;
    pub const MFA_FAILURES: usize = 10;
    pub const LOGIN_OK_MS: usize = 11;
    pub const FAILS_BEFORE_LOGIN_OK: usize = 12;
    pub const PASSWORD_CHANGED_MS: usize = 13;
    pub const EMAIL_CHANGED_MS: usize = 14;
    pub const DEVICES: usize = 15;
    pub const HOLDINGS: usize = 16;
    pub const MINTS: usize = 17;
    pub const SENT: usize = 18;
    pub const RESALES: usize = 19;
    pub const WASH_CYCLES: usize = 20;
    pub const MARKS: usize = 21;
    pub const APPLIED: usize = 22;
    pub const FRAUD_MARKS: usize = 23;
}

/// The slot offsets of one struct type's fields.
pub(crate) struct Slots {
    ty: Py<PyType>,
    offsets: [ffi::Py_ssize_t; FIELDS.len()],
}

impl Slots {
    /// Resolve `FIELDS` in `ty`, refusing a type a direct slot access would not match.
    pub(crate) fn new(ty: &Bound<'_, PyType>) -> PyResult<Self> {
        let refuse = |why: String| PyTypeError::new_err(format!("{ty}: {why}"));
        let fields: Vec<String> = ty.getattr("__struct_fields__")?.extract()?;
        if fields.iter().map(String::as_str).ne(FIELDS.iter().copied()) {
            return Err(refuse(format!("fields {fields:?}, expected {FIELDS:?}")));
        }
        let struct_type = ty.py().import("msgspec")?.getattr("Struct")?.downcast_into::<PyType>()?;
        let tp = ty.as_type_ptr();
        // SAFETY: tp is a live type object (ty holds it); the flags and slots are read only.
        unsafe {
            if (*tp).tp_flags & ffi::Py_TPFLAGS_HAVE_GC != 0 {
                return Err(refuse("tracked by the cycle collector (gc=True)".into()));
            }
            if (*tp).tp_getattro.map(|f| f as usize) != Some(ffi::PyObject_GenericGetAttr as *const () as usize) {
                return Err(refuse("its getattr is not the generic one".into()));
            }
            // (addresses from libpython and msgspec's library: one each)
            if (*tp).tp_setattro.map(|f| f as usize)
                != (*struct_type.as_type_ptr()).tp_setattro.map(|f| f as usize) {
                return Err(refuse("its setattr is not msgspec.Struct's".into()));
            }
        }
        let mut offsets = [0; FIELDS.len()];
        for (at, name) in FIELDS.iter().enumerate() {
            offsets[at] = member_offset(ty, name).map_err(|why| refuse(format!("{name}: {why}")))?;
        }
        Ok(Slots { ty: ty.clone().unbind(), offsets })
    }

    /// `wallet`'s slot of `field` when `wallet` is exactly the struct (null when not, or when
    /// the slot is empty).
    fn slot(&self, wallet: &Bound<'_, PyAny>, field: usize) -> *mut *mut ffi::PyObject {
        let obj = wallet.as_ptr();
        // SAFETY: an instance of exactly `ty` has the member at this offset (checked in new).
        unsafe {
            if ffi::Py_TYPE(obj) != self.ty.as_ptr().cast() {
                return ptr::null_mut();
            }
            obj.cast::<u8>().offset(self.offsets[field]).cast()
        }
    }

    /// `getattr(wallet, FIELDS[field])`.
    pub(crate) fn get<'py>(&self, wallet: &Bound<'py, PyAny>, field: usize)
                           -> PyResult<Bound<'py, PyAny>> {
        let slot = self.slot(wallet, field);
        // SAFETY: a non-null slot holds a strong reference (or null: not set); new ref taken.
        unsafe {
            if !slot.is_null() && !(*slot).is_null() {
                return Ok(Bound::from_borrowed_ptr(wallet.py(), *slot));
            }
        }
        wallet.getattr(PyString::intern(wallet.py(), FIELDS[field]))
    }

    /// `setattr(wallet, FIELDS[field], value)`.
    pub(crate) fn set<'py, V: IntoPyObject<'py>>(&self, wallet: &Bound<'py, PyAny>, field: usize,
                                                 value: V) -> PyResult<()> {
        let value = value.into_pyobject(wallet.py()).map_err(Into::into)?.into_any().into_bound();
        let slot = self.slot(wallet, field);
        if slot.is_null() {
            return wallet.setattr(PyString::intern(wallet.py(), FIELDS[field]), value);
        }
        // SAFETY: as PyMember_SetOne's T_OBJECT_EX: store the new reference, then release the
        // old one (its finaliser, if any, then sees the new value in place).
        unsafe {
            let old = std::mem::replace(&mut *slot, value.into_ptr());
            ffi::Py_XDECREF(old);
        }
        Ok(())
    }

    /// A field that holds a list.
    pub(crate) fn list<'py>(&self, wallet: &Bound<'py, PyAny>, field: usize)
                            -> PyResult<Bound<'py, PyList>> {
        Ok(self.get(wallet, field)?.downcast_into::<PyList>()?)
    }

    /// A field that holds a dict.
    pub(crate) fn dict<'py>(&self, wallet: &Bound<'py, PyAny>, field: usize)
                            -> PyResult<Bound<'py, PyDict>> {
        Ok(self.get(wallet, field)?.downcast_into::<PyDict>()?)
    }
}

/// The offset of `name`'s slot: the first `name` in `ty.__mro__` must be a member descriptor
/// of `ty` itself, `T_OBJECT_EX`, writable.
fn member_offset(ty: &Bound<'_, PyType>, name: &str) -> Result<ffi::Py_ssize_t, String> {
    let mut found = None;
    for cls in ty.getattr("__mro__").and_then(|m| m.try_iter()).map_err(|e| e.to_string())? {
        let dict = cls.and_then(|c| c.getattr("__dict__")).map_err(|e| e.to_string())?;
        if let Ok(descr) = dict.get_item(name) {
            found = Some(descr);
            break;
        }
    }
    let found = found.ok_or("not found in the MRO")?;
    let descr = found.as_ptr();
    // SAFETY: the type is checked before the object is read as a member descriptor.
    unsafe {
        if ffi::Py_TYPE(descr) != ptr::addr_of_mut!(ffi::PyMemberDescr_Type) {
            return Err(format!("a {}, not a member_descriptor", found.get_type()));
        }
        let descr = descr.cast::<ffi::PyMemberDescrObject>();
        if (*descr).d_common.d_type != ty.as_type_ptr() {
            return Err("a member of another type".into());
        }
        // pyo3-ffi 0.23 declares d_member a PyGetSetDef: it is CPython's PyMemberDef.
        let member = (*descr).d_member.cast::<ffi::PyMemberDef>();
        if (*member).type_code != ffi::Py_T_OBJECT_EX || (*member).flags & ffi::Py_READONLY != 0 {
            return Err("not a writable T_OBJECT_EX member".into());
        }
        Ok((*member).offset)
    }
}

/// `processors._native.WalletSlots(WalletState)`: the accessor, from Python (for its tests).
#[pyclass(module = "processors._native", frozen)]
pub struct WalletSlots {
    slots: Slots,
}

#[pymethods]
impl WalletSlots {
    #[new]
    fn new(wallet_state: &Bound<'_, PyType>) -> PyResult<Self> {
        Ok(WalletSlots { slots: Slots::new(wallet_state)? })
    }

    /// `getattr(wallet, name)`, by the slot.
    fn get<'py>(&self, wallet: &Bound<'py, PyAny>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        self.slots.get(wallet, position(name)?)
    }

    /// `setattr(wallet, name, value)`, by the slot.
    fn set(&self, wallet: &Bound<'_, PyAny>, name: &str, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.slots.set(wallet, position(name)?, value)
    }
}

fn position(name: &str) -> PyResult<usize> {
    FIELDS.iter().position(|f| *f == name)
        .ok_or_else(|| PyTypeError::new_err(format!("not a WalletState field: {name}")))
}
