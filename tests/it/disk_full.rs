//! A full disk under the SQLite database: the server says it is not ready while it cannot
//! write, and once space returns the same process resumes the run it was doing, losing
//! and duplicating nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::flows::{connect_both, contact_flow, create_flow, set, wait_for_run};
use crate::common::{TestApp, scalar};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A small tmpfs mounted for the test's life (mounting needs root).
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Option<SmallDisk> {
        let dir = std::env::temp_dir().join(format!("sluice-disk-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(SmallDisk { dir })
    }

    /// Writes a filler file until the disk refuses more; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

async fn readiness(app: &TestApp) -> u16 {
    app.client().get("/readyz").await.status
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("sluice.db").display())
}

#[tokio::test]
async fn a_full_disk_makes_the_server_unready_and_the_run_resumes_in_the_same_process_once_space_returns()
 {
    if crate::common::postgres_url().is_some() {
        // The scenario is SQLite's: its file shares the disk with everything else.
        return;
    }
    let Some(disk) = SmallDisk::mount(48) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root and must be able to mount a tmpfs"
        );
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let url = sqlite_url(&disk.dir);
    let data_dir = disk.dir.display().to_string();
    // The sandbox (the run's destination) keeps its database off the full disk: it
    // stands for a SaaS elsewhere, and only then is Sluice's own commit the write that
    // fails, rather than the destination's (which the run would merely retry).
    let elsewhere = tempfile::tempdir().unwrap();
    let sandbox_url = format!(
        "sqlite://{}?mode=rwc",
        elsewhere.path().join("sandbox.db").display()
    );
    let app = TestApp::spawn_with(&[
        ("SLUICE_DATABASE_URL", &url),
        ("SLUICE_SANDBOX_DATABASE_URL", &sandbox_url),
        ("SLUICE_DATA_DIR", &data_dir),
        ("SLUICE_SANDBOX_SEED_CONTACTS", "3000"),
        ("SLUICE_SANDBOX_LATENCY_MS", "40"),
    ])
    .await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(3000).await;
    let mut fields = contact_flow(&crm, &erp, "Disk full", "record.email");
    set(&mut fields, "write_mode", "create");
    set(&mut fields, "batch_size", "50");
    let flow = create_flow(&admin, &fields).await;
    assert_eq!(readiness(&app).await, 200);

    let started = admin.post_form(&format!("{flow}/run"), &[]).await;
    let run = started.location().to_owned();
    let db = app.app().store.db().clone();
    for _ in 0..400 {
        if scalar(&db, "SELECT pages FROM runs").await >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let filler = disk.fill();

    // While nothing can be written, the server says so, and the run stands still.
    let mut unready = false;
    for _ in 0..100 {
        if readiness(&app).await == 503 {
            unready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(unready, "/readyz kept answering 200 on a full disk");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(readiness(&app).await, 503, "still full, still unready");

    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let mut ready_after = None;
    for _ in 0..300 {
        if readiness(&app).await == 200 {
            ready_after = Some(freed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready_after = ready_after.expect("ready again within 30 s of space returning");
    let pages_then = scalar(&db, "SELECT pages FROM runs").await;
    let mut moved_after = None;
    for _ in 0..300 {
        if scalar(&db, "SELECT pages FROM runs").await > pages_then
            || scalar(
                &db,
                "SELECT COUNT(*) FROM runs WHERE finished_at IS NOT NULL",
            )
            .await
                > 0
        {
            moved_after = Some(freed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let moved_after = moved_after.expect("the run resumed within 30 s of space returning");
    eprintln!("ready again after {ready_after:?}; run moving again after {moved_after:?}");

    let done = wait_for_run(&admin, &run).await;
    assert!(done.body.contains("Succeeded"), "{}", done.body);
    let log = admin.get(&run).await;
    assert!(
        log.body.contains("the database did not accept writes"),
        "the run was paused, not failed: {}",
        log.body
    );
    assert_eq!(
        app.sandbox_records("erp.customers").await,
        3000,
        "none lost"
    );
    assert_eq!(app.duplicate_customers().await, 0, "none duplicated");
    app.stop().await;
}

#[tokio::test]
async fn a_connection_handed_back_inside_a_transaction_does_not_lock_out_other_writers() {
    if crate::common::postgres_url().is_some() {
        return;
    }
    let app = TestApp::spawn().await;
    let store = &app.app().store;
    {
        // What a COMMIT refused for a full disk leaves behind: a pooled connection still
        // inside the transaction the driver began (nothing queued its rollback), holding
        // SQLite's write lock.
        use sea_orm::sqlx::{Connection, Executor};
        let mut conn = store
            .db()
            .get_sqlite_connection_pool()
            .acquire()
            .await
            .unwrap();
        let mut tx = conn.begin().await.unwrap();
        tx.execute(
            "INSERT INTO leases (name, holder, expires_at) VALUES ('held', 'x', '2026-01-01')",
        )
        .await
        .unwrap();
        std::mem::forget(tx);
    }
    // Two writers at once, so that (were it still pooled) the abandoned connection could
    // serve only one of them and the other would wait for its lock.
    let writes = tokio::time::timeout(
        Duration::from_secs(3),
        futures::future::join(store.write_probe("one"), store.write_probe("two")),
    )
    .await;
    assert!(
        matches!(writes, Ok((Ok(()), Ok(())))),
        "another writer waited for the abandoned transaction: {writes:?}"
    );
    app.stop().await;
}
