//! Fuzz the Dovecot passwd-file parser: any bytes, never a panic, and the
//! count of usable entries never exceeds the number of lines.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (usable, _) = mailstow::users::check_passwd(data, std::path::Path::new("/mail"));
    assert!(usable <= data.split(|&b| b == b'\n').count());
});
