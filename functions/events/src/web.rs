//! The seat-map page (`web/` at the repository root), compiled into the binary: served at `/` by
//! this function deployed (public GET routes in template.yaml) and, through the same routes, by
//! `local-api`. Plain HTML, CSS and JavaScript; the page calls the API on the same origin.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderName;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

pub const INDEX_HTML: &str = include_str!("../../../web/index.html");
pub const APP_JS: &str = include_str!("../../../web/app.js");
pub const APP_CSS: &str = include_str!("../../../web/app.css");

/// Only this origin's scripts, styles and API; no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/app.css", get(app_css))
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            // Revalidated on every load, so a deploy is seen at once.
            (CACHE_CONTROL, "no-cache"),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
            (
                HeaderName::from_static("content-security-policy"),
                CONTENT_SECURITY_POLICY,
            ),
            (HeaderName::from_static("referrer-policy"), "no-referrer"),
        ],
        body,
    )
}

pub async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub async fn app_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn app_css() -> impl IntoResponse {
    asset("text/css; charset=utf-8", APP_CSS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[tokio::test]
    async fn each_file_is_served_with_its_content_type() {
        for (response, expected) in [
            (index().await.into_response(), "text/html; charset=utf-8"),
            (
                app_js().await.into_response(),
                "text/javascript; charset=utf-8",
            ),
            (app_css().await.into_response(), "text/css; charset=utf-8"),
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
    }
}
