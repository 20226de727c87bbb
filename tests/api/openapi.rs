//! The OpenAPI document: the committed openapi.json is the generated one, the events function serves
//! it, and it documents every route there is (and no route that is not).

use crate::helpers::{spawn_app, ORGANIZER};
use seatbook_core::domain::{
    CategoryName, MaxSeatsPerUser, PriceCents, Section, VenueLayout, VenueName,
    WaitlistOfferSeconds,
};
use serde_json::Value;
use std::collections::BTreeSet;

/// This crate is tests/; the repository root is its parent.
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

const BLESS_VAR: &str = "SEATBOOK_OPENAPI_BLESS";

/// The seat-map page and its assets: served by the events function, but pages, not operations of
/// the API.
const PAGE_ROUTES: [&str; 3] = ["GET /", "GET /app.js", "GET /app.css"];

fn committed_path() -> String {
    format!("{ROOT}/openapi.json")
}

fn generated() -> String {
    seatbook::openapi::document_json()
}

fn document() -> Value {
    serde_json::from_str(&generated()).expect("the document is JSON")
}

/// `METHOD /path` for every operation of the document.
fn documented_operations(document: &Value) -> BTreeSet<String> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            operations.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    operations
}

/// `METHOD /path` for every route of `cargo lambda watch`'s router table in Cargo.toml.
fn watch_routes() -> BTreeSet<String> {
    let manifest = std::fs::read_to_string(format!("{ROOT}/Cargo.toml")).expect("Cargo.toml");
    let table = manifest
        .split("[workspace.metadata.lambda.watch.router]")
        .nth(1)
        .expect("Cargo.toml has a watch router table");
    let mut routes = BTreeSet::new();
    for line in table.lines().map(str::trim) {
        if line.starts_with('[') {
            break;
        }
        let Some((path, targets)) = line.split_once(" = ") else {
            continue;
        };
        let path = path.trim_matches('"');
        for target in targets.split("method = \"").skip(1) {
            let method = target.split('"').next().expect("a quoted method");
            routes.insert(format!("{method} {path}"));
        }
    }
    routes
}

/// `METHOD /path` for every HttpApi event of template.yaml.
fn template_routes() -> BTreeSet<String> {
    let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).expect("template");
    let mut routes = BTreeSet::new();
    let mut path = None;
    for line in template.lines().map(str::trim) {
        if let Some(p) = line.strip_prefix("Path:") {
            path = Some(p.trim().to_owned());
        } else if let Some(method) = line.strip_prefix("Method:") {
            let path = path.take().expect("Method: follows Path:");
            routes.insert(format!("{} {path}", method.trim()));
        }
    }
    routes
}

/// The routes that are operations of the API: all but the page's, which must be exactly those.
fn api_routes(routes: BTreeSet<String>, source: &str) -> BTreeSet<String> {
    let (api, pages): (BTreeSet<_>, BTreeSet<_>) = routes
        .into_iter()
        .partition(|route| route.contains(" /api/"));
    assert_eq!(
        pages,
        PAGE_ROUTES.map(str::to_owned).into(),
        "{source} has a route outside /api/ that is not the seat-map page's: document it as an \
         operation under /api/, or add it to PAGE_ROUTES if it really is a page"
    );
    api
}

#[test]
fn the_committed_openapi_json_is_the_generated_document() {
    let generated = generated();
    let path = committed_path();
    if std::env::var(BLESS_VAR).is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write openapi.json");
        eprintln!("{BLESS_VAR}=1: wrote {path}; rebuild so the events function serves it");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "openapi.json differs from the document the code generates (first at line {}: \
             committed {:?}, generated {:?}). Regenerate it with\n    \
             {BLESS_VAR}=1 cargo test -p seatbook-tests --test api openapi\n\
             then review the diff and commit it.",
            line + 1,
            committed.lines().nth(line).unwrap_or("<end of file>"),
            generated.lines().nth(line).unwrap_or("<end of file>"),
        );
    }
}

#[tokio::test]
async fn the_events_function_serves_the_committed_document_as_json() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = response.text().await.unwrap();
    assert!(
        body == generated(),
        "GET /api/v1/openapi.json is not the generated document: regenerate openapi.json with \
         {BLESS_VAR}=1 cargo test -p seatbook-tests --test api openapi, then build again (the \
         events function compiles the file in)"
    );
}

#[test]
fn every_route_of_the_watch_router_and_the_template_is_documented_and_nothing_else() {
    let documented = documented_operations(&document());
    let watch = api_routes(watch_routes(), "Cargo.toml's watch router table");
    let deployed = api_routes(template_routes(), "template.yaml");
    assert_eq!(
        watch, documented,
        "the watch router table (Cargo.toml) and the OpenAPI document disagree: a route needs \
         #[utoipa::path] on its handler and a place in its function's `Api`"
    );
    assert_eq!(
        deployed, documented,
        "template.yaml's HttpApi events and the OpenAPI document disagree"
    );
}

#[tokio::test]
async fn every_documented_operation_is_routed_by_the_app() {
    let app = spawn_app().await;
    for operation in documented_operations(&document()) {
        let (method, path) = operation.split_once(' ').unwrap();
        // Events are numbered; bookings and holds have UUIDs.
        let id = if path.starts_with("/api/v1/events/") {
            "1"
        } else {
            "67e55044-10b1-426f-9247-bb680e5fe0c8"
        };
        let path = path.replace("{id}", id);
        let response = app
            .request(method.parse().unwrap(), &path, ORGANIZER)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            status != 405 && body["detail"] != "no such resource",
            "{operation} is documented but not routed: {status} {body}"
        );
    }
}

/// The bounds the document states for inputs are the domain's.
#[test]
fn the_documented_bounds_are_the_domain_rules() {
    let document = document();
    let schema = |name: &str| document["components"]["schemas"][name].clone();
    let bound = |schema: &Value, field: &str, key: &str| {
        schema["properties"][field][key]
            .as_i64()
            .unwrap_or_else(|| panic!("{field} has a {key}: {schema}"))
    };
    // The venue's members; the rest of its schema says which of them go together.
    let venue = schema("NewVenue")["allOf"][0].clone();
    for (field, pick) in [("rows", 0), ("cols", 1)] {
        let max = bound(&venue, field, "maximum");
        let size = |n: i64| if pick == 0 { (n, 1) } else { (1, n) };
        assert_eq!(bound(&venue, field, "minimum"), 1);
        assert!(
            VenueLayout::parse(size(max).0, size(max).1).is_ok(),
            "{field}"
        );
        assert!(
            VenueLayout::parse(size(max + 1).0, size(max + 1).1).is_err(),
            "{field}"
        );
    }
    let longest = bound(&venue, "name", "maxLength") as usize;
    assert!(VenueName::parse(&"x".repeat(longest)).is_ok());
    assert!(VenueName::parse(&"x".repeat(longest + 1)).is_err());
    let most = venue["properties"]["sections"]["maxItems"]
        .as_u64()
        .unwrap() as usize;
    assert_eq!(most, seatbook_core::domain::MAX_SECTIONS);
    let section = schema("NewSection");
    let longest = bound(&section, "name", "maxLength") as usize;
    let named = |n: usize| Section::parse(&"x".repeat(n), 1, 1, &[]);
    assert!(named(longest).is_ok() && named(longest + 1).is_err());
    for field in ["rows", "cols"] {
        assert_eq!(
            bound(&section, field, "maximum"),
            bound(&venue, field, "maximum")
        );
    }
    let category = schema("NewCategory");
    let price = bound(&category, "price_cents", "maximum");
    assert!(PriceCents::parse(price).is_ok() && PriceCents::parse(price + 1).is_err());
    let longest = bound(&category, "name", "maxLength") as usize;
    assert!(CategoryName::parse(&"x".repeat(longest)).is_ok());
    assert!(CategoryName::parse(&"x".repeat(longest + 1)).is_err());

    let event = schema("NewEvent");
    let price = bound(&event, "price_cents", "maximum");
    assert!(PriceCents::parse(price).is_ok() && PriceCents::parse(price + 1).is_err());
    let most = event["properties"]["categories"]["maxItems"]
        .as_u64()
        .unwrap() as usize;
    assert_eq!(most, seatbook_core::domain::MAX_CATEGORIES);
    let cap = bound(&event, "max_seats_per_user", "maximum");
    assert!(MaxSeatsPerUser::parse(cap).is_ok() && MaxSeatsPerUser::parse(cap + 1).is_err());
    let (least, most) = (
        bound(&event, "waitlist_offer_seconds", "minimum"),
        bound(&event, "waitlist_offer_seconds", "maximum"),
    );
    for (seconds, valid) in [
        (least - 1, false),
        (least, true),
        (most, true),
        (most + 1, false),
    ] {
        assert_eq!(
            WaitlistOfferSeconds::parse(seconds).is_ok(),
            valid,
            "{seconds}"
        );
    }
    let join = schema("JoinWaitlist");
    assert_eq!(bound(&join, "count", "minimum"), 1);
    assert_eq!(
        bound(&join, "count", "maximum"),
        seatbook_core::domain::MAX_SEATS_PER_BOOKING as i64
    );

    // The booking's members; the rest of its schema says one of seat_ids and best_available.
    let booking = schema("NewBooking")["allOf"][0].clone();
    let seats = &booking["properties"]["seat_ids"];
    assert_eq!(
        seats["maxItems"],
        seatbook_core::domain::MAX_SEATS_PER_BOOKING
    );
    assert_eq!(seats["uniqueItems"], true);
    let best = schema("BestAvailable");
    assert_eq!(bound(&best, "count", "minimum"), 1);
    assert_eq!(
        bound(&best, "count", "maximum"),
        seatbook_core::domain::MAX_SEATS_PER_BOOKING as i64
    );
}

#[test]
fn every_error_response_is_problem_json_naming_its_types() {
    let document = document();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if !status.starts_with(['4', '5']) {
                    continue;
                }
                let content = response["content"].as_object().unwrap();
                assert_eq!(
                    content.keys().collect::<Vec<_>>(),
                    ["application/problem+json"],
                    "{method} {path} {status}"
                );
                let types = &content["application/problem+json"]["schema"]["allOf"][1]
                    ["properties"]["type"]["enum"];
                assert!(
                    types.as_array().is_some_and(|types| !types.is_empty()),
                    "{method} {path} {status} names its problem types"
                );
            }
        }
    }
}

#[test]
fn the_document_names_no_dev_identity_header() {
    // Deployed, identity is a JWT; the stand-in headers exist only in local builds.
    let json = generated().to_lowercase();
    for header in ["x-dev-user", "x-dev-groups"] {
        assert!(!json.contains(header), "the document names {header}");
    }
}

#[test]
fn every_throttled_route_of_the_template_is_a_route_of_the_stack() {
    let template = std::fs::read_to_string(format!("{ROOT}/template.yaml")).expect("template");
    let routes = template_routes();
    let throttled: Vec<String> = template
        .lines()
        .map(str::trim)
        .filter_map(|line| line.strip_prefix('\'')?.strip_suffix("':"))
        .filter(|key| {
            ["GET ", "POST ", "DELETE ", "PUT ", "PATCH "]
                .iter()
                .any(|method| key.starts_with(method))
        })
        .map(str::to_owned)
        .collect();
    assert!(
        throttled.len() >= 6,
        "the booking and read routes have throttles of their own: {throttled:?}"
    );
    for route in throttled {
        assert!(
            routes.contains(&route),
            "RouteSettings names `{route}`, which is not a route of the stack: its throttle \
             would apply to nothing (routes: {routes:?})"
        );
    }
}
