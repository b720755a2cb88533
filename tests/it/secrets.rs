//! Secrets never appear in plaintext: canary credentials are planted through the UI of a
//! real `sluice serve` process, then searched for in its database files, its logs (at
//! debug level) and its pages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::Client;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test]
async fn canary_secrets_stay_out_of_the_database_logs_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("serve")
        .env("SLUICE_DATA_DIR", dir.path())
        .env("SLUICE_BIND", format!("127.0.0.1:{port}"))
        .env("SLUICE_LOG", "debug")
        .env("SLUICE_SANDBOX_SEED_CONTACTS", "3")
        .env("SLUICE_OUTBOUND_ALLOW", "127.0.0.1/32")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out_path = dir.path().join("stdout.log");
    let out_path2 = out_path.clone();
    std::thread::spawn(move || {
        let mut copy = std::fs::File::create(out_path2).unwrap();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            use std::io::Write;
            let _ = writeln!(copy, "{line}");
            if let Some(i) = line.find("/setup/") {
                let _ = tx.send(line[i..].trim().to_owned());
            }
        }
    });
    let setup = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("setup link printed");

    let canary_key = format!("canary-api-key-{}", uuid::Uuid::now_v7().simple());
    let canary_secret = format!("canary-client-secret-{}", uuid::Uuid::now_v7().simple());
    let owner =
        crate::common::complete_setup(&Client::new(&base), &setup, "ada@example.com", "Acme").await;
    assert_eq!(
        owner
            .post_form(
                "/settings/oauth-apps/hubspot",
                &[
                    ("client_id", "hub-client"),
                    ("client_secret", &canary_secret)
                ]
            )
            .await
            .status,
        303
    );
    let created = owner
        .post_form(
            "/connections/new/http_json",
            &[
                ("name", "Canary API"),
                ("field_base_url", &format!("{base}/sandbox/crm")),
                ("field_list_path", "/contacts"),
                ("field_records_path", "$.data"),
                ("api_key", &canary_key),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let page = created.location().to_owned();
    // Use it: the key is sent to the API (which refuses it), exercising the call and its logging.
    owner.post_form(&format!("{page}/test"), &[]).await;
    let token = owner.create_api_token("reader", "viewer").await;

    let mut pages = String::new();
    for path in [
        "/connections",
        page.as_str(),
        "/settings/oauth-apps",
        "/settings/oauth-apps/hubspot",
        "/settings/audit",
        "/dashboard",
    ] {
        pages.push_str(&owner.get(path).await.body);
    }
    pages.push_str(&owner.api(&token, "/api/v1/connections").await.1.to_string());
    assert!(
        pages.contains("Canary API"),
        "the pages were really fetched"
    );

    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(server.id().to_string())
        .status();
    let _ = server.wait();

    let mut logs = std::fs::read_to_string(&log_path).unwrap_or_default();
    logs.push_str(&std::fs::read_to_string(&out_path).unwrap_or_default());
    assert!(logs.contains("outbound call"), "debug logging was on");
    let mut database = Vec::new();
    for file in ["sluice.db", "sluice.db-wal"] {
        if let Ok(mut f) = std::fs::File::open(dir.path().join(file)) {
            f.read_to_end(&mut database).unwrap();
        }
    }
    assert!(!database.is_empty());
    let database = String::from_utf8_lossy(&database);
    assert!(database.contains("v1."), "credentials are stored encrypted");
    for canary in [&canary_key, &canary_secret] {
        assert!(
            !database.contains(canary.as_str()),
            "{canary} in the database"
        );
        assert!(!logs.contains(canary.as_str()), "{canary} in the logs");
        assert!(!pages.contains(canary.as_str()), "{canary} in a page");
    }
}
