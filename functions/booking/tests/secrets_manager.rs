//! The real `booking` binary, run as Lambda runs it (the local Runtime API emulator), with its
//! database credentials in Secrets Manager (moto's, on a random local port) as deployed:
//! `DB_SECRET_ARN` names an RDS-style secret whose `host` is the instance, and `DB_HOST`, `DB_PORT`
//! and `DB_NAME` point at the proxy.
//!
//! The local PostgreSQL trusts every loopback connection, so a password is never checked there.
//! The "proxy" here is a password gate: it asks the client for a password (cleartext
//! authentication), refuses a wrong one with SQLSTATE 28P01 exactly as PostgreSQL and RDS Proxy
//! do, and pipes an accepted session through to PostgreSQL. Rotating its password and dropping its
//! sessions stands in for a secret rotation.

use lambda_emulator::{Emulator, Function};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use test_support::{sample_event, Moto, TestDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booking_reads_its_credentials_from_secrets_manager_and_rereads_them_after_a_rotation() {
    let moto = Moto::start().await;
    let db = TestDb::migrated("secret").await;
    let (event_id, seats) = seed_event(&db).await;
    let gate = PasswordGate::start("first-password", db.server()).await;
    // What RDS writes: the instance's endpoint, which the function must not use (DB_HOST wins).
    let arn = moto
        .create_secret(
            "seatbook/database",
            &secret_json(
                "first-password",
                "seatbook-db.abc.us-east-1.rds.amazonaws.com",
            ),
        )
        .await;

    let lambda = Emulator::launch(booking_function(&moto, &arn, &gate, &db))
        .await
        .unwrap();
    let init = lambda.wait_for_init(Duration::from_secs(20)).await.unwrap();
    eprintln!("init, including the read of the secret: {init:?}");

    let (status, body) = book(&lambda, "alice", event_id, seats[0]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user_id"], "alice");
    let (status, body) = book(&lambda, "bob", event_id, seats[0]).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["seat_ids"], json!([seats[0]]));
    assert_eq!(gate.refused(), Vec::<String>::new());
    assert!(!gate.accepted().is_empty());

    // Rotation: Secrets Manager gets the new password, the database (here the gate) accepts only
    // the new one, and existing sessions end (as they do when a proxy or instance restarts).
    moto.put_secret_value(
        &arn,
        &secret_json(
            "second-password",
            "seatbook-db.abc.us-east-1.rds.amazonaws.com",
        ),
    )
    .await;
    gate.rotate("second-password");
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (status, body) = book(&lambda, "carol", event_id, seats[1]).await;
    assert_eq!(status, 201, "after the rotation: {body}\n{}", lambda.logs());
    assert_eq!(
        gate.refused(),
        vec!["first-password".to_owned()],
        "one attempt with the old password, then none"
    );
    assert_eq!(gate.accepted().last().unwrap(), "second-password");
    let logs = lambda.logs();
    assert!(
        logs.contains("reading the secret again"),
        "the refresh is logged: {logs}"
    );
    assert!(
        !logs.contains("second-password") && !logs.contains("first-password"),
        "passwords never reach the log"
    );

    let (status, _) = book(&lambda, "dave", event_id, seats[1]).await;
    assert_eq!(status, 409);
    assert_eq!(tickets(&db, event_id).await, 2, "one ticket per sold seat");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_that_cannot_be_read_fails_the_cold_start_with_the_reason() {
    let moto = Moto::start().await;
    let db = TestDb::migrated("secret").await;
    let gate = PasswordGate::start("unused", db.server()).await;
    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:seatbook/nope-AbCdEf";
    let lambda = Emulator::launch(booking_function(&moto, missing, &gate, &db))
        .await
        .unwrap();
    let err = lambda
        .wait_for_init(Duration::from_secs(20))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("exited"), "{err}");
    assert!(err.contains("ResourceNotFoundException"), "{err}");
    assert!(err.contains(missing), "{err}");
}

fn booking_function(moto: &Moto, arn: &str, gate: &PasswordGate, db: &TestDb) -> Function {
    Function::new(env!("CARGO_BIN_EXE_booking"), "seatbook-booking")
        .env("DB_SECRET_ARN", arn)
        .env("DB_HOST", "127.0.0.1")
        .env("DB_PORT", gate.port.to_string())
        .env("DB_NAME", &db.name)
        // The gate speaks plain TCP; deployed, the template sets `require`.
        .env("DB_SSLMODE", "disable")
        .env("DB_POOL_MAX_SIZE", "2")
        .env("REDIS_URL", "")
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.url())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_SESSION_TOKEN", "testing")
        .env("RUST_LOG", "info")
}

fn secret_json(password: &str, host: &str) -> String {
    json!({
        "engine": "postgres",
        "host": host,
        "port": 5432,
        "username": "postgres",
        "password": password,
        "dbname": "seatbook",
        "dbInstanceIdentifier": "seatbook-db"
    })
    .to_string()
}

/// POST /api/v1/bookings as API Gateway (HTTP API, payload 2.0, JWT authorizer) delivers it.
async fn book(lambda: &Emulator, user: &str, event_id: i64, seat: i64) -> (u16, Value) {
    // The sample `cargo lambda invoke booking --data-file events/booking-create.json` sends.
    let mut event = sample_event("booking-create.json");
    event["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(user);
    event["body"] = json!(json!({"event_id": event_id, "seat_ids": [seat]}).to_string());
    lambda
        .invoke_http(&event, INVOKE_TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("booking invocation: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The password gate: a PostgreSQL front door that checks passwords
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct GateState {
    password: String,
    accepted: Vec<String>,
    refused: Vec<String>,
    sessions: Vec<tokio::task::AbortHandle>,
}

struct PasswordGate {
    port: u16,
    state: Arc<Mutex<GateState>>,
    task: tokio::task::JoinHandle<()>,
}

impl PasswordGate {
    async fn start(password: &str, upstream: String) -> PasswordGate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(GateState {
            password: password.to_owned(),
            ..GateState::default()
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let session = tokio::spawn(gatekeep(client, upstream.clone(), shared.clone()));
                shared.lock().unwrap().sessions.push(session.abort_handle());
            }
        });
        PasswordGate { port, state, task }
    }

    /// Accepts only `password` from now on and ends every open session.
    fn rotate(&self, password: &str) {
        let mut state = self.state.lock().unwrap();
        state.password = password.to_owned();
        for session in state.sessions.drain(..) {
            session.abort();
        }
    }

    fn accepted(&self) -> Vec<String> {
        self.state.lock().unwrap().accepted.clone()
    }

    fn refused(&self) -> Vec<String> {
        self.state.lock().unwrap().refused.clone()
    }
}

impl Drop for PasswordGate {
    fn drop(&mut self) {
        self.task.abort();
        for session in self.state.lock().unwrap().sessions.drain(..) {
            session.abort();
        }
    }
}

async fn gatekeep(mut client: TcpStream, upstream: String, state: Arc<Mutex<GateState>>) {
    let _ = async {
        let mut startup = read_startup(&mut client).await?;
        if u32::from_be_bytes(startup[4..8].try_into().unwrap()) == 80877103 {
            // SSLRequest: no TLS here; the client then sends the real startup message.
            client.write_all(b"N").await?;
            startup = read_startup(&mut client).await?;
        }
        // AuthenticationCleartextPassword
        client.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await?;
        let mut header = [0u8; 5];
        client.read_exact(&mut header).await?;
        let len = u32::from_be_bytes(header[1..5].try_into().unwrap()) as usize;
        let mut payload = vec![0u8; len - 4];
        client.read_exact(&mut payload).await?;
        let offered =
            String::from_utf8_lossy(payload.strip_suffix(&[0]).unwrap_or(&payload)).into_owned();
        let ok = {
            let mut state = state.lock().unwrap();
            let ok = header[0] == b'p' && offered == state.password;
            if ok {
                state.accepted.push(offered);
            } else {
                state.refused.push(offered);
            }
            ok
        };
        if !ok {
            client.write_all(&error_response("28P01")).await?;
            return Ok(());
        }
        // Trusted upstream: it answers the same startup message with AuthenticationOk and the
        // session parameters, which the client takes as the end of its authentication.
        let mut server = TcpStream::connect(&upstream).await?;
        server.write_all(&startup).await?;
        tokio::io::copy_bidirectional(&mut client, &mut server).await?;
        Ok::<(), std::io::Error>(())
    }
    .await;
}

async fn read_startup(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let mut message = len.to_vec();
    message.resize(u32::from_be_bytes(len) as usize, 0);
    stream.read_exact(&mut message[4..]).await?;
    Ok(message)
}

fn error_response(code: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (kind, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', "password authentication failed for user \"postgres\""),
    ] {
        fields.push(kind);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut message = vec![b'E'];
    message.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
    message.extend_from_slice(&fields);
    message
}

// ---------------------------------------------------------------------------------------------
// The test database
// ---------------------------------------------------------------------------------------------

/// A venue with one row of two seats and an event on sale, straight into the tables.
async fn seed_event(db: &TestDb) -> (i64, Vec<i64>) {
    let client = db.client().await;
    let venue: i64 = client
        .query_one(
            "INSERT INTO venues (name, rows, cols) VALUES ('Secret Hall', 1, 2) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let seats = client
        .query(
            "INSERT INTO seats (venue_id, row_index, row_label, seat_number)
             VALUES ($1, 1, 'A', 1), ($1, 1, 'A', 2) RETURNING id",
            &[&venue],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let event: i64 = client
        .query_one(
            "INSERT INTO events (name, starts_at, venue_id, price_cents)
             VALUES ('Rotation Night', now() + interval '30 days', $1, 2500) RETURNING id",
            &[&venue],
        )
        .await
        .unwrap()
        .get(0);
    (event, seats)
}

async fn tickets(db: &TestDb, event_id: i64) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT count(*) FROM tickets WHERE event_id = $1",
            &[&event_id],
        )
        .await
        .unwrap()
        .get(0)
}
