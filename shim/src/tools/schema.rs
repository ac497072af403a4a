//! The tools' JSON Schemas, made from their Rust types (the results mostly
//! from `sshmcp-proto`'s own) and cut down to what clients and models use.
//!
//! Every tool's schemas go to the model in every session, so they are kept
//! small and plain:
//!
//! - no `$schema`, `title`, `$ref`/`$defs` (some clients do not follow
//!   references) or `format` (`uint64` is no JSON Schema format: validators
//!   warn about it on every call);
//! - input arguments have one type each: an optional argument is optional
//!   by its absence from `required`, not by a `["integer", "null"]` type,
//!   which clients that take one type per field (Gemini's subset) refuse;
//! - a description only where the argument's name does not say it all;
//! - argument enums as `enum` lists of names; no `default: false`;
//! - no `additionalProperties`: Gemini's subset has no such keyword, and
//!   the shim refuses an unknown argument itself, naming it, which tells a
//!   model more than a client's validator would.
//!
//! Output schemas are the fields' types and no more: no descriptions (the
//! text of every result names the fields too), no `required` (a field that
//! may be absent, such as `cached`, is simply not required), no ranges or
//! enums (a result shows its values). A
//! field that can be null says so in `anyOf` branches of one type each:
//! results are validated against them.

use std::sync::Arc;

use rmcp::model::JsonObject;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value, json};

/// The schema of a JSON object of any fields, such as another tool's
/// arguments or result, for `#[schemars(schema_with = "schema::object")]`.
pub fn object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "object" })
}

/// Which way a schema describes data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// A tool's arguments, as the shim accepts them.
    Input,
    /// A tool's `structuredContent`, as the shim writes it.
    Output,
}

/// The `inputSchema` for arguments of type `T`.
pub fn input<T: JsonSchema>() -> Arc<JsonObject> {
    Arc::new(compact_root(generate::<T>(Side::Input), Side::Input))
}

/// The `outputSchema` for results of type `T`.
pub fn output<T: JsonSchema>() -> Arc<JsonObject> {
    Arc::new(compact_root(generate::<T>(Side::Output), Side::Output))
}

fn generate<T: JsonSchema>(side: Side) -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.meta_schema = None;
    if side == Side::Output {
        settings = settings.for_serialize();
    }
    settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

fn compact_root(mut schema: Value, side: Side) -> JsonObject {
    let definitions = match schema.get_mut("$defs").map(Value::take) {
        Some(Value::Object(definitions)) => definitions,
        _ => Map::new(),
    };
    let compact = Compact { side, definitions };
    let mut root = match compact.schema(schema, 0) {
        Value::Object(object) => object,
        _ => Map::new(),
    };
    // Some clients want `properties` even when there are none (`hosts`).
    if side == Side::Input {
        root.entry("properties").or_insert_with(|| json!({}));
    }
    root
}

/// The cutting down, for one side, with the root's `$defs` to inline.
struct Compact {
    side: Side,
    definitions: JsonObject,
}

impl Compact {
    /// `schema` cut down as the module says. `depth` is 1 for the schema of
    /// a top-level property, the only place a description is kept: the
    /// field's own, since a referenced type's doc is dropped as it is
    /// inlined.
    fn schema(&self, schema: Value, depth: usize) -> Value {
        let Value::Object(mut object) = schema else {
            return schema;
        };
        if let Some(Value::String(reference)) = object.remove("$ref") {
            let name = reference.trim_start_matches("#/$defs/");
            if let Some(Value::Object(definition)) = self.definitions.get(name) {
                for (key, value) in definition {
                    if key != "description" {
                        object.entry(key.clone()).or_insert_with(|| value.clone());
                    }
                }
            }
        }
        for noise in ["$schema", "$defs", "title", "format", "examples"] {
            object.remove(noise);
        }
        if self.side == Side::Output || depth != 1 {
            object.remove("description");
        }
        match self.side {
            // Every field is always there; what the schema adds is types.
            // The ranges are the Rust integer types', not the values'.
            Side::Output => {
                for detail in ["required", "minimum", "maximum"] {
                    object.remove(detail);
                }
            }
            // What an absent flag means anyway; what the shim checks itself.
            Side::Input => {
                if object.get("default") == Some(&Value::Bool(false)) {
                    object.remove("default");
                }
                object.remove("additionalProperties");
            }
        }
        for alternatives in ["oneOf", "anyOf"] {
            if let Some(Value::Array(options)) = object.remove(alternatives) {
                self.merge_alternatives(&mut object, alternatives, options, depth);
            }
        }
        split_null_type(&mut object, self.side);
        if let Some(Value::Object(properties)) = object.remove("properties") {
            let properties = properties
                .into_iter()
                .map(|(name, property)| (name, self.schema(property, depth + 1)))
                .collect();
            object.insert("properties".into(), Value::Object(properties));
        }
        if let Some(items) = object.remove("items") {
            object.insert("items".into(), self.schema(items, depth + 1));
        }
        Value::Object(object)
    }

    /// A `oneOf`/`anyOf` as schemars writes enums (`const` per variant)
    /// and options (`T` or `null`), made plain: an `enum` of names, or `T`
    /// with `null` added to its type (outputs) or left out (inputs).
    fn merge_alternatives(
        &self,
        object: &mut JsonObject,
        keyword: &str,
        options: Vec<Value>,
        depth: usize,
    ) {
        let consts: Option<Vec<Value>> = options
            .iter()
            .map(|option| option.get("const").cloned())
            .collect();
        if let Some(names) = consts {
            if names.iter().all(Value::is_string) {
                object.insert("type".into(), Value::from("string"));
            }
            // A result shows its names; arguments must be one of them.
            if self.side == Side::Input {
                object.insert("enum".into(), Value::Array(names));
            }
            return;
        }
        let is_null = |option: &Value| option.get("type") == Some(&Value::from("null"));
        let nullable = options.iter().any(is_null);
        let mut rest: Vec<Value> = options.into_iter().filter(|o| !is_null(o)).collect();
        if rest.len() != 1 {
            let rest = rest.into_iter().map(|o| self.schema(o, depth)).collect();
            object.insert(keyword.into(), Value::Array(rest));
            return;
        }
        // The option's own description is its type's, not the field's.
        let Value::Object(only) = self.schema(rest.remove(0), depth + 1) else {
            return;
        };
        for (key, value) in only {
            object.entry(key).or_insert(value);
        }
        if nullable && self.side == Side::Output {
            add_null(object);
        }
    }
}

/// A `"type": ["integer", "null"]` made one type: `integer` for an
/// argument (optional by its absence from `required`), `integer` or null
/// as separate branches for a result field (see [`add_null`]).
fn split_null_type(object: &mut JsonObject, side: Side) {
    let Some(Value::Array(types)) = object.get_mut("type") else {
        return;
    };
    let nullable = types.iter().any(|t| t == "null");
    types.retain(|t| t != "null");
    if let [only] = types.as_slice() {
        let only = only.clone();
        object.insert("type".into(), only);
    }
    if nullable && side == Side::Output {
        add_null(object);
    }
}

/// `object` or null, as one-type branches: `{"anyOf": [{"type":
/// "integer"}, {"type": "null"}]}`. A `"type": ["integer", "null"]` says
/// the same, but clients that map schemas onto one type per field (the
/// OpenAPI subset of Gemini's function declarations) reject it.
fn add_null(object: &mut JsonObject) {
    let value = std::mem::take(object);
    object.insert(
        "anyOf".into(),
        Value::Array(vec![Value::Object(value), json!({ "type": "null" })]),
    );
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    use super::*;
    use crate::tools::arguments::Int;

    /// A test enum.
    #[derive(Serialize, Deserialize, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        /// Documented.
        Fast,
        /// Also documented.
        Slow,
    }

    /// Arguments.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Args {
        host: String,
        /// Seconds.
        timeout_secs: Option<Int<1, 60>>,
        mode: Option<Mode>,
        #[serde(default)]
        recursive: bool,
    }

    /// A result.
    #[derive(Serialize, JsonSchema)]
    struct Output {
        /// Documented.
        size: u64,
        exit_code: Option<u32>,
        mode: Mode,
        list: Vec<Item>,
    }

    #[derive(Serialize, JsonSchema)]
    struct Item {
        path: String,
        target: Option<String>,
    }

    #[test]
    fn input_arguments_have_one_plain_type_each() {
        assert_eq!(
            Value::Object((*input::<Args>()).clone()),
            json!({
                "type": "object",
                "properties": {
                    "host": { "type": "string" },
                    "timeout_secs": {
                        "description": "Seconds.", "type": "integer", "minimum": 1, "maximum": 60
                    },
                    "mode": { "type": "string", "enum": ["fast", "slow"] },
                    "recursive": { "type": "boolean" },
                },
                "required": ["host"],
            })
        );
    }

    #[test]
    fn outputs_are_types_only_with_null_where_it_can_be() {
        assert_eq!(
            Value::Object((*output::<Output>()).clone()),
            json!({
                "type": "object",
                "properties": {
                    "size": { "type": "integer" },
                    "exit_code": { "anyOf": [{ "type": "integer" }, { "type": "null" }] },
                    "mode": { "type": "string" },
                    "list": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "path": { "type": "string" },
                                "target": {
                                    "anyOf": [{ "type": "string" }, { "type": "null" }]
                                },
                            },
                        },
                    },
                },
            })
        );
    }
}
