//! The real `migrate` binary under the local Lambda Runtime API, answering CloudFormation custom
//! resource requests: the response is PUT to a local stand-in for CloudFormation's pre-signed S3
//! URL, and the schema lands in a fresh PostgreSQL database.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use lambda_emulator::{Emulator, Function};
use migrate_fn::roles::ROLES;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use test_support::{Moto, TestDb};

/// What CloudFormation's pre-signed S3 URL received.
#[derive(Debug, Clone)]
struct Put {
    path: String,
    content_type: Option<String>,
    body: Value,
}

/// A local stand-in for the `ResponseURL`: records every PUT.
struct Receiver {
    base: String,
    puts: Arc<Mutex<Vec<Put>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        async fn put(
            State(puts): State<Arc<Mutex<Vec<Put>>>>,
            uri: Uri,
            headers: HeaderMap,
            body: Bytes,
        ) -> StatusCode {
            puts.lock().unwrap().push(Put {
                path: uri.to_string(),
                content_type: headers
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_owned()),
                body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            });
            StatusCode::OK
        }
        let puts = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .fallback(axum::routing::put(put))
            .with_state(puts.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { base, puts, server }
    }

    fn url(&self, request_id: &str) -> String {
        format!(
            "{}/cloudformation-custom-resource-response/{request_id}?X-Amz-Signature=x",
            self.base
        )
    }

    fn puts_for(&self, request_id: &str) -> Vec<Put> {
        self.puts
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.path.contains(request_id))
            .cloned()
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn request(kind: &str, receiver: &Receiver, physical_id: Option<&str>) -> (String, Value) {
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut event = json!({
        "RequestType": kind,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:migrate",
        "ResponseURL": receiver.url(&request_id),
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/seatbook/4e6f1e50-0000-11ef-0000-0a1b2c3d4e5f",
        "RequestId": request_id,
        "LogicalResourceId": "Migrations",
        "ResourceType": "Custom::Migrations",
        "ResourceProperties": {
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:migrate",
            "Version": "1",
            "RunToken": "initial"
        }
    });
    if let Some(id) = physical_id {
        event["PhysicalResourceId"] = json!(id);
    }
    (request_id, event)
}

fn migrate_function(database_url: &str) -> Function {
    Function::new(env!("CARGO_BIN_EXE_migrate"), "seatbook-migrate")
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", "")
        .env("RUST_LOG", "info")
}

/// The migration files the binary embeds.
fn migration_count() -> i64 {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"))
        .unwrap()
        .filter(|f| {
            let name = f.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with('V') && name.ends_with(".sql")
        })
        .count() as i64
}

/// How long CloudFormation's requests are given, but where a test says otherwise.
const MINUTE: Duration = Duration::from_secs(60);

/// A function under the local Runtime API, and a stand-in for CloudFormation's `ResponseURL`.
struct Stack {
    receiver: Receiver,
    lambda: Emulator,
}

impl Stack {
    async fn launch(function: Function) -> Stack {
        let receiver = Receiver::start().await;
        let lambda = Emulator::launch(function).await.unwrap();
        Stack { receiver, lambda }
    }

    /// Sends a `kind` request (of the resource `physical_id`, if any) with `timeout` to its
    /// deadline; asserts it was answered `status`, both to the runtime and to CloudFormation, and
    /// returns the answer.
    async fn answer(
        &self,
        kind: &str,
        physical_id: Option<&str>,
        timeout: Duration,
        status: &str,
    ) -> Value {
        let (id, event) = request(kind, &self.receiver, physical_id);
        let returned = self.lambda.invoke(&event, timeout).await.unwrap();
        assert_reported(&self.receiver, &id, &returned, status)
    }
}

/// Asserts the function answered `status` both to the runtime and, by PUT, to CloudFormation.
fn assert_reported(receiver: &Receiver, request_id: &str, returned: &Value, status: &str) -> Value {
    let puts = receiver.puts_for(request_id);
    assert_eq!(
        puts.len(),
        1,
        "exactly one PUT to the ResponseURL: {puts:?}"
    );
    let put = &puts[0];
    assert_eq!(
        put.content_type, None,
        "no Content-Type: S3 did not sign one"
    );
    assert_eq!(&put.body, returned, "the PUT body is the returned response");
    assert_eq!(put.body["Status"], status, "{}", put.body);
    assert_eq!(put.body["RequestId"], request_id);
    assert_eq!(put.body["LogicalResourceId"], "Migrations");
    assert!(put.body["StackId"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:cloudformation:"));
    assert!(put.body["Reason"].is_string());
    put.body.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_applies_the_migrations_and_reports_success_update_and_delete_succeed() {
    let db = TestDb::create("migrate").await;
    let stack = Stack::launch(migrate_function(&db.url())).await;

    let body = stack.answer("Create", None, MINUTE, "SUCCESS").await;
    let physical_id = body["PhysicalResourceId"].as_str().unwrap().to_owned();
    assert!(!physical_id.is_empty());
    let expected = migration_count();
    assert_eq!(
        body["Reason"],
        format!("Applied {expected} migration(s)."),
        "{body}"
    );

    let client = db.client().await;
    for table in ["users", "venues", "seats", "events", "bookings", "tickets"] {
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .await
            .unwrap()
            .get(0);
        assert!(exists, "table {table} exists after Create");
    }
    let recorded: i64 = client
        .query_one("SELECT count(*) FROM refinery_schema_history", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, expected, "every embedded migration is recorded");

    // Update (a new function version): nothing left to apply, same physical resource.
    let body = stack
        .answer("Update", Some(&physical_id), MINUTE, "SUCCESS")
        .await;
    assert_eq!(body["PhysicalResourceId"], physical_id.as_str());
    assert!(body["Reason"].as_str().unwrap().contains("up to date"));

    // Delete: success, and the schema stays.
    let body = stack
        .answer("Delete", Some(&physical_id), MINUTE, "SUCCESS")
        .await;
    assert_eq!(body["PhysicalResourceId"], physical_id.as_str());
    let still: bool = client
        .query_one("SELECT to_regclass('tickets') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(still, "Delete leaves the schema alone");
}

/// A rollback after a migration ran: the newer release migrated the database, the deploy failed
/// later and CloudFormation rolled back, re-running this (older) binary with an `Update`. The
/// database records a migration the binary does not embed; refinery's default ("missing
/// migration") would fail the rollback. Expand-only migrations make keeping it safe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_with_a_migration_the_binary_does_not_know_still_migrates() {
    let db = TestDb::create("migrate").await;
    let stack = Stack::launch(migrate_function(&db.url())).await;
    let client = db.client().await;
    // The physical resource the function names, as a rollback's Update carries it.
    let rollback = Some("seatbook-schema-migrations");

    // The schema as this binary left it, plus a newer release's migration: an added table and
    // its history row.
    stack.answer("Create", None, MINUTE, "SUCCESS").await;
    let last: i32 = client
        .query_one("SELECT max(version) FROM refinery_schema_history", &[])
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute(
            "CREATE TABLE from_a_newer_release (id bigint PRIMARY KEY);
             INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
             VALUES (9999, 'from_a_newer_release', '2026-12-01T00:00:00Z', '1');",
        )
        .await
        .unwrap();

    // The rollback's Update: the newer migration is kept and named, nothing fails.
    let body = stack.answer("Update", rollback, MINUTE, "SUCCESS").await;
    let reason = body["Reason"].as_str().unwrap();
    assert!(reason.contains("V9999__from_a_newer_release"), "{reason}");
    let kept: bool = client
        .query_one(
            "SELECT to_regclass('from_a_newer_release') IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(kept, "the newer release's table is left alone");

    // A migration of this binary below the newer one and not recorded is a hole that refinery,
    // told not to abort on missing migrations, would skip in silence: the run says FAILED and
    // names it instead.
    client
        .batch_execute(&format!(
            "DELETE FROM refinery_schema_history WHERE version = {last};"
        ))
        .await
        .unwrap();
    let body = stack.answer("Update", rollback, MINUTE, "FAILED").await;
    let reason = body["Reason"].as_str().unwrap();
    assert!(reason.contains(&format!("V{last}__")), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_database_delete_still_succeeds_and_create_fails_after_retrying() {
    // A port nothing listens on.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let stack = Stack::launch(migrate_function(&format!(
        "postgres://postgres@127.0.0.1:{closed}/nowhere"
    )))
    .await;

    let started = Instant::now();
    let physical_id = Some("seatbook-schema-migrations");
    stack.answer("Delete", physical_id, MINUTE, "SUCCESS").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "Delete does not wait for the database"
    );

    // 20 s to the deadline, 15 s of it kept for the report: about 5 s of connection attempts.
    let started = Instant::now();
    let body = stack
        .answer("Create", None, Duration::from_secs(20), "FAILED")
        .await;
    let elapsed = started.elapsed();
    let reason = body["Reason"].as_str().unwrap();
    assert!(reason.contains("Migrations not applied after"), "{reason}");
    assert!(
        !reason.contains("after 1 attempt"),
        "connecting was retried: {reason}"
    );
    assert!(
        reason.contains("/aws/lambda/seatbook-migrate"),
        "the reason points at the log: {reason}"
    );
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(15),
        "retried until shortly before the deadline, then reported: {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_gives_each_role_login_and_the_password_in_its_own_secret() {
    let (db, moto, run) = database_and_secrets_manager().await;
    let mut function = with_secrets_manager(migrate_function(&db.url()), &moto);
    let mut passwords = Vec::new();
    for (variable, role) in ROLES {
        let password = format!("{role}-{run}");
        let secret = json!({"username": role, "password": password}).to_string();
        let arn = moto.create_secret(&format!("{role}-{run}"), &secret).await;
        function = function.env(variable, arn);
        passwords.push((role, password));
    }
    let stack = Stack::launch(function).await;

    let body = stack.answer("Create", None, MINUTE, "SUCCESS").await;
    assert!(
        body["Reason"]
            .as_str()
            .unwrap()
            .ends_with("Passwords set for seatbook_reader, seatbook_writer, seatbook_notifier."),
        "{body}"
    );

    let client = db.client().await;
    for (role, password) in passwords {
        let row = client
            .query_one(
                "SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = $1",
                &[&role],
            )
            .await
            .unwrap();
        let (login, stored): (bool, String) = (row.get(0), row.get(1));
        assert!(login, "{role} can log in");
        assert!(
            scram_verifier_matches(&stored, &password),
            "{role}'s stored verifier is for the password in its secret: {stored}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_secret_for_another_user_fails_the_deploy_and_says_which() {
    let (db, moto, run) = database_and_secrets_manager().await;
    let secret = json!({"username": "postgres", "password": "not-for-the-reader"}).to_string();
    let arn = moto.create_secret(&format!("reader-{run}"), &secret).await;
    let function =
        with_secrets_manager(migrate_function(&db.url()), &moto).env("READER_SECRET_ARN", &arn);
    let stack = Stack::launch(function).await;

    let body = stack.answer("Create", None, MINUTE, "FAILED").await;
    let reason = body["Reason"].as_str().unwrap();
    assert!(reason.contains(&arn), "{reason}");
    assert!(reason.contains("seatbook_reader"), "{reason}");
    assert!(!reason.contains("not-for-the-reader"), "{reason}");
}

/// A fresh database, a Secrets Manager (moto) and a name for this run's secrets.
async fn database_and_secrets_manager() -> (TestDb, Moto, String) {
    let db = TestDb::create("migrate").await;
    let moto = Moto::start().await;
    (db, moto, uuid::Uuid::new_v4().simple().to_string())
}

fn with_secrets_manager(function: Function, moto: &Moto) -> Function {
    function
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.url())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_SESSION_TOKEN", "testing")
        .env("AWS_REGION", lambda_emulator::REGION)
}

/// Whether a stored `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` verifier was made
/// from `password` (RFC 5802: StoredKey = H(HMAC(SaltedPassword, "Client Key"))).
fn scram_verifier_matches(stored: &str, password: &str) -> bool {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some(rest) = stored.strip_prefix("SCRAM-SHA-256$") else {
        return false;
    };
    let (parameters, keys) = rest.split_once('$').unwrap();
    let (iterations, salt) = parameters.split_once(':').unwrap();
    let (stored_key, _server_key) = keys.split_once(':').unwrap();
    let (iterations, salt) = (
        iterations.parse::<u32>().unwrap(),
        b64.decode(salt).unwrap(),
    );
    let hmac = |key: &[u8], data: &[u8]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(data);
        mac.finalize().into_bytes()
    };
    // PBKDF2-HMAC-SHA-256, one 32-byte block.
    let mut block = hmac(
        password.as_bytes(),
        &[salt.as_slice(), &1u32.to_be_bytes()].concat(),
    );
    let mut salted = block;
    for _ in 1..iterations {
        block = hmac(password.as_bytes(), &block);
        for (s, b) in salted.iter_mut().zip(block.iter()) {
            *s ^= b;
        }
    }
    let client_key = hmac(&salted, b"Client Key");
    Sha256::digest(client_key).as_slice() == b64.decode(stored_key).unwrap().as_slice()
}
