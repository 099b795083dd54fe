//! Strict JSON for untrusted token parts and key sets: duplicate object keys are an error.
//!
//! `serde_json` silently keeps the last of two equal keys, so `{"sub":"a","sub":"b"}` would
//! be read differently by different parsers (RFC 8725 §3.2). Every header, claims set and JWKS
//! is parsed through [`parse_strict`], whose visitor rejects a repeated key at any depth.
//! Keys are compared after unescaping, so `"s\u0075b"` repeats `"sub"`.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why strict parsing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrictJsonError {
    #[error("duplicate key in JSON object")]
    DuplicateKey,
    #[error("malformed JSON")]
    Malformed,
}

/// Parses `raw` as one JSON value, rejecting duplicate keys in any object.
pub fn parse_strict(raw: &[u8]) -> Result<Value, StrictJsonError> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value = Unique::deserialize(&mut de).map_err(|err| {
        if err.to_string().starts_with(DUPLICATE) {
            StrictJsonError::DuplicateKey
        } else {
            StrictJsonError::Malformed
        }
    })?;
    de.end().map_err(|_| StrictJsonError::Malformed)?;
    Ok(value.0)
}

/// Like [`parse_strict`], and the value must be an object.
pub fn parse_object(raw: &[u8]) -> Result<Map<String, Value>, StrictJsonError> {
    match parse_strict(raw)? {
        Value::Object(map) => Ok(map),
        _ => Err(StrictJsonError::Malformed),
    }
}

const DUPLICATE: &str = "tollgate: duplicate key";

struct Unique(Value);

impl<'de> Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(UniqueVisitor)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Unique, E> {
        Ok(Unique(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Unique, E> {
        Ok(Unique(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Unique, E> {
        Ok(Unique(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Unique, E> {
        Ok(Unique(Value::from(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Unique, E> {
        Ok(Unique(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Unique, E> {
        Ok(Unique(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        let mut values = Vec::new();
        while let Some(value) = seq.next_element::<Unique>()? {
            values.push(value.0);
        }
        Ok(Unique(Value::Array(values)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if members.contains_key(&name) {
                return Err(de::Error::custom(DUPLICATE));
            }
            let value = map.next_value::<Unique>()?;
            members.insert(name, value.0);
        }
        Ok(Unique(Value::Object(members)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_json_parses() {
        let v = parse_strict(br#"{"a":[1,{"b":null}],"c":"d"}"#).unwrap();
        assert_eq!(v["a"][1]["b"], Value::Null);
        assert_eq!(v["c"], "d");
    }

    #[test]
    fn duplicate_keys_are_rejected_at_any_depth() {
        assert_eq!(
            parse_strict(br#"{"sub":"a","sub":"b"}"#),
            Err(StrictJsonError::DuplicateKey)
        );
        assert_eq!(
            parse_strict(br#"{"x":{"y":1,"y":2}}"#),
            Err(StrictJsonError::DuplicateKey)
        );
        assert_eq!(
            parse_strict(br#"[{"k":1,"k":1}]"#),
            Err(StrictJsonError::DuplicateKey)
        );
    }

    #[test]
    fn escaped_duplicates_are_duplicates() {
        assert_eq!(
            parse_strict(br#"{"sub":"a","s\u0075b":"b"}"#),
            Err(StrictJsonError::DuplicateKey)
        );
    }

    #[test]
    fn garbage_and_trailing_data_are_malformed() {
        assert_eq!(parse_strict(b"{"), Err(StrictJsonError::Malformed));
        assert_eq!(parse_strict(b"{} {}"), Err(StrictJsonError::Malformed));
        assert_eq!(parse_strict(&[0xff, 0xfe]), Err(StrictJsonError::Malformed));
        assert_eq!(parse_object(b"[1]"), Err(StrictJsonError::Malformed));
    }
}
