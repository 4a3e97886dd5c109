//! The PMI-1 "simple" wire protocol, as spoken by MPICH's `simple_pmi` and
//! Hydra: newline-terminated lines of space-separated `key=value` pairs, one
//! request then one response. This module only encodes and decodes lines; the
//! rank side ([`super`], the bootstrap) and the launcher's server share it.
//!
//! Decoding never panics and never allocates more than the line it was given:
//! any bytes give a [`PmiLine`] or a [`PmiError`] (property-tested below).

use std::fmt;
use std::io::{self, BufRead};

/// Longest line either side accepts, newline included. MPICH's limits
/// (`vallen_max` 1024, `keylen_max` 256) fit well inside it.
pub const MAX_LINE: usize = 4096;

/// One PMI line: ordered `key=value` pairs, the first usually `cmd=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PmiLine {
    pairs: Vec<(String, String)>,
}

/// Why a line could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PmiError {
    /// The line is longer than [`MAX_LINE`].
    #[error("PMI line longer than {MAX_LINE} bytes")]
    TooLong,
    /// The line holds a byte that is not printable ASCII.
    #[error("PMI line holds a byte that is not printable ASCII (0x{0:02x})")]
    NotPrintable(u8),
    /// A word has no `=` or an empty key.
    #[error("PMI word {0:?} is not key=value")]
    NotKeyValue(String),
    /// The line has no words at all.
    #[error("empty PMI line")]
    Empty,
    /// A required key is missing.
    #[error("PMI line {line:?} lacks key {key:?}")]
    MissingKey {
        /// The line as received.
        line: String,
        /// The key that was expected.
        key: &'static str,
    },
}

impl PmiLine {
    /// A line starting with `cmd=<command>`.
    pub fn command_line(command: &str) -> Self {
        PmiLine {
            pairs: vec![("cmd".into(), command.into())],
        }
    }

    /// Appends `key=value`. Values must be printable ASCII without spaces;
    /// callers encode anything else (business cards travel in hex).
    pub fn with(mut self, key: &str, value: impl fmt::Display) -> Self {
        self.pairs.push((key.into(), value.to_string()));
        self
    }

    /// The value of `cmd` (or of `mcmd`, which multi-line spawn requests use).
    pub fn command(&self) -> &str {
        self.get("cmd").or_else(|| self.get("mcmd")).unwrap_or("")
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key`, or an error naming the line and the key.
    pub fn require(&self, key: &'static str) -> Result<&str, PmiError> {
        self.get(key).ok_or_else(|| PmiError::MissingKey {
            line: self.to_string(),
            key,
        })
    }

    /// All pairs in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// Decodes one line, with or without its trailing newline (`\r\n` too).
    pub fn parse(bytes: &[u8]) -> Result<PmiLine, PmiError> {
        if bytes.len() > MAX_LINE {
            return Err(PmiError::TooLong);
        }
        let line = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // The line must still fit once re-sent with its newline (a
        // MAX_LINE-byte line without one parsed but could not be re-sent).
        if line.len() >= MAX_LINE {
            return Err(PmiError::TooLong);
        }
        if let Some(&bad) = line.iter().find(|&&b| !(0x20..0x7f).contains(&b)) {
            return Err(PmiError::NotPrintable(bad));
        }
        // Every byte is printable ASCII, so this cannot fail.
        let text = std::str::from_utf8(line).map_err(|_| PmiError::NotPrintable(0))?;
        let mut pairs = Vec::new();
        for word in text.split(' ').filter(|w| !w.is_empty()) {
            match word.split_once('=') {
                Some((key, value)) if !key.is_empty() => pairs.push((key.into(), value.into())),
                _ => return Err(PmiError::NotKeyValue(word.into())),
            }
        }
        if pairs.is_empty() {
            return Err(PmiError::Empty);
        }
        Ok(PmiLine { pairs })
    }

    /// The line as sent on the wire, newline included.
    pub fn encode(&self) -> String {
        let mut s = self.to_string();
        s.push('\n');
        s
    }
}

impl fmt::Display for PmiLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// Reads one newline-terminated line of at most [`MAX_LINE`] bytes.
/// `Ok(None)` at a clean end of stream; a longer line is an `InvalidData`
/// error (the reader does not buffer it whole).
pub fn read_line(reader: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "PMI line cut short",
                ))
            };
        }
        let (take, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        if line.len() + take > MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                PmiError::TooLong,
            ));
        }
        line.extend_from_slice(&available[..take]);
        reader.consume(take);
        if done {
            return Ok(Some(line));
        }
    }
}

/// Hex-encodes bytes so they travel as one PMI value.
pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Decodes [`hex_encode`]'s output; `None` on odd length or a non-hex digit.
pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |d: u8| (d as char).to_digit(16).map(|v| v as u8);
    digits
        .chunks_exact(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

/// Free text as a PMI value: printable ASCII but for spaces and `%`, which
/// become `%20` and `%25` (as in a URL), and other bytes `%XX`. Reversed by
/// [`text_decode`]; other process managers show it as it is, still readable.
pub fn text_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes [`text_encode`]; a `%` not followed by two hex digits stays as it
/// is (a value from a client that did not encode it).
pub fn text_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn free_text_survives_a_pmi_value() {
        let text = "mpirt: rank 2: send (peer 4, tag 9): 100% of rank_4's bytes\tand é";
        let value = text_encode(text);
        assert!(value.bytes().all(|b| b.is_ascii_graphic()));
        assert_eq!(text_decode(&value), text);
        // Unencoded values from other clients come through unchanged.
        assert_eq!(text_decode("bad_input_50%"), "bad_input_50%");
        assert_eq!(text_decode("%zz%4"), "%zz%4");
    }

    proptest! {
        #[test]
        fn any_text_round_trips_through_a_value(text in ".{0,64}") {
            prop_assert_eq!(text_decode(&text_encode(&text)), text);
        }
    }

    #[test]
    fn round_trip_of_a_put() {
        let line = PmiLine::command_line("put")
            .with("kvsname", "kvs_1")
            .with("key", "card-0")
            .with("value", "00ff");
        assert_eq!(
            line.encode(),
            "cmd=put kvsname=kvs_1 key=card-0 value=00ff\n"
        );
        assert_eq!(PmiLine::parse(line.encode().as_bytes()), Ok(line));
    }

    #[test]
    fn hydra_style_lines_parse() {
        let l =
            PmiLine::parse(b"cmd=get_result rc=0 msg=success value=(vector,(0,1,4))\n").unwrap();
        assert_eq!(l.command(), "get_result");
        assert_eq!(l.get("value"), Some("(vector,(0,1,4))"));
        assert_eq!(l.get("rc"), Some("0"));
        let empty_value = PmiLine::parse(b"cmd=put key=a value=").unwrap();
        assert_eq!(empty_value.get("value"), Some(""));
    }

    #[test]
    fn bad_lines_are_errors() {
        assert_eq!(PmiLine::parse(b"\n"), Err(PmiError::Empty));
        assert_eq!(
            PmiLine::parse(b"cmd=init junk"),
            Err(PmiError::NotKeyValue("junk".into()))
        );
        assert_eq!(
            PmiLine::parse(b"=x"),
            Err(PmiError::NotKeyValue("=x".into()))
        );
        assert_eq!(PmiLine::parse(b"cmd=a\x00"), Err(PmiError::NotPrintable(0)));
        assert_eq!(
            PmiLine::parse(&[b'a'; MAX_LINE + 1]),
            Err(PmiError::TooLong)
        );
        assert!(PmiLine::parse(b"cmd=x").unwrap().require("rc").is_err());
    }

    #[test]
    fn a_full_length_line_without_newline_is_too_long() {
        // Found by fuzzing: it parsed, but its encoding (newline added) was
        // one byte over MAX_LINE and parsed as TooLong.
        let mut bytes = b"cmd=".to_vec();
        bytes.resize(MAX_LINE, b'x');
        assert_eq!(PmiLine::parse(&bytes), Err(PmiError::TooLong));
        bytes.pop();
        let line = PmiLine::parse(&bytes).unwrap();
        assert_eq!(line.encode().len(), MAX_LINE);
        assert_eq!(PmiLine::parse(line.encode().as_bytes()), Ok(line));
        bytes.push(b'\n');
        assert!(PmiLine::parse(&bytes).is_ok());
    }

    #[test]
    fn read_line_stops_at_newline_and_limit() {
        let mut input: &[u8] = b"cmd=a\ncmd=b\n";
        assert_eq!(read_line(&mut input).unwrap().unwrap(), b"cmd=a\n");
        assert_eq!(read_line(&mut input).unwrap().unwrap(), b"cmd=b\n");
        assert_eq!(read_line(&mut input).unwrap(), None);
        let long = vec![b'x'; MAX_LINE + 10];
        assert!(read_line(&mut long.as_slice()).is_err());
        assert!(read_line(&mut &b"cmd=cut"[..]).is_err());
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex_encode(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(hex_decode("00ab10").unwrap(), vec![0, 0xab, 0x10]);
        assert_eq!(hex_decode("0"), None);
        assert_eq!(hex_decode("zz"), None);
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(line) = PmiLine::parse(&bytes) {
                // What parsed re-encodes to something that parses the same.
                prop_assert_eq!(PmiLine::parse(line.encode().as_bytes()), Ok(line));
            }
        }

        #[test]
        fn lines_near_the_limit_round_trip_or_are_too_long(
            len in MAX_LINE - 3..MAX_LINE + 3, newline: bool,
        ) {
            let mut bytes = b"cmd=".to_vec();
            bytes.resize(len, b'v');
            if newline { bytes.push(b'\n'); }
            match PmiLine::parse(&bytes) {
                Ok(line) => {
                    prop_assert!(line.encode().len() <= MAX_LINE);
                    prop_assert_eq!(PmiLine::parse(line.encode().as_bytes()), Ok(line));
                }
                Err(e) => prop_assert_eq!(e, PmiError::TooLong),
            }
        }

        #[test]
        fn any_bytes_through_read_line(bytes in proptest::collection::vec(any::<u8>(), 0..9000)) {
            let mut input = bytes.as_slice();
            while let Ok(Some(line)) = read_line(&mut input) {
                prop_assert!(line.len() <= MAX_LINE);
                let _ = PmiLine::parse(&line);
            }
        }

        #[test]
        fn printable_pairs_round_trip(pairs in proptest::collection::vec(("[a-z_]{1,8}", "[!-~]{0,12}"), 1..6)) {
            let mut line = PmiLine::command_line("x");
            for (k, v) in &pairs { line = line.with(k, v); }
            prop_assert_eq!(PmiLine::parse(line.encode().as_bytes()), Ok(line));
        }

        #[test]
        fn hex_any(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(hex_decode(&hex_encode(&bytes)), Some(bytes));
        }
    }
}
