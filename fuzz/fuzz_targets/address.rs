//! Fuzz the RFC 5321 path and parameter parsers: never a panic, and a
//! parsed mailbox prints back to something that parses to the same mailbox.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailstow_proto::address;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok((Some(m), rest)) = address::parse_path(s, true) {
        let _ = address::parse_params(rest);
        if !m.domain.is_empty() {
            let again = format!("<{m}>");
            let (back, _) = address::parse_path(&again, false).expect("round trip parses");
            assert_eq!(back, Some(m));
        }
    }
    let _ = address::decode_xtext(s);
    let _ = address::parse_orcpt(s);
});
