//! moto's Secrets Manager on a random local port, for tests that run a function binary with its
//! credentials in Secrets Manager as deployed (`AWS_ENDPOINT_URL_SECRETS_MANAGER` = [`Moto::url`]).
//! moto comes from PyPI (`moto[server]`); `scripts/services` installs it.

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

pub struct Moto {
    port: u16,
    process: tokio::process::Child,
    http: reqwest::Client,
}

/// `MOTO_SERVER`, else `moto_server` on PATH, else the virtualenv `scripts/services` installs.
fn moto_server() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp/.cache"));
    let venv = cache.join("seatbook/moto-venv");
    crate::find_executable("MOTO_SERVER", "moto_server", [venv.join("bin")]).unwrap_or_else(|| {
        panic!(
            "moto_server not found. This test needs moto's Secrets Manager (PyPI `moto[server]`): \
             run scripts/services (it installs moto into {}), or set MOTO_SERVER to a moto_server \
             executable.",
            venv.display()
        )
    })
}

impl Moto {
    pub async fn start() -> Moto {
        let port = crate::free_port();
        let binary = moto_server();
        let process = tokio::process::Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let moto = Moto {
            port,
            process,
            http: reqwest::Client::new(),
        };
        let started = Instant::now();
        loop {
            let ready = moto
                .http
                .get(format!("{}/moto-api/", moto.url()))
                .send()
                .await;
            if matches!(&ready, Ok(r) if r.status().is_success()) {
                return moto;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{} did not answer on port {port} within 60 s",
                binary.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One Secrets Manager API call (JSON 1.1 protocol; moto does not check signatures).
    pub async fn call(&self, action: &str, body: Value) -> Value {
        let response = self
            .http
            .post(self.url())
            .header("x-amz-target", format!("secretsmanager.{action}"))
            .header("content-type", "application/x-amz-json-1.1")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=testing/20300101/us-east-1/secretsmanager/aws4_request, \
                 SignedHeaders=host;x-amz-target, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{action}: {status} {body}");
        body
    }

    pub async fn create_secret(&self, name: &str, value: &str) -> String {
        let created = self
            .call("CreateSecret", json!({"Name": name, "SecretString": value}))
            .await;
        created["ARN"].as_str().unwrap().to_owned()
    }

    pub async fn put_secret_value(&self, arn: &str, value: &str) {
        self.call(
            "PutSecretValue",
            json!({"SecretId": arn, "SecretString": value}),
        )
        .await;
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.process.start_kill();
    }
}
