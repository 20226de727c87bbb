//! TLS without OpenSSL: rustls with the `ring` provider, chosen once per process.

/// Makes `ring` the process's rustls provider (idempotent). Needed before any rustls client
/// (rediss://, PostgreSQL TLS) is built, because more than one provider may be compiled in.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
