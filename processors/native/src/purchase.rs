//! A purchase's whole step in `processors.features.FeatureEngine`, in one native call
//! (`PurchaseStep.into`), as `events.rs` does an auth event's and a transfer's: the purchase
//! read with its crowd read (`crowd_read.rs`'s `PurchaseReader`), its wallet found or made
//! (`EventAdmission.wallet_in`), admitted (`EventAdmission.check_lateness`), applied to the
//! entity and crowd stores whether late or not (`apply_stores`: the live replica applies late
//! purchases too), its row made (`WalletFeatures.row`, the marks' six values from
//! `processors.marks.order_mark_row` when any fraud is marked at all, else its constant), the
//! purchase kept for the labels to come (`MarkJoin.remember`), applied to its wallet
//! (`WalletUpdates.apply_order`) and the wallet filed in the expiry wheel
//! (`EventAdmission.file`).
//!
//! The steps, their order and their errors are those of the Python glue it replaced
//! (`tests/support/engine_reference.py`; `tests/unit/test_engine_glue.py` and
//! `tests/unit/test_native_purchase_step.py` compare): a late purchase raises `LateEventError`
//! after the stores took it, an error of the stores then replacing it (the late error its
//! context, as a `finally` leaves it). Why: the glue's nine calls, their arguments unpacked
//! each time and the crowd read made a Python object, were ~14 µs of a ~34 µs purchase step.

use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::crowd_read::PurchaseReader;
use crate::events::{EventAdmission, ExpiryWheel};
use crate::order::Record;
use crate::updates::WalletUpdates;
use crate::wallet::{self, WalletFeatures};
use crate::{CrowdStore, EntityStore};

/// The purchase step of `FeatureEngine` (see the module's documentation).
#[pyclass(module = "processors._native", frozen)]
pub struct PurchaseStep {
    reader: Py<PurchaseReader>,  // processors.crowd.read_purchase's
    events: Py<EventAdmission>,  // processors.apply.EVENTS
    updates: Py<WalletUpdates>,  // processors.state.WALLET_UPDATES
    mark_row: PyObject,          // processors.marks.order_mark_row
    no_marks: Py<PyTuple>,       // its answer when nothing is marked (marks._NONE)
    kept: Vec<Py<PyString>>,     // what MarkJoin keeps of a purchase (marks._KEPT), in order
}

#[pymethods]
impl PurchaseStep {
    #[new]
    #[pyo3(signature = (*, reader, events, updates, mark_row, no_marks, kept))]
    fn new(reader: Py<PurchaseReader>, events: Py<EventAdmission>, updates: Py<WalletUpdates>,
           mark_row: PyObject, no_marks: Py<PyTuple>, kept: Vec<Py<PyString>>) -> Self {
        PurchaseStep { reader, events, updates, mark_row, no_marks, kept }
    }

    /// `FeatureEngine._purchase` up to its watermark: purchase `p` into `wallets` (address ->
    /// state), the stores `entities` and `crowds`, the labels' join `marks` (a `MarkJoin`)
    /// and `wheel`, under `config` (a `FeatureConfig`) with `features` (its `WalletFeatures`);
    /// `(row, ts)`: its features and its event time.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(name = "into")]
    fn step<'py>(&self, p: &Bound<'py, PyAny>, wallets: &Bound<'py, PyDict>,
                 entities: &Bound<'py, EntityStore>, crowds: &Bound<'py, CrowdStore>,
                 marks: &Bound<'py, PyAny>, config: &Bound<'py, PyAny>,
                 features: &Bound<'py, WalletFeatures>, wheel: &Bound<'py, ExpiryWheel>)
                 -> PyResult<(Bound<'py, PyTuple>, Bound<'py, PyAny>)> {
        let py = p.py();
        let events = self.events.get();
        let (o, read) = self.reader.get().read(p, None)?;
        let o = o.downcast_into::<PyTuple>()?;
        let wallet = events.wallet_in(wallets, &o.get_item(wallet::order::WALLET)?)?;
        let ts = o.get_item(wallet::order::TS)?;
        let lateness = config.getattr(intern!(py, "allowed_lateness_ms"))?;
        let late = events.check_lateness(intern!(py, "purchase"), &ts, &wallet, &lateness);
        let applied = wallet::entity_order(&o).and_then(|order_in| {
            crate::apply_to_stores(&mut entities.borrow_mut(), &mut crowds.borrow_mut(), &o,
                                   &order_in, &read)?;
            Ok(order_in)
        });
        let order_in = admitted(py, late, applied)?;
        let store = marks.getattr(intern!(py, "store"))?;
        let mark_row = if store.getattr(intern!(py, "by_key"))?.is_truthy()? {
            self.mark_row.bind(py).call1((p, &store, entities, &o))?.downcast_into::<PyTuple>()?
        } else {
            self.no_marks.bind(py).clone()
        };
        let row = features.get().row_of(&o, &order_in, &wallet, &entities.borrow(),
                                        &crowds.borrow(), &read, &mark_row)?;
        self.remember(p, marks)?;
        let skew = config.getattr(intern!(py, "max_future_skew_ms"))?.extract::<i64>()?;
        self.updates.get().apply_order(&o, &wallet, skew)?;
        events.file(&wallet, wheel)?;
        Ok((row, ts))
    }
}

impl PurchaseStep {
    /// `marks.remember(p)`: `marks.purchases[p["purchase_id"]]` the tuple of `p.get` of each
    /// kept field, read in that order (the id last, as Python's assignment reads it).
    fn remember(&self, p: &Bound<'_, PyAny>, marks: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = p.py();
        let r = Record::new(p);
        let values = self.kept.iter().map(|name| r.get(name.bind(py))).collect::<PyResult<Vec<_>>>()?;
        let kept = PyTuple::new(py, values)?;
        let purchases = marks.getattr(intern!(py, "purchases"))?;
        purchases.set_item(r.item(intern!(py, "purchase_id"))?, kept)
    }
}

/// The outcome of `try: check_lateness(...) finally: apply_stores(...)`: the stores' error if
/// they raised one (the late error, if any, its `__context__`), else the lateness check's, else
/// what applying gave.
fn admitted<T>(py: Python<'_>, late: PyResult<()>, applied: PyResult<T>) -> PyResult<T> {
    match (late, applied) {
        (Err(late), Err(error)) => {
            // SAFETY: both are exception instances; SetContext steals the context's reference.
            unsafe {
                ffi::PyException_SetContext(error.value(py).as_ptr(), late.into_value(py).into_ptr());
            }
            Err(error)
        }
        (Err(late), Ok(_)) => Err(late),
        (Ok(()), applied) => applied,
    }
}
