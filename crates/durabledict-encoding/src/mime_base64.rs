//! Base64 in the shape of Python's `base64.encodebytes`: lines of 76 characters, each ended by
//! `"\n"`. Python durabledict stores its pickles this way.

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};

use crate::error::DecodeError;

/// Characters per line, as in Python's `base64.encodebytes` (MIME, RFC 2045).
const LINE: usize = 76;

/// Decoding is as forgiving as Python's `base64.decodebytes` where that is harmless: missing
/// padding and non-zero trailing bits are accepted.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Encodes `raw` exactly as `base64.encodebytes(raw)` does.
pub(crate) fn encode(raw: &[u8]) -> Vec<u8> {
    let text = general_purpose::STANDARD.encode(raw);
    let mut out = Vec::with_capacity(text.len() + text.len() / LINE + 1);
    for line in text.as_bytes().chunks(LINE) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

/// Decodes base64 with or without line breaks (`"\n"` or `"\r\n"`) and other ASCII whitespace
/// (all at once: what [`Base64Chunks`] must agree with).
#[cfg(test)]
pub(crate) fn decode(text: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    LENIENT
        .decode(compact)
        .map_err(|e| DecodeError::Base64(Box::new(e)))
}

/// Base64 characters decoded at a time by [`Base64Chunks`]: a multiple of 4, so that every
/// chunk but the last ends on a whole group.
const CHUNK: usize = 64 * 1024;

/// Decodes base64 text piece by piece, so that a large value is never held twice (once as the
/// whole decoded pickle, once as the value built from it). Accepts what [`decode`] accepts.
#[derive(Debug)]
pub(crate) struct Base64Chunks<'a> {
    text: &'a [u8],
    /// The next character of `text` to read.
    at: usize,
    scratch: Vec<u8>,
}

impl<'a> Base64Chunks<'a> {
    pub(crate) fn new(text: &'a [u8]) -> Self {
        Base64Chunks {
            text,
            at: 0,
            scratch: Vec::new(),
        }
    }

    /// At most how many bytes are still to come.
    pub(crate) fn remaining_at_most(&self) -> usize {
        (self.text.len() - self.at) / 4 * 3 + 3
    }

    /// Replaces `out` with the next decoded bytes; `false` at the end of the text.
    pub(crate) fn next_into(&mut self, out: &mut Vec<u8>) -> Result<bool, DecodeError> {
        self.scratch.clear();
        while self.scratch.len() < CHUNK && self.at < self.text.len() {
            let rest = &self.text[self.at..];
            let run = rest
                .iter()
                .position(u8::is_ascii_whitespace)
                .unwrap_or(rest.len());
            let run = run.min(CHUNK - self.scratch.len());
            self.scratch.extend_from_slice(&rest[..run]);
            self.at += run;
            while self.at < self.text.len() && self.text[self.at].is_ascii_whitespace() {
                self.at += 1;
            }
        }
        out.clear();
        if self.scratch.is_empty() {
            return Ok(false);
        }
        LENIENT
            .decode_vec(&self.scratch, out)
            .map_err(|e| DecodeError::Base64(Box::new(e)))?;
        Ok(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_76_characters_each_ended_by_a_newline() {
        let raw: Vec<u8> = (0..=255).collect();
        let text = encode(&raw);
        let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
        // 256 bytes -> 344 characters -> 4 full lines, one of 40, then the final "\n".
        assert_eq!(
            lines.iter().map(|l| l.len()).collect::<Vec<_>>(),
            [76, 76, 76, 76, 40, 0]
        );
        assert_eq!(decode(&text).unwrap(), raw);
    }

    #[test]
    fn short_input_is_one_line() {
        assert_eq!(encode(b"hi"), b"aGk=\n");
        assert_eq!(encode(b""), b"");
    }

    #[test]
    fn decoding_accepts_no_newlines_crlf_and_missing_padding() {
        for text in [&b"aGk="[..], b"aGk=\n", b"aGk=\r\n", b"aG\nk=\n", b"aGk"] {
            assert_eq!(decode(text).unwrap(), b"hi", "{text:?}");
        }
    }

    #[test]
    fn chunks_decode_what_decode_decodes() {
        let raw: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let text = encode(&raw);
        let mut chunks = Base64Chunks::new(&text);
        let (mut all, mut chunk) = (Vec::new(), Vec::new());
        while chunks.next_into(&mut chunk).unwrap() {
            all.extend_from_slice(&chunk);
        }
        assert_eq!(all, raw);
        let mut bad = Base64Chunks::new(b"aG$k");
        assert!(matches!(
            bad.next_into(&mut chunk),
            Err(DecodeError::Base64(_))
        ));
    }

    #[test]
    fn decoding_refuses_other_characters() {
        let err = decode(b"aG$k").unwrap_err();
        assert!(err.to_string().starts_with("not valid base64"), "{err}");
    }
}
