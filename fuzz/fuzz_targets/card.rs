//! Fuzzes the business-card decoder: any text (raw, or hex-encoded bytes as
//! a peer would publish them) decodes to nothing or to a card whose encoding
//! decodes to the same card.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mpirt::bootstrap::pmi::hex_encode;
use mpirt::environment::card_round_trip;

fn check(text: &str) {
    if let Some(encoded) = card_round_trip(text) {
        assert_eq!(card_round_trip(&encoded).as_deref(), Some(encoded.as_str()));
    }
}

fuzz_target!(|bytes: &[u8]| {
    check(&hex_encode(bytes));
    if let Ok(text) = std::str::from_utf8(bytes) {
        check(text);
    }
});
