//! Fuzzes handshake verification: only bytes carrying the magic, the job's
//! token and a rank inside the job pass, and what passes re-encodes to the
//! same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mpirt::wire::handshake::{Handshake, HANDSHAKE_LEN, TOKEN_LEN};

const TOKEN: [u8; TOKEN_LEN] = *b"0123456789abcdef";

fuzz_target!(|input: (i32, [u8; HANDSHAKE_LEN])| {
    let (size, bytes) = input;
    match Handshake::verify(&bytes, &TOKEN, size) {
        Ok(h) => {
            assert_eq!(h.encode(), bytes);
            assert_eq!(h.token, TOKEN);
            assert_eq!(h.size, size);
            assert!((0..size).contains(&h.rank));
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
