//! API Gateway HTTP API (payload 2.0) events, as a function receives them behind the JWT
//! authorizer.

use serde_json::{json, Value};

/// A sample event from `events/` by file name, as `cargo lambda invoke --data-file` and
/// `sam local invoke -e` send it.
pub fn sample_event(name: &str) -> Value {
    let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An event for one request (`path` may carry a query string), made from the booking sample in
/// `events/`: `claims` are the authorizer's JWT claims (none: no authorizer), `body` is sent as
/// JSON.
pub fn gateway_event(
    method: &str,
    path: &str,
    claims: Option<Value>,
    body: Option<&Value>,
) -> Value {
    let mut event: Value =
        serde_json::from_str(include_str!("../../../events/booking-create.json")).unwrap();
    let (raw_path, query) = path.split_once('?').unwrap_or((path, ""));
    event["rawPath"] = json!(raw_path);
    event["rawQueryString"] = json!(query);
    event["queryStringParameters"] = json!({});
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(raw_path);
    // `cargo lambda watch` and some integrations send none; routing must not rely on them.
    event["pathParameters"] = json!({});
    event["cookies"] = json!([]);
    event["headers"] = json!({"content-type": "application/json", "host": "api.example.com"});
    match claims {
        Some(claims) => event["requestContext"]["authorizer"]["jwt"]["claims"] = claims,
        None => {
            event["requestContext"]
                .as_object_mut()
                .unwrap()
                .remove("authorizer");
        }
    }
    event["body"] = body.map_or(Value::Null, |b| json!(b.to_string()));
    event["isBase64Encoded"] = json!(false);
    event
}
