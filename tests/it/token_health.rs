//! Token health across processes: many concurrent uses of one expired connection, from
//! two worker processes, make exactly one refresh call, all succeed, and the stored
//! refresh token is the newest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::TestApp;
use sea_orm::{ConnectionTrait, Statement};
use std::time::{Duration, Instant};

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    crate::common::scalar(app.app().store.db(), sql).await
}

async fn expire_tokens(app: &TestApp) {
    let db = app.app().store.db();
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "UPDATE connections SET access_expires_at = $1",
        [(sluice::store::now() - chrono::Duration::minutes(1)).into()],
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn twenty_concurrent_uses_from_two_processes_refresh_exactly_once() {
    let key = sluice::config::MasterKey::generate_base64();
    let app = TestApp::spawn_with(&[
        ("SLUICE_SANDBOX_SEED_CONTACTS", "3"),
        ("SLUICE_WORKER_CONCURRENCY", "10"),
        ("SLUICE_MASTER_KEY", &key),
    ])
    .await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let page = admin.connect_sandbox("sandbox_crm").await;
    let connection: sluice::domain::ConnectionId =
        page.trim_start_matches("/connections/").parse().unwrap();
    let tenant = sluice::domain::TenantId::from_uuid(
        scalar_uuid(&app, "SELECT tenant_id FROM connections").await,
    );
    let mut worker = app.spawn_worker(&key, &[("SLUICE_WORKER_CONCURRENCY", "10")]);

    expire_tokens(&app).await;
    for _ in 0..20 {
        app.app()
            .queue
            .push(sluice::queue::CheckConnection {
                tenant_id: tenant,
                connection_id: connection,
            })
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while scalar(
        &app,
        "SELECT COUNT(*) FROM connection_events WHERE kind = 'test_succeeded'",
    )
    .await
        < 20
    {
        assert!(Instant::now() < deadline, "not all 20 uses succeeded");
        assert_eq!(
            scalar(
                &app,
                "SELECT COUNT(*) FROM connection_events WHERE kind = 'test_failed'"
            )
            .await,
            0,
            "a use failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.sandbox_counter("token.refresh_token").await,
        1,
        "exactly one refresh call"
    );
    assert_eq!(app.sandbox_counter("refresh.reuse_detected").await, 0);

    // The stored refresh token is the newest: refreshing with it works (the sandbox would
    // revoke everything on reuse of an older one).
    expire_tokens(&app).await;
    let check = admin.post_form(&format!("{page}/test"), &[]).await;
    assert_eq!(check.status, 303);
    assert!(admin.get(&page).await.body.contains("answered HTTP 200"));
    assert_eq!(app.sandbox_counter("token.refresh_token").await, 2);
    assert_eq!(app.sandbox_counter("refresh.reuse_detected").await, 0);

    let _ = worker.kill();
    let _ = worker.wait();
    app.stop().await;
}

async fn scalar_uuid(app: &TestApp, sql: &str) -> uuid::Uuid {
    let db = app.app().store.db();
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<uuid::Uuid>(0).unwrap()
}
