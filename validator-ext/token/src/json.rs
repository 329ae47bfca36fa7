//! Strict JSON: one value, no trailing data, no duplicate object keys, bounded nesting.
//!
//! Duplicate keys are refused because two parsers that disagree on which duplicate wins (ours and the IdP's, or
//! ours and a downstream consumer's) is a classic way to smuggle a claim past a check.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a JSON document was refused. Never carries document content except a duplicated key name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("not valid JSON ({category} error at line {line}, column {column})")]
    Syntax {
        category: &'static str,
        line: usize,
        column: usize,
    },
    #[error("duplicate key {}", crate::shown::Shown(.0))]
    DuplicateKey(String),
    #[error("top-level JSON value is not an object")]
    NotAnObject,
}

/// Parses `bytes` as a JSON object, strictly.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    match parse_value(bytes)? {
        Value::Object(m) => Ok(m),
        _ => Err(JsonError::NotAnObject),
    }
}

/// Parses `bytes` as one JSON value, strictly (serde_json's own recursion limit bounds nesting).
pub fn parse_value(bytes: &[u8]) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue::deserialize(&mut de).map_err(|e| classify(&e))?;
    de.end().map_err(|e| classify(&e))?;
    Ok(value.0)
}

const DUPLICATE_MARKER: &str = "\u{0}pgrator-duplicate-key\u{0}";

fn classify(e: &serde_json::Error) -> JsonError {
    let text = e.to_string();
    if let Some(rest) = text.strip_prefix(DUPLICATE_MARKER) {
        // serde_json appends " at line L column C"; keep only the key.
        let key = rest.rsplit_once(" at line ").map_or(rest, |(k, _)| k);
        return JsonError::DuplicateKey(key.to_string());
    }
    let category = match e.classify() {
        serde_json::error::Category::Io => "io",
        serde_json::error::Category::Syntax => "syntax",
        serde_json::error::Category::Data => "data",
        serde_json::error::Category::Eof => "unexpected end",
    };
    JsonError::Syntax {
        category,
        line: e.line(),
        column: e.column(),
    }
}

/// A `serde_json::Value` built by a visitor that refuses duplicate keys.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom(format_args!("{DUPLICATE_MARKER}{key}")));
            }
            let StrictValue(v) = access.next_value()?;
            map.insert(key, v);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_objects() {
        let m = parse_object(br#"{"a":1,"b":[true,null,"x",1.5],"c":{"d":-2}}"#).expect("valid");
        assert_eq!(m["a"], Value::from(1));
        assert_eq!(m["c"]["d"], Value::from(-2));
    }

    #[test]
    fn refuses_duplicate_keys_at_any_depth() {
        assert_eq!(
            parse_object(br#"{"a":1,"a":2}"#),
            Err(JsonError::DuplicateKey("a".into()))
        );
        assert_eq!(
            parse_object(br#"{"x":{"sub":"a","sub":"b"}}"#),
            Err(JsonError::DuplicateKey("sub".into()))
        );
        assert_eq!(
            parse_object(br#"{"x":[{"k":1,"k":1}]}"#),
            Err(JsonError::DuplicateKey("k".into()))
        );
        // Escapes that decode to the same key are duplicates too.
        assert_eq!(
            parse_object(br#"{"iss":1,"\u0069ss":2}"#),
            Err(JsonError::DuplicateKey("iss".into()))
        );
    }

    #[test]
    fn refuses_trailing_data_and_non_objects() {
        assert!(matches!(
            parse_object(br#"{"a":1}x"#),
            Err(JsonError::Syntax { .. })
        ));
        assert!(matches!(
            parse_object(br#"{"a":1}{"b":2}"#),
            Err(JsonError::Syntax { .. })
        ));
        assert_eq!(parse_object(br#"[1]"#), Err(JsonError::NotAnObject));
        assert_eq!(parse_object(br#""s""#), Err(JsonError::NotAnObject));
        assert!(
            parse_object(b" {\"a\":1} \n").is_ok(),
            "surrounding whitespace is fine"
        );
    }

    #[test]
    fn refuses_invalid_text() {
        assert!(parse_object(b"").is_err());
        assert!(parse_object(b"{\"a\":\"\xff\"}").is_err(), "invalid UTF-8");
        assert!(
            parse_object(br#"{"a":"\ud800"}"#).is_err(),
            "lone surrogate"
        );
        assert!(parse_object(br#"{'a':1}"#).is_err());
        assert!(parse_object(br#"{"a":1,}"#).is_err(), "trailing comma");
        assert!(parse_object(br#"{"a":NaN}"#).is_err());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_object(deep.as_bytes()).is_err());
    }

    #[test]
    fn errors_do_not_echo_content() {
        let e = parse_object(br#"{"secret-value-xyz": tru}"#).expect_err("invalid");
        assert!(!e.to_string().contains("secret-value-xyz"), "{e}");
    }
}
