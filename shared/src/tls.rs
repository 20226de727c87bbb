//! TLS without OpenSSL: rustls with the `ring` provider, chosen once per process.
//!
//! The same provider serves every TLS client in a function: `rediss://` (ElastiCache), PostgreSQL
//! with `sslmode=require` (RDS Proxy), and the AWS SDK's HTTPS client (Secrets Manager).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Makes `ring` the process's rustls provider (idempotent). Needed before any rustls client
/// (rediss://, PostgreSQL TLS) is built, because more than one provider may be compiled in.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the CA bundle {path}: {reason}")]
    Bundle { path: PathBuf, reason: String },
    #[error("the CA bundle {0} holds no PEM certificate")]
    EmptyBundle(PathBuf),
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

/// The client configuration for PostgreSQL over TLS: the server's certificate chain and host name
/// are verified (what libpq calls `verify-full`) against the Mozilla roots compiled in
/// (webpki-roots; they include the Amazon roots that RDS Proxy's ACM certificates chain to) plus,
/// when given, every certificate in the PEM file `ca_bundle` (e.g. the RDS global bundle, for
/// connections straight to an instance).
pub fn postgres_client_config(ca_bundle: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    install_crypto_provider();
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_bundle {
        let bundle_error = |reason: String| TlsError::Bundle {
            path: path.to_owned(),
            reason,
        };
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| bundle_error(e.to_string()))? {
            let cert = cert.map_err(|e| bundle_error(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| bundle_error(format!("certificate {}: {e}", added + 1)))?;
            added += 1;
        }
        if added == 0 {
            return Err(TlsError::EmptyBundle(path.to_owned()));
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_bundle_is_an_error_at_start() {
        let missing = postgres_client_config(Some(Path::new("/nonexistent/bundle.pem")));
        assert!(matches!(missing, Err(TlsError::Bundle { .. })));
        let dir = std::env::temp_dir().join(format!("tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        assert!(matches!(
            postgres_client_config(Some(&empty)),
            Err(TlsError::EmptyBundle(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_builtin_roots_are_enough_without_a_bundle() {
        assert!(postgres_client_config(None).is_ok());
    }
}
