//! Checks a candidate password against the password field of a Dovecot
//! passwd-file entry (`{SCHEME}data`, or data alone in the default scheme).
//! Must not log, read files, keep either password, or panic on any input;
//! the work one check can cause is bounded (see the `MAX_` constants).
//!
//! # Schemes
//!
//! As Dovecot 2.3 reads them (`src/auth/password-scheme*.c`): the scheme
//! name is case-insensitive and may carry an encoding suffix, `.b64` (or
//! `.base64`) or `.hex`; any other suffix makes the scheme unknown.
//!
//! | scheme | data |
//! | --- | --- |
//! | `PLAIN`, `CLEAR`, `CLEARTEXT` | the password (`.b64`, `.hex` allowed) |
//! | `CRYPT`, `SHA512-CRYPT`, `SHA256-CRYPT`, `BLF-CRYPT` | a crypt(3) string, chosen by its prefix whatever the scheme says (Dovecot hands all four to crypt(3)): `$6$` SHA512-crypt, `$5$` SHA256-crypt, `$2y$`/`$2b$`/`$2a$` bcrypt, `$1$` MD5-crypt |
//! | `MD5-CRYPT` | `$1$salt$hash` |
//! | `ARGON2I`, `ARGON2ID` | a PHC string, `$argon2i$` or `$argon2id$` (libsodium accepts either under both names) |
//! | `SHA`, `SHA1`, `SHA256`, `SHA512` | the digest, base64; hex when the suffix says so, or (as Dovecot guesses) when it is exactly twice the digest size long |
//! | `SSHA`, `SSHA256`, `SSHA512` | base64 (or `.hex`) of digest(password + salt) followed by the salt |
//!
//! A field without `{SCHEME}` is in the default scheme, `CRYPT` for
//! [`verify`] (Dovecot's default for passwd-file), except that data
//! starting `$1$` is MD5-CRYPT, as Dovecot detects it.
//!
//! crypt(3) data starting `!` or `*` (a locked account, as in shadow(5))
//! never matches. Refused with a [`SchemeError`] (the entry is unusable,
//! not the password wrong): unknown schemes, traditional DES crypt and other crypt(3) formats
//! (yescrypt, `$2x$`, ...), malformed data, and cost parameters above the
//! limits below, which no Dovecot default comes near.
//!
//! # Never a match
//!
//! An empty candidate, an empty stored password, a candidate containing a
//! NUL byte (Dovecot's C strings could never have carried one) and a
//! candidate longer than [`MAX_CANDIDATE_LEN`] all give `Ok(false)` without
//! hashing anything. Dovecot's `nopassword` extra field is not honoured.
//!
//! Comparisons are constant-time; plaintext passwords are compared through
//! their SHA-512 digests so their length does not show either.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

/// Highest bcrypt cost accepted (2^16 rounds; Dovecot writes 5).
pub const MAX_BCRYPT_COST: u32 = 16;
/// Highest SHA-crypt `rounds=` accepted (Dovecot writes 5000).
pub const MAX_SHA_CRYPT_ROUNDS: u32 = 1_000_000;
/// Highest Argon2 memory cost accepted, in KiB (256 MiB; libsodium's
/// interactive settings that Dovecot uses are 32 and 64 MiB).
pub const MAX_ARGON2_M_COST: u32 = 256 * 1024;
/// Highest Argon2 time cost (passes) accepted (Dovecot writes 3 or 4).
pub const MAX_ARGON2_T_COST: u32 = 16;
/// Highest Argon2 parallelism accepted (Dovecot writes 1).
pub const MAX_ARGON2_P_COST: u32 = 16;
/// Longest candidate password hashed, in bytes: SHA-crypt and MD5-crypt
/// work grows with the password's length.
pub const MAX_CANDIDATE_LEN: usize = 1024;

/// Why a stored password cannot be checked. The messages name the scheme
/// and the reason, never the stored data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemeError {
    #[error("unknown password scheme {0:?}")]
    Unknown(String),
    #[error("password scheme {scheme}: {what} is not supported")]
    Unsupported { scheme: String, what: String },
    #[error("password scheme {scheme}: malformed stored password: {reason}")]
    Malformed { scheme: String, reason: String },
    #[error("password scheme {scheme}: {what} {value} is over the limit of {limit}")]
    TooCostly {
        scheme: String,
        what: &'static str,
        value: u64,
        limit: u64,
    },
}

/// Check `candidate` against a passwd-file password field; a field without
/// `{SCHEME}` is in Dovecot's passwd-file default scheme, CRYPT.
/// `Ok(false)`: not this password. `Err`: the stored field is unusable.
pub fn verify(stored: &[u8], candidate: &[u8]) -> Result<bool, SchemeError> {
    verify_with_default(stored, candidate, "CRYPT")
}

/// [`verify`] with another default scheme for fields without `{SCHEME}`,
/// as Dovecot's passdb `scheme=` argument sets it (e.g. `PLAIN`).
pub fn verify_with_default(
    stored: &[u8],
    candidate: &[u8],
    default_scheme: &str,
) -> Result<bool, SchemeError> {
    let (name, data) = split_scheme(stored, default_scheme);
    let (scheme, encoding) = lookup(&name)?;
    let data = decode(scheme, encoding, data, &name)?;
    if candidate.is_empty()
        || data.is_empty()
        || candidate.contains(&0)
        || candidate.len() > MAX_CANDIDATE_LEN
    {
        return Ok(false);
    }
    check(scheme, &data, candidate, &name)
}

/// True when checking this field costs a deliberate key-stretching effort
/// (crypt(3) formats, Argon2), false for plain and digest schemes or a field
/// that cannot be checked. For evening out the time of a login.
pub(crate) fn is_slow(stored: &[u8]) -> bool {
    let (name, data) = split_scheme(stored, "CRYPT");
    let never_hashed = data.is_empty() || data.starts_with(b"!") || data.starts_with(b"*");
    !never_hashed
        && matches!(
            lookup(&name),
            Ok((Scheme::Crypt | Scheme::Md5Crypt | Scheme::Argon2, _))
        )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Plain,
    Crypt,
    Md5Crypt,
    Argon2,
    Sha1,
    Sha256,
    Sha512,
    Ssha1,
    Ssha256,
    Ssha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// The scheme's own: raw for Plain, Crypt, Argon2; base64 (or hex by
    /// length, as Dovecot guesses) for the digests.
    Default,
    Base64,
    Hex,
}

/// `{NAME}data` -> (NAME, data); otherwise the default scheme, or MD5-CRYPT
/// for `$1$...` as Dovecot's `password_get_scheme()` detects it.
fn split_scheme<'a>(stored: &'a [u8], default_scheme: &str) -> (String, &'a [u8]) {
    if stored.starts_with(b"$1$") {
        return ("MD5-CRYPT".to_owned(), stored);
    }
    if let Some(rest) = stored.strip_prefix(b"{") {
        if let Some(end) = rest.iter().position(|&b| b == b'}') {
            let name = String::from_utf8_lossy(&rest[..end]).into_owned();
            return (name, &rest[end + 1..]);
        }
    }
    (default_scheme.to_owned(), stored)
}

fn lookup(name: &str) -> Result<(Scheme, Encoding), SchemeError> {
    let unknown = || SchemeError::Unknown(name.to_owned());
    let (base, encoding) = match name.split_once('.') {
        None => (name, Encoding::Default),
        Some((base, suffix)) => {
            let e = if suffix.eq_ignore_ascii_case("b64") || suffix.eq_ignore_ascii_case("base64") {
                Encoding::Base64
            } else if suffix.eq_ignore_ascii_case("hex") {
                Encoding::Hex
            } else {
                return Err(unknown());
            };
            (base, e)
        }
    };
    let scheme = match base.to_ascii_uppercase().as_str() {
        "PLAIN" | "CLEAR" | "CLEARTEXT" => Scheme::Plain,
        "CRYPT" | "SHA512-CRYPT" | "SHA256-CRYPT" | "BLF-CRYPT" => Scheme::Crypt,
        "MD5-CRYPT" => Scheme::Md5Crypt,
        "ARGON2I" | "ARGON2ID" => Scheme::Argon2,
        "SHA" | "SHA1" => Scheme::Sha1,
        "SHA256" => Scheme::Sha256,
        "SHA512" => Scheme::Sha512,
        "SSHA" => Scheme::Ssha1,
        "SSHA256" => Scheme::Ssha256,
        "SSHA512" => Scheme::Ssha512,
        _ => return Err(unknown()),
    };
    Ok((scheme, encoding))
}

/// Base64 as Dovecot writes it (padded), accepting it unpadded too.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The raw stored password, following Dovecot's `password_decode()`.
fn decode(
    scheme: Scheme,
    encoding: Encoding,
    data: &[u8],
    name: &str,
) -> Result<Vec<u8>, SchemeError> {
    let malformed = |reason: &str| SchemeError::Malformed {
        scheme: name.to_owned(),
        reason: reason.to_owned(),
    };
    let digest_len = match scheme {
        Scheme::Sha1 => Some(20),
        Scheme::Sha256 => Some(32),
        Scheme::Sha512 => Some(64),
        _ => None,
    };
    let is_digest =
        digest_len.is_some() || matches!(scheme, Scheme::Ssha1 | Scheme::Ssha256 | Scheme::Ssha512);
    let raw = match encoding {
        Encoding::Default if !is_digest => data.to_vec(),
        Encoding::Base64 => BASE64
            .decode(data)
            .map_err(|_| malformed("not valid base64"))?,
        Encoding::Hex => hex(data).ok_or_else(|| malformed("not valid hex"))?,
        Encoding::Default => match digest_len {
            // Dovecot guesses hex from the length, falling back to base64.
            Some(n) if data.len() == 2 * n => match hex(data) {
                Some(raw) => raw,
                None => BASE64
                    .decode(data)
                    .map_err(|_| malformed("not valid base64"))?,
            },
            _ => BASE64
                .decode(data)
                .map_err(|_| malformed("not valid base64"))?,
        },
    };
    if let Some(n) = digest_len {
        if raw.len() != n {
            return Err(malformed(&format!("{} bytes instead of {n}", raw.len())));
        }
    }
    Ok(raw)
}

fn hex(data: &[u8]) -> Option<Vec<u8>> {
    if !data.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    data.chunks_exact(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect()
}

fn check(scheme: Scheme, data: &[u8], candidate: &[u8], name: &str) -> Result<bool, SchemeError> {
    match scheme {
        Scheme::Plain => Ok(ct_eq(
            &sha2::Sha512::digest(data),
            &sha2::Sha512::digest(candidate),
        )),
        Scheme::Sha1 => Ok(ct_eq(&sha1::Sha1::digest(candidate), data)),
        Scheme::Sha256 => Ok(ct_eq(&sha2::Sha256::digest(candidate), data)),
        Scheme::Sha512 => Ok(ct_eq(&sha2::Sha512::digest(candidate), data)),
        Scheme::Ssha1 => salted::<sha1::Sha1>(data, candidate, name),
        Scheme::Ssha256 => salted::<sha2::Sha256>(data, candidate, name),
        Scheme::Ssha512 => salted::<sha2::Sha512>(data, candidate, name),
        Scheme::Crypt => crypt(text(data, name)?, candidate, name),
        Scheme::Md5Crypt => {
            let data = text(data, name)?;
            if !data.starts_with("$1$") {
                return Err(malformed(name, "MD5-crypt data must start with $1$"));
            }
            Ok(md5_crypt_check(data, candidate))
        }
        Scheme::Argon2 => argon2(text(data, name)?, candidate, name),
    }
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn malformed(name: &str, reason: &str) -> SchemeError {
    SchemeError::Malformed {
        scheme: name.to_owned(),
        reason: reason.to_owned(),
    }
}

fn text<'a>(data: &'a [u8], name: &str) -> Result<&'a str, SchemeError> {
    std::str::from_utf8(data)
        .ok()
        .filter(|s| s.is_ascii())
        .ok_or_else(|| malformed(name, "not ASCII"))
}

/// `digest(candidate + salt) ++ salt`.
fn salted<D: sha2::Digest>(data: &[u8], candidate: &[u8], name: &str) -> Result<bool, SchemeError> {
    let n = <D as sha2::Digest>::output_size();
    if data.len() <= n {
        return Err(malformed(name, "shorter than the digest and a salt"));
    }
    let (expected, salt) = data.split_at(n);
    let mut d = D::new();
    d.update(candidate);
    d.update(salt);
    Ok(ct_eq(&d.finalize(), expected))
}

/// A crypt(3) string, by its prefix.
fn crypt(data: &str, candidate: &[u8], name: &str) -> Result<bool, SchemeError> {
    let unsupported = |what: &str| SchemeError::Unsupported {
        scheme: name.to_owned(),
        what: what.to_owned(),
    };
    if data.starts_with('!') || data.starts_with('*') {
        // A locked account as shadow(5) writes it: crypt(3) never gives
        // this, so Dovecot answers "mismatch" too.
        Ok(false)
    } else if data.starts_with("$6$") || data.starts_with("$5$") {
        sha_crypt(data, candidate, name)
    } else if data.starts_with("$2y$") || data.starts_with("$2b$") || data.starts_with("$2a$") {
        bcrypt(data, candidate, name)
    } else if data.starts_with("$1$") {
        Ok(md5_crypt_check(data, candidate))
    } else if data.starts_with("$2x$") {
        Err(unsupported("the buggy $2x$ bcrypt variant"))
    } else if data.starts_with("$y$") || data.starts_with("$gy$") || data.starts_with("$7$") {
        Err(unsupported("yescrypt/scrypt crypt(3)"))
    } else if data.starts_with('_') || (data.len() == 13 && !data.starts_with('$')) {
        Err(unsupported(
            "DES crypt(3) (use SHA512-CRYPT, BLF-CRYPT or ARGON2ID)",
        ))
    } else {
        Err(malformed(name, "not a crypt(3) format known here"))
    }
}

/// `$6$[rounds=N$]salt$hash` and `$5$...`, with the rounds bounded first.
fn sha_crypt(data: &str, candidate: &[u8], name: &str) -> Result<bool, SchemeError> {
    use sha_crypt::PasswordVerifier as _;
    if let Some(rounds) = data.get(3..).and_then(|r| r.strip_prefix("rounds=")) {
        let digits = rounds.split('$').next().unwrap_or_default();
        let value: u64 = digits
            .parse()
            .map_err(|_| malformed(name, "rounds= is not a number"))?;
        if value > u64::from(MAX_SHA_CRYPT_ROUNDS) {
            return Err(SchemeError::TooCostly {
                scheme: name.to_owned(),
                what: "rounds",
                value,
                limit: MAX_SHA_CRYPT_ROUNDS.into(),
            });
        }
        if value < u64::from(sha_crypt::Params::ROUNDS_MIN) {
            return Err(malformed(name, "rounds= below 1000"));
        }
    }
    let algorithm = if data.starts_with("$6$") {
        sha_crypt::Algorithm::Sha512Crypt
    } else {
        sha_crypt::Algorithm::Sha256Crypt
    };
    match sha_crypt::ShaCrypt::from(algorithm).verify_password(candidate, data) {
        Ok(()) => Ok(true),
        Err(sha_crypt::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(malformed(name, &e.to_string())),
    }
}

/// `$2y$NN$` + 53 characters, with the cost bounded first.
fn bcrypt(data: &str, candidate: &[u8], name: &str) -> Result<bool, SchemeError> {
    if data.len() != 60 {
        return Err(malformed(name, "a bcrypt string is 60 characters"));
    }
    let cost: u64 = data
        .get(4..6)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| malformed(name, "the bcrypt cost is not a number"))?;
    if cost > u64::from(MAX_BCRYPT_COST) {
        return Err(SchemeError::TooCostly {
            scheme: name.to_owned(),
            what: "bcrypt cost",
            value: cost,
            limit: MAX_BCRYPT_COST.into(),
        });
    }
    // Passwords past 72 bytes are truncated, as crypt(3) does.
    ::bcrypt::verify(candidate, data).map_err(|e| malformed(name, &e.to_string()))
}

/// A PHC string `$argon2i[d]$v=19$m=..,t=..,p=..$salt$hash`, with the costs
/// bounded first.
fn argon2(data: &str, candidate: &[u8], name: &str) -> Result<bool, SchemeError> {
    use argon2::PasswordVerifier as _;
    let hash = argon2::PasswordHash::new(data).map_err(|e| malformed(name, &e.to_string()))?;
    let algorithm = hash.algorithm.as_str();
    if algorithm != "argon2i" && algorithm != "argon2id" {
        return Err(SchemeError::Unsupported {
            scheme: name.to_owned(),
            what: format!("algorithm {algorithm:?}"),
        });
    }
    let params = argon2::Params::try_from(&hash).map_err(|e| malformed(name, &e.to_string()))?;
    for (what, value, limit) in [
        ("argon2 m_cost (KiB)", params.m_cost(), MAX_ARGON2_M_COST),
        ("argon2 t_cost", params.t_cost(), MAX_ARGON2_T_COST),
        ("argon2 p_cost", params.p_cost(), MAX_ARGON2_P_COST),
    ] {
        if value > limit {
            return Err(SchemeError::TooCostly {
                scheme: name.to_owned(),
                what,
                value: value.into(),
                limit: limit.into(),
            });
        }
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err(malformed(name, "no salt or no hash"));
    }
    match argon2::Argon2::default().verify_password(candidate, &hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(malformed(name, &e.to_string())),
    }
}

/// MD5-crypt (`$1$salt$hash`, Poul-Henning Kamp's algorithm, as Dovecot's
/// `password_generate_md5_crypt()` and crypt(3) compute it): regenerate
/// from the stored salt and compare the whole strings.
fn md5_crypt_check(stored: &str, candidate: &[u8]) -> bool {
    let generated = md5_crypt(candidate, stored);
    ct_eq(generated.as_bytes(), stored.as_bytes())
}

/// `$1$` + salt (up to 8 characters, up to the first '$') + '$' + 22
/// characters of crypt base64. `setting` may be a whole stored string.
fn md5_crypt(password: &[u8], setting: &str) -> String {
    use md5::{Digest as _, Md5};
    const MAGIC: &[u8] = b"$1$";
    let rest = setting.strip_prefix("$1$").unwrap_or(setting);
    let salt = rest.split('$').next().unwrap_or_default().as_bytes();
    let salt = &salt[..salt.len().min(8)];

    let alt = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut ctx = Md5::new()
        .chain_update(password)
        .chain_update(MAGIC)
        .chain_update(salt);
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut i = password.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password);
        } else {
            c.update(fin);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(fin);
        } else {
            c.update(password);
        }
        fin = c.finalize();
    }

    const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(3 + salt.len() + 1 + 22);
    out.push_str("$1$");
    out.push_str(&String::from_utf8_lossy(salt));
    out.push('$');
    let mut put = |v: u32, n: usize| {
        let mut v = v;
        for _ in 0..n {
            out.push(ITOA64[(v & 0x3f) as usize] as char);
            v >>= 6;
        }
    };
    let f = |i: usize| u32::from(fin[i]);
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        put(f(a) << 16 | f(b) << 8 | f(c), 4);
    }
    put(f(11), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The password of every fixture below; UTF-8 and a space.
    const PW: &[u8] = "s3cr3t pässword".as_bytes();
    const WRONG: &[u8] = "s3cr3t passw\u{f6}rd".as_bytes();

    /// Written by Dovecot 2.3.19 on 2026-11-29:
    /// `doveadm pw -s SCHEME -p 's3cr3t pässword'` (and `-r` for rounds).
    const DOVEADM: &[(&str, &str)] = &[
        ("PLAIN", "{PLAIN}s3cr3t pässword"),
        ("PLAIN.b64", "{PLAIN.B64}czNjcjN0IHDDpHNzd29yZA=="),
        ("PLAIN.HEX", "{PLAIN.HEX}7333637233742070c3a47373776f7264"),
        ("CLEARTEXT", "{CLEARTEXT}s3cr3t pässword"),
        ("CLEAR", "{CLEAR}s3cr3t pässword"),
        ("CRYPT", "{CRYPT}$2y$05$pwt2GZi91AxDQV/e4ir7peesX0/hfS8i.kYgRVFgJrq82MK/QENga"),
        ("SHA512-CRYPT", "{SHA512-CRYPT}$6$V3e5BvYQhKqV8ND4$Rchjg8RWyolNDwJeZMJxOxzqIXmjpyRKSO.P58DIIB4K4qxkJOEycIucGdSQJLTYMB7wBjzeNrtHK7Oh6ZtRE0"),
        ("SHA512-CRYPT -r 10000", "{SHA512-CRYPT}$6$rounds=10000$eW9V9KmCSfke.BKe$9y2KaFzUFlKrdWZTSN/MrSOG2KhXBKJbZ0jHaVdhBJU3Auimr3JFJRMGdmzyydpRmXziBA2PQeCmr3dJhHb6f/"),
        ("SHA256-CRYPT", "{SHA256-CRYPT}$5$HisEqnXNZkfkb5T3$pjLXENwxsTEFOHHoTVIfRXLLNVTsNqp2O1Q7ZL5Gfa0"),
        ("SHA256-CRYPT -r 2000", "{SHA256-CRYPT}$5$rounds=2000$hhpUDf4qqKs.wGzJ$X8U7EgDFIG9blRI1fsLyve8VSHbQ5SxQviNz8oqR2BA"),
        ("MD5-CRYPT", "{MD5-CRYPT}$1$QJ5XOrdV$En/G7/qPUREihrsahj5xA0"),
        ("BLF-CRYPT", "{BLF-CRYPT}$2y$05$kEWdfzKhGhIYZVaKmzJGaeru4KhNPIG3Kk8TePo0Av0tkMgJOpVZu"),
        ("BLF-CRYPT -r 8", "{BLF-CRYPT}$2y$08$DQMDRQDiZU22fferyJ74/.kGhijcgS9uD9vkwfJ2Hnwah0YEQ3jWu"),
        ("ARGON2I", "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$Da7Q0TGgtF6YfF/woNZ9mA$UZyZ25E+io1jjyzwJst6u7748/Szs8m1uosGqlnigBA"),
        ("ARGON2ID", "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$q42YZ7sVocldsOf8YIq+rQ$I818OR/p4ERWNkC+FbitoYeSNgkvlQC0oBE9lMYYdfE"),
        ("SSHA512", "{SSHA512}ZhNMFjB+dAj9DGmr1O0UunSC2ncvNdYihz3qxjuduQ18ZTqtK5vCAI2awjXweDR2gazybj6SnFyYoXd8xAsFvFSQnkM="),
        ("SSHA512.HEX", "{SSHA512.HEX}fbf234543f49a66ef3e748cf5ab7c0507e8321dcdce43dd29802d8816378178bf4554d8afce52e9cedcf6d10e4b8f32fa32e8f18a8bc463119c22d8038a0468a92af120c"),
        ("SSHA256", "{SSHA256}sLacZQa9XQsip36t5U7xOu1mWS8jTSDpS2TlYP4EZtdBYsUy"),
        ("SSHA", "{SSHA}lU4hA3eqni21LqHnxQTTg7Q2lF1+rS0p"),
        ("SSHA.b64", "{SSHA.B64}Z+zrfrOhGleAYkx8Ov4UlAWTHBIQmHUV"),
        ("SHA512", "{SHA512}m+IWQIVYGSJZGk1YRpobHgeWqKVkXpJJNyFXt7uS8y3+r3wZcTkMn2yDA6EecwoIMxz10ZjfytOtFrsIxM3OZA=="),
        ("SHA512.HEX", "{SHA512.HEX}9be2164085581922591a4d58469a1b1e0796a8a5645e9249372157b7bb92f32dfeaf7c1971390c9f6c8303a11e730a08331cf5d198dfcad3ad16bb08c4cdce64"),
        ("SHA256", "{SHA256}pBg1HtWje1ECc0S6XySuZs8VPt6AUucQ6DUZnIezuqw="),
        ("SHA256.hex", "{SHA256.HEX}a418351ed5a37b51027344ba5f24ae66cf153ede8052e710e835199c87b3baac"),
        ("SHA", "{SHA}DA0yRQX1RQt/4tchvDNewomfZRo="),
        ("SHA1", "{SHA1}DA0yRQX1RQt/4tchvDNewomfZRo="),
        ("SHA1.HEX", "{SHA1.HEX}0c0d324505f5450b7fe2d721bc335ec2899f651a"),
    ];

    /// Other writers of the same formats: libxcrypt's crypt(3) through
    /// Python (`crypt.crypt`) and `openssl passwd -1`, same password; the
    /// bcrypt and SHA-crypt vectors Dovecot itself checks crypt(3) with
    /// (`password-scheme-crypt.c`, password "08/15!test~4711").
    const OTHERS: &[(&str, &[u8], &str)] = &[
        ("$2b$ (libxcrypt)", PW, "{CRYPT}$2b$05$abcdefghijklmnopqrstuuwKpCzTeLbWjCYLWyWhN5RAcOBzcgBHK"),
        ("$2a$ (libxcrypt)", PW, "{BLF-CRYPT}$2a$05$0123456789abcdefghijkektmhtwxBuXtKbd41RnP9zGfXKb1SOcK"),
        ("$6$ (libxcrypt)", PW, "$6$.MkP5DYbBb86qUZo$6YLx29vY7mEUFBbSlk6zRJ8R79bcF0twvDZ06Aue7pEmBroiztGMQF6TKTMP/km62RBcleUXPJQKlCFE8p7/B0"),
        ("$1$ (openssl)", PW, "$1$y5c.fd.3$Cfd/7btk05G7Dc3mJkOUb1"),
        ("$1$ 8-char salt", PW, "{CRYPT}$1$abcdefgh$yKt/lPWziub9nud5zG2Mx0"),
        ("$1$ 100 bytes", &[b'x'; 100], "{MD5-CRYPT}$1$abcdefgh$ax3Kvr/hbxTbyc0QiTLcg/"),
        ("Dovecot $2a$", b"08/15!test~4711", "{CRYPT}$2a$04$0123456789abcdefABCDE.N.drYX5yIAL1LkTaaZotW3yI0hQhZru"),
        ("Dovecot $5$", b"08/15!test~4711", "{CRYPT}$5$rounds=1000$0123456789abcdef$K/DksR0DT01hGc8g/kt9McEgrbFMKi9qrb1jehe7hn4"),
        ("Dovecot $6$", b"08/15!test~4711", "{CRYPT}$6$rounds=1000$0123456789abcdef$ZIAd5WqfyLkpvsVCVUU1GrvqaZTqvhJoouxdSqJO71l9Ld3tVrfOatEjarhghvEYADkq//LpDnTeO90tcbtHR1"),
    ];

    #[test]
    fn doveadm_hashes_take_the_password_and_refuse_another() {
        for (what, stored) in DOVEADM {
            assert_eq!(verify(stored.as_bytes(), PW), Ok(true), "{what}");
            assert_eq!(verify(stored.as_bytes(), WRONG), Ok(false), "{what}");
            assert_eq!(verify(stored.as_bytes(), &PW[1..]), Ok(false), "{what}");
        }
    }

    #[test]
    fn other_writers_of_the_formats_agree() {
        for (what, pw, stored) in OTHERS {
            assert_eq!(verify(stored.as_bytes(), pw), Ok(true), "{what}");
            assert_eq!(
                verify(stored.as_bytes(), b"08/15!test~4712"),
                Ok(false),
                "{what}"
            );
        }
    }

    /// Change one character of the data (never the scheme or a '$'): the
    /// password no longer matches, or the data no longer parses.
    #[test]
    fn tampered_hashes_never_match() {
        for (what, stored) in DOVEADM {
            let bytes = stored.as_bytes();
            let start = bytes.iter().position(|&b| b == b'}').map_or(0, |p| p + 1);
            // A few positions spread over the data, the last one included.
            let len = bytes.len() - start;
            for at in [start, start + len / 2, bytes.len() - 2, bytes.len() - 1] {
                let mut t = bytes.to_vec();
                t[at] = match t[at] {
                    b'$' | b',' | b'=' => continue,
                    b'a' => b'b',
                    b'0' => b'1',
                    _ => b'a',
                };
                let r = verify(&t, PW);
                assert!(
                    matches!(r, Ok(false) | Err(SchemeError::Malformed { .. })),
                    "{what} changed at {at}: {r:?}"
                );
            }
        }
    }

    #[test]
    fn locked_crypt_passwords_never_match() {
        let locked = "!$6$V3e5BvYQhKqV8ND4$Rchjg8RWyolNDwJeZMJxOxzqIXmjpyRKSO.P58DIIB4K4qxkJOEycIucGdSQJLTYMB7wBjzeNrtHK7Oh6ZtRE0";
        assert_eq!(verify(locked.as_bytes(), PW), Ok(false));
        assert_eq!(
            verify(format!("{{SHA512-CRYPT}}{locked}").as_bytes(), PW),
            Ok(false)
        );
        assert_eq!(verify(b"*", PW), Ok(false));
        assert_eq!(verify(b"{CRYPT}!", PW), Ok(false));
    }

    #[test]
    fn bcrypt_truncates_at_72_bytes_like_crypt3() {
        let stored = b"{BLF-CRYPT}$2b$04$0123456789abcdefghijkeQTbmm.RcNPT0JaHsD9KFomKrKSIRYFm";
        assert_eq!(verify(stored, &[b'x'; 100]), Ok(true));
        assert_eq!(verify(stored, &[b'x'; 72]), Ok(true));
        assert_eq!(verify(stored, &[b'x'; 71]), Ok(false));
    }

    #[test]
    fn braceless_data_is_crypt_or_md5_crypt() {
        let bf = "$2y$05$pwt2GZi91AxDQV/e4ir7peesX0/hfS8i.kYgRVFgJrq82MK/QENga";
        assert_eq!(verify(bf.as_bytes(), PW), Ok(true));
        assert_eq!(verify(b"$1$QJ5XOrdV$En/G7/qPUREihrsahj5xA0", PW), Ok(true));
        // Plaintext without a scheme is not taken as a password by default...
        assert!(verify("s3cr3t pässword".as_bytes(), PW).is_err());
        // ...only with scheme=PLAIN, as Dovecot's passdb args can set.
        assert_eq!(
            verify_with_default("s3cr3t pässword".as_bytes(), PW, "PLAIN"),
            Ok(true)
        );
        assert_eq!(verify_with_default(b"other", PW, "PLAIN"), Ok(false));
        // An explicit scheme wins over the default.
        assert_eq!(verify_with_default(bf.as_bytes(), PW, "PLAIN"), Ok(false));
    }

    #[test]
    fn scheme_names_ignore_case_and_unknown_ones_are_named() {
        assert_eq!(verify(b"{plain}ab", b"ab"), Ok(true));
        assert_eq!(
            verify(b"{Sha1.hex}0c0d324505f5450b7fe2d721bc335ec2899f651a", PW),
            Ok(true)
        );
        assert_eq!(verify(b"{PLAIN.base64}YWI=", b"ab"), Ok(true));
        // Dovecot guesses hex from the length when no suffix says.
        assert_eq!(
            verify(b"{SHA1}0c0d324505f5450b7fe2d721bc335ec2899f651a", PW),
            Ok(true)
        );
        for (stored, name) in [
            ("{NOPE}x", "NOPE"),
            ("{PLAIN.rot13}x", "PLAIN.rot13"),
            ("{SCRAM-SHA-256}x", "SCRAM-SHA-256"),
            ("{PBKDF2}x", "PBKDF2"),
            ("{}x", ""),
        ] {
            let e = verify(stored.as_bytes(), b"x").unwrap_err();
            assert_eq!(e, SchemeError::Unknown(name.to_owned()), "{stored}");
            assert!(e.to_string().contains(&format!("{name:?}")), "{e}");
        }
    }

    #[test]
    fn des_and_other_crypt_formats_are_refused_clearly() {
        for stored in [
            "abTAehUnQ9rfg",
            "{CRYPT}JBOZ0DgmtucwE",
            "{CRYPT}_J9..CCCCXBrJUJV154M",
        ] {
            let e = verify(stored.as_bytes(), PW).unwrap_err();
            assert!(
                matches!(e, SchemeError::Unsupported { .. }),
                "{stored}: {e:?}"
            );
            assert!(e.to_string().contains("DES"), "{e}");
        }
        let e = verify(
            b"{CRYPT}$y$j9T$abcdefghijklmnopqrstuv$0123456789012345678901234567890123456789012",
            PW,
        )
        .unwrap_err();
        assert!(e.to_string().contains("yescrypt"), "{e}");
        let e = verify(
            b"{CRYPT}$2x$05$pwt2GZi91AxDQV/e4ir7peesX0/hfS8i.kYgRVFgJrq82MK/QENga",
            PW,
        )
        .unwrap_err();
        assert!(matches!(e, SchemeError::Unsupported { .. }), "{e:?}");
        let e = verify(b"{ARGON2I}$argon2d$v=19$m=32768,t=4,p=1$Da7Q0TGgtF6YfF/woNZ9mA$UZyZ25E+io1jjyzwJst6u7748/Szs8m1uosGqlnigBA", PW).unwrap_err();
        assert!(matches!(e, SchemeError::Unsupported { .. }), "{e:?}");
        let e = verify(b"{SHA512-CRYPT}x", PW).unwrap_err();
        assert!(matches!(e, SchemeError::Malformed { .. }), "{e:?}");
    }

    #[test]
    fn absurd_costs_are_refused_before_any_work() {
        let cases = [
            "{BLF-CRYPT}$2y$17$kEWdfzKhGhIYZVaKmzJGaeru4KhNPIG3Kk8TePo0Av0tkMgJOpVZu",
            "{BLF-CRYPT}$2b$31$kEWdfzKhGhIYZVaKmzJGaeru4KhNPIG3Kk8TePo0Av0tkMgJOpVZu",
            "{SHA512-CRYPT}$6$rounds=999999999$eW9V9KmCSfke.BKe$9y2KaFzUFlKrdWZTSN/MrSOG2KhXBKJbZ0jHaVdhBJU3Auimr3JFJRMGdmzyydpRmXziBA2PQeCmr3dJhHb6f/",
            "{CRYPT}$5$rounds=1000001$hhpUDf4qqKs.wGzJ$X8U7EgDFIG9blRI1fsLyve8VSHbQ5SxQviNz8oqR2BA",
            "{CRYPT}$5$rounds=99999999999999999999$hhpUDf4qqKs.wGzJ$X8U7EgDFIG9blRI1fsLyve8VSHbQ5SxQviNz8oqR2BA",
            "{ARGON2ID}$argon2id$v=19$m=4194304,t=3,p=1$q42YZ7sVocldsOf8YIq+rQ$I818OR/p4ERWNkC+FbitoYeSNgkvlQC0oBE9lMYYdfE",
            "{ARGON2ID}$argon2id$v=19$m=65536,t=1000,p=1$q42YZ7sVocldsOf8YIq+rQ$I818OR/p4ERWNkC+FbitoYeSNgkvlQC0oBE9lMYYdfE",
            "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=255$Da7Q0TGgtF6YfF/woNZ9mA$UZyZ25E+io1jjyzwJst6u7748/Szs8m1uosGqlnigBA",
        ];
        for stored in cases {
            let t = crate::auth::thread_cpu_time();
            let r = verify(stored.as_bytes(), PW);
            // The 20-digit rounds do not even parse as a number: malformed.
            assert!(
                matches!(
                    r,
                    Err(SchemeError::TooCostly { .. }) | Err(SchemeError::Malformed { .. })
                ),
                "{stored}: {r:?}"
            );
            // Refused before the work: hashing at these costs takes seconds
            // of CPU (or gigabytes), checking the parameters microseconds.
            let used = crate::auth::thread_cpu_time() - t;
            assert!(
                used < std::time::Duration::from_millis(50),
                "{stored}: {used:?} of CPU"
            );
        }
        let e = verify(cases[0].as_bytes(), PW).unwrap_err();
        assert_eq!(
            e.to_string(),
            "password scheme BLF-CRYPT: bcrypt cost 17 is over the limit of 16"
        );
    }

    #[test]
    fn empty_nul_and_overlong_candidates_never_match() {
        assert_eq!(verify(b"{PLAIN}", b""), Ok(false));
        assert_eq!(verify(b"{PLAIN}a", b""), Ok(false));
        assert_eq!(verify(b"{PLAIN}", b"a"), Ok(false));
        assert_eq!(verify(b"", b"a"), Ok(false));
        assert_eq!(verify(b"{PLAIN}a\0b", b"a\0b"), Ok(false));
        let long = vec![b'a'; MAX_CANDIDATE_LEN + 1];
        let mut stored = b"{PLAIN}".to_vec();
        stored.extend_from_slice(&long);
        assert_eq!(verify(&stored, &long), Ok(false));
        assert_eq!(verify(&stored[..stored.len() - 1], &long[1..]), Ok(true));
        // Unknown schemes are errors even for an empty candidate.
        assert!(verify(b"{NOPE}", b"").is_err());
    }

    #[test]
    fn non_utf8_plaintext_passwords_compare_as_bytes() {
        assert_eq!(verify(b"{PLAIN}p\xe4ss", b"p\xe4ss"), Ok(true));
        assert_eq!(verify(b"{PLAIN}p\xe4ss", "päss".as_bytes()), Ok(false));
    }

    #[test]
    fn malformed_digests_are_errors_not_mismatches() {
        for stored in [
            "{SHA256}not base64!",
            "{SHA256}YWI=",
            "{SSHA512}YWI=",
            "{SSHA.HEX}zz",
            "{PLAIN.HEX}abc",
        ] {
            let r = verify(stored.as_bytes(), PW);
            assert!(
                matches!(r, Err(SchemeError::Malformed { .. })),
                "{stored}: {r:?}"
            );
        }
    }

    #[test]
    fn slow_schemes_are_told_apart() {
        assert!(is_slow(b"{SHA512-CRYPT}$6$x"));
        assert!(is_slow(b"$2y$05$x"));
        assert!(is_slow(b"{argon2id}x"));
        assert!(!is_slow(b"{PLAIN}x"));
        assert!(!is_slow(b"{SSHA512}x"));
        assert!(!is_slow(b"{NOPE}x"));
        assert!(!is_slow(b""));
        assert!(!is_slow(b"{CRYPT}"));
        assert!(!is_slow(b"!$6$x"));
        assert!(!is_slow(b"*"));
    }

    fn cheap_stored() -> impl Strategy<Value = Vec<u8>> {
        let prefix = prop::sample::select(vec![
            "",
            "{PLAIN}",
            "{PLAIN.hex}",
            "{PLAIN.b64}",
            "{CRYPT}",
            "{CRYPT}$6$",
            "{CRYPT}$5$rounds=",
            "{CRYPT}$2y$0",
            "{CRYPT}$1$",
            "$1$",
            "{MD5-CRYPT}$1$",
            "{ARGON2ID}$argon2id$v=19$m=8,t=1,p=1$",
            "{ARGON2I}$argon2i$",
            "{SSHA512}",
            "{SSHA.hex}",
            "{SHA256}",
            "{SHA1}",
            "{BLF-CRYPT}$2b$04$",
            "{",
        ]);
        (prefix, prop::collection::vec(any::<u8>(), 0..80)).prop_map(|(p, mut rest)| {
            let mut v = p.as_bytes().to_vec();
            v.append(&mut rest);
            v
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(
            stored in prop::collection::vec(any::<u8>(), 0..120),
            candidate in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let _ = verify(&stored, &candidate);
        }

        #[test]
        fn scheme_shaped_bytes_never_panic(
            stored in cheap_stored(),
            candidate in prop::collection::vec(any::<u8>(), 0..40),
        ) {
            let _ = verify(&stored, &candidate);
        }

        #[test]
        fn scheme_shaped_text_never_panics(
            rest in "[./0-9A-Za-z$=,+]{0,90}",
            prefix in prop::sample::select(vec![
                "{CRYPT}$6$", "{CRYPT}$5$", "{CRYPT}$2y$04$", "{CRYPT}$1$",
                "{ARGON2ID}$argon2id$v=19$m=8,t=1,p=1$", "{ARGON2I}$argon2i$v=19$",
            ]),
            candidate in "[ -~]{0,20}",
        ) {
            let stored = format!("{prefix}{rest}");
            let _ = verify(stored.as_bytes(), candidate.as_bytes());
        }

        #[test]
        fn plain_matches_exactly_itself(a in prop::collection::vec(1u8.., 1..40), b in prop::collection::vec(1u8.., 1..40)) {
            let mut stored = b"{PLAIN}".to_vec();
            stored.extend_from_slice(&a);
            prop_assert_eq!(verify(&stored, &a), Ok(true));
            prop_assert_eq!(verify(&stored, &b), Ok(a == b));
        }
    }
}
