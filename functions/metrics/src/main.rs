#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Only `cargo lambda watch` builds with this feature (see the workspace Cargo.toml): there
    // is no JWT authorizer locally. A deployed binary has no dev identity in it at all.
    #[cfg(feature = "dev-identity")]
    let wrap = seatbook_core::dev_identity::trust_dev_headers;
    #[cfg(not(feature = "dev-identity"))]
    let wrap = |router| router;
    seatbook_core::lambda::serve("metrics", |_| metrics_fn::routes(), wrap).await
}
