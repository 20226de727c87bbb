//! Domain values, parsed once at the edge: a value of these types is valid by construction, so
//! the code past the handler never re-checks it. A failed parse is a 422 with a message fit for
//! the caller.

mod event;
mod pricing;
mod seats;
mod user;
mod venue;

pub use event::{
    Description, EventName, MaxSeatsPerUser, PriceCents, SalesWindow, StartsAt, WaitingRoom,
    WaitlistOfferSeconds,
};
pub use pricing::{
    CategoryName, CategoryRequest, PriceCategories, PriceCategory, VenueSection, MAX_CATEGORIES,
    STANDARD,
};
pub use seats::{row_label, SeatSelection, MAX_SEATS_PER_BOOKING};
pub use user::UserId;
pub use venue::{
    row_number, SeatMap, Section, SectionName, VenueLayout, VenueName, DEFAULT_SECTION, MAX_SEATS,
    MAX_SECTIONS,
};

/// Why a value was rejected, in words for the API's `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<Invalid> for crate::error::ApiError {
    fn from(err: Invalid) -> Self {
        crate::error::ApiError::Unprocessable(err.0)
    }
}

/// Trims `raw` and checks it has 1..=`max` characters.
fn bounded_text(field: &str, raw: &str, max: usize) -> Result<String, Invalid> {
    let trimmed = raw.trim();
    let len = trimmed.chars().count();
    if len == 0 {
        return Err(Invalid(format!("{field} must not be empty")));
    }
    if len > max {
        return Err(Invalid(format!("{field} must be at most {max} characters")));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(trimmed.to_owned())
}
