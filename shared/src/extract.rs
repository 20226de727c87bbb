//! Extractors whose rejections are problem+json like every other error.
//!
//! axum's own extractors answer with plain text and, for JSON of the wrong shape, 422. This API
//! answers 400 for anything that is not the JSON it expects (syntax or types), and keeps 422 for
//! well-formed requests that break a domain rule.

use crate::error::ApiError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A JSON request body.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<Value>::from_request(req, state).await {
            Ok(axum::Json(mut value)) => {
                integral_numbers_as_integers(&mut value);
                serde_path_to_error::deserialize(value)
                    .map(Json)
                    .map_err(|e| {
                        ApiError::BadRequest(format!(
                            "the request body does not have the expected shape: {e}"
                        ))
                    })
            }
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::BadRequest(format!(
                "the request body does not have the expected shape: {}",
                e.body_text().trim_start_matches(
                    "Failed to deserialize the JSON body into the target type: "
                )
            ))),
            Err(JsonRejection::JsonSyntaxError(_)) => Err(ApiError::BadRequest(
                "the request body is not valid JSON".to_owned(),
            )),
            Err(other) if other.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge)
            }
            Err(other) => Err(ApiError::BadRequest(other.body_text())),
        }
    }
}

/// JSON has one kind of number: `2.0` is the integer 2 to JSON Schema, so to the OpenAPI
/// document's `integer`s, where serde would refuse it as a float. Whole numbers that fit an `i64`
/// become integers before the body is read; `1.5` still does not fit an integer field.
fn integral_numbers_as_integers(value: &mut Value) {
    match value {
        Value::Number(number) if number.is_f64() => {
            let float = number.as_f64().unwrap_or(f64::NAN);
            // i64::MAX as f64 rounds up to 2^63, which is out of range.
            if float.fract() == 0.0 && float >= i64::MIN as f64 && float < i64::MAX as f64 {
                *number = (float as i64).into();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        Value::Object(members) => members.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
}

/// A path parameter. A value that does not parse cannot name anything, hence 404.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        ApiError::NotFound("no such resource".to_owned())
    }
}

/// Query-string parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::BadRequest(format!("invalid query string: {}", rejection.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::integral_numbers_as_integers;
    use serde_json::json;

    #[test]
    fn whole_numbers_written_as_floats_become_integers_and_fractions_stay() {
        let mut body =
            json!({"a": 74.0, "b": [-1463.0, 1.5, 3, {"c": 1e3}], "d": 1e300, "e": -0.0});
        integral_numbers_as_integers(&mut body);
        assert_eq!(
            body,
            json!({"a": 74, "b": [-1463, 1.5, 3, {"c": 1000}], "d": 1e300, "e": 0})
        );
    }
}
