//! `[tls]`: the PEM certificate chain and private key read and checked once
//! at load (before privileges are dropped, so the key may be readable by
//! root alone) into a rustls server configuration with the ring provider.
//! Must not accept connections or run handshakes (the server does), and
//! must not be read again after load.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The server configuration for `certificate` and `key`, or the config key
/// to blame and why (the reason names the file).
pub(super) fn server_config(
    certificate: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, (&'static str, String)> {
    let cert_err = |r: String| ("tls.certificate", format!("{}: {r}", certificate.display()));
    let key_err = |r: String| ("tls.key", format!("{}: {r}", key.display()));
    let pem = std::fs::read(certificate).map_err(|e| cert_err(format!("cannot read: {e}")))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(cert_err("holds no PEM certificate".into()));
    }
    let pem = std::fs::read(key).map_err(|e| key_err(format!("cannot read: {e}")))?;
    let private = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| key_err(format!("not a PEM private key: {e}")))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing = provider
        .key_provider
        .load_private_key(private.clone_key())
        .map_err(|e| key_err(format!("unusable private key: {e}")))?;
    // Checked here, not at the first handshake: a key that is not the
    // certificate's fails every client.
    rustls::sign::CertifiedKey::new(chain.clone(), signing)
        .keys_match()
        .map_err(|_| {
            key_err(format!(
                "does not match the certificate in {}",
                certificate.display()
            ))
        })?;
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_err(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| cert_err(format!("unusable with {}: {e}", key.display())))?;
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_matching_pair_loads_and_problems_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = rcgen::generate_simple_self_signed(vec!["mx.test".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["other.test".into()]).unwrap();
        let cert = write(dir.path(), "cert.pem", &a.cert.pem());
        let key = write(dir.path(), "key.pem", &a.key_pair.serialize_pem());
        let other_key = write(dir.path(), "other.pem", &b.key_pair.serialize_pem());
        let junk = write(dir.path(), "junk.pem", "hello\n");
        assert!(server_config(&cert, &key).is_ok());

        let (k, r) = server_config(&cert, &other_key).unwrap_err();
        assert_eq!(k, "tls.key");
        assert!(
            r.contains("other.pem") && r.contains("does not match"),
            "{r}"
        );

        let missing = dir.path().join("missing.pem");
        let (k, r) = server_config(&missing, &key).unwrap_err();
        assert_eq!(k, "tls.certificate");
        assert!(
            r.contains("missing.pem") && r.contains("cannot read"),
            "{r}"
        );

        let (k, r) = server_config(&junk, &key).unwrap_err();
        assert_eq!(k, "tls.certificate");
        assert!(r.contains("junk.pem"), "{r}");

        let (k, r) = server_config(&cert, &junk).unwrap_err();
        assert_eq!(k, "tls.key");
        assert!(r.contains("junk.pem"), "{r}");

        // The key where the certificate should be, and the other way round.
        assert_eq!(server_config(&key, &key).unwrap_err().0, "tls.certificate");
        assert_eq!(server_config(&cert, &cert).unwrap_err().0, "tls.key");
    }
}
