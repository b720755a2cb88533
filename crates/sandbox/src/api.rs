//! The sandbox CRM (`/sandbox/crm/…`: contacts, companies, deals) and ERP
//! (`/sandbox/erp/…`: customers, orders, invoices) APIs.

use crate::support::now;
use crate::{Sandbox, db, oauth};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::TransactionTrait;
use serde::Deserialize;
use serde_json::{Map, Value, json};

const MAX_PAGE: u64 = 1000;
const MAX_BATCH: usize = 1000;

/// The objects each API serves.
fn object_key(api: &str, object: &str) -> Option<String> {
    let known = match api {
        "crm" => ["contacts", "companies", "deals"].contains(&object),
        "erp" => ["customers", "orders", "invoices"].contains(&object),
        _ => false,
    };
    known.then(|| format!("{api}.{object}"))
}

fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .json(json!({ "error": code, "message": message }))
}

/// Authentication, rate limit, injected latency and faults: everything a request to a
/// real SaaS API can run into. Returns the object key.
async fn admit(
    req: &HttpRequest,
    sandbox: &Sandbox,
    api: &str,
    object: &str,
    write: bool,
) -> Result<String, HttpResponse> {
    let key = object_key(api, object).ok_or_else(|| error(404, "not_found", "no such object"))?;
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    let Some(scopes) = oauth::check_access(sandbox, &bearer).await else {
        return Err(HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""))
            .json(json!({ "error": "invalid_token", "message": "the access token is missing, expired or revoked" })));
    };
    let needed = format!("{api}.{}", if write { "write" } else { "read" });
    if !scopes.contains(&needed) {
        return Err(error(
            403,
            "insufficient_scope",
            &format!("this token lacks the {needed} scope"),
        ));
    }
    let limit = sandbox.settings.rate_limit;
    if limit > 0 {
        let second = now().timestamp() as u64;
        let over = match sandbox.rate.lock() {
            Ok(mut windows) => {
                if windows.len() > 10_000 {
                    // Forget windows of earlier seconds: they no longer limit anything.
                    windows.retain(|_, (s, _)| *s == second);
                }
                let entry = windows
                    .entry(crate::support::digest(&bearer))
                    .or_insert((second, 0));
                if entry.0 != second {
                    *entry = (second, 0);
                }
                entry.1 += 1;
                entry.1 > limit
            }
            Err(_) => false,
        };
        if over {
            sandbox.hit("api.rate_limited");
            return Err(HttpResponse::TooManyRequests()
                .insert_header((header::RETRY_AFTER, "1"))
                .json(json!({ "error": "rate_limited", "message": "too many requests; retry after 1 second" })));
        }
    }
    if let Some(status) = sandbox.outage(api) {
        sandbox.hit("api.outage_answers");
        return Err(error(
            status,
            "outage",
            "simulated outage: the service is down",
        ));
    }
    if !sandbox.settings.latency.is_zero() {
        tokio::time::sleep(sandbox.settings.latency).await;
    }
    if write && !sandbox.settings.write_latency.is_zero() {
        tokio::time::sleep(sandbox.settings.write_latency).await;
    }
    if sandbox.settings.error_rate > 0.0 && rand::random::<f64>() < sandbox.settings.error_rate {
        sandbox.hit("api.injected_faults");
        return Err(error(
            503,
            "unavailable",
            "injected fault: the service is temporarily unavailable",
        ));
    }
    sandbox.hit(if write { "api.writes" } else { "api.reads" });
    Ok(key)
}

/// List query.
#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<u64>,
    cursor: Option<String>,
    updated_since: Option<String>,
    /// Only the record with this `external_id` (how a client checks whether a create it
    /// lost the answer to has landed).
    external_id: Option<String>,
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("seq:")?
        .parse()
        .ok()
}

/// GET /sandbox/{api}/{object}?limit&cursor&updated_since (or ?external_id)
pub async fn list(
    req: HttpRequest,
    sandbox: web::Data<Sandbox>,
    path: web::Path<(String, String)>,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let (api, object) = path.into_inner();
    let key = match admit(&req, &sandbox, &api, &object, false).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    if let Some(external_id) = query.external_id.as_deref() {
        return match db::find_by_key(&sandbox.db, &key, external_id).await {
            Ok(found) => {
                let mut body = String::from("{\"data\":[");
                if let Some(r) = found {
                    r.write_json(&mut body);
                }
                body.push_str("],\"next_cursor\":null}");
                json_response(body)
            }
            Err(_) => error(500, "internal", "storage failed"),
        };
    }
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let after = match query.cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => match decode_cursor(c) {
            Some(seq) => seq,
            None => return error(400, "bad_cursor", "the cursor is not valid"),
        },
    };
    let since = match query.updated_since.as_deref() {
        None | Some("") => None,
        Some(s) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&chrono::Utc)),
            Err(_) => {
                return error(
                    400,
                    "bad_updated_since",
                    "updated_since must be an RFC 3339 timestamp",
                );
            }
        },
    };
    // Like many APIs, the first page reports the total, so clients can show progress.
    let total = if after == 0 {
        db::count_since(&sandbox.db, &key, since).await.ok()
    } else {
        None
    };
    match db::list(&sandbox.db, &key, after, since, limit).await {
        Ok(records) => {
            let next = (records.len() as u64 == limit)
                .then(|| {
                    records
                        .last()
                        .map(|r| URL_SAFE_NO_PAD.encode(format!("seq:{}", r.seq)))
                })
                .flatten();
            let mut body = String::with_capacity(
                64 + records.iter().map(|r| r.data.len() + 96).sum::<usize>(),
            );
            body.push_str("{\"data\":[");
            for (i, r) in records.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                r.write_json(&mut body);
            }
            body.push_str(&format!(
                "],\"next_cursor\":{},\"total\":{}}}",
                json!(next),
                json!(total)
            ));
            json_response(body)
        }
        Err(_) => error(500, "internal", "storage failed"),
    }
}

fn json_response(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(header::ContentType::json())
        .body(body)
}

/// GET /sandbox/{api}/{object}/{id}
pub async fn show(
    req: HttpRequest,
    sandbox: web::Data<Sandbox>,
    path: web::Path<(String, String, String)>,
) -> HttpResponse {
    let (api, object, id) = path.into_inner();
    let key = match admit(&req, &sandbox, &api, &object, false).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    match db::find(&sandbox.db, &key, &id).await {
        Ok(Some(r)) => {
            let mut body = String::new();
            r.write_json(&mut body);
            json_response(body)
        }
        Ok(None) => error(404, "not_found", "no such record"),
        Err(_) => error(500, "internal", "storage failed"),
    }
}

/// The validation rules of each object: required text fields, e-mail fields, and
/// non-negative numbers.
fn validate(key: &str, record: &Map<String, Value>) -> Result<(), Map<String, Value>> {
    let (required, emails, amounts): (&[&str], &[&str], &[&str]) = match key {
        "crm.contacts" => (&["name", "email"], &["email"], &[]),
        "crm.companies" => (&["name"], &[], &[]),
        "crm.deals" => (&["title"], &[], &["amount"]),
        "erp.customers" => (&["name", "email"], &["email"], &[]),
        "erp.orders" => (&["customer_id"], &[], &["total"]),
        "erp.invoices" => (&["order_id"], &[], &["amount"]),
        _ => (&[], &[], &[]),
    };
    let mut fields = Map::new();
    for f in required {
        let present = match record.get(*f) {
            Some(Value::String(s)) => !s.trim().is_empty(),
            Some(Value::Null) | None => false,
            Some(_) => true,
        };
        if !present {
            fields.insert((*f).into(), "is required".into());
        }
    }
    for f in emails {
        if let Some(Value::String(s)) = record.get(*f)
            && !crate::support::is_email(s)
        {
            fields.insert((*f).into(), "is not a valid e-mail address".into());
        }
    }
    for f in amounts {
        match record.get(*f) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) if n.as_f64().is_some_and(|v| v >= 0.0) => {}
            Some(_) => {
                fields.insert((*f).into(), "must be a number ≥ 0".into());
            }
        }
    }
    if fields.is_empty() {
        Ok(())
    } else {
        Err(fields)
    }
}

fn clean(mut record: Map<String, Value>) -> Map<String, Value> {
    record.remove("id");
    record.remove("updated_at");
    record
}

fn new_id(key: &str) -> String {
    let prefix = key
        .split('.')
        .nth(1)
        .and_then(|o| o.get(..3))
        .unwrap_or("rec");
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Outcome of writing one record.
enum Written {
    Created(String),
    Updated(String),
    Invalid(Map<String, Value>),
    Missing,
}

async fn write_one<C: sea_orm::ConnectionTrait>(
    db: &C,
    key: &str,
    mode: &str,
    id: Option<&str>,
    record: Map<String, Value>,
) -> Result<Written, sea_orm::DbErr> {
    let record = clean(record);
    let existing = match (mode, id) {
        ("update", Some(id)) => db::find(db, key, id).await?,
        ("update", None) => match record.get("external_id").and_then(Value::as_str) {
            Some(k) => db::find_by_key(db, key, k).await?,
            None => None,
        },
        ("upsert", _) => match record.get("external_id").and_then(Value::as_str) {
            Some(k) => db::find_by_key(db, key, k).await?,
            None => None,
        },
        _ => None,
    };
    match (mode, existing) {
        ("update", None) => Ok(Written::Missing),
        (_, Some(found)) => {
            let mut merged = found.fields();
            merged.extend(record);
            if let Err(fields) = validate(key, &merged) {
                return Ok(Written::Invalid(fields));
            }
            db::save(db, key, &found.id, &merged, now()).await?;
            Ok(Written::Updated(found.id))
        }
        (_, None) => {
            if let Err(fields) = validate(key, &record) {
                return Ok(Written::Invalid(fields));
            }
            let id = new_id(key);
            db::save(db, key, &id, &record, now()).await?;
            Ok(Written::Created(id))
        }
    }
}

/// Writes a batch with a few statements in all rather than several per record, the way
/// a SaaS bulk endpoint does. Records later in the batch see earlier ones.
async fn write_batch<C: sea_orm::ConnectionTrait>(
    db: &C,
    key: &str,
    mode: &str,
    records: Vec<Map<String, Value>>,
) -> Result<Vec<Value>, sea_orm::DbErr> {
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let ids: Vec<String> = records.iter().filter_map(|r| text(r.get("id"))).collect();
    let keys: Vec<String> = records
        .iter()
        .filter_map(|r| text(r.get("external_id")))
        .collect();
    let mut by_id = if mode == "update" {
        db::find_many(db, key, &ids, false).await?
    } else {
        Default::default()
    };
    let mut by_key: std::collections::HashMap<String, String> = if mode == "create" {
        Default::default()
    } else {
        db::find_many(db, key, &keys, true)
            .await?
            .into_iter()
            .map(|(k, r)| {
                let id = r.id.clone();
                by_id.insert(id.clone(), r);
                (k, id)
            })
            .collect()
    };
    let mut current: std::collections::HashMap<String, Map<String, Value>> =
        by_id.into_iter().map(|(id, r)| (id, r.fields())).collect();
    let mut order: Vec<String> = Vec::new();
    let mut written = std::collections::HashSet::new();
    let mut results = Vec::with_capacity(records.len());
    for (index, record) in records.into_iter().enumerate() {
        let id = text(record.get("id"));
        let record = clean(record);
        let ext = text(record.get("external_id"));
        let existing = match mode {
            "update" => id
                .filter(|i| current.contains_key(i))
                .or_else(|| ext.as_ref().and_then(|k| by_key.get(k).cloned())),
            "upsert" => ext.as_ref().and_then(|k| by_key.get(k).cloned()),
            _ => None,
        };
        let (target, data, created) = match (mode, existing) {
            ("update", None) => {
                results.push(json!({ "index": index, "status": "not_found" }));
                continue;
            }
            (_, Some(found)) => {
                let mut merged = current.get(&found).cloned().unwrap_or_default();
                merged.extend(record);
                (found, merged, false)
            }
            (_, None) => (new_id(key), record, true),
        };
        if let Err(fields) = validate(key, &data) {
            results.push(json!({ "index": index, "status": "invalid", "fields": fields }));
            continue;
        }
        if let Some(k) = text(data.get("external_id")) {
            by_key.insert(k, target.clone());
        }
        if written.insert(target.clone()) {
            order.push(target.clone());
        }
        current.insert(target.clone(), data);
        let status = if created { "created" } else { "updated" };
        results.push(json!({ "index": index, "status": status, "id": target }));
    }
    let rows: Vec<(String, Map<String, Value>)> = order
        .into_iter()
        .filter_map(|id| current.remove(&id).map(|d| (id, d)))
        .collect();
    db::save_many(db, key, &rows, now()).await?;
    Ok(results)
}

fn single_response(written: Written, sandbox_key: &str) -> HttpResponse {
    let _ = sandbox_key;
    match written {
        Written::Created(id) => HttpResponse::Created().json(json!({ "id": id, "status": "created" })),
        Written::Updated(id) => HttpResponse::Ok().json(json!({ "id": id, "status": "updated" })),
        Written::Invalid(fields) => HttpResponse::UnprocessableEntity()
            .json(json!({ "error": "validation_failed", "message": "the record is not valid", "fields": fields })),
        Written::Missing => error(404, "not_found", "no such record"),
    }
}

/// POST /sandbox/{api}/{object} — create one record.
pub async fn create(
    req: HttpRequest,
    sandbox: web::Data<Sandbox>,
    path: web::Path<(String, String)>,
    body: web::Json<Map<String, Value>>,
) -> HttpResponse {
    let (api, object) = path.into_inner();
    let key = match admit(&req, &sandbox, &api, &object, true).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    let idempotency = idempotency_key(&req, &sandbox, &key);
    if let Some(k) = &idempotency
        && let Ok(Some(stored)) = db::idempotent_response(&sandbox.db, k).await
    {
        return replayed(&stored);
    }
    let outcome = async {
        let txn = sandbox.db.begin().await?;
        let written = write_one(&txn, &key, "create", None, body.into_inner()).await?;
        if let (Some(k), Written::Created(id)) = (&idempotency, &written) {
            let stored = json!({ "status": 201, "body": { "id": id, "status": "created" } });
            db::remember_response(&txn, k, &stored.to_string()).await?;
        }
        txn.commit().await?;
        Ok::<_, sea_orm::DbErr>(written)
    }
    .await;
    match outcome {
        Ok(w) => lost_answer(&sandbox).unwrap_or_else(|| single_response(w, &key)),
        Err(_) => error(500, "internal", "storage failed"),
    }
}

/// PATCH /sandbox/{api}/{object}/{id} — update one record.
pub async fn update(
    req: HttpRequest,
    sandbox: web::Data<Sandbox>,
    path: web::Path<(String, String, String)>,
    body: web::Json<Map<String, Value>>,
) -> HttpResponse {
    let (api, object, id) = path.into_inner();
    let key = match admit(&req, &sandbox, &api, &object, true).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    match write_one(&sandbox.db, &key, "update", Some(&id), body.into_inner()).await {
        Ok(w) => single_response(w, &key),
        Err(_) => error(500, "internal", "storage failed"),
    }
}

/// Batch request: `mode` is create, update (by `id` or `external_id`) or upsert (by
/// `external_id`).
#[derive(Deserialize)]
pub struct BatchRequest {
    #[serde(default = "create_mode")]
    mode: String,
    records: Vec<Map<String, Value>>,
}

fn create_mode() -> String {
    "create".into()
}

/// POST /sandbox/{api}/{object}/batch — per-record results; invalid records do not fail
/// the others.
pub async fn batch(
    req: HttpRequest,
    sandbox: web::Data<Sandbox>,
    path: web::Path<(String, String)>,
    body: web::Json<BatchRequest>,
) -> HttpResponse {
    let (api, object) = path.into_inner();
    let key = match admit(&req, &sandbox, &api, &object, true).await {
        Ok(k) => k,
        Err(r) => return r,
    };
    // Every batch that reached the handler, repeats included (tests count re-sends).
    sandbox.hit("api.batch_requests");
    let request = body.into_inner();
    if !["create", "update", "upsert"].contains(&request.mode.as_str()) {
        return error(400, "bad_mode", "mode must be create, update or upsert");
    }
    if request.records.len() > MAX_BATCH {
        return error(
            413,
            "batch_too_large",
            &format!("at most {MAX_BATCH} records per batch"),
        );
    }
    let idempotency = idempotency_key(&req, &sandbox, &key);
    if let Some(k) = &idempotency
        && let Ok(Some(stored)) = db::idempotent_response(&sandbox.db, k).await
    {
        return replayed(&stored);
    }
    // One transaction per batch: all of it lands, with its idempotency key, or none.
    let outcome = async {
        let txn = sandbox.db.begin().await?;
        // Write first, so the transaction holds the write lock before it reads: a
        // read-then-write transaction can fail on SQLite when another writer commits
        // in between.
        db::bump(&txn, "api.batches", 1).await?;
        let results = write_batch(&txn, &key, &request.mode, request.records).await?;
        if sandbox.settings.all_or_none {
            let refused: Vec<&Value> = results
                .iter()
                .filter(|r| !matches!(r["status"].as_str(), Some("created" | "updated")))
                .collect();
            if !refused.is_empty() {
                // Dropping the transaction writes nothing of the batch.
                return Ok(Err(json!({
                    "error": "validation_failed",
                    "message": format!("{} of the batch's records are invalid; nothing was written", refused.len()),
                    "errors": refused,
                })));
            }
        }
        // Printed once, for the answer and the stored copy alike.
        let body = json!({ "results": results }).to_string();
        if let Some(k) = &idempotency {
            db::remember_response(&txn, k, &format!("{{\"status\":200,\"body\":{body}}}")).await?;
        }
        txn.commit().await?;
        Ok::<_, sea_orm::DbErr>(Ok(body))
    }
    .await;
    match outcome {
        Ok(Ok(body)) => lost_answer(&sandbox).unwrap_or_else(|| json_response(body)),
        Ok(Err(refusal)) => HttpResponse::UnprocessableEntity().json(refusal),
        Err(_) => error(500, "internal", "storage failed"),
    }
}

/// The `Idempotency-Key` header, scoped to the object (none when the sandbox is set to
/// ignore it).
fn idempotency_key(req: &HttpRequest, sandbox: &Sandbox, object: &str) -> Option<String> {
    if !sandbox.settings.idempotency {
        return None;
    }
    req.headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .map(|k| format!("{object}:{k}"))
}

/// A write that was applied, answered as if its answer never made it back (a gateway
/// timing out on a slow backend), when the sandbox is set to lose some.
fn lost_answer(sandbox: &Sandbox) -> Option<HttpResponse> {
    let rate = sandbox.settings.lost_answer_rate;
    (rate > 0.0 && rand::random::<f64>() < rate).then(|| {
        sandbox.hit("api.lost_answers");
        error(
            504,
            "gateway_timeout",
            "the upstream service did not answer in time",
        )
    })
}

/// The stored answer to a repeated request, marked as a replay.
fn replayed(stored: &str) -> HttpResponse {
    let stored: Value = serde_json::from_str(stored).unwrap_or(Value::Null);
    let status = stored
        .get("status")
        .and_then(Value::as_u64)
        .and_then(|s| actix_web::http::StatusCode::from_u16(s as u16).ok())
        .unwrap_or(actix_web::http::StatusCode::OK);
    HttpResponse::build(status)
        .insert_header(("Idempotent-Replayed", "true"))
        .json(stored.get("body").cloned().unwrap_or(Value::Null))
}

/// A simulated outage.
#[derive(Deserialize)]
pub struct Outage {
    api: String,
    /// The status every call answers (500–599, 429 or 410); 0 ends the outage.
    status: u16,
}

/// POST /sandbox/outages — starts or ends a simulated outage of one API, to try alerts
/// and retries. Needs the sandbox client secret as bearer token.
pub async fn set_outage(
    req: HttpRequest,
    sandbox: web::Data<Sandbox>,
    body: web::Json<Outage>,
) -> HttpResponse {
    use subtle::ConstantTimeEq;
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !bool::from(bearer.as_bytes().ct_eq(sandbox.client.secret.as_bytes())) {
        return error(401, "unauthorized", "the sandbox client secret is required");
    }
    if !matches!(body.api.as_str(), "crm" | "erp")
        || !(body.status == 0
            || body.status == 410
            || body.status == 429
            || (500..600).contains(&body.status))
    {
        return error(
            422,
            "invalid",
            "api must be crm or erp; status 0, 410, 429 or 5xx",
        );
    }
    if let Ok(mut outages) = sandbox.outages.lock() {
        if body.status == 0 {
            outages.remove(&body.api);
        } else {
            outages.insert(body.api.clone(), body.status);
        }
    }
    HttpResponse::NoContent().finish()
}

/// GET /sandbox/stats — counters and record counts (no secrets), for tests and demos.
pub async fn stats(sandbox: web::Data<Sandbox>) -> HttpResponse {
    let mut counters = db::counters(&sandbox.db).await.unwrap_or_default();
    counters.extend(sandbox.hits());
    let mut records = Map::new();
    for key in [
        "crm.contacts",
        "crm.companies",
        "crm.deals",
        "erp.customers",
        "erp.orders",
        "erp.invoices",
    ] {
        records.insert(
            key.into(),
            db::count(&sandbox.db, key).await.unwrap_or(0).into(),
        );
    }
    HttpResponse::Ok().json(json!({
        "counters": counters.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "records": records,
    }))
}
