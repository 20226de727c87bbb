//! Dev identity: for `local-api`, the tests and `cargo lambda watch` only.
//!
//! Compiled only with the `dev-identity` feature, and applied only by code that asks for it:
//! `local-api`, and a function's `main` when that function crate's own `dev-identity` feature is
//! on (which `cargo lambda watch` turns on; `sam build` and `cargo lambda build` never do). A
//! deployed binary has none of this code, so no environment variable can switch it on.
//!
//! It works by turning `x-dev-user` / `x-dev-groups` into the JWT claims API Gateway's authorizer
//! would have put in the request context, so [`crate::identity`] has one code path: claims.

use axum::extract::Request;
use axum::Router;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;
use std::collections::HashMap;

pub const DEV_USER_HEADER: &str = "x-dev-user";
pub const DEV_GROUPS_HEADER: &str = "x-dev-groups";

/// `router`, with every request's `x-dev-user` / `x-dev-groups` headers trusted as its identity.
pub fn trust_dev_headers(router: Router) -> Router {
    router.layer(axum::middleware::map_request(claims_from_headers))
}

async fn claims_from_headers(mut request: Request) -> Request {
    let header = |name| request.headers().get(name).and_then(|v| v.to_str().ok());
    let Some(user) = header(DEV_USER_HEADER).map(str::to_owned) else {
        return request;
    };
    let mut claims = HashMap::from([("sub".to_owned(), user)]);
    if let Some(groups) = header(DEV_GROUPS_HEADER) {
        claims.insert("cognito:groups".to_owned(), groups.to_owned());
    }
    let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
    jwt.claims = claims;
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.jwt = Some(jwt);
    // Under `cargo lambda watch` the request already carries the (claim-less) context the emulator
    // built; locally there is none yet.
    let extensions = request.extensions_mut();
    match extensions.get_mut::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(context)) => context.authorizer = Some(authorizer),
        _ => {
            let mut context = ApiGatewayV2httpRequestContext::default();
            context.authorizer = Some(authorizer);
            extensions.insert(RequestContext::ApiGatewayV2(context));
        }
    }
    request
}
