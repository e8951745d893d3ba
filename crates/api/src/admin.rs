//! Admin (scope `admin`): ask for a scrape or a forecast (queued, never
//! waited on), follow a job, list runs. Every action is audited.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, Scope};
use super::catalogue::retailer_id;
use super::error::{ApiError, ApiResult};
use super::extract::{Json, OptionalJson, Path, Query};
use super::model::{self, rfc3339, rfc3339_opt};
use super::{AppState, audit};
use shelfwatch_store::admin::{self as runs, ForecastRunRow, ScrapeRunRow};
use shelfwatch_store::jobs::{self, Job, JobKind};

/// A queued or finished job.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: i64,
    /// `scrape` or `forecast`.
    pub kind: String,
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
    pub requested_by: String,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub enqueued_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<DateTime<Utc>>,
    pub message: Option<String>,
}

impl From<Job> for JobView {
    fn from(j: Job) -> Self {
        JobView {
            id: j.id,
            kind: j.kind,
            params: j.params,
            status: j.status,
            requested_by: j.requested_by,
            enqueued_at: j.enqueued_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            message: j.message,
        }
    }
}

/// Whether a worker that takes this job has been seen lately.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerStatus {
    /// `scraper` or `forecaster`.
    pub role: String,
    pub alive: bool,
    #[serde(serialize_with = "rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_seen: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub job: JobView,
    /// False when the same job was already queued (this is that job).
    pub created: bool,
    pub worker: WorkerStatus,
    /// In words: queued, and whether anyone will take it.
    pub message: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScrapeRequest {
    /// Only this retailer (slug); all when absent.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub retailer: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForecastRequest {}

async fn accept(
    app: &AppState,
    actor: &str,
    kind: JobKind,
    params: serde_json::Value,
) -> ApiResult<Response> {
    let (job, created) = jobs::enqueue(&app.pool, kind, &params, actor).await?;
    let role = kind.worker_role();
    let last_seen = jobs::last_seen(&app.pool, role).await?;
    let stale_after = app.settings.worker_stale_after_secs;
    let alive = last_seen.is_some_and(|t| {
        (Utc::now() - t).num_seconds() <= i64::try_from(stale_after).unwrap_or(i64::MAX)
    });
    let minutes = stale_after.div_ceil(60);
    let message = match (created, alive) {
        (true, true) => format!("queued; a {role} is running and will take it"),
        (false, true) => format!("already queued; a {role} is running and will take it"),
        (_, false) => {
            format!("queued; no {role} seen in the last {minutes} minutes, the job waits")
        }
    };
    audit::record(
        &app.pool,
        actor,
        &format!("job.enqueue.{}", kind.as_str()),
        Some(&format!("job:{}", job.id)),
        serde_json::json!({ "params": params, "created": created }),
    )
    .await?;
    let id = job.id;
    let mut response = (
        StatusCode::ACCEPTED,
        Json(Accepted {
            job: job.into(),
            created,
            worker: WorkerStatus {
                role: role.to_owned(),
                alive,
                last_seen,
            },
            message,
        }),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/admin/jobs/{id}")) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// Ask for a scrape (of one retailer or all). Returns at once; the scraper
/// takes the job.
#[utoipa::path(
    post, path = "/v1/admin/scrape-runs", tag = "admin",
    request_body(content = Option<ScrapeRequest>,
                 description = "Optional: which retailer (no body, an empty body or null: all)"),
    responses((status = 202, description = "Queued", body = Accepted,
               headers(("Location" = String, description = "The job's URL"))),
              (status = 404, description = "No such retailer", body = super::error::Problem,
               content_type = "application/problem+json")),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn enqueue_scrape(
    State(app): State<AppState>,
    caller: Caller,
    OptionalJson(body): OptionalJson<ScrapeRequest>,
) -> ApiResult<Response> {
    let principal = caller.require(Scope::Admin)?;
    let request = body.unwrap_or_default();
    let params = match request.retailer {
        Some(slug) => {
            retailer_id(&app, &slug).await?;
            serde_json::json!({ "retailer": slug })
        }
        None => serde_json::json!({}),
    };
    accept(&app, &principal.id, JobKind::Scrape, params).await
}

/// Ask for a forecast run. Returns at once; `forecast --every` takes the job.
#[utoipa::path(
    post, path = "/v1/admin/forecast-runs", tag = "admin",
    request_body(content = Option<ForecastRequest>,
                 description = "Optional: an empty object, no body, an empty body or null"),
    responses((status = 202, description = "Queued", body = Accepted,
               headers(("Location" = String, description = "The job's URL")))),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn enqueue_forecast(
    State(app): State<AppState>,
    caller: Caller,
    _body: OptionalJson<ForecastRequest>,
) -> ApiResult<Response> {
    let principal = caller.require(Scope::Admin)?;
    accept(
        &app,
        &principal.id,
        JobKind::Forecast,
        serde_json::json!({}),
    )
    .await
}

/// One job.
#[utoipa::path(
    get, path = "/v1/admin/jobs/{id}", tag = "admin",
    params(("id" = i64, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 404, description = "No such job", body = super::error::Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn get_job(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> ApiResult<Json<JobView>> {
    caller.require(Scope::Admin)?;
    jobs::get(&app.pool, id)
        .await?
        .map(|j| Json(j.into()))
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Most recent runs of each kind, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScrapeRun {
    pub id: i64,
    pub retailer: Option<String>,
    pub status: String,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<DateTime<Utc>>,
    pub pages: i32,
    pub products: i32,
    pub errors: i32,
    pub message: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastRun {
    pub id: i64,
    pub model_version: String,
    pub shard: String,
    pub status: String,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub as_of: Option<DateTime<Utc>>,
    pub series: i32,
    pub message: Option<String>,
}

impl From<ScrapeRunRow> for ScrapeRun {
    fn from(r: ScrapeRunRow) -> Self {
        ScrapeRun {
            id: r.id,
            retailer: r.retailer,
            status: r.status,
            started_at: r.started_at,
            finished_at: r.finished_at,
            pages: r.pages,
            products: r.products,
            errors: r.errors,
            message: r.message,
        }
    }
}

impl From<ForecastRunRow> for ForecastRun {
    fn from(r: ForecastRunRow) -> Self {
        ForecastRun {
            id: r.id,
            model_version: r.model_version,
            shard: r.shard,
            status: r.status,
            started_at: r.started_at,
            finished_at: r.finished_at,
            as_of: r.as_of,
            series: r.series,
            message: r.message,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Runs {
    /// Most recent first.
    pub scrape_runs: Vec<ScrapeRun>,
    /// Most recent first.
    pub forecast_runs: Vec<ForecastRun>,
}

/// Recent scrape and forecast runs.
#[utoipa::path(
    get, path = "/v1/admin/runs", tag = "admin",
    params(RunsQuery),
    responses((status = 200, description = "Recent runs", body = Runs)),
    security(("api_key" = []), ("bearer" = []))
)]
pub async fn list_runs(
    State(app): State<AppState>,
    caller: Caller,
    Query(query): Query<RunsQuery>,
) -> ApiResult<Json<Runs>> {
    caller.require(Scope::Admin)?;
    let limit = model::limit(query.limit, 20, 100)?;
    let scrape_runs = runs::recent_scrape_runs(&app.pool, limit).await?;
    let forecast_runs = runs::recent_forecast_runs(&app.pool, limit).await?;
    Ok(Json(Runs {
        scrape_runs: scrape_runs.into_iter().map(ScrapeRun::from).collect(),
        forecast_runs: forecast_runs.into_iter().map(ForecastRun::from).collect(),
    }))
}
