//! The forecast job in bounded memory: chunked runs, a capped training
//! sample, and shards through the job queue, each checked against one run
//! over everything on the same data.

use chrono::{DateTime, Utc};
use shelfwatch_forecast::load::{self, Shard};
use shelfwatch_forecast::{self as forecast, Frame, Models, Params, RunOutcome};
use shelfwatch_store::jobs::{self, JobKind};
use sqlx::PgPool;

use crate::forecast::sample_db;

/// A recommendation as stored, every column the API serves.
type RecRow = (i64, String, String, i64, i64, i64, f64, String);
/// A forecast day as stored.
type DayRow = (i64, DateTime<Utc>, i64, i64, i64);

/// The recommendations and forecast days of `runs`, by listing and day.
async fn results(pool: &PgPool, runs: &[i64]) -> (Vec<RecRow>, Vec<DayRow>) {
    let recs = sqlx::query_as(
        "SELECT listing_id, action, claim, current_pence, regular_pence, expected_change_pence,
                confidence, message
         FROM recommendations WHERE run_id = ANY($1) ORDER BY listing_id",
    )
    .bind(runs)
    .fetch_all(pool)
    .await
    .unwrap();
    let days = sqlx::query_as(
        "SELECT listing_id, day, predicted_pence, lower_pence, upper_pence
         FROM forecasts WHERE run_id = ANY($1) ORDER BY listing_id, day",
    )
    .bind(runs)
    .fetch_all(pool)
    .await
    .unwrap();
    (recs, days)
}

async fn completed(pool: &PgPool, params: &Params, shard: Shard) -> (i64, usize) {
    match forecast::run_once(pool, params, shard).await.unwrap() {
        RunOutcome::Completed { run_id, series } => (run_id, series),
        other => panic!("{other:?}"),
    }
}

/// What the run says it trained on: (listings, rows).
async fn training(pool: &PgPool, run_id: i64) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (params #>> '{training,listings}')::bigint, (params #>> '{training,rows}')::bigint
         FROM forecast_runs WHERE id = $1 AND status = 'succeeded'",
    )
    .bind(run_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn one_listing_per_chunk_gives_the_same_results_as_one_chunk() {
    let db = sample_db().await;
    let whole = Params::default();
    let (one_chunk, series) = completed(&db.pool, &whole, Shard::ALL).await;
    assert_eq!(series, 36);
    let tiny = Params {
        chunk_listings: 1,
        ..whole
    };
    // Other parameters, other inputs: a new run, not "unchanged".
    let (many_chunks, series) = completed(&db.pool, &tiny, Shard::ALL).await;
    assert_ne!(many_chunks, one_chunk);
    assert_eq!(series, 36);
    let (recs, days) = results(&db.pool, &[one_chunk]).await;
    assert_eq!(recs.len(), 36);
    assert_eq!(days.len(), 36 * 7);
    assert_eq!(
        training(&db.pool, one_chunk).await,
        training(&db.pool, many_chunks).await
    );
    assert_eq!(
        results(&db.pool, &[many_chunks]).await,
        (recs.clone(), days)
    );

    // And the same as one pass over the whole series in memory, training
    // on every listing, as the job did before it read in chunks.
    let pool = &db.pool;
    let as_of_day = load::latest_day(pool, Shard::ALL).await.unwrap().unwrap();
    let series = load::load(pool, Shard::ALL, as_of_day, whole.max_gap_days)
        .await
        .unwrap();
    let mut today: Vec<i64> = (0..series.day.len())
        .filter(|i| series.day[*i] == as_of_day)
        .map(|i| series.listing_id[i])
        .collect();
    today.dedup();
    let until = load::day_to_date(as_of_day + 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let mut conn = pool.acquire().await.unwrap();
    let shelves = forecast::shelf::latest(&mut conn, &today, until)
        .await
        .unwrap();
    // Off the async runtime, as the job computes.
    let outputs = tokio::task::spawn_blocking(move || {
        let frame = Frame::compute(series, &whole).unwrap();
        let models = Models::train(&frame, &whole, |_| true);
        forecast::recommend_all(&frame, &models, &whole, as_of_day, &shelves)
    })
    .await
    .unwrap();
    let in_memory: Vec<(i64, &str, f64, &str)> = outputs
        .iter()
        .map(|o| {
            (
                o.listing_id,
                o.claim.action.as_str(),
                o.confidence,
                o.message.as_str(),
            )
        })
        .collect();
    let stored: Vec<(i64, &str, f64, &str)> = recs
        .iter()
        .map(|r| (r.0, r.1.as_str(), r.6, r.7.as_str()))
        .collect();
    assert_eq!(stored, in_memory);
}

#[tokio::test]
async fn shards_run_through_the_queue_match_one_run_over_everything() {
    let db = sample_db().await;
    // A sample smaller than the catalogue, so it spans the shards.
    let params = Params {
        train_listings: 12,
        ..Params::default()
    };
    for i in 0..3 {
        let shard = serde_json::json!({ "shard": format!("{i}/3") });
        let (_, created) = jobs::enqueue(&db.pool, JobKind::Forecast, &shard, "test")
            .await
            .unwrap();
        assert!(created);
    }
    // A worker's loop: claim, run the job's shard, record the outcome.
    let mut ran = 0;
    while let Some(job) = jobs::claim(&db.pool, JobKind::Forecast).await.unwrap() {
        let outcome = forecast::run_job(&db.pool, &params, Shard::ALL, Some(&job)).await;
        assert!(
            matches!(outcome, Ok(RunOutcome::Completed { .. })),
            "{outcome:?}"
        );
        let message = format!("{outcome:?}");
        jobs::finish(&db.pool, job.id, Ok(message)).await.unwrap();
        ran += 1;
    }
    assert_eq!(ran, 3);
    let shards: Vec<String> = sqlx::query_scalar(
        "SELECT shard FROM forecast_runs WHERE status = 'succeeded' ORDER BY shard",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(shards, ["0/3", "1/3", "2/3"]);
    // The API reads the three together.
    let split = shelfwatch_store::recommendations::current_runs(&db.pool)
        .await
        .unwrap();
    assert_eq!(split.len(), 3);
    let from_shards = results(&db.pool, &split).await;
    assert_eq!(from_shards.0.len(), 36);

    let (whole, _) = completed(&db.pool, &params, Shard::ALL).await;
    assert_eq!(results(&db.pool, &[whole]).await, from_shards);
    // Every run learnt from the same 12 listings.
    for run in split {
        assert_eq!(training(&db.pool, run).await.0, 12);
    }
}

#[tokio::test]
async fn a_job_names_a_shard_or_takes_the_workers() {
    let db = crate::support::TestDb::new().await;
    let mine = Shard { index: 1, count: 2 };
    let shard_of = |params: serde_json::Value| {
        let pool = db.pool.clone();
        async move {
            let (job, _) = jobs::enqueue(&pool, JobKind::Forecast, &params, "test")
                .await
                .unwrap();
            forecast::job_shard(Some(&job), mine)
        }
    };
    assert_eq!(
        shard_of(serde_json::json!({ "shard": "2/5" }))
            .await
            .unwrap(),
        Shard { index: 2, count: 5 }
    );
    assert_eq!(shard_of(serde_json::json!({})).await.unwrap(), mine);
    assert!(
        shard_of(serde_json::json!({ "shard": "5/5" }))
            .await
            .is_err()
    );
    assert!(shard_of(serde_json::json!({ "shard": 3 })).await.is_err());
    assert_eq!(forecast::job_shard(None, mine).unwrap(), mine);
}

#[tokio::test]
async fn the_training_sample_is_capped() {
    let db = sample_db().await;
    let (full, _) = completed(&db.pool, &Params::default(), Shard::ALL).await;
    let (listings, rows) = training(&db.pool, full).await;
    assert_eq!(listings, 36, "a small catalogue is sampled whole");
    let capped = Params {
        train_listings: 3,
        ..Params::default()
    };
    let (run, series) = completed(&db.pool, &capped, Shard::ALL).await;
    // Every listing is still forecast.
    assert_eq!(series, 36);
    let (capped_listings, capped_rows) = training(&db.pool, run).await;
    assert_eq!(capped_listings, 3);
    // At most one row per day of history for each of the 3.
    let span: i64 = sqlx::query_scalar(
        "SELECT (extract(epoch FROM max(day) - min(day)) / 86400)::bigint + 1 FROM price_daily",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(
        capped_rows > 0 && capped_rows <= 3 * span && capped_rows < rows,
        "{capped_rows} rows of 3 listings over {span} days; {rows} uncapped"
    );
}
