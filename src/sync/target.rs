//! Writing mapped records to a destination object: in batches where the API has a batch
//! endpoint, one by one otherwise. Every write carries an idempotency key, so a write
//! repeated after a crash or a lost answer does not create twice.

use super::{Exchange, Fault, rate};
use crate::connectors::catalogue::{ObjectSpec, Provider};
use crate::domain::{ConnectionId, TenantCtx, WriteMode};
use crate::services::App;
use crate::services::connections::{self, ApiCall};
use serde_json::{Map, Value as Json, json};
use serde_json_path::JsonPath;

/// A destination object of a connection.
pub struct Target {
    /// Connection.
    pub connection: ConnectionId,
    /// Provider.
    pub provider: &'static Provider,
    /// Object.
    pub object: &'static ObjectSpec,
    /// Write mode.
    pub mode: WriteMode,
    /// Field matching existing records (update, upsert).
    pub key_field: String,
}

/// A record to write.
pub struct Item {
    /// The mapped record.
    pub record: Map<String, Json>,
    /// The destination's id for it, when an earlier run created it.
    pub dest_id: Option<String>,
}

/// What happened to one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted; the destination's id when it said.
    Written(Option<String>),
    /// Refused by the destination (validation and the like): a dead letter.
    Rejected(String),
}

/// What one write call did.
pub struct Written {
    /// One outcome per item, in order.
    pub outcomes: Vec<Outcome>,
    /// The HTTP exchanges.
    pub exchanges: Vec<Exchange>,
}

impl Target {
    /// Why this destination cannot be written in this mode, if it cannot.
    pub fn unsupported(object: &ObjectSpec, mode: WriteMode) -> Option<String> {
        let batch_any_mode = object.batch_path.is_some() && object.batch_mode_key.is_some();
        let ok = match mode {
            WriteMode::Create => object.write_path.is_some() || object.batch_path.is_some(),
            WriteMode::Update => object.update_path.is_some() || batch_any_mode,
            WriteMode::Upsert => batch_any_mode,
        };
        (!ok).then(|| {
            format!(
                "{} cannot be written in {} mode.",
                object.name,
                mode.label().to_lowercase()
            )
        })
    }

    /// Largest batch the destination takes.
    pub fn batch_max(&self) -> u32 {
        if self.object.batch_path.is_some() {
            self.object.batch_max.unwrap_or(100).max(1)
        } else {
            1
        }
    }

    /// Writes the items. A transport failure or 429/5xx fails the whole call (the caller
    /// retries it with the same idempotency key); refused records come back as
    /// [`Outcome::Rejected`].
    pub async fn write(
        &self,
        app: &App,
        ctx: &TenantCtx,
        items: Vec<Item>,
        idempotency_key: &str,
    ) -> Result<Written, Fault> {
        let mut written = Written {
            outcomes: vec![Outcome::Rejected(String::new()); items.len()],
            exchanges: Vec::new(),
        };
        // Records created before are updated by their destination id in create mode.
        let mut groups: Vec<(&'static str, Vec<usize>)> = Vec::new();
        let mode_of = |item: &Item| match (self.mode, &item.dest_id) {
            (WriteMode::Create, Some(_)) => "update",
            (WriteMode::Create, None) => "create",
            (WriteMode::Update, _) => "update",
            (WriteMode::Upsert, _) => "upsert",
        };
        for (i, item) in items.iter().enumerate() {
            let mode = mode_of(item);
            match groups.iter_mut().find(|(m, _)| *m == mode) {
                Some((_, list)) => list.push(i),
                None => groups.push((mode, vec![i])),
            }
        }
        let mut items: Vec<Option<Item>> = items.into_iter().map(Some).collect();
        for (mode, indexes) in groups {
            let group: Vec<Item> = indexes.iter().filter_map(|i| items[*i].take()).collect();
            let key = format!("{idempotency_key}-{mode}");
            let batchable = self.object.batch_path.is_some()
                && (mode == "create" || self.object.batch_mode_key.is_some());
            let outcomes = if batchable {
                self.write_batch(app, ctx, mode, &group, &key, &mut written.exchanges)
                    .await?
            } else {
                self.write_each(app, ctx, mode, &group, &key, &mut written.exchanges)
                    .await?
            };
            for (i, outcome) in indexes.into_iter().zip(outcomes) {
                written.outcomes[i] = outcome;
            }
        }
        Ok(written)
    }

    fn prepare(&self, mode: &str, item: &Item) -> Map<String, Json> {
        let mut record = item.record.clone();
        if mode == "update"
            && let Some(id) = &item.dest_id
        {
            record.insert(self.object.id_field.clone(), Json::String(id.clone()));
        }
        record
    }

    async fn write_batch(
        &self,
        app: &App,
        ctx: &TenantCtx,
        mode: &str,
        group: &[Item],
        key: &str,
        exchanges: &mut Vec<Exchange>,
    ) -> Result<Vec<Outcome>, Fault> {
        let Some(path) = self.object.batch_path.as_deref() else {
            return Err(Fault::Fatal("no batch endpoint".into()));
        };
        let records: Vec<Json> = group
            .iter()
            .map(|item| Json::Object(self.prepare(mode, item)))
            .collect();
        let mut body = Map::new();
        body.insert(
            self.object
                .batch_key
                .clone()
                .unwrap_or_else(|| "records".into()),
            Json::Array(records),
        );
        if let Some(k) = &self.object.batch_mode_key {
            body.insert(k.clone(), Json::String(mode.into()));
        }
        let body = Json::Object(body);
        rate::acquire(self.connection, self.provider.rate_limit.as_ref()).await;
        let started = std::time::Instant::now();
        let fetched = connections::call_with(
            app,
            ctx,
            self.connection,
            &ApiCall {
                method: reqwest::Method::POST,
                path,
                query: &[],
                body: Some(&body),
                headers: &[("Idempotency-Key", key.to_owned())],
            },
        )
        .await?;
        exchanges.push(Exchange {
            method: "POST".into(),
            path: path.to_owned(),
            status: fetched.status.as_u16(),
            ms: started.elapsed().as_millis() as u64,
            records: group.len(),
        });
        let what = format!("writing {}", self.object.name);
        if !fetched.status.is_success() {
            let fault = Fault::from_status(&what, &fetched);
            // A whole batch refused for its content (some APIs refuse all for one bad
            // record): halve it until the refused records stand alone. About 2·log2(n)
            // calls per bad record, where one call per record would cost n.
            let content_refused = matches!(fetched.status.as_u16(), 400 | 409 | 413 | 422);
            if matches!(fault, Fault::Fatal(_)) && content_refused && group.len() > 1 {
                let (left, right) = group.split_at(group.len() / 2);
                let mut outcomes = Box::pin(self.write_batch(
                    app,
                    ctx,
                    mode,
                    left,
                    &format!("{key}.0"),
                    exchanges,
                ))
                .await?;
                outcomes.extend(
                    Box::pin(self.write_batch(
                        app,
                        ctx,
                        mode,
                        right,
                        &format!("{key}.1"),
                        exchanges,
                    ))
                    .await?,
                );
                return Ok(outcomes);
            }
            return match fault {
                Fault::Fatal(m) => Ok(vec![Outcome::Rejected(m); group.len()]),
                other => Err(other),
            };
        }
        let answer: Json = serde_json::from_slice(&fetched.body).unwrap_or(Json::Null);
        let Some(results_path) = &self.object.batch_results_path else {
            return Ok(vec![Outcome::Written(None); group.len()]);
        };
        let results: Vec<Json> = JsonPath::parse(results_path)
            .ok()
            .and_then(|p| p.query(&answer).first().cloned())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default();
        if results.len() != group.len() {
            return Err(Fault::Fatal(format!(
                "{what}: {} results for {} records",
                results.len(),
                group.len()
            )));
        }
        Ok(results.iter().map(outcome_of).collect())
    }

    async fn write_each(
        &self,
        app: &App,
        ctx: &TenantCtx,
        mode: &str,
        group: &[Item],
        key: &str,
        exchanges: &mut Vec<Exchange>,
    ) -> Result<Vec<Outcome>, Fault> {
        let mut outcomes = Vec::with_capacity(group.len());
        for (i, item) in group.iter().enumerate() {
            let record = self.prepare(mode, item);
            let (method, path) = match mode {
                "create" => (reqwest::Method::POST, self.object.write_path.clone()),
                "update" => {
                    let id = item.dest_id.clone().or_else(|| {
                        record.get(&self.key_field).and_then(|v| match v {
                            Json::String(s) => Some(s.clone()),
                            Json::Number(n) => Some(n.to_string()),
                            _ => None,
                        })
                    });
                    let Some(id) = id else {
                        outcomes.push(Outcome::Rejected(format!(
                            "no {} to find the record to update",
                            self.key_field
                        )));
                        continue;
                    };
                    let method = self
                        .object
                        .update_method
                        .as_deref()
                        .and_then(|m| m.parse().ok())
                        .unwrap_or(reqwest::Method::PATCH);
                    (
                        method,
                        self.object.update_path.as_ref().map(|p| {
                            p.replace(
                                "{id}",
                                &url::form_urlencoded::byte_serialize(id.as_bytes())
                                    .collect::<String>(),
                            )
                        }),
                    )
                }
                _ => (reqwest::Method::POST, None),
            };
            let Some(path) = path else {
                outcomes.push(Outcome::Rejected(format!(
                    "cannot {mode} {}",
                    self.object.name
                )));
                continue;
            };
            let body = match &self.object.write_body_key {
                Some(k) => json!({ k: record }),
                None => Json::Object(record),
            };
            rate::acquire(self.connection, self.provider.rate_limit.as_ref()).await;
            let started = std::time::Instant::now();
            let fetched = connections::call_with(
                app,
                ctx,
                self.connection,
                &ApiCall {
                    method: method.clone(),
                    path: &path,
                    query: &[],
                    body: Some(&body),
                    headers: &[("Idempotency-Key", format!("{key}-{i}"))],
                },
            )
            .await?;
            exchanges.push(Exchange {
                method: method.to_string(),
                path: self
                    .object
                    .update_path
                    .clone()
                    .filter(|_| mode == "update")
                    .unwrap_or(path),
                status: fetched.status.as_u16(),
                ms: started.elapsed().as_millis() as u64,
                records: 1,
            });
            if fetched.status.is_success() {
                let answer: Json = serde_json::from_slice(&fetched.body).unwrap_or(Json::Null);
                let id = answer
                    .get(&self.object.id_field)
                    .or_else(|| {
                        self.object
                            .write_body_key
                            .as_ref()
                            .and_then(|k| answer.get(k))
                            .and_then(|inner| inner.get(&self.object.id_field))
                    })
                    .and_then(id_text);
                outcomes.push(Outcome::Written(id));
            } else {
                match Fault::from_status(&format!("writing {}", self.object.name), &fetched) {
                    Fault::Fatal(m) => outcomes.push(Outcome::Rejected(m)),
                    other => return Err(other),
                }
            }
        }
        Ok(outcomes)
    }
}

fn id_text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One per-record result of a batch.
fn outcome_of(result: &Json) -> Outcome {
    let status = result.get("status").and_then(Json::as_str).unwrap_or("ok");
    match status {
        "created" | "updated" | "ok" | "success" | "unchanged" => {
            Outcome::Written(result.get("id").and_then(id_text))
        }
        other => {
            let detail = result
                .get("fields")
                .or_else(|| result.get("error"))
                .or_else(|| result.get("message"))
                .map(|d| d.to_string())
                .unwrap_or_default();
            Outcome::Rejected(format!("{other} {detail}").trim().to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_results_become_outcomes() {
        assert_eq!(
            outcome_of(&json!({"status": "created", "id": "cus_1"})),
            Outcome::Written(Some("cus_1".into()))
        );
        assert_eq!(
            outcome_of(&json!({"status": "invalid", "fields": {"email": "is required"}})),
            Outcome::Rejected(r#"invalid {"email":"is required"}"#.into())
        );
    }
}
