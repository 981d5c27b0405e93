//! A user's Maildir as the Sieve host may ask about it: which folders
//! exist, which names and flags the Maildir could hold. Must not create or
//! change anything.

use mailstow_maildir::{storage_name, Flags, Maildir};
use mailstow_sieve::Mailboxes;

/// The Maildir behind one recipient's script run.
pub struct Folders<'a>(pub &'a Maildir);

impl Mailboxes for Folders<'_> {
    fn exists(&self, folder: &str) -> bool {
        self.0.folder_exists(folder).unwrap_or(false)
    }

    fn refuse_name(&self, folder: &str) -> Option<String> {
        storage_name(folder, self.0.encoding())
            .err()
            .map(|e| e.to_string())
    }

    fn keeps_flag(&self, flag: &str) -> bool {
        Flags::default().insert_imap(flag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailstow_maildir::FolderEncoding;

    #[test]
    fn answers_from_the_maildir_and_its_name_and_flag_rules() {
        let tmp = tempfile::tempdir().unwrap();
        let md = Maildir::new(tmp.path().join("Maildir"), None, FolderEncoding::Utf7, "h");
        mailstow_maildir::save_test_message(&md, "Lists", "x", &[]);
        let f = Folders(&md);
        assert!(f.exists("Lists") && f.exists("INBOX") && !f.exists("Other"));
        assert!(f.refuse_name("Work/Reports").is_some());
        assert!(f.refuse_name("..").is_some());
        assert_eq!(f.refuse_name("Work.Reports"), None);
        assert!(f.keeps_flag("\\Seen") && f.keeps_flag("$Label1"));
        assert!(!f.keeps_flag("\\Recent") && !f.keeps_flag("\\Bogus"));
    }
}
