//! Liveness and readiness for load balancers and orchestrators.

use std::time::{Duration, Instant};

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::Json;
use super::{App, AppState};

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
    match app.readiness.get(|| check_ready(&app)).await {
        Ready::Ready => Ok(Json(Status {
            status: "ready".to_owned(),
        })),
        Ready::Unreachable => Err(ApiError::unavailable("the database is not reachable")),
        Ready::Pending => Err(ApiError::unavailable(
            "database migrations are pending: run `shelfwatch migrate`",
        )),
        Ready::Failed(e) => Err(ApiError::internal(anyhow::anyhow!(e))),
    }
}

/// What the last readiness check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    Ready,
    Unreachable,
    Pending,
    /// An unexpected error, with its cause (logged, not answered).
    Failed(String),
}

/// How long a readiness check's answer is reused: however often `/readyz`
/// is called, the database is asked at most once in this time.
pub const READINESS_TTL: Duration = Duration::from_secs(1);

/// The last readiness check and when it ran, shared by every caller:
/// concurrent callers wait for one check rather than each running their
/// own, so `/readyz` needs no rate limit of its own (a probe must not be
/// refused).
pub struct Readiness {
    ttl: Duration,
    last: tokio::sync::Mutex<Option<(Instant, Ready)>>,
}

impl Readiness {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The last answer if younger than the time to live, else `check`'s.
    pub async fn get<F, Fut>(&self, check: F) -> Ready
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Ready>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, ready)) = &*last
            && at.elapsed() < self.ttl
        {
            return ready.clone();
        }
        let ready = check().await;
        *last = Some((Instant::now(), ready.clone()));
        ready
    }
}

/// Asks the database whether it answers and has every migration.
async fn check_ready(app: &App) -> Ready {
    // A probe answers within DB_WAIT whatever the pool's own timeout.
    let reachable = tokio::time::timeout(super::DB_WAIT, shelfwatch_store::db::ping(&app.pool))
        .await
        .is_ok_and(|r| r.is_ok());
    if !reachable {
        return Ready::Unreachable;
    }
    match tokio::time::timeout(
        super::DB_WAIT,
        shelfwatch_store::db::migrations_current(&app.pool),
    )
    .await
    {
        Err(_) => Ready::Unreachable,
        Ok(Ok(true)) => Ready::Ready,
        Ok(Ok(false)) => Ready::Pending,
        Ok(Err(e)) => Ready::Failed(format!("{e:#}")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_probes_share_one_check() {
        let readiness = Arc::new(Readiness::new(Duration::from_millis(200)));
        let checks = Arc::new(AtomicUsize::new(0));
        let probe = |readiness: Arc<Readiness>, checks: Arc<AtomicUsize>| async move {
            readiness
                .get(|| async {
                    checks.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ready::Ready
                })
                .await
        };
        let probes: Vec<_> = (0..500)
            .map(|_| tokio::spawn(probe(readiness.clone(), checks.clone())))
            .collect();
        for p in probes {
            assert_eq!(p.await.unwrap(), Ready::Ready);
        }
        assert_eq!(checks.load(Ordering::SeqCst), 1);
        // Once the answer is older than its time to live, it is checked again.
        tokio::time::sleep(Duration::from_millis(250)).await;
        probe(readiness.clone(), checks.clone()).await;
        assert_eq!(checks.load(Ordering::SeqCst), 2);
    }
}
