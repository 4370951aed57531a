//! The Avro fast path of `schemas/codec.py`: one schema's values to and from Avro binary.
//!
//! The encoding itself is `serde_avro_fast`'s (driven by the parsed schema: records from
//! dicts by field name, unions, enums from their symbol, maps and arrays in blocks). This
//! module only bridges Python values to serde: `PyValue` walks a Python value as serde data
//! (with the length of every dict and list, so a map or an array is one block as fastavro
//! writes it, and an aware `datetime` as milliseconds since the epoch), and decoding hands
//! serde's data to `pythonize`, which builds the dicts and lists.
//!
//! Anything it does not take (a naive datetime, a missing field left to its default, a value
//! of a type it does not know) raises ValueError; the codec then asks fastavro, which gives
//! the same bytes or the error that names the field.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::ser::{Error as _, SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use serde_avro_fast::de::DeserializerState;
use serde_avro_fast::ser::{SerializerConfig, SerializerState};
use serde_avro_fast::Schema;
use std::io::BufRead;

/// One schema's codec.
#[pyclass(frozen)]
struct Codec {
    schema: Schema,
    /// `datetime.datetime` and the epoch as an aware datetime (UTC)
    datetime: Py<PyAny>,
    epoch: Py<PyAny>,
}

#[pymethods]
impl Codec {
    #[new]
    fn new(schema_json: &str, datetime: Py<PyAny>, epoch: Py<PyAny>) -> PyResult<Self> {
        let schema: Schema = schema_json
            .parse()
            .map_err(|e| PyValueError::new_err(format!("schema: {e}")))?;
        Ok(Codec { schema, datetime, epoch })
    }

    /// `header` followed by `record` in Avro binary.
    fn encode<'py>(
        &self,
        py: Python<'py>,
        header: &[u8],
        record: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(header);
        let mut config = SerializerConfig::new(&self.schema);
        let mut state = SerializerState::from_writer(out, &mut config);
        let value = PyValue {
            obj: record,
            datetime: self.datetime.bind(py),
            epoch: self.epoch.bind(py),
        };
        value
            .serialize(state.serializer())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        Ok(PyBytes::new(py, &state.into_writer()))
    }

    /// The value that starts at `offset` of `data`, and how many bytes follow it.
    fn decode<'py>(
        &self,
        py: Python<'py>,
        data: &[u8],
        offset: usize,
    ) -> PyResult<(Bound<'py, PyAny>, usize)> {
        let body = data
            .get(offset..)
            .ok_or_else(|| PyValueError::new_err("offset past the end"))?;
        let mut state = DeserializerState::from_slice(body, &self.schema);
        let value = serde_transcode::transcode(state.deserializer(), pythonize::Pythonizer::new(py))
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let left = state.into_reader().fill_buf().map_or(0, |rest| rest.len());
        Ok((value, left))
    }
}

/// A Python value seen as serde data.
struct PyValue<'a, 'py> {
    obj: &'a Bound<'py, PyAny>,
    datetime: &'a Bound<'py, PyAny>,
    epoch: &'a Bound<'py, PyAny>,
}

impl<'a, 'py> PyValue<'a, 'py> {
    fn of<'b>(&'b self, obj: &'b Bound<'py, PyAny>) -> PyValue<'b, 'py> {
        PyValue { obj, datetime: self.datetime, epoch: self.epoch }
    }

    /// An aware datetime as milliseconds since the epoch (fastavro's arithmetic: whole
    /// days and seconds, then the microseconds truncated to milliseconds).
    fn millis(&self) -> PyResult<i64> {
        if self.obj.getattr("tzinfo")?.is_none() {
            return Err(PyValueError::new_err("naive datetime"));
        }
        let delta = self.obj.call_method1("__sub__", (self.epoch,))?;
        let days: i64 = delta.getattr("days")?.extract()?;
        let seconds: i64 = delta.getattr("seconds")?.extract()?;
        let micros: i64 = delta.getattr("microseconds")?.extract()?;
        Ok((days * 86_400 + seconds) * 1000 + micros / 1000)
    }
}

impl Serialize for PyValue<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let obj = self.obj;
        if obj.is_none() {
            return s.serialize_none();
        }
        if let Ok(text) = obj.downcast::<PyString>() {
            return s.serialize_str(&text.to_cow().map_err(S::Error::custom)?);
        }
        if let Ok(number) = obj.downcast::<PyFloat>() {
            return s.serialize_f64(number.value());
        }
        if let Ok(flag) = obj.downcast::<PyBool>() {
            return s.serialize_bool(flag.is_true());
        }
        if let Ok(number) = obj.downcast::<PyInt>() {
            return s.serialize_i64(number.extract().map_err(S::Error::custom)?);
        }
        if let Ok(dict) = obj.downcast::<PyDict>() {
            let mut map = s.serialize_map(Some(dict.len()))?;
            for (key, value) in dict.iter() {
                map.serialize_entry(&self.of(&key), &self.of(&value))?;
            }
            return map.end();
        }
        if let Ok(list) = obj.downcast::<PyList>() {
            let mut seq = s.serialize_seq(Some(list.len()))?;
            for item in list.iter() {
                seq.serialize_element(&self.of(&item))?;
            }
            return seq.end();
        }
        if let Ok(tuple) = obj.downcast::<PyTuple>() {
            let mut seq = s.serialize_seq(Some(tuple.len()))?;
            for item in tuple.iter() {
                seq.serialize_element(&self.of(&item))?;
            }
            return seq.end();
        }
        if let Ok(bytes) = obj.downcast::<PyBytes>() {
            return s.serialize_bytes(bytes.as_bytes());
        }
        if obj.is_instance(self.datetime).map_err(S::Error::custom)? {
            return s.serialize_i64(self.millis().map_err(S::Error::custom)?);
        }
        let kind = obj.get_type().name().map_or_else(|_| "?".to_string(), |n| n.to_string());
        Err(S::Error::custom(format!("a value of type {kind}")))
    }
}

#[pymodule]
fn _avro(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Codec>()?;
    Ok(())
}
