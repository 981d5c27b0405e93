//! Fuzz the folder-name mapping: never a panic; a name that is accepted
//! maps to a storage name that never leaves the Maildir and decodes back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailstow::config::FolderEncoding;
use mailstow_maildir::{display_name, storage_name};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    for enc in [FolderEncoding::Utf7, FolderEncoding::Utf8] {
        if let Ok(stored) = storage_name(s, enc) {
            assert!(!stored.contains('/') && !stored.contains('\0'));
            assert!(!stored.split('.').any(|c| c == ".." || c.is_empty()) || stored.is_empty());
            if !stored.is_empty() {
                let shown = display_name(&stored, enc).expect("accepted names decode");
                assert_eq!(storage_name(&shown, enc).ok().as_deref(), Some(stored.as_str()));
            }
        }
    }
});
