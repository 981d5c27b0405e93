//! Fuzz password verification: any stored field against any candidate
//! (split at the first 0xFF byte). Never a panic, never unbounded work (the
//! cost limits refuse absurd parameters).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (stored, candidate) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"x"[..]),
    };
    let _ = mailstow::auth::verify(stored, candidate);
});
