//! The seat-map page (`web/` at the repository root), compiled into the binary: served at `/` by
//! this function deployed (public GET routes in template.yaml) and, through the same routes, by
//! `local-api`. Plain HTML, CSS and JavaScript; the page calls the API on the same origin.
//!
//! How the page signs people in is decided here, from the environment, and written into the page
//! itself (a `<meta name="seatbook-sign-in">`), so the page knows before its first request and no
//! extra route is needed: with `COGNITO_DOMAIN` (the hosted UI's base URL) and `COGNITO_CLIENT_ID`
//! set, Cognito's hosted UI (authorization code + PKCE); without them, the local name field.

use axum::body::Bytes;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;
use std::sync::{Arc, Once};

pub const INDEX_HTML: &str = include_str!("../../../web/index.html");
pub const APP_JS: &str = include_str!("../../../web/app.js");
pub const APP_CSS: &str = include_str!("../../../web/app.css");

pub const COGNITO_DOMAIN_VAR: &str = "COGNITO_DOMAIN";
pub const COGNITO_CLIENT_ID_VAR: &str = "COGNITO_CLIENT_ID";

/// The tag in index.html that the sign-in configuration replaces.
const SIGN_IN_META: &str = r#"<meta name="seatbook-sign-in" content="local">"#;

/// How the page signs people in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// A name field whose value becomes the dev identity (local-api, `cargo lambda watch`).
    Local,
    /// Cognito's hosted UI at `domain` (an origin such as
    /// `https://seatbook-123456789012.auth.eu-west-1.amazoncognito.com`) for the app client
    /// `client_id`, which is the JWT authorizer's audience.
    Cognito { domain: String, client_id: String },
}

impl SignIn {
    pub fn from_env() -> Result<SignIn, String> {
        SignIn::from_lookup(|name| std::env::var(name).ok())
    }

    /// Both variables set (and well-formed) is Cognito; neither, or both empty, is local. Anything
    /// else is an error, and its page falls back to local sign-in, which a deployed API refuses.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<SignIn, String> {
        let read = |name| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        let (domain, client_id) = (read(COGNITO_DOMAIN_VAR), read(COGNITO_CLIENT_ID_VAR));
        match (domain.is_empty(), client_id.is_empty()) {
            (true, true) => return Ok(SignIn::Local),
            (false, false) => {}
            _ => {
                return Err(format!(
                    "set both {COGNITO_DOMAIN_VAR} and {COGNITO_CLIENT_ID_VAR}, or neither"
                ))
            }
        }
        let domain = domain.trim_end_matches('/').to_owned();
        // Both go into a response header (the CSP) and an HTML attribute: only characters that
        // can break neither get through, so nothing needs escaping.
        if !is_origin(&domain) {
            return Err(format!(
                "{COGNITO_DOMAIN_VAR} must be an origin such as https://<prefix>.auth.<region>.amazoncognito.com (got {domain:?})"
            ));
        }
        let client_ok = client_id.len() <= 128
            && client_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
        if !client_ok {
            return Err(format!(
                "{COGNITO_CLIENT_ID_VAR} must be an app client id (letters and digits), got {client_id:?}"
            ));
        }
        Ok(SignIn::Cognito { domain, client_id })
    }
}

/// `https://host[:port]`; plain `http://` only for loopback, where the tests' stand-in runs.
fn is_origin(value: &str) -> bool {
    let (host_port, loopback_only) = if let Some(rest) = value.strip_prefix("https://") {
        (rest, false)
    } else if let Some(rest) = value.strip_prefix("http://") {
        (rest, true)
    } else {
        return false;
    };
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (host_port, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok());
    let loopback_ok = !loopback_only || host == "127.0.0.1" || host == "localhost";
    host_ok && port_ok && loopback_ok
}

/// The page as served for one sign-in configuration.
struct Page {
    index: Bytes,
    csp: HeaderValue,
    /// A configuration error, logged on the first page load (the router is built before logging
    /// is set up, so it cannot be logged then).
    problem: Option<String>,
    logged: Once,
}

impl Page {
    fn new(sign_in: Result<SignIn, String>) -> Page {
        let (sign_in, problem) = match sign_in {
            Ok(sign_in) => (sign_in, None),
            Err(problem) => (SignIn::Local, Some(problem)),
        };
        let (meta, token_endpoint) = match &sign_in {
            SignIn::Local => (SIGN_IN_META.to_owned(), String::new()),
            SignIn::Cognito { domain, client_id } => (
                format!(
                    r#"<meta name="seatbook-sign-in" content="cognito" data-domain="{domain}" data-client-id="{client_id}">"#
                ),
                // The code is exchanged for tokens by the page itself, at the hosted UI's origin.
                format!(" {domain}"),
            ),
        };
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; \
             connect-src 'self'{token_endpoint}; img-src 'self' data:; base-uri 'none'; \
             form-action 'self'; frame-ancestors 'none'"
        );
        Page {
            index: Bytes::from(INDEX_HTML.replacen(SIGN_IN_META, &meta, 1)),
            csp: HeaderValue::from_str(&csp).expect("a CSP of validated origins"),
            problem,
            logged: Once::new(),
        }
    }

    fn asset(&self, content_type: &'static str, body: Bytes) -> Response {
        (
            [
                (CONTENT_TYPE, HeaderValue::from_static(content_type)),
                // Revalidated on every load, so a deploy is seen at once.
                (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                (
                    HeaderName::from_static("x-content-type-options"),
                    HeaderValue::from_static("nosniff"),
                ),
                (
                    HeaderName::from_static("content-security-policy"),
                    self.csp.clone(),
                ),
                (
                    HeaderName::from_static("referrer-policy"),
                    HeaderValue::from_static("no-referrer"),
                ),
            ],
            body,
        )
            .into_response()
    }

    fn index(&self) -> Response {
        if let Some(problem) = &self.problem {
            self.logged.call_once(|| {
                tracing::warn!(%problem, "the seat-map page's sign-in is misconfigured; it offers local sign-in, which this API refuses");
            });
        }
        self.asset("text/html; charset=utf-8", self.index.clone())
    }
}

/// The page, configured from this process's environment.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    routes_for(SignIn::from_env())
}

/// The page, signing in as `sign_in` says.
pub fn routes_for<S: Clone + Send + Sync + 'static>(sign_in: Result<SignIn, String>) -> Router<S> {
    let page = Arc::new(Page::new(sign_in));
    Router::new()
        .route(
            "/app.js",
            asset(&page, "text/javascript; charset=utf-8", APP_JS),
        )
        .route("/app.css", asset(&page, "text/css; charset=utf-8", APP_CSS))
        .route("/", get(move || async move { page.index() }))
}

/// GET of a file compiled into the binary, served as `content_type` with the page's headers.
fn asset<S: Clone + Send + Sync + 'static>(
    page: &Arc<Page>,
    content_type: &'static str,
    file: &'static str,
) -> MethodRouter<S> {
    let page = page.clone();
    get(move || async move { page.asset(content_type, Bytes::from_static(file.as_bytes())) })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    fn csp(response: &Response) -> String {
        response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    const HOSTED_UI: &str = "https://seatbook-123456789012.auth.eu-west-1.amazoncognito.com";

    fn cognito() -> SignIn {
        SignIn::Cognito {
            domain: HOSTED_UI.to_owned(),
            client_id: "4example5client6id".to_owned(),
        }
    }

    #[test]
    fn each_file_is_served_with_its_content_type() {
        let page = Page::new(Ok(SignIn::Local));
        for (response, expected) in [
            (page.index(), "text/html; charset=utf-8"),
            (
                page.asset("text/javascript; charset=utf-8", Bytes::new()),
                "text/javascript; charset=utf-8",
            ),
        ] {
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()[CONTENT_TYPE], expected);
            assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        }
    }

    #[test]
    fn the_page_loads_only_its_own_script_and_styles() {
        assert!(INDEX_HTML.contains(r#"<script src="/app.js" defer></script>"#));
        assert!(INDEX_HTML.contains(r#"<link rel="stylesheet" href="/app.css">"#));
        // The CSP allows no inline script or style.
        assert!(!INDEX_HTML.contains("<script>") && !INDEX_HTML.contains("style="));
        assert_eq!(INDEX_HTML.matches(SIGN_IN_META).count(), 1);
    }

    #[tokio::test]
    async fn without_cognito_settings_the_page_signs_in_locally_and_talks_only_to_its_origin() {
        assert_eq!(SignIn::from_lookup(lookup(&[])), Ok(SignIn::Local));
        let empty = [(COGNITO_DOMAIN_VAR, ""), (COGNITO_CLIENT_ID_VAR, " ")];
        assert_eq!(SignIn::from_lookup(lookup(&empty)), Ok(SignIn::Local));
        let response = Page::new(Ok(SignIn::Local)).index();
        let policy = csp(&response);
        assert!(policy.contains("connect-src 'self';"), "{policy}");
        assert!(body(response).await.contains(SIGN_IN_META));
    }

    #[tokio::test]
    async fn with_cognito_settings_the_page_names_the_hosted_ui_and_may_call_its_token_endpoint() {
        let with_slash = format!("{HOSTED_UI}/");
        let vars = [
            (COGNITO_DOMAIN_VAR, with_slash.as_str()),
            (COGNITO_CLIENT_ID_VAR, "4example5client6id"),
        ];
        assert_eq!(SignIn::from_lookup(lookup(&vars)), Ok(cognito()));
        let page = Page::new(Ok(cognito()));
        let response = page.index();
        let policy = csp(&response);
        assert!(
            policy.contains(&format!("connect-src 'self' {HOSTED_UI};")),
            "{policy}"
        );
        let html = body(response).await;
        assert!(!html.contains(SIGN_IN_META));
        assert!(html.contains(&format!(
            r#"<meta name="seatbook-sign-in" content="cognito" data-domain="{HOSTED_UI}" data-client-id="4example5client6id">"#
        )));
        // The script carries the same policy as the page.
        let script = page.asset("text/javascript; charset=utf-8", Bytes::new());
        assert_eq!(csp(&script), policy);
    }

    #[tokio::test]
    async fn half_or_malformed_cognito_settings_are_refused_and_the_page_stays_local() {
        let (domain, client) = (COGNITO_DOMAIN_VAR, COGNITO_CLIENT_ID_VAR);
        for vars in [
            &[(domain, HOSTED_UI)][..],
            &[(client, "abc")],
            &[
                (domain, "seatbook.auth.eu-west-1.amazoncognito.com"),
                (client, "abc"),
            ],
            &[(domain, "http://seatbook.example.com"), (client, "abc")],
            &[(domain, "https://x.example.com/oauth2"), (client, "abc")],
            &[(domain, "https://x.example.com\"><b>"), (client, "abc")],
            &[(domain, HOSTED_UI), (client, "a\"b")],
        ] {
            assert!(SignIn::from_lookup(lookup(vars)).is_err(), "{vars:?}");
        }
        let loopback = [(domain, "http://127.0.0.1:4567"), (client, "abc")];
        assert!(SignIn::from_lookup(lookup(&loopback)).is_ok());
        let html = body(Page::new(Err("half".to_owned())).index()).await;
        assert!(html.contains(SIGN_IN_META));
    }
}
