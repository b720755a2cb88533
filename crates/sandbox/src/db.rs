//! The sandbox's storage: grants (codes, access and refresh tokens), records, counters.

use crate::support as tokens;
use crate::support::Marks;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, Value};

/// A stored grant.
#[derive(Debug, Clone)]
pub struct Grant {
    pub kind: String,
    pub client_id: String,
    pub family: String,
    pub scope: String,
    pub redirect_uri: Option<String>,
    pub challenge: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

fn stmt<C: ConnectionTrait>(db: &C, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(db.get_database_backend(), sql, values)
}

/// Stores a grant under the digest of its secret.
#[allow(clippy::too_many_arguments)]
pub async fn insert_grant(
    db: &DatabaseConnection,
    secret: &str,
    kind: &str,
    client_id: &str,
    family: &str,
    scope: &str,
    redirect_uri: Option<&str>,
    challenge: Option<&str>,
    expires_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        db,
        "INSERT INTO sandbox_grants (id, kind, client_id, family, scope, redirect_uri, challenge, expires_at, used, revoked) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        vec![
            tokens::digest(secret).into(),
            kind.into(),
            client_id.into(),
            family.into(),
            scope.into(),
            redirect_uri.map(str::to_owned).into(),
            challenge.map(str::to_owned).into(),
            expires_at.into(),
            false.into(),
            false.into(),
        ],
    ))
    .await
    .map(|_| ())
}

/// A grant by its secret.
pub async fn grant(db: &DatabaseConnection, secret: &str) -> Result<Option<Grant>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            db,
            "SELECT kind, client_id, family, scope, redirect_uri, challenge, expires_at, revoked FROM sandbox_grants WHERE id = $1",
            vec![tokens::digest(secret).into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Grant {
        kind: row.try_get("", "kind")?,
        client_id: row.try_get("", "client_id")?,
        family: row.try_get("", "family")?,
        scope: row.try_get("", "scope")?,
        redirect_uri: row.try_get("", "redirect_uri")?,
        challenge: row.try_get("", "challenge")?,
        expires_at: row.try_get("", "expires_at")?,
        revoked: row.try_get("", "revoked")?,
    }))
}

/// Marks a single-use grant used; false if it already was (a replay).
pub async fn use_grant(db: &DatabaseConnection, secret: &str) -> Result<bool, DbErr> {
    let result = db
        .execute_raw(stmt(
            db,
            "UPDATE sandbox_grants SET used = $1 WHERE id = $2 AND used = $3",
            vec![true.into(), tokens::digest(secret).into(), false.into()],
        ))
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Revokes every grant of a family (all tokens descending from one authorization).
pub async fn revoke_family(db: &DatabaseConnection, family: &str) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        db,
        "UPDATE sandbox_grants SET revoked = $1 WHERE family = $2",
        vec![true.into(), family.into()],
    ))
    .await
    .map(|_| ())
}

/// Adds `by` to a counter and returns the new value.
pub async fn bump<C: ConnectionTrait>(db: &C, name: &str, by: i64) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(stmt(
            db,
            "INSERT INTO sandbox_counters (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = sandbox_counters.value + $2 RETURNING value",
            vec![name.into(), by.into()],
        ))
        .await?;
    match row {
        Some(row) => row.try_get("", "value"),
        None => Err(DbErr::RecordNotFound(name.into())),
    }
}

/// All counters, for tests and the landing page.
pub async fn counters(db: &DatabaseConnection) -> Result<Vec<(String, i64)>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            db,
            "SELECT name, value FROM sandbox_counters ORDER BY name",
            vec![],
        ))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("", "name")?, r.try_get("", "value")?)))
        .collect()
}

/// A stored record.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub seq: i64,
    /// The fields as stored: a JSON object's text, without `id` and `updated_at`.
    pub data: String,
    pub updated_at: DateTime<Utc>,
}

impl Record {
    /// The stored fields.
    pub fn fields(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(&self.data).unwrap_or_default()
    }

    /// Appends the record as the API shows it (`id`, `updated_at`, then its fields) to
    /// `out`. The stored text is spliced in rather than parsed and printed again: list
    /// pages are most of what the sandbox serves during a sync.
    pub fn write_json(&self, out: &mut String) {
        out.push_str("{\"id\":");
        out.push_str(&serde_json::to_string(&self.id).unwrap_or_default());
        out.push_str(",\"updated_at\":\"");
        out.push_str(
            &self
                .updated_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        );
        out.push('"');
        let fields = self
            .data
            .trim()
            .strip_prefix('{')
            .and_then(|d| d.strip_suffix('}'))
            .map(str::trim)
            .unwrap_or_default();
        if !fields.is_empty() {
            out.push(',');
            out.push_str(fields);
        }
        out.push('}');
    }
}

fn record(row: &sea_orm::QueryResult) -> Result<Record, DbErr> {
    Ok(Record {
        id: row.try_get("", "id")?,
        seq: row.try_get("", "seq")?,
        data: row.try_get("", "data")?,
        updated_at: row.try_get("", "updated_at")?,
    })
}

/// A page of records after `after_seq`, oldest change first.
pub async fn list(
    db: &DatabaseConnection,
    object: &str,
    after_seq: i64,
    since: Option<DateTime<Utc>>,
    limit: u64,
) -> Result<Vec<Record>, DbErr> {
    let mut after_seq = after_seq;
    if let (Some(since), 0) = (since, after_seq) {
        // The first changed record's place in the feed, from the index: the feed is then
        // read from there instead of from its very beginning.
        let first = db
            .query_one_raw(stmt(
                db,
                "SELECT MIN(seq) AS first FROM sandbox_records WHERE object = $1 AND updated_at >= $2",
                vec![object.into(), since.into()],
            ))
            .await?
            .map(|r| r.try_get::<Option<i64>>("", "first"))
            .transpose()?
            .flatten();
        match first {
            Some(first) => after_seq = first - 1,
            None => return Ok(Vec::new()),
        }
    }
    let mut sql = String::from(
        "SELECT id, seq, data, updated_at FROM sandbox_records WHERE object = $1 AND seq > $2",
    );
    let mut values: Vec<Value> = vec![object.into(), after_seq.into()];
    if let Some(since) = since {
        // SQLite's unary plus keeps it walking the feed in order and filtering: with the
        // index on updated_at it would fetch and sort every changed record for each page.
        sql.push_str(match db.get_database_backend() {
            DbBackend::Sqlite => " AND +updated_at >= $3",
            _ => " AND updated_at >= $3",
        });
        values.push(since.into());
    }
    sql.push_str(&format!(" ORDER BY seq LIMIT {limit}"));
    db.query_all_raw(stmt(db, &sql, values))
        .await?
        .iter()
        .map(record)
        .collect()
}

/// One record by id.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    object: &str,
    id: &str,
) -> Result<Option<Record>, DbErr> {
    db.query_one_raw(stmt(
        db,
        "SELECT id, seq, data, updated_at FROM sandbox_records WHERE object = $1 AND id = $2",
        vec![object.into(), id.into()],
    ))
    .await?
    .as_ref()
    .map(record)
    .transpose()
}

/// One record by its `external_id` (the upsert key).
pub async fn find_by_key<C: ConnectionTrait>(
    db: &C,
    object: &str,
    key: &str,
) -> Result<Option<Record>, DbErr> {
    db.query_one_raw(stmt(
        db,
        "SELECT id, seq, data, updated_at FROM sandbox_records WHERE object = $1 AND ext_key = $2",
        vec![object.into(), key.into()],
    ))
    .await?
    .as_ref()
    .map(record)
    .transpose()
}

/// Inserts or replaces a record, giving it a new sequence number (it moves to the end of
/// the change feed) and timestamp.
pub async fn save<C: ConnectionTrait>(
    db: &C,
    object: &str,
    id: &str,
    data: &serde_json::Map<String, serde_json::Value>,
    updated_at: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let seq = bump(db, &format!("seq.{object}"), 1).await?;
    let ext_key = data.get("external_id").and_then(|v| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    db.execute_raw(stmt(
        db,
        "INSERT INTO sandbox_records (object, id, seq, data, ext_key, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (object, id) DO UPDATE SET seq = excluded.seq, data = excluded.data, ext_key = excluded.ext_key, updated_at = excluded.updated_at",
        vec![
            object.into(),
            id.into(),
            seq.into(),
            serde_json::to_string(data).unwrap_or_default().into(),
            ext_key.into(),
            updated_at.into(),
        ],
    ))
    .await?;
    Ok(seq)
}

/// Number of records of an object.
pub async fn count(db: &DatabaseConnection, object: &str) -> Result<i64, DbErr> {
    count_since(db, object, None).await
}

/// Number of records of an object changed since `since` (all without).
pub async fn count_since(
    db: &DatabaseConnection,
    object: &str,
    since: Option<DateTime<Utc>>,
) -> Result<i64, DbErr> {
    let (sql, values): (&str, Vec<Value>) = match since {
        Some(at) => (
            "SELECT COUNT(*) AS n FROM sandbox_records WHERE object = $1 AND updated_at >= $2",
            vec![object.into(), at.into()],
        ),
        None => (
            "SELECT COUNT(*) AS n FROM sandbox_records WHERE object = $1",
            vec![object.into()],
        ),
    };
    let row = db.query_one_raw(stmt(db, sql, values)).await?;
    match row {
        Some(r) => r.try_get("", "n"),
        None => Ok(0),
    }
}

/// Bulk insert for seeding: rows of (id, data, updated_at), numbered from `first_seq`.
pub async fn insert_many(
    db: &DatabaseConnection,
    object: &str,
    first_seq: i64,
    rows: &[(String, serde_json::Value, DateTime<Utc>)],
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut sql = String::from(
        "INSERT INTO sandbox_records (object, id, seq, data, ext_key, updated_at) VALUES ",
    );
    let mut marks = Marks::new(db.get_database_backend());
    let mut values: Vec<Value> = Vec::with_capacity(rows.len() * 6);
    for (i, (id, data, at)) in rows.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&marks.row(6));
        values.extend([
            object.into(),
            id.clone().into(),
            (first_seq + i as i64).into(),
            data.to_string().into(),
            Value::String(None),
            (*at).into(),
        ]);
    }
    db.execute_raw(stmt(db, &sql, values)).await.map(|_| ())
}

/// The response stored for an idempotency key, if the key was used before.
pub async fn idempotent_response<C: ConnectionTrait>(
    db: &C,
    key: &str,
) -> Result<Option<String>, DbErr> {
    db.query_one_raw(stmt(
        db,
        "SELECT response FROM sandbox_idempotency WHERE key = $1",
        vec![key.into()],
    ))
    .await?
    .map(|r| r.try_get("", "response"))
    .transpose()
}

/// Remembers the response given for an idempotency key.
pub async fn remember_response<C: ConnectionTrait>(
    db: &C,
    key: &str,
    response: &str,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        db,
        "INSERT INTO sandbox_idempotency (key, response, created_at) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
        vec![key.into(), response.into(), chrono::Utc::now().into()],
    ))
    .await
    .map(|_| ())
}

fn records_where_in<'a>(
    backend: DbBackend,
    column: &str,
    object: &str,
    values: &'a [String],
) -> impl Iterator<Item = (String, Vec<Value>)> + 'a {
    let column = column.to_owned();
    let object = object.to_owned();
    values.chunks(ROWS_PER_STATEMENT).map(move |chunk| {
        let mut marks = Marks::new(backend);
        let mut params: Vec<Value> = vec![object.clone().into()];
        params.extend(chunk.iter().map(|v| Value::from(v.clone())));
        (
            format!(
                "SELECT id, seq, data, updated_at, ext_key FROM sandbox_records WHERE object = {} AND {column} IN ({})",
                marks.one(),
                marks.list(chunk.len())
            ),
            params,
        )
    })
}

/// Records by id, or by `external_id` when `by_key`, as a map from that value.
pub async fn find_many<C: ConnectionTrait>(
    db: &C,
    object: &str,
    values: &[String],
    by_key: bool,
) -> Result<std::collections::HashMap<String, Record>, DbErr> {
    let mut out = std::collections::HashMap::new();
    let column = if by_key { "ext_key" } else { "id" };
    for (sql, params) in records_where_in(db.get_database_backend(), column, object, values) {
        for row in db.query_all_raw(stmt(db, &sql, params)).await? {
            let found = record(&row)?;
            let k: String = if by_key {
                row.try_get("", "ext_key")?
            } else {
                found.id.clone()
            };
            out.insert(k, found);
        }
    }
    Ok(out)
}

/// Rows per multi-row statement: a whole batch (at most 1,000 records) in one. Six values a
/// row stay within SQLite's 32,766 and PostgreSQL's 65,535 bound values.
const ROWS_PER_STATEMENT: usize = 1000;

/// Inserts or replaces many records with one sequence allocation and multi-row statements.
/// Ids must be distinct.
pub async fn save_many<C: ConnectionTrait>(
    db: &C,
    object: &str,
    rows: &[(String, serde_json::Map<String, serde_json::Value>)],
    updated_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    let last = bump(db, &format!("seq.{object}"), rows.len() as i64).await?;
    let first = last - rows.len() as i64 + 1;
    for (c, chunk) in rows.chunks(ROWS_PER_STATEMENT).enumerate() {
        let mut sql = String::from(
            "INSERT INTO sandbox_records (object, id, seq, data, ext_key, updated_at) VALUES ",
        );
        let mut marks = Marks::new(db.get_database_backend());
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 6);
        for (i, (id, data)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&marks.row(6));
            let ext_key = data.get("external_id").and_then(|v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
            values.extend([
                object.into(),
                id.clone().into(),
                (first + (c * ROWS_PER_STATEMENT + i) as i64).into(),
                serde_json::to_string(data).unwrap_or_default().into(),
                ext_key.into(),
                updated_at.into(),
            ]);
        }
        sql.push_str(
            " ON CONFLICT (object, id) DO UPDATE SET seq = excluded.seq, data = excluded.data, \
             ext_key = excluded.ext_key, updated_at = excluded.updated_at",
        );
        db.execute_raw(stmt(db, &sql, values)).await?;
    }
    Ok(())
}

/// Forgets idempotency keys older than `before` (like real APIs, after a day): a thousand
/// at a time by the `created_at` index, pausing between batches, so that writes waiting
/// for the database lock are never stuck behind one long delete.
pub async fn purge_idempotency(
    db: &DatabaseConnection,
    before: DateTime<Utc>,
) -> Result<u64, DbErr> {
    const BATCH: u64 = 1000;
    let mut removed = 0;
    loop {
        let done = db
            .execute_raw(stmt(
                db,
                "DELETE FROM sandbox_idempotency WHERE key IN \
                 (SELECT key FROM sandbox_idempotency WHERE created_at < $1 LIMIT 1000)",
                vec![before.into()],
            ))
            .await?
            .rows_affected();
        removed += done;
        if done < BATCH {
            return Ok(removed);
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(data: &str) -> Record {
        Record {
            id: "con_\"1\"".into(),
            seq: 1,
            data: data.into(),
            updated_at: DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    fn shown(record: &Record) -> serde_json::Value {
        let mut out = String::new();
        record.write_json(&mut out);
        serde_json::from_str(&out).unwrap()
    }

    #[test]
    fn a_record_is_shown_as_its_stored_fields_plus_id_and_timestamp() {
        let record = stored(r#"{"email":"a@example.com","tags":["x",{"y":1}]}"#);
        assert_eq!(
            shown(&record),
            json!({
                "id": "con_\"1\"",
                "updated_at": "2026-01-01T00:00:00.000Z",
                "email": "a@example.com",
                "tags": ["x", {"y": 1}],
            })
        );
        assert_eq!(
            shown(&stored("{}")),
            json!({ "id": "con_\"1\"", "updated_at": "2026-01-01T00:00:00.000Z" })
        );
    }
}
