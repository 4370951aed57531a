//! The features a purchase reads from its wallet (`processors.state.WalletState`, as it was
//! BEFORE the purchase) and from the order itself, with the entity store's in between:
//! `WalletFeatures.row`, every value of `processors.compute.FEATURE_NAMES` up to
//! `email_verified`, then the crowd store's values (`CrowdStore::values_of`) and the marks'
//! (given), so that a purchase's row is one call and one tuple. It reads the `processors.records.Order` NamedTuple and the state's
//! lists of NamedTuples and dicts where they are, item by item, and converts only what it
//! compares or sums.
//!
//! The values are those the Python functions it replaced gave, to the bit
//! (`tests/support/wallet_reference.py` keeps them; `tests/unit/test_native_wallet_features.py`
//! compares): the same windows (half-open, `t - w < ts <= t`), found by the same bisection
//! steps as `bisect.bisect_right` (so even an unsorted list gives Python's answer); Python's
//! arithmetic (exact integer sums, then one conversion; `int / int` correctly rounded: one IEEE
//! division while both are below 2^53, Python's own division otherwise); distinct values as a
//! Python set counts them (None discarded, strs equal when their text is); and the C library's
//! `sin`, `cos`, `asin`, `sqrt`, `log1p` and `pow` that CPython's `math` and `**` call, with
//! `math`'s "math domain error" where CPython raises it.
//!
//! Assumed of the inputs (as their types say): event times are ints within i64 (the entity
//! store reads the order's the same way), amounts and counts ints within ±2^127 and their sums
//! too (OverflowError beyond), ids strs, coordinates floats; anything else raises TypeError
//! where Python might have computed something.

use std::borrow::Cow;
use std::hint::black_box;

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError, PyZeroDivisionError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyList, PyString, PyTuple, PyType};

use crate::crowd_read::CrowdRead;
use crate::slots::{field, Slots};
use crate::{CrowdStore, EntityStore, OrderIn, MISSING};

extern "C" {
    /// The C library's `pow`, which CPython's `float ** 2` calls (`x * x` may round otherwise).
    fn pow(x: f64, y: f64) -> f64;
}

/// The layouts read by position, checked against the NamedTuples' `_fields` when built.
pub(crate) const ORDER_FIELDS: [&str; 23] = [
    "ts", "ingested_ms", "purchase_id", "wallet", "show_id", "ticket_id", "channel", "quantity",
    "amount", "unit", "payment_method", "card", "ip", "device", "geo", "lat", "lon", "country",
    "sale_opens_ms", "account_created_ms", "mfa_enabled", "phone_verified", "email_verified",
];
pub(crate) const PURCHASE_FACT_FIELDS: [&str; 12] = [
    "ts_ms", "show_id", "amount_minor", "quantity", "payment_method", "card", "lat", "lon",
    "country", "ip", "device", "channel",
];
pub(crate) const GEO_POINT_FIELDS: [&str; 4] = ["ts_ms", "lat", "lon", "country"];
pub(crate) const RESALE_FACT_FIELDS: [&str; 3] = ["ts_ms", "hold_ms", "flip_ms"];

/// Positions in `Order`.
pub(crate) mod order {
    pub const TS: usize = 0;
    pub const INGESTED_MS: usize = 1;
    pub const PURCHASE_ID: usize = 2;
    pub const WALLET: usize = 3;
    pub const SHOW_ID: usize = 4;
    pub const TICKET_ID: usize = 5;
    pub const CHANNEL: usize = 6;
    pub const QUANTITY: usize = 7;
    pub const AMOUNT: usize = 8;
    pub const UNIT: usize = 9;
    pub const PAYMENT_METHOD: usize = 10;
    pub const CARD: usize = 11;
    pub const IP: usize = 12;
    pub const DEVICE: usize = 13;
    pub const GEO: usize = 14;
    pub const LAT: usize = 15;
    pub const LON: usize = 16;
    pub const COUNTRY: usize = 17;
    pub const SALE_OPENS_MS: usize = 18;
    pub const ACCOUNT_CREATED_MS: usize = 19;
    pub const FLAGS: [usize; 3] = [20, 21, 22]; // mfa_enabled, phone_verified, email_verified
}

/// Positions in `PurchaseFact`.
mod fact {
    pub const SHOW_ID: usize = 1;
    pub const AMOUNT: usize = 2;
    pub const QUANTITY: usize = 3;
    pub const COUNTRY: usize = 8;
}

/// The diversity features' fields, (position in `PurchaseFact`, in `Order`): show_id,
/// payment_method, card, ip, device, country.
const DIVERSITY: [(usize, usize); 6] = [(1, 4), (4, 10), (5, 11), (9, 12), (10, 13), (8, 17)];

/// Values in a row up to `email_verified`: 11 history, 7 diversity, 2 ages, 3 geo, 4 entity,
/// 7 auth, 7 token, 5 show, 7 of the order; the crowd's 11 and the marks' 6 follow.
const WALLET_LEN: usize = 53;
const MARKS_LEN: usize = 6;

/// The windows and knobs (`processors.compute.wallet_features` passes Python's).
#[derive(Clone, Copy)]
struct WalletLimits {
    second_ms: i128,
    minute_ms: i128,
    hour_ms: i128,
    day_ms: i128,
    purchase_retention_ms: i128,
    duplicate_window_ms: i128,
    device_memory_ms: i128,
    token_window_ms: i128,
    earth_radius_km: f64,
    small_amount_minor: i128,
    impossible_km: f64,
    impossible_within_ms: i128,
    min_travel_ms: i128,
}

/// The wallet and order features for one `processors.apply.FeatureConfig`.
#[pyclass(module = "processors._native", frozen)]
pub struct WalletFeatures {
    lim: WalletLimits,
    // 0.0, 1.0 and MISSING, most of a row's values: shared rather than made for every row
    common: [(u64, Py<PyFloat>); 3],
    slots: Slots, // processors.state.WalletState's fields
}

#[pymethods]
impl WalletFeatures {
    #[new]
    #[pyo3(signature = (*, second_ms, minute_ms, hour_ms, day_ms, purchase_retention_ms,
                        duplicate_window_ms, device_memory_ms, token_window_ms, earth_radius_km,
                        small_amount_minor, impossible_km, impossible_within_ms, min_travel_ms,
                        order_fields, purchase_fact_fields, geo_point_fields,
                        resale_fact_fields, wallet_state))]
    #[allow(clippy::too_many_arguments)]
    fn new(second_ms: i64, minute_ms: i64, hour_ms: i64, day_ms: i64, purchase_retention_ms: i64,
           duplicate_window_ms: i64, device_memory_ms: i64, token_window_ms: i64,
           earth_radius_km: f64, small_amount_minor: i64, impossible_km: f64,
           impossible_within_ms: i64, min_travel_ms: i64, order_fields: Vec<String>,
           purchase_fact_fields: Vec<String>, geo_point_fields: Vec<String>,
           resale_fact_fields: Vec<String>, wallet_state: &Bound<'_, PyType>,
           py: Python<'_>) -> PyResult<Self> {
        for (name, got, want) in [("Order", &order_fields, &ORDER_FIELDS[..]),
                                  ("PurchaseFact", &purchase_fact_fields, &PURCHASE_FACT_FIELDS[..]),
                                  ("GeoPoint", &geo_point_fields, &GEO_POINT_FIELDS[..]),
                                  ("ResaleFact", &resale_fact_fields, &RESALE_FACT_FIELDS[..])] {
            if got.iter().map(String::as_str).ne(want.iter().copied()) {
                return Err(PyValueError::new_err(format!(
                    "{name} fields {got:?}: the native reader expects {want:?}")));
            }
        }
        let i = i128::from;
        let common = [0.0, 1.0, MISSING].map(|v| (f64::to_bits(v), PyFloat::new(py, v).unbind()));
        Ok(WalletFeatures {
            common,
            slots: Slots::new(wallet_state)?,
            lim: WalletLimits {
                second_ms: i(second_ms), minute_ms: i(minute_ms), hour_ms: i(hour_ms),
                day_ms: i(day_ms), purchase_retention_ms: i(purchase_retention_ms),
                duplicate_window_ms: i(duplicate_window_ms),
                device_memory_ms: i(device_memory_ms), token_window_ms: i(token_window_ms),
                earth_radius_km, small_amount_minor: i(small_amount_minor), impossible_km,
                impossible_within_ms: i(impossible_within_ms), min_travel_ms: i(min_travel_ms),
            },
        })
    }

    /// A purchase's row of `FEATURE_NAMES`, for order `o` (an admitted `Order`) from
    /// `wallet` (its state before the order) and `entities` (the entity store) up to
    /// `email_verified`, then `crowds.values(read, o.wallet, o.ts, o.card)` (the crowd store
    /// and the purchase's `CrowdRead`: `processors.crowd.CROWD_FEATURES`), then `marks`
    /// (`processors.marks.MARK_FEATURES`' six values, as given).
    fn row<'py>(&self, o: &Bound<'py, PyTuple>, wallet: &Bound<'py, PyAny>,
                entities: PyRef<'py, EntityStore>, crowds: PyRef<'py, CrowdStore>,
                read: &Bound<'py, CrowdRead>, marks: &Bound<'py, PyTuple>)
                -> PyResult<Bound<'py, PyTuple>> {
        if marks.len() != MARKS_LEN {
            return Err(PyValueError::new_err(format!(
                "marks: {MARKS_LEN} values expected, {} given", marks.len())));
        }
        ts_of(&o.get_item(order::TS)?)?; // the errors in their former order: marks, time, fields
        self.row_of(o, &entity_order(o)?, wallet, &entities, &crowds, read.get(), marks)
    }
}

impl WalletFeatures {
    /// `row`, for an order whose fields the entity store reads are read already
    /// (`entity_order`), the stores and the crowd read borrowed (`purchase.rs`'s step).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn row_of<'py>(&self, o: &Bound<'py, PyTuple>, entity_order: &OrderIn,
                              wallet: &Bound<'py, PyAny>, entities: &EntityStore,
                              crowds: &CrowdStore, read: &CrowdRead, marks: &Bound<'py, PyTuple>)
                              -> PyResult<Bound<'py, PyTuple>> {
        if marks.len() != MARKS_LEN {
            return Err(PyValueError::new_err(format!(
                "marks: {MARKS_LEN} values expected, {} given", marks.len())));
        }
        let py = o.py();
        let r = Reader { py, lim: &self.lim, slots: &self.slots, o, w: wallet, ts: ts_of(&o.get_item(order::TS)?)? };
        let mut row: Vec<f64> = Vec::with_capacity(WALLET_LEN + crate::CROWD_LEN);
        r.history(&mut row)?;
        row.push(match opt_ts(&r.attr(field::FIRST_SEEN_MS)?)? {
            None => 0.0,
            Some(then) => max0(true_div(py, r.ts - then, r.lim.day_ms)?),
        });
        row.push(match opt_ts(&o.get_item(order::ACCOUNT_CREATED_MS)?)? {
            None => MISSING,
            Some(then) => max0(true_div(py, r.ts - then, r.lim.day_ms)?),
        });
        row.extend(r.geo()?);
        let (ip, device, card, linked) = entities.entity_values_of(entity_order);
        row.extend([ip, device, card, linked]);
        row.extend(r.auth()?);
        let [avg_hold, min_flip, resales, wash, held, holdings] = r.tokens()?;
        row.extend([avg_hold, entities.mint_to_resale_of(entity_order), min_flip, resales, wash,
                    held, holdings]);
        let (deviation, markup, popularity, since_open, before_open) =
            entities.show_values_of(entity_order);
        row.extend([deviation, markup, popularity, since_open, before_open]);
        r.order_values(&mut row)?;
        debug_assert_eq!(row.len(), WALLET_LEN);
        row.extend(crowds.values_of(read, &entity_order.wallet, entity_order.ts,
                                    entity_order.card.as_deref()));
        let mut values: Vec<Bound<'py, PyAny>> = Vec::with_capacity(row.len() + MARKS_LEN);
        values.extend(row.into_iter().map(|v| self.float(py, v).into_any()));
        values.extend(marks.iter());
        PyTuple::new(py, values)
    }

    /// `v` as a Python float: a shared one when it is one of the common values (bit for bit:
    /// -0.0 is not 0.0).
    fn float<'py>(&self, py: Python<'py>, v: f64) -> Bound<'py, PyFloat> {
        let bits = v.to_bits();
        match self.common.iter().find(|(b, _)| *b == bits) {
            Some((_, shared)) => shared.bind(py).clone(),
            None => PyFloat::new(py, v),
        }
    }
}

/// The order's fields the entity store reads (`OrderIn`), by position; a field that does not
/// convert raises what `EntityStore.entity_values(o)` raised for it.
pub(crate) fn entity_order(o: &Bound<'_, PyTuple>) -> PyResult<OrderIn> {
    fn field<'py, T: FromPyObject<'py>>(o: &Bound<'py, PyTuple>, at: usize, name: &str) -> PyResult<T> {
        o.get_item(at)?.extract().map_err(|cause| {
            let err = PyTypeError::new_err(format!("argument 'o': failed to extract field OrderIn.{name}"));
            err.set_cause(o.py(), Some(cause));
            err
        })
    }
    Ok(OrderIn {
        ts: field(o, order::TS, "ts")?,
        purchase_id: field(o, order::PURCHASE_ID, "purchase_id")?,
        wallet: field(o, order::WALLET, "wallet")?,
        show_id: field(o, order::SHOW_ID, "show_id")?,
        ticket_id: field(o, order::TICKET_ID, "ticket_id")?,
        channel: field(o, order::CHANNEL, "channel")?,
        unit: field(o, order::UNIT, "unit")?,
        card: field(o, order::CARD, "card")?,
        ip: field(o, order::IP, "ip")?,
        device: field(o, order::DEVICE, "device")?,
        sale_opens_ms: field(o, order::SALE_OPENS_MS, "sale_opens_ms")?,
    })
}

/// One order and its wallet.
struct Reader<'a, 'py> {
    py: Python<'py>,
    lim: &'a WalletLimits,
    slots: &'a Slots,
    o: &'a Bound<'py, PyTuple>,
    w: &'a Bound<'py, PyAny>,
    ts: i128,
}

impl<'py> Reader<'_, 'py> {
    fn attr(&self, field: usize) -> PyResult<Bound<'py, PyAny>> {
        self.slots.get(self.w, field)
    }

    fn list(&self, field: usize) -> PyResult<Bound<'py, PyList>> {
        self.slots.list(self.w, field)
    }

    fn dict(&self, field: usize) -> PyResult<Bound<'py, PyDict>> {
        self.slots.dict(self.w, field)
    }

    fn item(&self, i: usize) -> PyResult<Bound<'py, PyAny>> {
        self.o.get_item(i)
    }

    /// velocity_1h … duplicates_10m (prior purchases in the windows; time since the last;
    /// lifetime totals), then distinct_shows_24h … new_country.
    fn history(&self, row: &mut Vec<f64>) -> PyResult<()> {
        let (py, lim, ts) = (self.py, self.lim, self.ts);
        let ring = self.list(field::PURCHASES)?;
        let (i, j) = if ring.is_empty() {
            (0, 0)
        } else {
            rows_between(&ring, ts - lim.purchase_retention_ms, ts)?
        };
        let total = int(&self.attr(field::PURCHASES_TOTAL)?)?;
        let amount = self.item(order::AMOUNT)?.extract::<f64>()?; // float(o.amount)
        let amount_vs_avg = self.amount_vs_avg(total, amount)?;
        if i == j {
            let last = opt_ts(&self.attr(field::LAST_PURCHASE_MS)?)?;
            row.extend([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, age(py, ts, last, lim.second_ms)?,
                        total as f64, amount_vs_avg, 0.0, 0.0]);
            for (_, at) in DIVERSITY {
                row.push(if self.item(at)?.is_none() { 0.0 } else { 1.0 });
            }
            row.push(MISSING);
            return Ok(());
        }
        let rows = (i..j).map(|k| Ok(ring.get_item(k)?.downcast_into::<PyTuple>()?))
            .collect::<PyResult<Vec<_>>>()?;
        let since = |lo_excl, from| bisect_right(&ring, lo_excl, from, j, row_ts);
        let day = since(ts - lim.day_ms, i)?;
        let hour = since(ts - lim.hour_ms, day)?;
        let recent = since(ts - lim.duplicate_window_ms, hour)?;
        let show_id = self.item(order::SHOW_ID)?;
        let quantity = int(&self.item(order::QUANTITY)?)?;
        let same_amount = int_of_float(amount)?; // int(float(o.amount)), as duplicates compare
        let (mut amount_1h, mut amount_24h, mut tickets_24h, mut small, mut dups) = (0, 0, 0, 0, 0);
        for (k, r) in (day..j).zip(&rows[day - i..]) {
            let (a, q) = (int(&r.get_item(fact::AMOUNT)?)?, int(&r.get_item(fact::QUANTITY)?)?);
            amount_24h = add(amount_24h, a)?;
            tickets_24h = add(tickets_24h, q)?;
            if k >= hour {
                amount_1h = add(amount_1h, a)?;
                small += i64::from(a <= lim.small_amount_minor);
            }
            if k >= recent && same_text(&r.get_item(fact::SHOW_ID)?, &show_id)?
                && Some(a) == same_amount && q == quantity {
                dups += 1;
            }
        }
        let mut show_tickets = 0;
        for r in &rows {
            if same_text(&r.get_item(fact::SHOW_ID)?, &show_id)? {
                show_tickets = add(show_tickets, int(&r.get_item(fact::QUANTITY)?)?)?;
            }
        }
        let last = row_ts(&ring.get_item(j - 1)?)?;
        row.extend([(j - hour) as f64, (j - day) as f64, amount_1h as f64, amount_24h as f64,
                    tickets_24h as f64, show_tickets as f64,
                    age(py, ts, Some(last), lim.second_ms)?, total as f64, amount_vs_avg,
                    small as f64, dups as f64]);
        self.diversity(row, &rows, day - i)
    }

    /// float(o.amount) / (amount_total_minor / purchases_total), MISSING with no history.
    fn amount_vs_avg(&self, total: i128, amount: f64) -> PyResult<f64> {
        let amount_total = int(&self.attr(field::AMOUNT_TOTAL_MINOR)?)?;
        if total == 0 || amount_total <= 0 {
            return Ok(MISSING);
        }
        fdiv(amount, true_div(self.py, amount_total, total)?)
    }

    /// Distinct values over the 24 h rows (`rows[day..]`) with this purchase's; whether its
    /// country is new to the 7 days' rows.
    fn diversity(&self, row: &mut Vec<f64>, rows: &[Bound<'py, PyTuple>], day: usize) -> PyResult<()> {
        for (in_fact, in_order) in DIVERSITY {
            let mut values = rows[day..].iter().map(|r| r.get_item(in_fact))
                .collect::<PyResult<Vec<_>>>()?;
            values.push(self.item(in_order)?);
            row.push(distinct(&values)? as f64);
        }
        let countries = rows.iter().map(|r| r.get_item(fact::COUNTRY))
            .collect::<PyResult<Vec<_>>>()?;
        let seen = texts(&countries)?;
        let country = self.item(order::COUNTRY)?;
        row.push(if country.is_none() || seen.is_empty() {
            MISSING
        } else {
            flag(!seen.contains(&text(&country)?))
        });
        Ok(())
    }

    /// geo_distance_km, geo_speed_kmh, impossible_travel: from the latest geo point at or
    /// before the order, if within 24 h and the order has a point.
    fn geo(&self) -> PyResult<[f64; 3]> {
        let (py, lim, ts) = (self.py, self.lim, self.ts);
        let ring = self.list(field::GEO_POINTS)?;
        let j = if self.item(order::GEO)?.is_truthy()? && !ring.is_empty() {
            bisect_right(&ring, ts, 0, ring.len(), row_ts)?
        } else {
            0
        };
        if j == 0 {
            return Ok([MISSING; 3]);
        }
        let prev = ring.get_item(j - 1)?.downcast_into::<PyTuple>()?;
        let prev_ts = ts_of(&prev.get_item(0)?)?;
        if prev_ts <= ts - lim.day_ms {
            return Ok([MISSING; 3]);
        }
        let km = haversine_km(prev.get_item(1)?.extract()?, prev.get_item(2)?.extract()?,
                              self.item(order::LAT)?.extract()?, self.item(order::LON)?.extract()?,
                              lim.earth_radius_km)?;
        let gap = ts - prev_ts;
        let hours = true_div(py, gap.max(lim.min_travel_ms), lim.hour_ms)?;
        Ok([km, fdiv(km, hours)?, flag(km > lim.impossible_km && gap < lim.impossible_within_ms)])
    }

    /// failed_logins_1h, mfa_failures_1h, fails_before_login_ok, secs_since_login_ok,
    /// secs_since_password_change, secs_since_email_change, new_device.
    fn auth(&self) -> PyResult<[f64; 7]> {
        let (py, lim, ts) = (self.py, self.lim, self.ts);
        let login = opt_ts(&self.attr(field::LOGIN_OK_MS)?)?;
        let recent_login = login.is_some_and(|at| ts - lim.hour_ms < at && at <= ts);
        let device = self.item(order::DEVICE)?;
        let new_device = if device.is_none() {
            MISSING
        } else {
            let devices = self.dict(field::DEVICES)?;
            match devices.get_item(&device)? {
                Some(seen) if !seen.is_none() => flag(int(&seen)? <= ts - lim.device_memory_ms),
                _ => 1.0,
            }
        };
        let fails = if recent_login {
            self.attr(field::FAILS_BEFORE_LOGIN_OK)?.extract::<f64>()?
        } else {
            0.0
        };
        Ok([
            count_between(&self.list(field::FAILED_LOGINS)?, ts - lim.hour_ms, ts)?,
            count_between(&self.list(field::MFA_FAILURES)?, ts - lim.hour_ms, ts)?,
            fails,
            age(py, ts, login, lim.second_ms)?,
            age(py, ts, opt_ts(&self.attr(field::PASSWORD_CHANGED_MS)?)?, lim.second_ms)?,
            age(py, ts, opt_ts(&self.attr(field::EMAIL_CHANGED_MS)?)?, lim.second_ms)?,
            new_device,
        ])
    }

    /// avg_hold_time_h, wallet_min_flip_min, resales_30d, wash_cycles_30d,
    /// ticket_previously_held, holdings_count (mint_to_resale_min is the entity store's).
    fn tokens(&self) -> PyResult<[f64; 6]> {
        let (py, lim, ts) = (self.py, self.lim, self.ts);
        let ring = self.list(field::RESALES)?;
        let (i, j) = if ring.is_empty() {
            (0, 0)
        } else {
            rows_between(&ring, ts - lim.token_window_ms, ts)?
        };
        let (mut avg_hold, mut min_flip) = (MISSING, MISSING);
        if j > i {
            let (mut holds, mut held, mut flip): (i128, i128, Option<i128>) = (0, 0, None);
            for k in i..j {
                let r = ring.get_item(k)?.downcast_into::<PyTuple>()?;
                let hold = int(&r.get_item(1)?)?;
                if hold >= 0 {
                    holds = add(holds, hold)?;
                    held += 1;
                }
                let f = int(&r.get_item(2)?)?;
                if f >= 0 && flip.is_none_or(|m| f < m) {
                    flip = Some(f);
                }
            }
            if held > 0 {
                avg_hold = fdiv(true_div(py, holds, held)?, lim.hour_ms as f64)?;
            }
            if let Some(f) = flip {
                min_flip = true_div(py, f, lim.minute_ms)?;
            }
        }
        let sent = self.dict(field::SENT)?;
        let held_before = match sent.get_item(self.item(order::TICKET_ID)?)? {
            Some(at) if !at.is_none() => int(&at)? <= ts,
            _ => false,
        };
        Ok([
            avg_hold,
            min_flip,
            (j.max(i) - i) as f64,
            count_between(&self.list(field::WASH_CYCLES)?, ts - lim.token_window_ms, ts)?,
            flag(held_before),
            self.attr(field::HOLDINGS)?.len()? as f64,
        ])
    }

    /// quantity, amount_minor, log_amount, is_resale, mfa_enabled, phone_verified,
    /// email_verified.
    fn order_values(&self, row: &mut Vec<f64>) -> PyResult<()> {
        let quantity = self.item(order::QUANTITY)?.extract::<f64>()?;
        let amount = self.item(order::AMOUNT)?.extract::<f64>()?;
        let channel = self.item(order::CHANNEL)?;
        let resale = channel.downcast::<PyString>().is_ok_and(|c| c.to_cow().is_ok_and(|c| c == "RESALE"));
        row.extend([quantity, amount, math_1(amount, amount.ln_1p())?, flag(resale)]);
        for at in order::FLAGS {
            row.push(flag(self.item(at)?.is_truthy()?));
        }
        Ok(())
    }
}

fn flag(value: bool) -> f64 {
    if value { 1.0 } else { 0.0 }
}

/// Python's `max(0.0, x)`.
fn max0(x: f64) -> f64 {
    if x > 0.0 { x } else { 0.0 }
}

/// An event time (an int within i64).
pub(crate) fn ts_of(ob: &Bound<'_, PyAny>) -> PyResult<i128> {
    Ok(i128::from(ob.extract::<i64>()?))
}

pub(crate) fn opt_ts(ob: &Bound<'_, PyAny>) -> PyResult<Option<i128>> {
    if ob.is_none() { Ok(None) } else { ts_of(ob).map(Some) }
}

/// A row's time (its first field).
pub(crate) fn row_ts(row: &Bound<'_, PyAny>) -> PyResult<i128> {
    ts_of(&row.downcast::<PyTuple>()?.get_item(0)?)
}

/// An amount or count: the usual i64 directly, a larger int through `int.to_bytes`
/// (OverflowError beyond ±2^127).
fn int(ob: &Bound<'_, PyAny>) -> PyResult<i128> {
    match ob.extract::<i64>() {
        Ok(v) => Ok(i128::from(v)),
        Err(e) if e.is_instance_of::<PyOverflowError>(ob.py()) => {
            let kwargs = PyDict::new(ob.py());
            kwargs.set_item("signed", true)?;
            let bytes = ob.call_method(intern!(ob.py(), "to_bytes"), (16, "little"), Some(&kwargs))?;
            let bytes = bytes.downcast::<PyBytes>()?.as_bytes();
            Ok(i128::from_le_bytes(bytes.try_into().expect("to_bytes(16) gives 16 bytes")))
        }
        Err(e) => Err(e),
    }
}

/// An exact integer sum (OverflowError past ±2^127).
fn add(a: i128, b: i128) -> PyResult<i128> {
    a.checked_add(b).ok_or_else(|| PyOverflowError::new_err("sum beyond the native range (2^127)"))
}

/// Python's `int(x)` of a float, None where no i128 could equal it (|x| >= 2^127).
fn int_of_float(x: f64) -> PyResult<Option<i128>> {
    if x.is_nan() {
        return Err(PyValueError::new_err("cannot convert float NaN to integer"));
    }
    if x.is_infinite() {
        return Err(PyOverflowError::new_err("cannot convert float infinity to integer"));
    }
    const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0; // 2^127
    Ok((-LIMIT..LIMIT).contains(&x).then_some(x as i128)) // `as` truncates, as int() does
}

/// Python's `a / b` on ints, correctly rounded: one IEEE division while both are exact in a
/// double (|x| <= 2^53, CPython's own fast path), Python's division otherwise.
fn true_div(py: Python<'_>, a: i128, b: i128) -> PyResult<f64> {
    const EXACT: u128 = 1 << 53;
    if b != 0 && a.unsigned_abs() <= EXACT && b.unsigned_abs() <= EXACT {
        return Ok(a as f64 / b as f64);
    }
    a.into_pyobject(py)?.div(b.into_pyobject(py)?)?.extract()
}

/// Python's `a / b` on floats.
fn fdiv(a: f64, b: f64) -> PyResult<f64> {
    if b == 0.0 {
        return Err(PyZeroDivisionError::new_err("float division by zero"));
    }
    Ok(a / b)
}

/// `age` of `processors.signals` as it was: `now - then` in units, MISSING when `then` is
/// unknown or later than `now`.
fn age(py: Python<'_>, now: i128, then: Option<i128>, unit: i128) -> PyResult<f64> {
    match then {
        Some(then) if then <= now => true_div(py, now - then, unit),
        _ => Ok(MISSING),
    }
}

/// CPython's `math_1` on the result `r` of a `math` function of `x`: "math domain error" for
/// a NaN from a number or an infinity from a finite number.
fn math_1(x: f64, r: f64) -> PyResult<f64> {
    if (r.is_nan() && !x.is_nan()) || (r.is_infinite() && x.is_finite()) {
        return Err(PyValueError::new_err("math domain error"));
    }
    Ok(r)
}

/// CPython's `x ** 2` for a float: its special cases, then the C library's `pow` of |x| (the
/// exponent hidden from the compiler, which would make it `x * x`).
fn square(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x.is_infinite() {
        return f64::INFINITY;
    }
    if x == 0.0 {
        return 0.0;
    }
    unsafe { pow(x.abs(), black_box(2.0)) }
}

/// `processors.timeutil.haversine_km`, operation for operation: `math.radians` is
/// `x * (pi / 180)`, `min(1.0, s)` is `s` only when below 1.
fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64, radius_km: f64) -> PyResult<f64> {
    const RADIANS: f64 = std::f64::consts::PI / 180.0;
    let (p1, p2) = (lat1 * RADIANS, lat2 * RADIANS);
    let (dp, dl) = (p2 - p1, (lon2 - lon1) * RADIANS);
    let half_dp = dp / 2.0;
    let sin_dp = math_1(half_dp, half_dp.sin())?;
    let cos_p1 = math_1(p1, p1.cos())?;
    let cos_p2 = math_1(p2, p2.cos())?;
    let half_dl = dl / 2.0;
    let sin_dl = math_1(half_dl, half_dl.sin())?;
    let a = square(sin_dp) + cos_p1 * cos_p2 * square(sin_dl);
    let root = math_1(a, a.sqrt())?;
    let capped = if root < 1.0 { root } else { 1.0 };
    Ok(2.0 * radius_km * math_1(capped, capped.asin())?)
}

/// `bisect.bisect_right(items, x, lo, hi, key=key)` step for step as CPython takes them, so an
/// unsorted list gives Python's answer too; reads only the items it compares.
pub(crate) fn bisect_right(items: &Bound<'_, PyList>, x: i128, mut lo: usize, mut hi: usize,
                key: impl Fn(&Bound<'_, PyAny>) -> PyResult<i128>) -> PyResult<usize> {
    while lo < hi {
        let mid = (lo + hi) / 2;
        if x < key(&items.get_item(mid)?)? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(lo)
}

/// `processors.ring.rows_between`: the positions `i..j` of the rows with `lo_excl < ts <=
/// hi_incl` (`j == i` when none).
fn rows_between(ring: &Bound<'_, PyList>, lo_excl: i128, hi_incl: i128) -> PyResult<(usize, usize)> {
    let i = bisect_right(ring, lo_excl, 0, ring.len(), row_ts)?;
    let j = bisect_right(ring, hi_incl, 0, ring.len(), row_ts)?;
    Ok((i, j.max(i)))
}

/// `processors.ring.count_ts_between` of bare timestamps, as a float.
fn count_between(ring: &Bound<'_, PyList>, lo_excl: i128, hi_incl: i128) -> PyResult<f64> {
    let n = ring.len();
    let hi = bisect_right(ring, hi_incl, 0, n, ts_of)?;
    let lo = bisect_right(ring, lo_excl, 0, n, ts_of)?;
    Ok((hi as i64 - lo as i64) as f64)
}

/// A str's text as UTF-8 (an unpaired surrogate as "surrogatepass" writes it): equal exactly
/// when the strs are.
pub(crate) fn text<'a>(ob: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    let s = ob.downcast::<PyString>()?;
    match s.to_str() {
        Ok(t) => Ok(Cow::Borrowed(t.as_bytes())),
        Err(_) => {
            let encoded = s.call_method1(intern!(ob.py(), "encode"), ("utf-8", "surrogatepass"))?;
            Ok(Cow::Owned(encoded.downcast::<PyBytes>()?.as_bytes().to_vec()))
        }
    }
}

/// `a == b` for strs.
fn same_text(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(a.is(b) || text(a)? == text(b)?)
}

/// The distinct texts among `values`, None discarded, sorted.
fn texts<'a>(values: &'a [Bound<'_, PyAny>]) -> PyResult<Vec<Cow<'a, [u8]>>> {
    let mut out = values.iter().filter(|v| !v.is_none()).map(text).collect::<PyResult<Vec<_>>>()?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// `len(set(values) - {None})` for strs.
fn distinct(values: &[Bound<'_, PyAny>]) -> PyResult<usize> {
    Ok(texts(values)?.len())
}
