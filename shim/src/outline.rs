//! What a JSON-RPC message is and which id it carries, read from its bytes
//! as they stream past, without holding the message.
//!
//! The stdin limit needs this: a message over the limit is dropped as it
//! arrives, yet a request must still be answered with its own id, which a
//! client may write anywhere in the object (the TypeScript SDK writes `id`
//! after `params`, so after the bulk of the message).

use serde_json::Value;

/// Bytes kept of a top-level key: enough to tell `id` and `method` from
/// every other key.
const KEY_BYTES: usize = 8;

/// Bytes kept of the `id` or `method` value. Longer ones are not real ids
/// or method names, and are treated as unreadable.
const VALUE_BYTES: usize = 256;

/// What a message turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outline {
    /// A request, to be answered with its id. The method is missing when
    /// it is not a readable string.
    Request { id: Value, method: Option<String> },
    /// A notification, or a response to a request of ours: JSON-RPC
    /// forbids answering either.
    NoReply,
    /// Not a JSON object, or one whose id cannot be read: an answer can
    /// only carry a null id.
    Unknown,
}

/// The top-level values worth keeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Id,
    Method,
}

/// Follows one JSON text byte by byte, tracking strings and nesting just
/// enough to pick out the top-level `id` and `method`. It does not check
/// that the text is valid JSON; [`OutlineScanner::outline`] only trusts
/// what it found when the top-level object also closed.
#[derive(Debug, Default)]
pub struct OutlineScanner {
    depth: usize,
    /// The text started with `{`, so it has keys.
    object: bool,
    /// The top-level value has closed.
    closed: bool,
    in_string: bool,
    escaped: bool,
    /// At depth 1 of the object, the next string is a key.
    expect_key: bool,
    /// The string being read is a top-level key.
    in_key: bool,
    /// The latest top-level key, up to [`KEY_BYTES`].
    key: Vec<u8>,
    /// The top-level value being kept, and its raw bytes so far.
    capture: Option<(Field, Vec<u8>)>,
    /// The value being kept is longer than [`VALUE_BYTES`].
    overflow: bool,
    /// The raw `id` and `method` values, once read; empty when too long.
    id: Option<Vec<u8>>,
    method: Option<Vec<u8>>,
}

impl OutlineScanner {
    /// Follow the next bytes of the text.
    pub fn feed(&mut self, bytes: &[u8]) {
        // With both found, nothing later changes the answer: skip the bulk.
        if self.id.is_some() && self.method.is_some() {
            return;
        }
        for &byte in bytes {
            self.step(byte);
        }
    }

    /// What the text was, from what has been fed.
    pub fn outline(&self) -> Outline {
        // Only a whole object proves that a key is absent.
        let whole = self.object && self.closed;
        let id = self.id.as_deref().map(read_id);
        match (id, &self.method) {
            (Some(Some(id)), Some(method)) => Outline::Request {
                id,
                method: serde_json::from_slice(method).ok(),
            },
            // A response to a request of ours.
            (Some(Some(_)), None) if whole => Outline::NoReply,
            (None, Some(_)) if whole => Outline::NoReply,
            _ => Outline::Unknown,
        }
    }

    fn step(&mut self, byte: u8) {
        if self.in_string {
            self.string_byte(byte);
            return;
        }
        match byte {
            b' ' | b'\t' | b'\r' | b'\n' => {}
            b'"' => {
                self.in_string = true;
                if self.depth == 1 && self.expect_key {
                    self.expect_key = false;
                    self.in_key = true;
                    self.key.clear();
                } else {
                    self.keep(byte);
                }
            }
            b'{' | b'[' => {
                if self.depth == 0 {
                    self.object = byte == b'{';
                    self.expect_key = self.object;
                } else {
                    self.keep(byte);
                }
                self.depth += 1;
            }
            b'}' | b']' => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 0 {
                    self.end_value();
                    self.closed = true;
                } else {
                    self.keep(byte);
                }
            }
            b',' if self.depth == 1 => {
                self.end_value();
                self.expect_key = self.object;
            }
            b':' if self.depth == 1 && self.object => {
                self.capture = match self.key.as_slice() {
                    b"id" => Some((Field::Id, Vec::new())),
                    b"method" => Some((Field::Method, Vec::new())),
                    _ => None,
                };
            }
            _ => self.keep(byte),
        }
    }

    fn string_byte(&mut self, byte: u8) {
        if self.escaped {
            self.escaped = false;
        } else if byte == b'\\' {
            self.escaped = true;
        } else if byte == b'"' {
            self.in_string = false;
            if self.in_key {
                self.in_key = false;
                return;
            }
        }
        self.keep(byte);
    }

    /// Keep `byte` if it belongs to a key or value being kept.
    fn keep(&mut self, byte: u8) {
        if self.in_key {
            if self.key.len() < KEY_BYTES {
                self.key.push(byte);
            }
        } else if let Some((_, value)) = &mut self.capture {
            if value.len() < VALUE_BYTES {
                value.push(byte);
            } else {
                self.overflow = true;
            }
        }
    }

    /// A top-level value has ended: file it if it was being kept. The first
    /// `id` and `method` win, as they do for most JSON parsers' callers.
    fn end_value(&mut self) {
        let Some((field, mut value)) = self.capture.take() else {
            return;
        };
        // A cut-off value could still parse (a long number's first digits).
        if std::mem::take(&mut self.overflow) {
            value.clear();
        }
        match field {
            Field::Id if self.id.is_none() => self.id = Some(value),
            Field::Method if self.method.is_none() => self.method = Some(value),
            _ => {}
        }
    }
}

/// A JSON-RPC id as MCP allows it: a string or an integer.
fn read_id(raw: &[u8]) -> Option<Value> {
    serde_json::from_slice::<Value>(raw)
        .ok()
        .filter(|id| id.is_string() || id.is_i64() || id.is_u64())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn outline(text: &str) -> Outline {
        let mut scanner = OutlineScanner::default();
        // Fed in small pieces, as a pipe delivers them.
        for piece in text.as_bytes().chunks(3) {
            scanner.feed(piece);
        }
        scanner.outline()
    }

    fn request(id: Value, method: &str) -> Outline {
        Outline::Request {
            id,
            method: Some(method.to_string()),
        }
    }

    #[test]
    fn a_request_gives_its_id_and_method() {
        assert_eq!(
            outline(r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"x":1}}"#),
            request(json!(7), "tools/call")
        );
    }

    #[test]
    fn an_id_written_after_the_params_is_found() {
        let text = r#"{"method":"tools/call","params":{"arguments":{"id":"inner","content":"a \"quoted\", {braced} [text]"}},"jsonrpc":"2.0","id":"req-9"}"#;
        assert_eq!(outline(text), request(json!("req-9"), "tools/call"));
    }

    #[test]
    fn keys_named_id_below_the_top_level_are_ignored() {
        let text = r#"{"params":{"id":1,"list":[{"id":2}]},"method":"m","id":3}"#;
        assert_eq!(outline(text), request(json!(3), "m"));
    }

    #[test]
    fn a_notification_and_a_response_need_no_reply() {
        assert_eq!(
            outline(r#"{"jsonrpc":"2.0","method":"notifications/x","params":{}}"#),
            Outline::NoReply
        );
        assert_eq!(
            outline(r#"{"jsonrpc":"2.0","id":4,"result":{}}"#),
            Outline::NoReply
        );
    }

    #[test]
    fn a_cut_off_object_without_an_id_is_unknown_not_a_notification() {
        assert_eq!(
            outline(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"#),
            Outline::Unknown
        );
    }

    #[test]
    fn non_objects_and_odd_ids_are_unknown() {
        assert_eq!(outline(r#"[{"id":1,"method":"m"}]"#), Outline::Unknown);
        assert_eq!(outline("garbage"), Outline::Unknown);
        assert_eq!(outline(r#"{"id":{"a":1},"method":"m"}"#), Outline::Unknown);
        assert_eq!(outline(r#"{"id":null,"method":"m"}"#), Outline::Unknown);
        let long = format!(r#"{{"id":{},"method":"m"}}"#, "1".repeat(VALUE_BYTES + 1));
        assert_eq!(outline(&long), Outline::Unknown);
    }

    #[test]
    fn a_method_that_is_not_a_string_still_leaves_a_request_to_answer() {
        assert_eq!(
            outline(r#"{"id":1,"method":["m"]}"#),
            Outline::Request {
                id: json!(1),
                method: None
            }
        );
    }

    #[test]
    fn escaped_quotes_in_strings_do_not_end_them() {
        let text = r#"{"params":"\\\"id\":1,","id":"a\"b","method":"m"}"#;
        assert_eq!(outline(text), request(json!("a\"b"), "m"));
    }
}
