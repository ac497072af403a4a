//! Raw bytes from a remote host as JSON strings, without losing any.
//!
//! JSON strings hold Unicode, and command output is bytes. Text that is valid
//! UTF-8 goes through as is, which is what a model reads best; anything else
//! is sent as standard base64 and marked so, so binary output survives.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How bytes travel in a JSON string: in results, how they were sent; in
/// arguments (`read_file`, `write_file`), how the caller wants them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The string is the bytes, as UTF-8 text.
    #[default]
    Utf8,
    /// The string is standard base64 of the bytes: for binary content.
    Base64,
}

/// Encode `bytes` losslessly: as text when they are UTF-8, else as base64.
///
/// `cut` says the bytes are a prefix of a longer output, cut at an arbitrary
/// byte count. Such a cut can split the last character; that partial
/// character (at most three bytes) is dropped rather than turning a whole
/// megabyte of readable text into base64. The caller already reports the
/// output as truncated, so nothing it promised is lost.
pub fn encode(bytes: Vec<u8>, cut: bool) -> (String, Encoding) {
    match String::from_utf8(bytes) {
        Ok(text) => (text, Encoding::Utf8),
        Err(err) => {
            let utf8 = err.utf8_error();
            let mut bytes = err.into_bytes();
            // `error_len() == None` means the bytes end inside a character
            // that is valid so far, which is exactly what a cut produces.
            if cut && utf8.error_len().is_none() {
                bytes.truncate(utf8.valid_up_to());
                match String::from_utf8(bytes) {
                    Ok(text) => return (text, Encoding::Utf8),
                    Err(err) => bytes = err.into_bytes(),
                }
            }
            (STANDARD.encode(&bytes), Encoding::Base64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_text_passes_through_unchanged() {
        let text = "héllo wörld ✓\n";
        assert_eq!(
            encode(text.as_bytes().to_vec(), false),
            (text.to_string(), Encoding::Utf8)
        );
    }

    #[test]
    fn invalid_utf8_becomes_base64_of_the_exact_bytes() {
        let bytes = vec![0, 159, 146, 150, b'a', 0xff];
        let (text, encoding) = encode(bytes.clone(), false);
        assert_eq!(encoding, Encoding::Base64);
        assert_eq!(STANDARD.decode(text).unwrap(), bytes);
    }

    #[test]
    fn empty_output_is_utf8() {
        assert_eq!(encode(Vec::new(), false), (String::new(), Encoding::Utf8));
    }

    #[test]
    fn a_character_split_by_truncation_is_dropped_not_base64ed() {
        let mut bytes = "abc✓".as_bytes().to_vec();
        bytes.pop(); // '✓' is three bytes; keep two of them
        assert_eq!(encode(bytes, true), ("abc".to_string(), Encoding::Utf8));
    }

    #[test]
    fn a_split_character_in_complete_output_stays_lossless() {
        let mut bytes = "abc✓".as_bytes().to_vec();
        bytes.pop();
        let (text, encoding) = encode(bytes.clone(), false);
        assert_eq!(encoding, Encoding::Base64);
        assert_eq!(STANDARD.decode(text).unwrap(), bytes);
    }

    #[test]
    fn invalid_bytes_before_the_cut_still_mean_base64() {
        let bytes = vec![b'a', 0xff, b'b', 0xe2, 0x9c];
        let (text, encoding) = encode(bytes.clone(), true);
        assert_eq!(encoding, Encoding::Base64);
        assert_eq!(STANDARD.decode(text).unwrap(), bytes);
    }

    #[test]
    fn encoding_names_match_the_json() {
        assert_eq!(serde_json::to_value(Encoding::Utf8).unwrap(), "utf8");
        assert_eq!(serde_json::to_value(Encoding::Base64).unwrap(), "base64");
    }
}
