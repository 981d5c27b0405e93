//! Fuzz what the index reads from files other programs write: a
//! `dovecot-uidlist` (parsed; a parsed list must have strictly ascending
//! UIDs), a message's header block, and Maildir file names (base, info,
//! S=/W= fields). Any bytes, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailstow_index::{scan, uidlist::Uidlist};

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = Uidlist::parse(data) {
        assert!(list.records.windows(2).all(|w| w[0].uid < w[1].uid));
        assert!(list.next_uid() >= list.header_next);
        for r in list.records.iter().take(4) {
            assert_eq!(list.uid_of(&r.base).is_some(), true);
        }
    }
    let h = scan::headers(data);
    for f in [&h.subject, &h.from, &h.to, &h.message_id].into_iter().flatten() {
        assert!(f.len() <= 2048);
    }
    if let Ok(name) = std::str::from_utf8(data) {
        let (base, info) = scan::split_name(name);
        assert!(!base.contains(':'));
        let (flags, keywords) = scan::parse_info(info);
        assert!((0..32).contains(&flags));
        assert!(keywords.iter().all(|&k| k < 26));
        let _ = scan::name_field(base, "W");
    }
});
