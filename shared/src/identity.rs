//! Who is calling.
//!
//! Deployed, API Gateway's JWT authorizer has already verified the caller's token; its claims reach
//! the function in the request context: `sub` is the user, and `cognito:groups` containing
//! `organizers` makes an organizer. The function trusts nothing else.
//!
//! For local runs and tests only, [`crate::dev_identity`] (a cargo feature no deployed binary has)
//! turns `x-dev-user` / `x-dev-groups` headers into such claims before they reach this module.

use crate::domain::UserId;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lambda_http::request::RequestContext;

pub const ORGANIZERS_GROUP: &str = "organizers";

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: UserId,
    pub is_organizer: bool,
}

/// An authenticated caller who is an organizer (403 otherwise).
#[derive(Debug, Clone)]
pub struct Organizer(pub Caller);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, ApiError> {
        let (sub, groups) = from_claims(parts).ok_or(ApiError::Unauthorized)?;
        let user_id = UserId::parse(&sub).map_err(|_| ApiError::Unauthorized)?;
        Ok(Caller {
            user_id,
            is_organizer: groups_contain(&groups, ORGANIZERS_GROUP),
        })
    }
}

impl FromRequestParts<AppState> for Organizer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.is_organizer {
            Ok(Organizer(caller))
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

fn from_claims(parts: &Parts) -> Option<(String, String)> {
    let claims = match parts.extensions.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(ctx) => &ctx.authorizer.as_ref()?.jwt.as_ref()?.claims,
        _ => return None,
    };
    let sub = claims.get("sub")?.clone();
    let groups = claims.get("cognito:groups").cloned().unwrap_or_default();
    Some((sub, groups))
}

/// API Gateway flattens the `cognito:groups` array claim into a string such as `[organizers admins]`;
/// a JSON array or a comma-separated list are accepted too.
fn groups_contain(raw: &str, wanted: &str) -> bool {
    raw.split(|c: char| c.is_whitespace() || matches!(c, ',' | '[' | ']' | '"'))
        .any(|group| group == wanted)
}

#[cfg(test)]
mod tests {
    use super::groups_contain;

    #[test]
    fn groups_are_read_in_every_shape_api_gateway_sends_them() {
        for raw in [
            "organizers",
            "[organizers]",
            "[admins organizers]",
            r#"["admins","organizers"]"#,
            "admins, organizers",
        ] {
            assert!(groups_contain(raw, "organizers"), "{raw}");
        }
        for raw in ["", "[]", "[organizers-lite]", "notorganizers"] {
            assert!(!groups_contain(raw, "organizers"), "{raw}");
        }
    }
}
