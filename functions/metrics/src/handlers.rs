use axum::extract::State;
use seatbook_core::cached::{BOOKINGS_CONFIRMED, BOOKING_CONFLICTS};
use seatbook_core::identity::Organizer;
use seatbook_core::{ApiError, AppState};
use serde::{Deserialize, Serialize};

/// Live figures about the service.
#[derive(Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Metrics {
    pub cache: CacheFigures,
    pub bookings: BookingFigures,
    pub database: DatabaseFigures,
}

/// Counters live in Redis; when it cannot be reached they are unknown (`null`), not zero.
#[derive(Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CacheFigures {
    pub available: bool,
    pub hits: Option<u64>,
    pub misses: Option<u64>,
    /// Loads from PostgreSQL: below `misses` when concurrent misses shared a load.
    pub loads: Option<u64>,
    pub hit_ratio: Option<f64>,
    pub avg_hit_ms: Option<f64>,
    pub avg_miss_ms: Option<f64>,
    /// Invalidations (a booking's generation bump) that Redis did not take within their retries;
    /// each was owed by its environment and delivered once Redis answered again.
    pub invalidations_failed: Option<u64>,
}

/// Booking counters, kept in Redis: `null` when it cannot be reached.
#[derive(Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct BookingFigures {
    pub confirmed: Option<u64>,
    pub conflicts: Option<u64>,
}

/// Row counts as PostgreSQL's statistics estimate them (`pg_stat_user_tables.n_live_tup`):
/// reading them costs the same for ten rows or ten million, where `count(*)` would scan the
/// tables on every call. They trail the truth by a moment (statistics are flushed about once a
/// second) and count every booking status.
#[derive(Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct DatabaseFigures {
    pub bookings_estimate: i64,
    pub tickets_estimate: i64,
}

seatbook_core::problems!(MetricsProblems: Unauthorized, Forbidden, Unavailable, Internal);

/// Live figures
///
/// Cache and booking counters, and row estimates. Organizers only.
#[utoipa::path(
    get,
    path = "/api/v1/metrics",
    operation_id = "get_metrics",
    tag = "metrics",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The figures.", body = Metrics),
        MetricsProblems,
    ),
)]
pub async fn metrics(
    State(state): State<AppState>,
    _: Organizer,
) -> Result<axum::Json<Metrics>, ApiError> {
    let conn = state.db.get().await?;
    let row = conn
        .query_typed_one(
            "SELECT coalesce(sum(n_live_tup) FILTER (WHERE relname = 'bookings'), 0)::int8,
                    coalesce(sum(n_live_tup) FILTER (WHERE relname = 'tickets'), 0)::int8
             FROM pg_stat_user_tables
             WHERE schemaname = 'public' AND relname IN ('bookings', 'tickets')",
            &[],
        )
        .await?;
    let stats = match &state.cache {
        Some(cache) => cache.stats(&[BOOKINGS_CONFIRMED, BOOKING_CONFLICTS]).await,
        None => None,
    };
    let ratio = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
    Ok(axum::Json(Metrics {
        cache: CacheFigures {
            available: stats.is_some(),
            hits: stats.as_ref().map(|s| s.hits),
            misses: stats.as_ref().map(|s| s.misses),
            loads: stats.as_ref().map(|s| s.loads),
            hit_ratio: stats
                .as_ref()
                .and_then(|s| ratio(s.hits, s.hits + s.misses)),
            avg_hit_ms: stats
                .as_ref()
                .and_then(|s| (s.hits > 0).then(|| s.hit_ms_total / s.hits as f64)),
            avg_miss_ms: stats
                .as_ref()
                .and_then(|s| (s.misses > 0).then(|| s.miss_ms_total / s.misses as f64)),
            invalidations_failed: stats.as_ref().map(|s| s.invalidations_failed),
        },
        bookings: BookingFigures {
            confirmed: stats.as_ref().map(|s| s.counters[0]),
            conflicts: stats.as_ref().map(|s| s.counters[1]),
        },
        database: DatabaseFigures {
            bookings_estimate: row.get(0),
            tickets_estimate: row.get(1),
        },
    }))
}
