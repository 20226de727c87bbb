use axum::extract::State;
use seatbook_core::{ApiError, AppState};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
pub struct Metrics {
    pub database: DatabaseFigures,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DatabaseFigures {
    /// Confirmed bookings (seats currently sold).
    pub bookings: i64,
    pub tickets: i64,
}

pub async fn metrics(State(state): State<AppState>) -> Result<axum::Json<Metrics>, ApiError> {
    let conn = state.db.get().await?;
    let row = conn
        .query_typed_one(
            "SELECT (SELECT count(*) FROM bookings WHERE status = 'confirmed'),
                    (SELECT count(*) FROM tickets)",
            &[],
        )
        .await?;
    Ok(axum::Json(Metrics {
        database: DatabaseFigures {
            bookings: row.get(0),
            tickets: row.get(1),
        },
    }))
}
