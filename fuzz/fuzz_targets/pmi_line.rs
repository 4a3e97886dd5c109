//! Fuzzes the PMI line reader and parser that ranks (and the launcher) use:
//! any byte stream splits into lines of at most `MAX_LINE` bytes, and every
//! line that parses re-encodes to a line that fits `MAX_LINE` and parses the
//! same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mpirt::bootstrap::pmi::{hex_decode, hex_encode, read_line, PmiLine, MAX_LINE};

fn check(bytes: &[u8]) {
    if let Ok(line) = PmiLine::parse(bytes) {
        let encoded = line.encode();
        assert!(
            encoded.len() <= MAX_LINE,
            "{} bytes re-encoded",
            encoded.len()
        );
        assert_eq!(PmiLine::parse(encoded.as_bytes()), Ok(line.clone()));
        let _ = line.command();
        if let Some(value) = line.get("value") {
            if let Some(decoded) = hex_decode(value) {
                assert_eq!(hex_encode(&decoded), value.to_ascii_lowercase());
            }
        }
    }
}

fuzz_target!(|bytes: &[u8]| {
    check(bytes);
    let mut input = bytes;
    while let Ok(Some(line)) = read_line(&mut input) {
        assert!(line.len() <= MAX_LINE);
        check(&line);
    }
});
