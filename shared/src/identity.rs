//! Who is calling.
//!
//! Deployed, API Gateway's JWT authorizer has already verified the caller's token; its claims reach
//! the function in the request context: `sub` is the user, and `cognito:groups` containing
//! `organizers` makes an organizer. The function trusts nothing else.
//!
//! For local runs and tests only, dev mode takes the identity from `x-dev-user` and `x-dev-groups`
//! headers instead. It is off unless explicitly switched on, and the deployed stack never does.

use crate::domain::UserId;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use lambda_http::request::RequestContext;

pub const DEV_USER_HEADER: &str = "x-dev-user";
pub const DEV_GROUPS_HEADER: &str = "x-dev-groups";
pub const ORGANIZERS_GROUP: &str = "organizers";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityMode {
    /// Only API Gateway authorizer claims count. The default, and the only mode deployed.
    GatewayClaims,
    /// Trust the dev headers (falling back to claims when there are none). Local only.
    DevHeaders,
}

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

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let found = match state.identity {
            IdentityMode::DevHeaders => from_dev_headers(parts).or_else(|| from_claims(parts)),
            IdentityMode::GatewayClaims => from_claims(parts),
        };
        let (sub, groups) = found.ok_or(ApiError::Unauthorized)?;
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

fn from_dev_headers(parts: &Parts) -> Option<(String, String)> {
    let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let user = header(DEV_USER_HEADER)?;
    Some((
        user.to_owned(),
        header(DEV_GROUPS_HEADER).unwrap_or("").to_owned(),
    ))
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
