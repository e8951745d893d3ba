use crate::support::TestDb;
use shelfwatch_store::db::{self, Flavour};

#[tokio::test]
async fn fresh_database_gets_the_native_schema() {
    let db = TestDb::new().await;
    assert_eq!(db::flavour(&db.pool).await.unwrap(), Flavour::Native);
    assert!(db::migrations_current(&db.pool).await.unwrap());
    let partitioned: bool = sqlx::query_scalar(
        "SELECT relkind = 'p' FROM pg_class WHERE relname = 'price_observations'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(partitioned, "price_observations is range-partitioned");
    // Partitions for this month and the next ones exist before any data.
    let parts: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'price_observations'::regclass",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(parts >= 4, "{parts} partitions");
}

#[tokio::test]
async fn migrating_again_changes_nothing() {
    let db = TestDb::new().await;
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    db::migrate(&db.pool).await.unwrap();
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(before, after);
}

#[tokio::test]
async fn two_processes_migrating_at_once_both_succeed() {
    let db = TestDb::empty().await;
    let a = crate::support::pool(&db.url, 2).await;
    let b = crate::support::pool(&db.url, 2).await;
    let (ra, rb) = tokio::join!(db::migrate(&a), db::migrate(&b));
    assert_eq!(ra.unwrap(), Flavour::Native);
    assert_eq!(rb.unwrap(), Flavour::Native);
    let flavours: i64 =
        sqlx::query_scalar("SELECT count(*) FROM shelfwatch_meta WHERE key = 'flavour'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(flavours, 1);
}

#[tokio::test]
async fn native_time_bucket_matches_timescaledb_semantics() {
    let db = TestDb::new().await;
    let (day, week): (String, String) = sqlx::query_as(
        "SELECT to_char(time_bucket('1 day', '2026-03-04 23:59:59+00'::timestamptz) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'),
                to_char(time_bucket('7 days', '2026-03-04 12:00+00'::timestamptz) AT TIME ZONE 'UTC', 'YYYY-MM-DD Dy')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(day, "2026-03-04 00:00");
    // TimescaleDB buckets weeks from Monday 2000-01-03.
    assert_eq!(week, "2026-03-02 Mon");
}

#[tokio::test]
async fn partitions_are_created_on_demand_and_dropped_for_retention() {
    let db = TestDb::new().await;
    let created: i32 =
        sqlx::query_scalar("SELECT shelfwatch_ensure_partitions('2020-01-15Z', '2020-03-01Z')")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(created, 3, "January, February and March 2020");
    let again: i32 =
        sqlx::query_scalar("SELECT shelfwatch_ensure_partitions('2020-01-15Z', '2020-03-01Z')")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(again, 0);
    let dropped: i32 =
        sqlx::query_scalar("SELECT shelfwatch_drop_partitions_before('2020-03-01Z')")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(dropped, 2, "January and February end by March 1st");
    let left: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('price_observations_p202003')::text")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(left.is_some());
}
