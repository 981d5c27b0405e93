//! Folder names: an IMAP folder name (UTF-8, hierarchy separator '.') to the
//! name of its Maildir++ directory and back, with Dovecot's validity rules
//! (docs/maildir.md, 'Folder names'). Pure functions: must not touch the file
//! system, and must never let a name through that could leave the Maildir
//! root.

use std::borrow::Cow;

use super::StoreError;

/// How folder names are stored on disk: IMAP's modified UTF-7 (Dovecot's
/// default) or UTF-8 (Dovecot's `mail_location` with `:UTF-8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Deserialize, serde::Serialize),
    serde(rename_all = "kebab-case")
)]
pub enum FolderEncoding {
    Utf7,
    Utf8,
}

/// Maildir++ keeps a whole folder name in one directory name (`.` + name),
/// and a directory name is at most 255 bytes.
const MAX_STORAGE_LEN: usize = 254;

/// The modified BASE64 alphabet of RFC 3501 5.1.3 (',' instead of '/').
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Maps an IMAP folder name to its storage name: "" for INBOX (any case),
/// else the name as written after the `.` of its directory, `.` between
/// levels. Rejects what Dovecot's `mailbox_verify_name` and
/// `mailbox_list_is_valid_fs_name` reject, and names too long to be one
/// directory name.
pub fn storage_name(folder: &str, enc: FolderEncoding) -> Result<String, StoreError> {
    let invalid = |reason| StoreError::InvalidFolder {
        name: folder.to_owned(),
        reason,
    };
    if folder.eq_ignore_ascii_case("INBOX") {
        return Ok(String::new());
    }
    if folder.is_empty() {
        return Err(invalid("empty name"));
    }
    if folder.contains('/') {
        return Err(invalid("contains '/'"));
    }
    if folder.starts_with('~') {
        return Err(invalid("begins with '~'"));
    }
    if folder.chars().any(char::is_control) {
        return Err(invalid("contains control characters"));
    }
    if folder.starts_with('.') {
        return Err(invalid("begins with the hierarchy separator '.'"));
    }
    if folder.ends_with('.') {
        return Err(invalid("ends with the hierarchy separator '.'"));
    }
    if folder.contains("..") {
        return Err(invalid("has an empty level ('..')"));
    }
    // INBOX is case-insensitive, also as the parent of other folders.
    let folder = match folder.get(..6) {
        Some(inbox) if inbox.eq_ignore_ascii_case("INBOX.") => {
            Cow::Owned(format!("INBOX.{}", &folder[6..]))
        }
        _ => Cow::Borrowed(folder),
    };
    // '.' is printable ASCII, so encoding the whole name encodes each level.
    let storage = match enc {
        FolderEncoding::Utf7 => encode_mutf7(&folder),
        FolderEncoding::Utf8 => folder.into_owned(),
    };
    if storage.len() > MAX_STORAGE_LEN {
        return Err(invalid("longer than 254 bytes on disk"));
    }
    Ok(storage)
}

/// Maps a storage name back to the IMAP folder name ("" is INBOX). Accepts
/// only what [`storage_name`] produces, so a directory that Dovecot would
/// not have written (bad or non-canonical modified UTF-7) is an error.
pub fn display_name(storage: &str, enc: FolderEncoding) -> Result<String, StoreError> {
    if storage.is_empty() {
        return Ok("INBOX".to_owned());
    }
    let invalid = |reason| StoreError::InvalidFolder {
        name: storage.to_owned(),
        reason,
    };
    let name = match enc {
        FolderEncoding::Utf7 => decode_mutf7(storage).ok_or(invalid("not valid modified UTF-7"))?,
        FolderEncoding::Utf8 => storage.to_owned(),
    };
    match storage_name(&name, enc) {
        Ok(again) if again == storage => Ok(name),
        Ok(_) => Err(invalid("not in canonical form")),
        Err(e) => Err(e),
    }
}

/// IMAP modified UTF-7 (RFC 3501 5.1.3): printable ASCII stands for itself
/// except '&' ("&-"); runs of other characters become '&' + modified BASE64
/// of their UTF-16 + '-'.
fn encode_mutf7(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut run: Vec<u16> = Vec::new();
    for c in s.chars() {
        if (' '..='~').contains(&c) {
            flush_base64(&mut run, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            run.extend_from_slice(c.encode_utf16(&mut [0; 2]));
        }
    }
    flush_base64(&mut run, &mut out);
    out
}

fn flush_base64(run: &mut Vec<u16>, out: &mut String) {
    if run.is_empty() {
        return;
    }
    out.push('&');
    let (mut bits, mut nbits) = (0u32, 0u32);
    for &unit in run.iter() {
        bits = (bits << 16) | u32::from(unit);
        nbits += 16;
        while nbits >= 6 {
            nbits -= 6;
            out.push(char::from(B64[(bits >> nbits) as usize & 63]));
        }
        bits &= (1 << nbits) - 1;
    }
    if nbits > 0 {
        out.push(char::from(B64[(bits << (6 - nbits)) as usize & 63]));
    }
    out.push('-');
    run.clear();
}

/// The inverse of [`encode_mutf7`]; None on malformed input. Does not check
/// canonical form ([`display_name`] does that by encoding again).
fn decode_mutf7(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let shifted = &rest[amp + 1..];
        let end = shifted.find('-')?;
        if end == 0 {
            out.push('&');
        } else {
            let (mut bits, mut nbits, mut units) = (0u32, 0u32, Vec::new());
            for b in shifted[..end].bytes() {
                let value = B64.iter().position(|&c| c == b)?;
                bits = (bits << 6) | value as u32;
                nbits += 6;
                if nbits >= 16 {
                    nbits -= 16;
                    units.push((bits >> nbits) as u16);
                    bits &= (1 << nbits) - 1;
                }
            }
            // Leftover bits must be padding: fewer than 6, all zero.
            if nbits >= 6 || bits != 0 {
                return None;
            }
            for c in char::decode_utf16(units) {
                out.push(c.ok()?);
            }
        }
        rest = &shifted[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use FolderEncoding::{Utf7, Utf8};

    #[test]
    fn non_ascii_names_are_stored_as_dovecot_writes_them() {
        for (name, stored) in [
            ("Reçus", "Re&AOc-us"),
            ("Entwürfe", "Entw&APw-rfe"),
            ("日本語", "&ZeVnLIqe-"),
            ("&", "&-"),
            ("Lists.rust", "Lists.rust"),
            ("A&B.ç", "A&-B.&AOc-"),
            ("😀", "&2D3eAA-"),
        ] {
            assert_eq!(storage_name(name, Utf7).unwrap(), stored, "{name}");
            assert_eq!(display_name(stored, Utf7).unwrap(), name, "{stored}");
        }
        assert_eq!(storage_name("Reçus", Utf8).unwrap(), "Reçus");
        assert_eq!(storage_name("a&b", Utf8).unwrap(), "a&b");
    }

    #[test]
    fn inbox_in_any_case_is_the_root_and_the_parent_prefix_is_normalised() {
        for inbox in ["INBOX", "inbox", "InBoX"] {
            assert_eq!(storage_name(inbox, Utf7).unwrap(), "");
        }
        assert_eq!(display_name("", Utf7).unwrap(), "INBOX");
        assert_eq!(storage_name("inbox.Sub", Utf7).unwrap(), "INBOX.Sub");
        assert_eq!(storage_name("Inboxes", Utf7).unwrap(), "Inboxes");
    }

    #[test]
    fn names_dovecot_rejects_are_rejected() {
        let long_level = "x".repeat(256);
        let long_total = ["y".repeat(100), "y".repeat(100), "y".repeat(100)].join(".");
        for bad in [
            "",
            "a/b",
            "/",
            "..",
            ".",
            "a..b",
            ".a",
            "a.",
            "~x",
            "\0",
            "a\nb",
            "a\u{7f}",
            "a\u{85}",
            &long_level,
            &long_total,
        ] {
            for enc in [Utf7, Utf8] {
                assert!(
                    matches!(
                        storage_name(bad, enc),
                        Err(StoreError::InvalidFolder { .. })
                    ),
                    "{bad:?} accepted"
                );
            }
        }
        // Encoding makes names longer: 100 é are 200 bytes in UTF-8 but 269 in mUTF-7.
        let accents = "é".repeat(100);
        assert!(storage_name(&accents, Utf8).is_ok());
        assert!(storage_name(&accents, Utf7).is_err());
        assert!(storage_name("a.~b", Utf7).is_ok());
    }

    #[test]
    fn malformed_or_non_canonical_storage_names_are_rejected() {
        for bad in [
            "&",          // no '-'
            "&AOc",       // no '-'
            "&A-",        // partial unit
            "&AOd-",      // non-zero padding bits
            "&2D0-",      // lone surrogate
            "&AGE-",      // 'a' encoded
            "&AOc-&AOc-", // null shift
            "Reçus",      // raw non-ASCII in a mUTF-7 name
            "&AAA-",      // NUL
            ".a",
        ] {
            assert!(display_name(bad, Utf7).is_err(), "{bad:?} accepted");
        }
    }

    /// One level of a valid folder name (no separator, no control chars).
    fn level() -> impl Strategy<Value = String> {
        "[^./\\p{Cc}]{1,12}"
    }

    proptest! {
        #[test]
        fn mutf7_round_trips_valid_names(levels in prop::collection::vec(level(), 1..=3)) {
            let name = levels.join(".");
            prop_assume!(!name.starts_with('~'));
            prop_assume!(!name.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("INBOX")));
            for enc in [Utf7, Utf8] {
                let stored = storage_name(&name, enc).unwrap();
                if enc == Utf7 {
                    prop_assert!(stored.bytes().all(|b| (0x20..0x7f).contains(&b)));
                }
                prop_assert_eq!(display_name(&stored, enc).unwrap(), name.clone());
            }
        }

        #[test]
        fn decoding_never_panics(s in "\\PC{0,40}") {
            let _ = display_name(&s, Utf7);
        }

        #[test]
        fn no_folder_name_leaves_the_maildir(s in "[./~a\\x00-\\x1f\\PC]{0,24}") {
            for enc in [Utf7, FolderEncoding::Utf8] {
                if let Ok(storage) = storage_name(&s, enc) {
                    // Joined as ".{storage}" under the Maildir root: one
                    // plain directory entry, never a path or a dot-dot.
                    prop_assert!(!storage.contains('/'), "{s:?} -> {storage:?}");
                    prop_assert!(!storage.starts_with('.'), "{s:?} -> {storage:?}");
                    prop_assert!(!storage.contains(".."), "{s:?} -> {storage:?}");
                    prop_assert!(!storage.contains('\0'), "{s:?} -> {storage:?}");
                }
            }
        }
    }
}
