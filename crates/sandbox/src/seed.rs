//! Deterministic seed data: the same records, ids and timestamps on every machine.

use crate::db;
use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use serde_json::json;

const FIRST: &[&str] = &[
    "Ada",
    "Grace",
    "Alan",
    "Edsger",
    "Barbara",
    "Donald",
    "Margaret",
    "Linus",
    "Frances",
    "Dennis",
    "Radia",
    "Ken",
    "Hedy",
    "Tim",
    "Katherine",
    "John",
];
const LAST: &[&str] = &[
    "Lovelace",
    "Hopper",
    "Turing",
    "Dijkstra",
    "Liskov",
    "Knuth",
    "Hamilton",
    "Torvalds",
    "Allen",
    "Ritchie",
    "Perlman",
    "Thompson",
    "Lamarr",
    "Berners-Lee",
    "Johnson",
    "McCarthy",
];
const CITIES: &[&str] = &[
    "London", "Berlin", "Lisbon", "Toronto", "Austin", "Nairobi", "Osaka", "Sydney",
];

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Seeds the CRM once (contacts, companies, deals); the ERP starts empty so it can be a
/// sync destination. Safe to call on every start.
pub async fn seed(db: &DatabaseConnection, contacts: u32) -> Result<(), DbErr> {
    if db::count(db, "crm.contacts").await? > 0 || contacts == 0 {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let companies = (contacts / 20).max(1);
    let deals = contacts / 5;
    insert(db, "crm.companies", companies, |i| {
        (format!("com_{i:06}"), json!({ "name": format!("{} {} Ltd", LAST[i % LAST.len()], i), "city": CITIES[i % CITIES.len()], "employees": 5 + (i * 37) % 500 }))
    })
    .await?;
    insert(db, "crm.contacts", contacts, |i| {
        let first = FIRST[i % FIRST.len()];
        let last = LAST[(i / FIRST.len()) % LAST.len()];
        (
            format!("con_{i:06}"),
            json!({
                "name": format!("{first} {last}"),
                "email": format!("{}.{}.{i}@example.com", first.to_lowercase(), last.to_lowercase()),
                "phone": format!("+1-555-{:04}", i % 10_000),
                "city": CITIES[i % CITIES.len()],
                "company_id": format!("com_{:06}", i % companies as usize),
                "lifecycle_stage": (["lead", "customer", "opportunity"][i % 3]),
            }),
        )
    })
    .await?;
    insert(db, "crm.deals", deals, |i| {
        (format!("dea_{i:06}"), json!({ "title": format!("Deal {i}"), "amount": ((i * 7919) % 100_000) as f64 / 10.0, "contact_id": format!("con_{:06}", (i * 5) % contacts as usize), "stage": (["open", "won", "lost"][i % 3]) }))
    })
    .await?;
    tracing::info!(
        contacts,
        companies,
        deals,
        ms = started.elapsed().as_millis() as u64,
        "sandbox seeded"
    );
    Ok(())
}

async fn insert(
    db: &DatabaseConnection,
    object: &str,
    count: u32,
    make: impl Fn(usize) -> (String, serde_json::Value),
) -> Result<(), DbErr> {
    const CHUNK: usize = 150; // 6 parameters per row stays under SQLite's parameter limit
    let count = count as usize;
    let mut start = 0;
    while start < count {
        let end = (start + CHUNK).min(count);
        let rows: Vec<_> = (start..end)
            .map(|i| {
                let (id, data) = make(i);
                (id, data, base_time() + chrono::Duration::minutes(i as i64))
            })
            .collect();
        db::insert_many(db, object, start as i64 + 1, &rows).await?;
        start = end;
    }
    db::bump(db, &format!("seq.{object}"), count as i64).await?;
    Ok(())
}
