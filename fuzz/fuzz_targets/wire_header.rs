//! Fuzzes the frame header decoder: any bytes decode to "need more", a clean
//! error, or a header that re-encodes to exactly the bytes it came from and
//! never claims an eager payload above the limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mpirt::wire::{FrameKind, Header, HEADER_LEN};

const EAGER_LIMIT: u64 = 64 * 1024;

fuzz_target!(|bytes: &[u8]| {
    match Header::decode(bytes, EAGER_LIMIT) {
        Ok(None) => assert!(bytes.len() < HEADER_LEN),
        Ok(Some(header)) => {
            assert_eq!(&header.to_bytes()[..], &bytes[..HEADER_LEN]);
            if header.kind == FrameKind::Eager {
                assert!(header.payload_len() <= EAGER_LIMIT);
            }
            if !header.kind.carries_payload() {
                assert_eq!(header.payload_len(), 0);
            }
            let _ = header.to_string();
        }
        Err(e) => {
            assert!(bytes.len() >= HEADER_LEN);
            let _ = e.to_string();
        }
    }
});
