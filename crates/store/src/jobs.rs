//! The job queue and worker heartbeats (tables `jobs` and `workers`).
//!
//! The API enqueues work ("scrape now", "forecast now") and returns at
//! once; the long-running worker of that kind (`scrape --every`,
//! `forecast --every`) claims queued jobs between its scheduled runs with
//! `FOR UPDATE SKIP LOCKED`, so several workers never take the same job.
//! Workers write a heartbeat so the API can say whether anyone is there to
//! take the job.

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// What a job asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Scrape,
    Forecast,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Scrape => "scrape",
            JobKind::Forecast => "forecast",
        }
    }

    /// The worker role that takes jobs of this kind.
    pub fn worker_role(self) -> &'static str {
        match self {
            JobKind::Scrape => "scraper",
            JobKind::Forecast => "forecaster",
        }
    }
}

/// A job as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub params: serde_json::Value,
    pub status: String,
    pub requested_by: String,
    pub enqueued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub message: Option<String>,
}

const JOB_COLUMNS: &str =
    "id, kind, params, status, requested_by, enqueued_at, started_at, finished_at, message";

/// Queues a job, unless the same kind with the same parameters is already
/// queued: then that one is returned. The flag says whether it is new.
pub async fn enqueue(
    pool: &PgPool,
    kind: JobKind,
    params: &serde_json::Value,
    requested_by: &str,
) -> anyhow::Result<(Job, bool)> {
    let inserted: Option<Job> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO jobs (kind, params, requested_by) VALUES ($1, $2, $3)
         ON CONFLICT (kind, params) WHERE status = 'queued' DO NOTHING
         RETURNING {JOB_COLUMNS}"
    )))
    .bind(kind.as_str())
    .bind(params)
    .bind(requested_by)
    .fetch_optional(pool)
    .await
    .context("queueing a job")?;
    if let Some(job) = inserted {
        return Ok((job, true));
    }
    let existing: Option<Job> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE kind = $1 AND params = $2 AND status = 'queued'"
    )))
    .bind(kind.as_str())
    .bind(params)
    .fetch_optional(pool)
    .await
    .context("reading the queued job")?;
    match existing {
        Some(job) => Ok((job, false)),
        // Claimed between the two statements: queue a fresh one.
        None => Box::pin(enqueue(pool, kind, params, requested_by)).await,
    }
}

/// Takes the oldest queued job of `kind`, marking it running. Concurrent
/// claimers skip each other's rows instead of waiting.
pub async fn claim(pool: &PgPool, kind: JobKind) -> anyhow::Result<Option<Job>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE jobs SET status = 'running', started_at = now()
         WHERE id = (SELECT id FROM jobs WHERE kind = $1 AND status = 'queued'
                     ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING {JOB_COLUMNS}"
    )))
    .bind(kind.as_str())
    .fetch_optional(pool)
    .await
    .context("claiming a job")
}

/// Records how a claimed job ended.
pub async fn finish(pool: &PgPool, id: i64, outcome: Result<String, String>) -> anyhow::Result<()> {
    let (status, message) = match outcome {
        Ok(m) => ("succeeded", m),
        Err(m) => ("failed", m),
    };
    sqlx::query("UPDATE jobs SET status = $2, message = $3, finished_at = now() WHERE id = $1")
        .bind(id)
        .bind(status)
        .bind(message)
        .execute(pool)
        .await
        .context("recording the end of a job")?;
    Ok(())
}

/// One job by id.
pub async fn get(pool: &PgPool, id: i64) -> anyhow::Result<Option<Job>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await
    .context("reading a job")
}

/// This process's name among the workers of a role.
pub fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    format!("{host}:{}", std::process::id())
}

/// Says that a worker of `role` (`forecaster`, `scraper`, `api`) is alive.
pub async fn heartbeat(pool: &PgPool, role: &str) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO workers (role, instance, last_seen) VALUES ($1, $2, now())
         ON CONFLICT (role, instance) DO UPDATE SET last_seen = now()",
    )
    .bind(role)
    .bind(instance_name())
    .execute(pool)
    .await
    .context("writing a worker heartbeat")?;
    Ok(())
}

/// When a worker of `role` was last seen, if ever.
pub async fn last_seen(pool: &PgPool, role: &str) -> anyhow::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar("SELECT max(last_seen) FROM workers WHERE role = $1")
        .bind(role)
        .fetch_one(pool)
        .await
        .context("reading worker heartbeats")
}

/// How often a waiting worker looks for queued jobs (and says it is alive).
pub const POLL: std::time::Duration = std::time::Duration::from_secs(5);

/// The time between a worker's scheduled runs: heartbeats as the role that
/// takes `kind`, and runs each queued job of `kind` with `run` as it comes,
/// until `until`. Returns false when `stop` resolved first.
pub async fn work_until<S, F, Fut>(
    pool: &PgPool,
    kind: JobKind,
    until: tokio::time::Instant,
    stop: &mut std::pin::Pin<&mut S>,
    mut run: F,
) -> bool
where
    S: std::future::Future<Output = ()>,
    F: FnMut(Job) -> Fut,
    Fut: std::future::Future<Output = Result<String, String>>,
{
    loop {
        if let Err(e) = heartbeat(pool, kind.worker_role()).await {
            tracing::warn!(error = format!("{e:#}"), "worker heartbeat failed");
        }
        match claim(pool, kind).await {
            Ok(Some(job)) => {
                let id = job.id;
                tracing::info!(job = id, kind = kind.as_str(), "running a queued job");
                let outcome = run(job).await;
                if let Err(e) = finish(pool, id, outcome).await {
                    tracing::error!(
                        job = id,
                        error = format!("{e:#}"),
                        "recording a job's end failed"
                    );
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = format!("{e:#}"), "claiming a job failed"),
        }
        let now = tokio::time::Instant::now();
        if now >= until {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep((until - now).min(POLL)) => {}
            _ = stop.as_mut() => return false,
        }
    }
}
