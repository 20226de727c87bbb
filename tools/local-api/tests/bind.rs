//! The `local-api` binary trusts `x-dev-user` headers, so it refuses to listen beyond loopback
//! with dev identity on, before it touches the database or a port.

use std::process::Command;

fn local_api(host: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_local-api"));
    command
        .env_clear()
        .env("HOST", host)
        .env("PORT", "0")
        // Nothing listens there: a server that got past the bind check would fail differently.
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/seatbook")
        .env("REDIS_URL", "");
    command
}

#[test]
fn local_api_refuses_to_serve_dev_identity_on_every_interface() {
    for host in ["0.0.0.0", "::"] {
        let output = local_api(host).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{host}: {stderr}");
        assert!(
            stderr.contains("LOCAL_API_ALLOW_REMOTE_DEV_IDENTITY"),
            "{host}: {stderr}"
        );
        assert!(
            stderr.contains("SEATBOOK_DEV_IDENTITY=false"),
            "{host}: {stderr}"
        );
    }
}

#[test]
fn local_api_on_every_interface_without_dev_identity_gets_past_the_bind_check() {
    let output = local_api("0.0.0.0")
        .env("SEATBOOK_DEV_IDENTITY", "false")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    // It goes on to the database, which is not there.
    assert!(!output.status.success());
    assert!(
        !stderr.contains("LOCAL_API_ALLOW_REMOTE_DEV_IDENTITY"),
        "{stderr}"
    );
}
