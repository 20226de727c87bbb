//! The deployed sign-in, stood in for on loopback: a fake Cognito hosted UI (the OAuth 2.0
//! endpoints the page uses: `/oauth2/authorize`, `/oauth2/token`, `/oauth2/revoke`, `/logout`)
//! and a fake API Gateway in front of the test server, whose "JWT authorizer" lets through only
//! tokens that fake issued, turning their claims into the dev identity the server understands.
//! The gateway also serves the page, configured by the events function's own code for that
//! hosted UI, exactly as the deployed function would be by its environment.

use crate::harness::Server;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use events_fn::web::SignIn;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

pub const CLIENT_ID: &str = "4fakeclient5seatbook6web";
const SCOPE: &str = "openid email profile";

/// The person the fake hosted UI signs in, without asking.
#[derive(Clone)]
pub struct FakeUser {
    pub sub: &'static str,
    pub email: &'static str,
    pub groups: &'static [&'static str],
}

/// How the fake hosted UI answers an authorization request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// A code, with the request's state.
    Honest,
    /// A code, with a state the page did not send (as a forged or crossed reply would carry).
    WrongState,
    /// `error=access_denied`, as when the person cancels.
    Refuse,
}

/// One `/oauth2/authorize` request, as the hosted UI received it.
#[derive(Clone, Debug)]
pub struct Authorization {
    pub code_challenge: String,
    pub code_challenge_method: String,
    pub state: String,
    pub scope: String,
}

/// What the fake hosted UI saw.
#[derive(Clone, Debug, Default)]
pub struct IdpLog {
    pub authorizations: Vec<Authorization>,
    /// Codes redeemed with a verifier whose SHA-256 matched the challenge, and their verifiers.
    pub verified_verifiers: Vec<String>,
    pub refreshes: usize,
    /// Token requests refused, and why.
    pub refused: Vec<String>,
    pub revoked: Vec<String>,
    /// The `logout_uri` of each sign-out.
    pub logouts: Vec<String>,
}

/// What reached the fake API Gateway under `/api/`.
#[derive(Clone, Debug, Default)]
pub struct Traffic {
    /// Before the hosted UI issued any token: only the public event listing can come then.
    pub before_sign_in: usize,
    pub with_token: usize,
    /// After a token was issued, without one: each is a call the page forgot to authorize.
    pub without_token_after_sign_in: usize,
    /// Answered 401 by the stand-in authorizer.
    pub refused: usize,
}

struct Grant {
    challenge: String,
    redirect_uri: String,
}

struct Shared {
    reply: Reply,
    user: FakeUser,
    /// The page's address, registered as the client's callback and sign-out URL.
    callback: String,
    issuer: String,
    grants: HashMap<String, Grant>,
    /// The access tokens the authorizer accepts, with their claims.
    access_tokens: HashMap<String, Value>,
    refresh_tokens: HashSet<String>,
    issued_any: bool,
    log: IdpLog,
    traffic: Traffic,
}

type Hub = Arc<Mutex<Shared>>;

/// The fake hosted UI and the fake gateway, each on its own loopback port.
pub struct SignInStack {
    /// The page, through the gateway (its origin + `/`).
    pub page: String,
    hub: Hub,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SignInStack {
    pub async fn start(server: &Server, user: FakeUser, reply: Reply) -> SignInStack {
        let idp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hosted_ui = format!("http://{}", idp_listener.local_addr().unwrap());
        let page = format!("http://{}/", gateway_listener.local_addr().unwrap());
        let hub: Hub = Arc::new(Mutex::new(Shared {
            reply,
            user,
            callback: page.clone(),
            issuer: hosted_ui.clone(),
            grants: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashSet::new(),
            issued_any: false,
            log: IdpLog::default(),
            traffic: Traffic::default(),
        }));

        let idp = Router::new()
            .route("/oauth2/authorize", get(authorize))
            .route("/oauth2/token", post(token).options(preflight))
            .route("/oauth2/revoke", post(revoke).options(preflight))
            .route("/logout", get(logout))
            .with_state(hub.clone());
        let sign_in = SignIn::Cognito {
            domain: hosted_ui.clone(),
            client_id: CLIENT_ID.to_owned(),
        };
        let gateway = events_fn::web::routes_for(Ok(sign_in))
            .fallback(forward)
            .with_state(Gateway {
                hub: hub.clone(),
                upstream: server.address.clone(),
                http: reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap(),
            });
        let tasks = vec![
            tokio::spawn(async move { axum::serve(idp_listener, idp).await.unwrap() }),
            tokio::spawn(async move { axum::serve(gateway_listener, gateway).await.unwrap() }),
        ];
        SignInStack { page, hub, tasks }
    }

    pub fn idp_log(&self) -> IdpLog {
        self.hub.lock().unwrap().log.clone()
    }

    pub fn traffic(&self) -> Traffic {
        self.hub.lock().unwrap().traffic.clone()
    }

    /// From now on the authorizer refuses every access token issued so far, as API Gateway does
    /// once a token's `exp` has passed.
    pub fn expire_access_tokens(&self) {
        self.hub.lock().unwrap().access_tokens.clear();
    }
}

impl Drop for SignInStack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The hosted UI

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    out
}

fn random_text() -> String {
    let bytes: [u8; 24] = rand::random();
    base64url(&bytes)
}

/// A JWT shaped like Cognito's, signed with HS256 under a key only this file knows: nothing but
/// the stand-in authorizer (which looks tokens up) ever has to trust it.
fn jwt(claims: &Value) -> String {
    let header = base64url(br#"{"alg":"HS256","typ":"JWT","kid":"fake-idp"}"#);
    let payload = base64url(claims.to_string().as_bytes());
    let mut mac = Hmac::<Sha256>::new_from_slice(b"fake hosted UI signing key").unwrap();
    mac.update(format!("{header}.{payload}").as_bytes());
    let signature = base64url(&mac.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form(body: &Bytes) -> HashMap<String, String> {
    let uri: Uri = format!("/?{}", String::from_utf8_lossy(body))
        .parse()
        .expect("a form body");
    Query::<HashMap<String, String>>::try_from_uri(&uri)
        .map(|Query(fields)| fields)
        .unwrap_or_default()
}

fn redirect(location: String) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

async fn authorize(
    State(hub): State<Hub>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| query.get(name).cloned().unwrap_or_default();
    let mut shared = hub.lock().unwrap();
    // Cognito shows an error page of its own for these, and never returns to the app.
    if field("client_id") != CLIENT_ID {
        return (StatusCode::BAD_REQUEST, "invalid client_id").into_response();
    }
    if field("redirect_uri") != shared.callback {
        return (StatusCode::BAD_REQUEST, "redirect_mismatch").into_response();
    }
    if field("response_type") != "code" || !field("scope").split(' ').any(|s| s == "openid") {
        return (StatusCode::BAD_REQUEST, "invalid_request").into_response();
    }
    let authorization = Authorization {
        code_challenge: field("code_challenge"),
        code_challenge_method: field("code_challenge_method"),
        state: field("state"),
        scope: field("scope"),
    };
    shared.log.authorizations.push(authorization.clone());
    let back = &shared.callback;
    let state = encode(&authorization.state);
    if shared.reply == Reply::Refuse {
        return redirect(format!(
            "{back}?error=access_denied&error_description=User%20cancelled&state={state}"
        ));
    }
    let code = random_text();
    let returned_state = match shared.reply {
        Reply::WrongState => encode(&format!("{}x", authorization.state)),
        _ => state,
    };
    let location = format!("{back}?code={code}&state={returned_state}");
    shared.grants.insert(
        code,
        Grant {
            challenge: authorization.code_challenge,
            redirect_uri: field("redirect_uri"),
        },
    );
    redirect(location)
}

/// CORS for the page's origin only: a page anywhere else cannot redeem codes or refresh here.
fn cors(shared: &Shared, headers: &HeaderMap, response: Response) -> Response {
    let mut response = response;
    let origin = shared.callback.trim_end_matches('/');
    if headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) == Some(origin) {
        response.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_str(origin).unwrap(),
        );
    }
    response
}

async fn preflight(State(hub): State<Hub>, headers: HeaderMap) -> Response {
    let shared = hub.lock().unwrap();
    let response = (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "POST"),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, "content-type"),
        ],
    )
        .into_response();
    cors(&shared, &headers, response)
}

fn token_error(shared: &mut Shared, headers: &HeaderMap, why: String) -> Response {
    shared.log.refused.push(why);
    let response = (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": "invalid_grant"})),
    )
        .into_response();
    cors(shared, headers, response)
}

fn issue(shared: &mut Shared, with_refresh: bool) -> Value {
    let now = chrono::Utc::now().timestamp();
    let user = shared.user.clone();
    let common = json!({
        "sub": user.sub,
        "iss": shared.issuer,
        "cognito:groups": user.groups,
        "iat": now,
        "auth_time": now,
        "exp": now + 3600,
    });
    let mut access = common.clone();
    access["client_id"] = json!(CLIENT_ID);
    access["token_use"] = json!("access");
    access["scope"] = json!(SCOPE);
    access["username"] = json!(user.sub);
    access["jti"] = json!(random_text());
    let mut id = common;
    id["aud"] = json!(CLIENT_ID);
    id["token_use"] = json!("id");
    id["email"] = json!(user.email);
    id["cognito:username"] = json!(user.sub);
    let access_token = jwt(&access);
    shared.access_tokens.insert(access_token.clone(), access);
    shared.issued_any = true;
    let mut body = json!({
        "access_token": access_token,
        "id_token": jwt(&id),
        "token_type": "Bearer",
        "expires_in": 3600,
    });
    if with_refresh {
        let refresh = random_text();
        shared.refresh_tokens.insert(refresh.clone());
        body["refresh_token"] = json!(refresh);
    }
    body
}

async fn token(State(hub): State<Hub>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = form(&body);
    let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
    let mut shared = hub.lock().unwrap();
    if field("client_id") != CLIENT_ID {
        return token_error(&mut shared, &headers, "client_id".to_owned());
    }
    let tokens = match field("grant_type").as_str() {
        "authorization_code" => {
            // A code is good once, whatever the outcome.
            let Some(grant) = shared.grants.remove(&field("code")) else {
                return token_error(&mut shared, &headers, "unknown code".to_owned());
            };
            if field("redirect_uri") != grant.redirect_uri {
                return token_error(&mut shared, &headers, "redirect_uri".to_owned());
            }
            let verifier = field("code_verifier");
            let well_formed = (43..=128).contains(&verifier.len())
                && verifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            if !well_formed || base64url(&Sha256::digest(verifier.as_bytes())) != grant.challenge {
                return token_error(&mut shared, &headers, format!("verifier {verifier:?}"));
            }
            shared.log.verified_verifiers.push(verifier);
            issue(&mut shared, true)
        }
        "refresh_token" => {
            if !shared.refresh_tokens.contains(&field("refresh_token")) {
                return token_error(&mut shared, &headers, "refresh token".to_owned());
            }
            shared.log.refreshes += 1;
            issue(&mut shared, false)
        }
        other => return token_error(&mut shared, &headers, format!("grant_type {other:?}")),
    };
    let response = ([(header::CACHE_CONTROL, "no-store")], axum::Json(tokens)).into_response();
    cors(&shared, &headers, response)
}

async fn revoke(State(hub): State<Hub>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = form(&body);
    let mut shared = hub.lock().unwrap();
    if let Some(token) = fields.get("token") {
        if fields.get("client_id").map(String::as_str) == Some(CLIENT_ID) {
            shared.refresh_tokens.remove(token);
            shared.log.revoked.push(token.clone());
        }
    }
    cors(&shared, &headers, StatusCode::OK.into_response())
}

async fn logout(State(hub): State<Hub>, Query(query): Query<HashMap<String, String>>) -> Response {
    let mut shared = hub.lock().unwrap();
    let logout_uri = query.get("logout_uri").cloned().unwrap_or_default();
    // Only a registered sign-out URL, for the right client.
    if query.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || logout_uri != shared.callback
    {
        return (StatusCode::BAD_REQUEST, "invalid logout request").into_response();
    }
    shared.log.logouts.push(logout_uri.clone());
    redirect(logout_uri)
}

// ---------------------------------------------------------------------------------------------
// The gateway

#[derive(Clone)]
struct Gateway {
    hub: Hub,
    upstream: String,
    http: reqwest::Client,
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/problem+json")],
        json!({"type": "about:blank", "title": "Unauthorized", "status": 401}).to_string(),
    )
        .into_response()
}

/// The routes template.yaml deploys without the JWT authorizer (`Auth: Authorizer: NONE` on the
/// HttpApi event), as `(method, path)` with API Gateway's `{parameter}` segments; every other
/// route sits behind the authorizer (the API's `DefaultAuthorizer`). Read from the template
/// itself, so the fake gateway cannot drift from the deployed one: `GET /api/v1/metrics` was
/// public there and answered 401, which a hand-kept list here did not show.
fn public_routes() -> Vec<(String, String)> {
    const TEMPLATE: &str = include_str!("../../template.yaml");
    let mut public = Vec::new();
    let (mut path, mut route) = (None, None);
    for line in TEMPLATE.lines().map(str::trim) {
        if line.starts_with("Type:") {
            // The next event (or resource) begins.
            (path, route) = (None, None);
        } else if let Some(p) = line.strip_prefix("Path:") {
            path = Some(p.trim().to_owned());
        } else if let Some(m) = line.strip_prefix("Method:") {
            route = Some((
                m.trim().to_uppercase(),
                path.take().expect("Method: follows Path:"),
            ));
        } else if line == "Authorizer: NONE" {
            public.push(
                route
                    .take()
                    .expect("Authorizer: NONE follows Path: and Method:"),
            );
        }
    }
    public
}

/// Whether API Gateway would match `path` to the route path `pattern` (`{id}` matches one
/// segment).
fn route_matches(pattern: &str, path: &str) -> bool {
    let (pattern, path): (Vec<_>, Vec<_>) =
        (pattern.split('/').collect(), path.split('/').collect());
    pattern.len() == path.len()
        && pattern.iter().zip(&path).all(|(want, got)| {
            want == got || (want.starts_with('{') && want.ends_with('}') && !got.is_empty())
        })
}

fn is_public(method: &Method, path: &str) -> bool {
    public_routes()
        .iter()
        .any(|(m, pattern)| m == method.as_str() && route_matches(pattern, path))
}

#[test]
fn the_gateway_authorizes_the_routes_as_the_template_does() {
    let public = public_routes();
    for (method, path) in [
        ("GET", "/api/v1/events"),
        ("GET", "/api/v1/events/{id}"),
        ("GET", "/api/v1/events/{id}/availability"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/"),
    ] {
        assert!(
            public.contains(&(method.to_owned(), path.to_owned())),
            "{method} {path} is public in template.yaml: {public:?}"
        );
    }
    assert!(is_public(&Method::GET, "/api/v1/events/42/availability"));
    for (method, path) in [
        (Method::GET, "/api/v1/metrics"),
        (Method::POST, "/api/v1/events"),
        (Method::GET, "/api/v1/bookings"),
        (Method::POST, "/api/v1/holds/7/confirm"),
        (Method::GET, "/api/v1/events/42/availability/extra"),
    ] {
        assert!(!is_public(&method, path), "{method} {path} needs a token");
    }
}

/// Every request but the page's. Under `/api/`: counted, authorized as template.yaml routes it
/// ([`public_routes`]: the event reads and the OpenAPI document are public, everything else,
/// the metrics included, needs a token the hosted UI issued), then sent on to the server with
/// the token's claims as its identity.
async fn forward(State(gateway): State<Gateway>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    // No route but the page's and the API's (a browser asks for /favicon.ico, say).
    if !parts.uri.path().starts_with("/api/") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let public = is_public(&parts.method, parts.uri.path());
    let claims = {
        let mut shared = gateway.hub.lock().unwrap();
        match (&token, shared.issued_any) {
            (Some(_), _) => shared.traffic.with_token += 1,
            (None, false) => shared.traffic.before_sign_in += 1,
            (None, true) => shared.traffic.without_token_after_sign_in += 1,
        }
        let claims = token
            .as_ref()
            .and_then(|t| shared.access_tokens.get(t).cloned());
        if claims.is_none() && !public {
            shared.traffic.refused += 1;
            return unauthorized();
        }
        claims
    };

    let url = format!(
        "{}{}",
        gateway.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut upstream = gateway.http.request(parts.method.clone(), url);
    for (name, value) in &parts.headers {
        let name = name.as_str();
        // Whatever identity the browser claims is dropped: only the token speaks for it.
        if matches!(
            name,
            "host" | "authorization" | "content-length" | "connection"
        ) || name.starts_with("x-dev-")
        {
            continue;
        }
        upstream = upstream.header(name, value);
    }
    // Routes without an authorizer get no claims, token or not (Auth: Authorizer: NONE).
    if let (Some(claims), false) = (claims, public) {
        upstream = upstream.header("x-dev-user", claims["sub"].as_str().unwrap());
        let groups: Vec<&str> = claims["cognito:groups"]
            .as_array()
            .map(|g| g.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !groups.is_empty() {
            upstream = upstream.header("x-dev-groups", groups.join(" "));
        }
    }
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let answer = upstream.body(body).send().await.expect("the test server");
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !matches!(
            name.as_str(),
            "transfer-encoding" | "connection" | "content-length"
        ) {
            response = response.header(name, value);
        }
    }
    let bytes = answer.bytes().await.unwrap();
    response.body(axum::body::Body::from(bytes)).unwrap()
}
