//! Liveness and readiness for load balancers and orchestrators.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::Json;

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    pub status: String,
}

/// The process is up (says nothing about the database).
#[utoipa::path(
    get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = Status))
)]
pub async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".to_owned(),
    })
}

/// The database answers and has every migration this build expects.
#[utoipa::path(
    get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Status),
        (status = 503, description = "Not ready: database unreachable or migrations pending", body = super::error::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(State(app): State<AppState>) -> ApiResult<Json<Status>> {
    // A probe answers within DB_WAIT whatever the pool's own timeout.
    let reachable = tokio::time::timeout(super::DB_WAIT, shelfwatch_store::db::ping(&app.pool))
        .await
        .is_ok_and(|r| r.is_ok());
    if !reachable {
        return Err(ApiError::unavailable("the database is not reachable"));
    }
    match tokio::time::timeout(
        super::DB_WAIT,
        shelfwatch_store::db::migrations_current(&app.pool),
    )
    .await
    {
        Err(_) => Err(ApiError::unavailable("the database is not reachable")),
        Ok(Ok(true)) => Ok(Json(Status {
            status: "ready".to_owned(),
        })),
        Ok(Ok(false)) => Err(ApiError::unavailable(
            "database migrations are pending: run `shelfwatch migrate`",
        )),
        Ok(Err(e)) => Err(ApiError::internal(e)),
    }
}
