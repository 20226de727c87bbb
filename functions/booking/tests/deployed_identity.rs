//! The `booking` binary as `cargo lambda build` and `sam build` make it (without the
//! `dev-identity` feature), under the local Lambda Runtime API: the only caller it knows is the
//! one API Gateway's JWT authorizer verified. `x-dev-user` headers are just headers to it, even
//! with `SEATBOOK_DEV_IDENTITY=true` in its environment (scripts/sam-build-check also proves the
//! header name is not in the built bootstraps).

use lambda_emulator::{Emulator, Function};
use serde_json::json;
use std::time::Duration;
use test_support::{sample_event, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployed_booking_function_ignores_dev_identity_headers_whatever_its_environment() {
    let db = TestDb::create("booking_identity").await;
    let lambda = Emulator::launch(
        Function::new(env!("CARGO_BIN_EXE_booking"), "seatbook-booking")
            .env("DATABASE_URL", db.url())
            .env("REDIS_URL", "")
            .env("SEATBOOK_DEV_IDENTITY", "true"),
    )
    .await
    .unwrap();
    let mut sample = sample_event("booking-create.json");
    // No authorizer claims: a request API Gateway would not have let through, carrying the
    // headers local development uses instead.
    sample["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    sample["headers"]["x-dev-user"] = json!("mallory");
    sample["headers"]["x-dev-groups"] = json!("organizers");

    let (status, problem) = lambda
        .invoke_http(&sample, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        status,
        401,
        "{problem}\n--- function output ---\n{}",
        lambda.logs()
    );
    assert_eq!(problem["status"], 401, "{problem}");
}
