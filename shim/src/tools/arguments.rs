//! A tool call's arguments, read from JSON with errors that name the
//! argument, and the integer type every numeric argument uses.
//!
//! Clients differ in how they send numbers: most as JSON numbers, some
//! (the MCP Inspector's CLI, shell-minded hosts) as strings such as `"5"`.
//! Both are taken. A value that is not an integer in range is refused with
//! the argument's name and range, so a model can correct the call:
//! ``exec: `timeout_secs`: expected an integer from 1 to 86400, got "abc"``.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_json::Value;
use sshmcp_proto::Error;

/// The largest integer a JSON number holds exactly in JavaScript
/// (`Number.MAX_SAFE_INTEGER`).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// `arguments` (a JSON object) as tool `tool`'s argument type, or a
/// `BadRequest` that names the argument at fault (a missing or unknown one
/// is named by serde).
pub fn parse<T: DeserializeOwned>(tool: &str, arguments: Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(arguments).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path == "." {
            Error::bad_request(format!("{tool}: {inner}"))
        } else {
            Error::bad_request(format!("{tool}: `{path}`: {inner}"))
        }
    })
}

/// An integer argument from `MIN` to `MAX`, sent as a JSON number or as a
/// string of digits. Its schema is a plain `integer` with those bounds,
/// which every client's validator and every model understands; a `MAX`
/// past [`MAX_SAFE_INTEGER`] is no bound a caller meets, and one a
/// JavaScript client cannot even read exactly, so it is left out. The bounds
/// are `sshmcp-proto`'s, those `Request::validate` holds requests to;
/// checking them here as well gives `0` and `"abc"` the same message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int<const MIN: u64, const MAX: u64>(pub u64);

impl<const MIN: u64, const MAX: u64> Int<MIN, MAX> {
    fn check<E: de::Error>(value: u64) -> Result<Self, E> {
        if (MIN..=MAX).contains(&value) {
            Ok(Int(value))
        } else {
            Err(Self::refuse(format_args!("{value}")))
        }
    }

    fn refuse<E: de::Error>(got: impl fmt::Display) -> E {
        E::custom(format_args!(
            "expected an integer from {MIN} to {MAX}, got {got}"
        ))
    }
}

impl<const MIN: u64, const MAX: u64> JsonSchema for Int<MIN, MAX> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("Int{MIN}to{MAX}").into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        if MAX > MAX_SAFE_INTEGER {
            json_schema!({ "type": "integer", "minimum": MIN })
        } else {
            json_schema!({ "type": "integer", "minimum": MIN, "maximum": MAX })
        }
    }
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Int<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IntVisitor::<MIN, MAX>)
    }
}

struct IntVisitor<const MIN: u64, const MAX: u64>;

impl<const MIN: u64, const MAX: u64> Visitor<'_> for IntVisitor<MIN, MAX> {
    type Value = Int<MIN, MAX>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an integer from {MIN} to {MAX}")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Int::check(value)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        match u64::try_from(value) {
            Ok(value) => Int::check(value),
            Err(_) => Err(Int::<MIN, MAX>::refuse(value)),
        }
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        // JavaScript clients may send 5 as 5.0.
        if value.fract() == 0.0 && value >= 0.0 && value <= u64::MAX as f64 {
            Int::check(value as u64)
        } else {
            Err(Int::<MIN, MAX>::refuse(value))
        }
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        match value.trim().parse::<u64>() {
            Ok(number) => Int::check(number),
            Err(_) => Err(Int::<MIN, MAX>::refuse(format_args!("{value:?}"))),
        }
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Err(Int::<MIN, MAX>::refuse(value))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Args {
        host: String,
        timeout_secs: Option<Int<1, 86_400>>,
    }

    fn parse_json(value: Value) -> Result<Args, Error> {
        let args: Args = parse("exec", value)?;
        assert_eq!(args.host, "h");
        Ok(args)
    }

    #[test]
    fn numbers_and_numeric_strings_are_both_taken() {
        for sent in [json!(5), json!("5"), json!(" 5 "), json!(5.0)] {
            let args = parse_json(json!({ "host": "h", "timeout_secs": sent })).unwrap();
            assert_eq!(args.timeout_secs, Some(Int(5)), "{sent}");
        }
        let args = parse_json(json!({ "host": "h", "timeout_secs": null })).unwrap();
        assert_eq!(args.timeout_secs, None);
    }

    #[test]
    fn a_bad_integer_is_refused_naming_the_argument_and_its_range() {
        let err = parse_json(json!({ "host": "h", "timeout_secs": "abc" })).unwrap_err();
        assert_eq!(
            err.message,
            "exec: `timeout_secs`: expected an integer from 1 to 86400, got \"abc\""
        );
        for bad in [json!(0), json!(86_401), json!(-3), json!(2.5), json!(true)] {
            let err = parse_json(json!({ "host": "h", "timeout_secs": bad })).unwrap_err();
            assert!(
                err.message
                    .starts_with("exec: `timeout_secs`: expected an integer from 1 to 86400"),
                "{bad}: {}",
                err.message
            );
        }
    }

    #[test]
    fn wrong_types_missing_and_unknown_arguments_are_named() {
        let err = parse::<Args>("exec", json!({ "host": 5 })).unwrap_err();
        assert!(err.message.starts_with("exec: `host`: "), "{}", err.message);
        let err = parse::<Args>("exec", json!({})).unwrap_err();
        assert!(err.message.contains("`host`"), "{}", err.message);
        let err = parse_json(json!({ "host": "h", "cwd": "/" })).unwrap_err();
        assert!(err.message.contains("`cwd`"), "{}", err.message);
    }
}
