//! The text content of a tool result: every field of its
//! `structuredContent`, compact, in the order the type declares them.
//!
//! Models read the text; clients validate the structure. So the text
//! carries everything the structure does, and nothing is said twice:
//!
//! ```text
//! exit_code=0 signal=null stdout_encoding=utf8 ... truncated=false duration_ms=12
//! --- stdout ---
//! hello
//! ```
//!
//! Scalars are `key=value` on the first line (strings quoted as JSON when
//! they hold spaces or other ambiguous characters); lists of records are a
//! table with a header line naming the columns (`-` for null); lists of
//! strings are one per line; long text fields the tool names (command
//! output, file content) come last, as they are.

use std::fmt::{self, Write as _};

use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

/// `output` rendered as the module says; `blocks` names its string fields
/// shown as blocks of text.
pub fn render(output: &impl Serialize, blocks: &[&str]) -> Result<String, serde_json::Error> {
    Ok(render_node(&node_of(output)?, blocks))
}

/// [`render`], and `output` as a JSON value (what `serde_json::to_value`
/// makes), from one serialization.
pub fn render_with_value(
    output: &impl Serialize,
    blocks: &[&str],
) -> Result<(String, serde_json::Value), serde_json::Error> {
    let node = node_of(output)?;
    Ok((render_node(&node, blocks), node.into()))
}

/// `output` as a [`Node`]: serde_json's own maps sort their keys; reading
/// the JSON back into a `Node` keeps the order the fields were declared in.
fn node_of(output: &impl Serialize) -> Result<Node, serde_json::Error> {
    serde_json::from_str(&serde_json::to_string(output)?)
}

/// [`render`] of a [`Node`].
fn render_node(node: &Node, blocks: &[&str]) -> String {
    let Node::Object(fields) = node else {
        return cell(node, "null").into_owned();
    };
    let mut line = Vec::new();
    let mut lists = String::new();
    let mut texts = String::new();
    for (key, value) in fields {
        match value {
            Node::String(text) if blocks.contains(&key.as_str()) && !text.is_empty() => {
                let _ = writeln!(texts, "--- {key} ---");
                texts.push_str(text);
                if !text.ends_with('\n') {
                    texts.push('\n');
                }
            }
            Node::Array(items) if !items.is_empty() => list(&mut lists, key, items),
            scalar => line.push(format!("{key}={}", cell(scalar, "null"))),
        }
    }
    let mut text = line.join(" ");
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(&lists);
    text.push_str(&texts);
    text
}

/// A list: records as a table under a header naming the columns, anything
/// else one item per line.
fn list(text: &mut String, key: &str, items: &[Node]) {
    let _ = write!(text, "{key} ({}):", items.len());
    if let Some(Node::Object(first)) = items.first() {
        for (column, _) in first {
            let _ = write!(text, " {column}");
        }
    }
    text.push('\n');
    for item in items {
        match item {
            Node::Object(record) => {
                let row: Vec<_> = record.iter().map(|(_, value)| cell(value, "-")).collect();
                text.push_str(&row.join(" "));
            }
            Node::String(line) if !line.contains('\n') => text.push_str(line),
            other => text.push_str(&cell(other, "null")),
        }
        text.push('\n');
    }
}

/// One value as a word: strings as they are unless that would be
/// ambiguous, then as JSON; lists and records as compact JSON.
fn cell<'a>(value: &'a Node, null: &'a str) -> std::borrow::Cow<'a, str> {
    match value {
        Node::Null => null.into(),
        Node::Bool(b) => b.to_string().into(),
        Node::Number(n) => n.to_string().into(),
        Node::String(s) if is_word(s) => s.as_str().into(),
        other => other.to_string().into(),
    }
}

/// A string that reads unambiguously unquoted among `key=value` pairs and
/// table cells.
fn is_word(s: &str) -> bool {
    !s.is_empty()
        && !matches!(s, "-" | "null" | "true" | "false")
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\\' | '='))
}

/// A JSON value whose records keep their keys in order.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl From<Node> for serde_json::Value {
    fn from(node: Node) -> Self {
        match node {
            Node::Null => serde_json::Value::Null,
            Node::Bool(b) => serde_json::Value::Bool(b),
            Node::Number(n) => serde_json::Value::Number(n),
            Node::String(s) => serde_json::Value::String(s),
            Node::Array(items) => {
                serde_json::Value::Array(items.into_iter().map(Into::into).collect())
            }
            Node::Object(fields) => serde_json::Value::Object(
                fields
                    .into_iter()
                    .map(|(key, value)| (key, value.into()))
                    .collect(),
            ),
        }
    }
}

/// Compact JSON, as serde_json writes it.
impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = |s: &str| serde_json::to_string(s).map_err(|_| fmt::Error);
        match self {
            Node::Null => f.write_str("null"),
            Node::Bool(b) => write!(f, "{b}"),
            Node::Number(n) => write!(f, "{n}"),
            Node::String(s) => f.write_str(&json(s)?),
            Node::Array(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Node::Object(fields) => {
                f.write_str("{")?;
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}:{value}", json(key)?)?;
                }
                f.write_str("}")
            }
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Node, E> {
        Ok(Node::Bool(b))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Node, E> {
        Ok(Node::Number(n.into()))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Node, E> {
        Ok(Node::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Node, E> {
        Ok(Number::from_f64(n).map_or(Node::Null, Node::Number))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Node, E> {
        Ok(Node::String(s.to_string()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Node, E> {
        Ok(Node::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut fields = Vec::new();
        while let Some(field) = map.next_entry()? {
            fields.push(field);
        }
        Ok(Node::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Serialize)]
    struct Output {
        exit_code: Option<u32>,
        signal: Option<String>,
        path: String,
        truncated: bool,
        stdout: String,
        stderr: String,
        entries: Vec<Entry>,
        notes: Vec<String>,
        skipped: Vec<String>,
    }

    #[derive(Serialize)]
    struct Entry {
        name: String,
        size: u64,
        target: Option<String>,
    }

    fn sample() -> Output {
        Output {
            exit_code: Some(0),
            signal: None,
            path: "/srv/my dir".into(),
            truncated: false,
            stdout: "hello\nworld".into(),
            stderr: String::new(),
            entries: vec![
                Entry {
                    name: "a.txt".into(),
                    size: 5,
                    target: None,
                },
                Entry {
                    name: "l".into(),
                    size: 3,
                    target: Some("a.txt".into()),
                },
            ],
            notes: vec!["sha256sum is missing on the host".into()],
            skipped: vec![],
        }
    }

    #[test]
    fn scalars_lists_and_blocks_keep_the_declared_order() {
        assert_eq!(
            render(&sample(), &["stdout", "stderr"]).unwrap(),
            "exit_code=0 signal=null path=\"/srv/my dir\" truncated=false stderr=\"\" \
             skipped=[]\n\
             entries (2): name size target\n\
             a.txt 5 -\n\
             l 3 a.txt\n\
             notes (1):\n\
             sha256sum is missing on the host\n\
             --- stdout ---\n\
             hello\n\
             world\n"
        );
    }

    #[test]
    fn the_value_beside_the_text_is_what_serde_json_makes() {
        let (text, value) = render_with_value(&sample(), &["stdout"]).unwrap();
        assert_eq!(text, render(&sample(), &["stdout"]).unwrap());
        assert_eq!(value, serde_json::to_value(sample()).unwrap());
        let (_, scalar) = render_with_value(&1.5f64, &[]).unwrap();
        assert_eq!(scalar, json!(1.5));
    }

    #[test]
    fn every_field_name_and_value_is_in_the_text() {
        let text = render(&sample(), &["stdout"]).unwrap();
        let structured = serde_json::to_value(sample()).unwrap();
        let mut missing = Vec::new();
        every_leaf(&structured, "", &mut |key, value| {
            if !text.contains(key) {
                missing.push(key.to_string());
            }
            if let Some(value) = value
                && !text.contains(&value)
            {
                missing.push(format!("{key}={value}"));
            }
        });
        assert!(missing.is_empty(), "{missing:?} not in:\n{text}");
    }

    fn every_leaf(value: &serde_json::Value, key: &str, f: &mut impl FnMut(&str, Option<String>)) {
        match value {
            serde_json::Value::Object(fields) => {
                for (key, value) in fields {
                    every_leaf(value, key, f);
                }
            }
            serde_json::Value::Array(items) => {
                f(key, None);
                for item in items {
                    every_leaf(item, key, f);
                }
            }
            serde_json::Value::String(s) => f(key, Some(s.clone())),
            serde_json::Value::Null => f(key, None),
            other => f(key, Some(other.to_string())),
        }
    }

    #[test]
    fn ambiguous_strings_are_quoted() {
        for (value, shown) in [
            (json!("plain"), "plain"),
            (json!(""), "\"\""),
            (json!("a b"), "\"a b\""),
            (json!("a=b"), "\"a=b\""),
            (json!("-"), "\"-\""),
            (json!("null"), "\"null\""),
            (json!("say \"hi\""), "\"say \\\"hi\\\"\""),
        ] {
            let node: Node = serde_json::from_value(value).unwrap();
            assert_eq!(cell(&node, "null"), shown);
        }
    }
}
