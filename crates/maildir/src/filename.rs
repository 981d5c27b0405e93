//! Message file names: the unique base name
//! `<sec>.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<vsize>` (docs/maildir.md,
//! 'File names') and the bare-LF count that W needs. Must not do I/O, and must never produce a
//! name with '/', ':' or ',' in the host part.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Deliveries by this process so far: the `Q` token. Process-wide because
/// many delivery threads can name files in the same microsecond.
static DELIVERIES: AtomicU64 = AtomicU64::new(0);

/// The host part of unique names: '/' and ':' escaped as cr.yp.to says, ','
/// as well because Dovecot looks for ",S=" and ",W=" anywhere in the name.
pub(super) fn escape_host(host: &str) -> String {
    let mut out = String::with_capacity(host.len());
    for c in host.chars() {
        match c {
            '/' => out.push_str("\\057"),
            ':' => out.push_str("\\072"),
            ',' => out.push_str("\\054"),
            _ => out.push(c),
        }
    }
    out
}

/// A new base name; `host` must already be escaped ([`escape_host`]).
pub(super) fn unique_base(now: SystemTime, host: &str, size: u64, vsize: u64) -> String {
    let t = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let q = DELIVERIES.fetch_add(1, Ordering::Relaxed) + 1;
    format!(
        "{}.M{}P{}Q{q}.{host},S={size},W={vsize}",
        t.as_secs(),
        t.subsec_micros(),
        std::process::id(),
    )
}

/// Counts LF bytes not preceded by CR, for W (RFC822.SIZE counts each as
/// CRLF). Incremental: `prev_cr` says whether the byte before `buf` was CR
/// (false at the start of the message). Returns the count and whether the
/// last byte seen so far is CR (`prev_cr` again when `buf` is empty).
pub fn count_bare_lf(prev_cr: bool, buf: &[u8]) -> (u64, bool) {
    let bare = memchr::memchr_iter(b'\n', buf)
        .filter(|&i| !if i == 0 { prev_cr } else { buf[i - 1] == b'\r' })
        .count();
    (bare as u64, buf.last().map_or(prev_cr, |&b| b == b'\r'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;
    use std::time::Duration;

    #[test]
    fn base_name_has_the_recommended_form() {
        let now = UNIX_EPOCH + Duration::new(1_795_877_462, 255_352_999);
        let base = unique_base(now, &escape_host("mx/1:a,b"), 236, 246);
        let prefix = format!("1795877462.M255352P{}Q", std::process::id());
        let rest = base.strip_prefix(&prefix).unwrap();
        let (q, tail) = rest.split_once('.').unwrap();
        assert!(q.parse::<u64>().unwrap() > 0);
        assert_eq!(tail, "mx\\0571\\072a\\054b,S=236,W=246");
    }

    #[test]
    fn bare_lf_counts_lf_without_cr() {
        assert_eq!(count_bare_lf(false, b""), (0, false));
        assert_eq!(count_bare_lf(true, b""), (0, true));
        assert_eq!(count_bare_lf(false, b"a\r\nb\nc\n\n"), (3, false));
        assert_eq!(count_bare_lf(false, b"\n"), (1, false));
        assert_eq!(count_bare_lf(true, b"\nx\r"), (0, true));
        assert_eq!(count_bare_lf(false, b"\r\r\n\n\r"), (1, true));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8))]
        #[test]
        fn unique_names_never_collide(host in "\\PC{0,20}") {
            let host = escape_host(&host);
            prop_assert!(!host.contains(['/', ':', ',']));
            let now = SystemTime::now();
            let names: HashSet<String> = (0..10_000).map(|_| unique_base(now, &host, 1, 1)).collect();
            prop_assert_eq!(names.len(), 10_000);
        }
    }

    proptest! {
        #[test]
        fn bare_lf_count_is_the_same_over_any_split(
            buf in prop::collection::vec(prop::sample::select(vec![b'\r', b'\n', b'a']), 0..200),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(buf.len() + 1)).collect();
            cuts.push(buf.len());
            cuts.sort_unstable();
            let (mut total, mut prev_cr, mut start) = (0, false, 0);
            for end in cuts {
                let (n, cr) = count_bare_lf(prev_cr, &buf[start..end]);
                total += n;
                prev_cr = cr;
                start = end;
            }
            let naive = (0..buf.len()).filter(|&i| buf[i] == b'\n' && (i == 0 || buf[i - 1] != b'\r')).count();
            prop_assert_eq!(total, naive as u64);
            prop_assert_eq!(count_bare_lf(false, &buf).0, naive as u64);
        }
    }
}
