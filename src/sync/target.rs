//! Writing mapped records to a destination object: in batches where the API has a batch
//! endpoint, one by one otherwise. Every write carries an idempotency key, so a write
//! repeated after a crash or a lost answer does not create twice where the destination
//! honours it; where the destination can look records up by the flow's key field, a
//! create repeated after such an ambiguity first asks which of its records already landed.

use super::{Exchange, Fault, Phase, rate};
use crate::app::App;
use crate::connectors::ConnectionError;
use crate::connectors::catalogue::{LookupSpec, ObjectSpec, Provider, UpdateFetch};
use crate::connectors::session::{ApiCall, Recent};
use crate::domain::{ConnectionId, TenantCtx, WriteMode};
use serde_json::{Map, Value as Json, json};
use serde_json_path::JsonPath;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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
    /// Field matching existing records (update, upsert); in create mode, the field an
    /// ambiguous create is looked up by (none when empty).
    pub key_field: String,
    /// The connection's values, which write templates may name (`{workspace_gid}`).
    pub values: BTreeMap<String, String>,
    /// The connection's row as last read, for the next calls.
    pub recent: Recent,
}

/// One record's write: its outcome and the exchanges it took, or what failed the write.
type OneWrite = Result<(Outcome, Vec<Exchange>), Fault>;

/// A record to write.
pub struct Item {
    /// The mapped record (shared: a write that is tried again sends it again).
    pub record: Arc<Map<String, Json>>,
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

/// What the tries of one write know about creates that may have landed unseen. Kept by
/// the caller across tries, so each try looks up only what it does not know yet.
#[derive(Default)]
pub struct Recheck {
    /// An earlier try (or execution) may have created some of the records unseen.
    suspected: AtomicBool,
    /// Records found at the destination: position in the write → destination id.
    found: Mutex<HashMap<usize, String>>,
    /// Single-record creates answered in an earlier try, by idempotency key: a try
    /// after a failure mid-group sends only the records the failure held back.
    answered: Mutex<HashMap<String, Outcome>>,
}

impl Recheck {
    /// For records an earlier execution may already have written.
    pub fn suspected() -> Self {
        let recheck = Recheck::default();
        recheck.suspect();
        recheck
    }

    fn suspect(&self) {
        self.suspected.store(true, Ordering::SeqCst);
    }

    fn is_suspected(&self) -> bool {
        self.suspected.load(Ordering::SeqCst)
    }

    fn found(&self) -> HashMap<usize, String> {
        self.found.lock().map(|f| f.clone()).unwrap_or_default()
    }

    fn remember(&self, position: usize, id: String) {
        if let Ok(mut found) = self.found.lock() {
            found.insert(position, id);
        }
    }

    fn answer_of(&self, key: &str) -> Option<Outcome> {
        self.answered.lock().ok()?.get(key).cloned()
    }

    fn remember_answer(&self, key: String, outcome: &Outcome) {
        if let Ok(mut answered) = self.answered.lock() {
            answered.insert(key, outcome.clone());
        }
    }
}

/// Whether a failed create may still have been carried out: the request went out and
/// no answer, or a server error that does not say it refused, came back. 429 and 503
/// refuse before doing anything.
fn may_have_landed(status: Option<reqwest::StatusCode>) -> bool {
    status.is_none_or(|s| s.is_server_error() && !matches!(s.as_u16(), 501 | 503))
}

/// The answer to a write call, noting on `suspect` a failure that leaves open whether
/// the write was carried out.
fn answered(
    suspect: Option<&Recheck>,
    result: Result<crate::connectors::http::Fetched, ConnectionError>,
) -> Result<crate::connectors::http::Fetched, Fault> {
    let unsure = match &result {
        Ok(fetched) => !fetched.status.is_success() && may_have_landed(Some(fetched.status)),
        Err(e) => matches!(e, ConnectionError::Transient(_)),
    };
    if unsure && let Some(recheck) = suspect {
        recheck.suspect();
    }
    Ok(result?)
}

/// What one lookup learnt: the id found, if any, and the exchange for the run log.
type Looked = Result<(Option<String>, Exchange), Fault>;

/// Lookups in flight at once for one write.
const LOOKUPS_IN_FLIGHT: usize = 8;

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
        (!object.writes(mode.as_str())).then(|| {
            format!(
                "{} cannot be written in {} mode.",
                object.name,
                mode.label().to_lowercase()
            )
        })
    }

    /// Largest batch the destination takes.
    pub fn batch_max(&self) -> u32 {
        if self.object.batch_path.is_some() || self.object.table.is_some() {
            self.object.batch_max.unwrap_or(100).max(1)
        } else {
            1
        }
    }

    /// Whether an ambiguous create can be checked at this destination before it is sent
    /// again.
    pub fn can_look_up(&self) -> Option<&'static LookupSpec> {
        self.object
            .lookup
            .as_ref()
            .filter(|l| self.mode == WriteMode::Create && l.searches(&self.key_field))
    }

    /// Writes the items. A transport failure or 429/5xx fails the whole call (the caller
    /// retries it with the same idempotency key); refused records come back as
    /// [`Outcome::Rejected`]. When `recheck` suspects that an earlier try at these items
    /// created some unseen (its answer was lost, or its worker died), records to create
    /// are looked up first, and only those not found are sent.
    pub async fn write(
        &self,
        app: &App,
        ctx: &TenantCtx,
        items: Vec<Item>,
        idempotency_key: &str,
        recheck: &Recheck,
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
        for (mode, mut indexes) in groups {
            let mut key = format!("{idempotency_key}-{mode}");
            if mode == "create"
                && recheck.is_suspected()
                && let Some(lookup) = self.can_look_up()
            {
                self.look_up(
                    app,
                    ctx,
                    lookup,
                    &items,
                    &indexes,
                    recheck,
                    &mut written.exchanges,
                )
                .await?;
                let found = recheck.found();
                let asked = indexes.len();
                let mut unsent = Vec::with_capacity(asked);
                for i in indexes {
                    match found.get(&i) {
                        Some(id) => written.outcomes[i] = Outcome::Written(Some(id.clone())),
                        None => unsent.push(i),
                    }
                }
                if unsent.len() < asked {
                    // A different body under the same key is a conflict at destinations
                    // that honour keys: what is left gets a key of its own.
                    key = format!("{key}-{}", rest_key(&unsent));
                }
                indexes = unsent;
            }
            if indexes.is_empty() {
                continue;
            }
            let group: Vec<Item> = indexes.iter().filter_map(|i| items[*i].take()).collect();
            if let Some(table) = &self.object.table {
                let outcomes = self
                    .write_table(app, ctx, table, mode, &group, &mut written.exchanges)
                    .await?;
                for (i, outcome) in indexes.into_iter().zip(outcomes) {
                    written.outcomes[i] = outcome;
                }
                continue;
            }
            let batchable = self.object.batches(mode);
            // Only a create sent again can duplicate a record.
            let suspect = (mode == "create").then_some(recheck);
            let outcomes = if batchable {
                self.write_batch(
                    app,
                    ctx,
                    mode,
                    &group,
                    &key,
                    suspect,
                    &mut written.exchanges,
                )
                .await?
            } else {
                self.write_each(
                    app,
                    ctx,
                    mode,
                    &group,
                    &key,
                    suspect,
                    &mut written.exchanges,
                )
                .await?
            };
            for (i, outcome) in indexes.into_iter().zip(outcomes) {
                written.outcomes[i] = outcome;
            }
        }
        Ok(written)
    }

    /// Looks up, a few at a time, the records at `positions` not found by an earlier try,
    /// and remembers those found. Fails with the first retryable failure, after keeping
    /// what the other lookups learnt.
    #[allow(clippy::too_many_arguments)]
    async fn look_up(
        &self,
        app: &App,
        ctx: &TenantCtx,
        lookup: &LookupSpec,
        items: &[Option<Item>],
        positions: &[usize],
        recheck: &Recheck,
        exchanges: &mut Vec<Exchange>,
    ) -> Result<(), Fault> {
        use futures::StreamExt;
        let known = recheck.found();
        // A record without a key value cannot be looked up: it is sent again.
        let unknown: Vec<(usize, String)> = positions
            .iter()
            .filter(|i| !known.contains_key(i))
            .filter_map(|i| {
                let item = items[*i].as_ref()?;
                Some((*i, item.record.get(&self.key_field).and_then(id_text)?))
            })
            .collect();
        let answers: Vec<(usize, Looked)> = futures::stream::iter(unknown)
            .map(|(i, value)| async move { (i, self.find(app, ctx, lookup, value).await) })
            .buffer_unordered(LOOKUPS_IN_FLIGHT)
            .collect()
            .await;
        let mut failure = None;
        for (i, answer) in answers {
            match answer {
                Ok((found, exchange)) => {
                    exchanges.push(exchange);
                    if let Some(id) = found {
                        recheck.remember(i, id);
                    }
                }
                Err(fault) => {
                    failure.get_or_insert(fault);
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// The id of the destination record whose key field holds `value`, if one
    /// exists. A lookup that cannot tell (an error other than 404) sends the record
    /// again rather than risk losing it; the idempotency key still guards that re-send.
    async fn find(&self, app: &App, ctx: &TenantCtx, lookup: &LookupSpec, value: String) -> Looked {
        let encoded =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let path = lookup
            .path
            .replace("{field}", &encoded(&self.key_field))
            .replace("{value}", &encoded(&value));
        let query: Vec<(String, String)> = lookup
            .query
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.replace("{field}", &self.key_field)
                        .replace("{value}", &value),
                )
            })
            .collect();
        let (fetched, ms) = rate::paced_call(
            self.provider,
            app,
            ctx,
            self.connection,
            &self.recent,
            &ApiCall {
                method: reqwest::Method::GET,
                path: &path,
                link: false,
                query: &query,
                body: None,
                headers: &[],
            },
        )
        .await;
        let fetched = fetched?;
        let exchange = Exchange {
            method: "GET".into(),
            path: lookup.path.clone(),
            status: fetched.status.as_u16(),
            ms,
            records: 1,
        };
        if fetched.status == reqwest::StatusCode::NOT_FOUND {
            return Ok((None, exchange));
        }
        let what = format!("looking up {}", self.object.name);
        if let Some(fault) = Fault::of_answer(self.provider, Phase::Write, &what, &fetched) {
            return if fault.refuses_record() {
                Ok((None, exchange))
            } else {
                Err(fault)
            };
        }
        let answer: Json = serde_json::from_slice(&fetched.body).unwrap_or(Json::Null);
        let matches = JsonPath::parse(&lookup.records_path)
            .ok()
            .and_then(|p| p.query(&answer).first().cloned())
            .unwrap_or(Json::Null);
        let candidates = match matches {
            Json::Array(records) => records,
            Json::Object(_) => vec![matches],
            _ => Vec::new(),
        };
        let found = candidates
            .iter()
            .find(|record| self.holds(record, &value))
            .and_then(|record| record.get(&self.object.id_field))
            .and_then(id_text);
        Ok((found, exchange))
    }

    /// Whether a found record carries the key value (searches can be fuzzy). A record
    /// that does not show the field at all, at its top or inside the write wrapper
    /// (`properties` and the like), is taken at the endpoint's word.
    fn holds(&self, record: &Json, value: &str) -> bool {
        let shown = record.get(&self.key_field).or_else(|| {
            self.object
                .write_body_key
                .as_ref()
                .and_then(|k| record.get(k))
                .and_then(|inner| inner.get(&self.key_field))
        });
        shown.is_none_or(|v| id_text(v).as_deref() == Some(value))
    }

    fn prepare(&self, mode: &str, item: &Item) -> Map<String, Json> {
        let mut record = Map::clone(&item.record);
        if mode == "update" {
            for field in &self.object.update_omit {
                record.remove(field);
            }
            if self.object.update_id_in_body
                && let Some(id) = &item.dest_id
            {
                record.insert(self.object.id_field.clone(), Json::String(id.clone()));
            }
        }
        record
    }

    #[allow(clippy::too_many_arguments)]
    async fn write_batch(
        &self,
        app: &App,
        ctx: &TenantCtx,
        mode: &str,
        group: &[Item],
        key: &str,
        suspect: Option<&Recheck>,
        exchanges: &mut Vec<Exchange>,
    ) -> Result<Vec<Outcome>, Fault> {
        let Some(path) = self.object.batch_path.as_deref() else {
            return Err(Fault::fatal("no batch endpoint"));
        };
        let path = path.replace("{mode}", mode);
        // Items the batch cannot carry (an update without an id) are refused here; the
        // others go out, each with its position in the group.
        let mut outcomes: Vec<Option<Outcome>> = vec![None; group.len()];
        let mut items = Vec::with_capacity(group.len());
        for (i, item) in group.iter().enumerate() {
            match self.batch_item(mode, item, i) {
                Ok(json) => items.push((i, json)),
                Err(why) => outcomes[i] = Some(Outcome::Rejected(why)),
            }
        }
        if !items.is_empty() {
            let positions: Vec<usize> = items.iter().map(|(i, _)| *i).collect();
            let sent = self
                .send_batch(app, ctx, mode, &path, items, key, suspect, exchanges)
                .await?;
            for (i, outcome) in positions.into_iter().zip(sent) {
                outcomes[i] = Some(outcome);
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Rejected(String::new())))
            .collect())
    }

    /// One batch item in `mode`: the provider's envelope for it, or the record itself.
    fn batch_item(&self, mode: &str, item: &Item, position: usize) -> Result<Json, String> {
        let record = self.prepare(mode, item);
        let Some(template) = self.object.batch_item.get(mode) else {
            return Ok(Json::Object(record));
        };
        let key_value = record.get(&self.key_field).and_then(id_text);
        let id =
            match mode {
                "update" => Some(item.dest_id.clone().or(key_value.clone()).ok_or_else(|| {
                    format!("no {} to find the record to update", self.key_field)
                })?),
                _ => item.dest_id.clone(),
            };
        if mode == "upsert" && key_value.is_none() {
            return Err(format!("no {} to upsert by", self.key_field));
        }
        let fill = |text: &str| -> Json {
            if text == "{record}" {
                return Json::Object(record.clone());
            }
            Json::String(
                self.with_values(
                    text.replace("{id}", id.as_deref().unwrap_or_default())
                        .replace("{field}", &self.key_field)
                        .replace("{value}", key_value.as_deref().unwrap_or_default())
                        .replace("{trace}", &position.to_string()),
                ),
            )
        };
        Ok(fill_template(template, &fill))
    }

    /// Sends one batch of built items; a batch refused for its content is halved until
    /// the refused items stand alone.
    #[allow(clippy::too_many_arguments)]
    async fn send_batch(
        &self,
        app: &App,
        ctx: &TenantCtx,
        mode: &str,
        path: &str,
        items: Vec<(usize, Json)>,
        key: &str,
        suspect: Option<&Recheck>,
        exchanges: &mut Vec<Exchange>,
    ) -> Result<Vec<Outcome>, Fault> {
        // The items move into the body and back out of it: a batch of a thousand
        // records is not copied to be sent.
        let batch_key = self.object.batch_key.as_deref().unwrap_or("records");
        let (positions, records): (Vec<usize>, Vec<Json>) = items.into_iter().unzip();
        let mut body = Map::new();
        body.insert(batch_key.to_owned(), Json::Array(records));
        if let Some(k) = &self.object.batch_mode_key {
            body.insert(k.clone(), Json::String(mode.into()));
        }
        let mut body = Json::Object(body);
        let (fetched, ms) = rate::paced_call(
            self.provider,
            app,
            ctx,
            self.connection,
            &self.recent,
            &ApiCall {
                method: reqwest::Method::POST,
                path,
                link: false,
                query: &[],
                body: Some(&body),
                headers: &[("Idempotency-Key", key.to_owned())],
            },
        )
        .await;
        let fetched = answered(suspect, fetched)?;
        exchanges.push(Exchange {
            method: "POST".into(),
            path: path.to_owned(),
            status: fetched.status.as_u16(),
            ms,
            records: positions.len(),
        });
        let what = format!("writing {}", self.object.name);
        if let Some(fault) = Fault::of_answer(self.provider, Phase::Write, &what, &fetched) {
            // A whole batch refused for its content (some APIs refuse all for one bad
            // record): halve it until the refused records stand alone. About 2·log2(n)
            // calls per bad record, where one call per record would cost n.
            let content_refused = matches!(fetched.status.as_u16(), 400 | 409 | 413 | 422);
            if fault.refuses_record() && content_refused && positions.len() > 1 {
                let records = match body.get_mut(batch_key).map(Json::take) {
                    Some(Json::Array(records)) => records,
                    _ => Vec::new(),
                };
                let mut left: Vec<(usize, Json)> = positions.into_iter().zip(records).collect();
                let right = left.split_off(left.len() / 2);
                let mut outcomes = Box::pin(self.send_batch(
                    app,
                    ctx,
                    mode,
                    path,
                    left,
                    &format!("{key}.0"),
                    suspect,
                    exchanges,
                ))
                .await?;
                outcomes.extend(
                    Box::pin(self.send_batch(
                        app,
                        ctx,
                        mode,
                        path,
                        right,
                        &format!("{key}.1"),
                        suspect,
                        exchanges,
                    ))
                    .await?,
                );
                return Ok(outcomes);
            }
            return if fault.refuses_record() {
                Ok(vec![Outcome::Rejected(fault.message); positions.len()])
            } else {
                Err(fault)
            };
        }
        let answer: Json = serde_json::from_slice(&fetched.body).unwrap_or(Json::Null);
        let Some(results_path) = &self.object.batch_results_path else {
            return Ok(vec![Outcome::Written(None); positions.len()]);
        };
        let results: &[Json] = JsonPath::parse(results_path)
            .ok()
            .and_then(|p| p.query(&answer).first())
            .and_then(Json::as_array)
            .map_or(&[], Vec::as_slice);
        if let Some(trace) = &self.object.batch_trace_field {
            return Ok(matched_by_trace(
                &answer,
                results,
                trace,
                &positions,
                &self.object.id_field,
            ));
        }
        if results.len() != positions.len() {
            return Err(Fault::fatal(format!(
                "{what}: {} results for {} records",
                results.len(),
                positions.len()
            )));
        }
        Ok(results
            .iter()
            .map(|r| outcome_of(r, &self.object.id_field))
            .collect())
    }

    /// Writes a group one record per request, several requests in flight (a destination
    /// without a batch endpoint). After a failure that fails the write, no further
    /// request starts and those under way finish, so none is cut off unanswered.
    #[allow(clippy::too_many_arguments)]
    async fn write_each(
        &self,
        app: &App,
        ctx: &TenantCtx,
        mode: &str,
        group: &[Item],
        key: &str,
        suspect: Option<&Recheck>,
        exchanges: &mut Vec<Exchange>,
    ) -> Result<Vec<Outcome>, Fault> {
        use futures::StreamExt;
        let failed = AtomicBool::new(false);
        // Collected first: a stream holding the closure would not be `Send` for every
        // lifetime the job's future needs.
        let writes: Vec<_> = group
            .iter()
            .enumerate()
            .map(|(i, item)| {
                self.write_one_unless_failed(&failed, app, ctx, mode, item, i, key, suspect)
            })
            .collect();
        let results: Vec<Option<OneWrite>> = futures::stream::iter(writes)
            .buffered(rate::WRITES_IN_FLIGHT)
            .collect()
            .await;
        let mut outcomes = Vec::with_capacity(group.len());
        for result in results.into_iter().flatten() {
            let (outcome, exchange) = result?;
            exchanges.extend(exchange);
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// [`Target::write_one`] in a connection write slot, unless a write of the group
    /// failed already (none).
    #[allow(clippy::too_many_arguments)]
    async fn write_one_unless_failed(
        &self,
        failed: &AtomicBool,
        app: &App,
        ctx: &TenantCtx,
        mode: &str,
        item: &Item,
        i: usize,
        key: &str,
        suspect: Option<&Recheck>,
    ) -> Option<OneWrite> {
        let record_key = format!("{key}-{i}");
        if let Some(outcome) = suspect.and_then(|r| r.answer_of(&record_key)) {
            return Some(Ok((outcome, Vec::new())));
        }
        if failed.load(Ordering::Relaxed) {
            return None;
        }
        let _slot = rate::write_slot(self.connection).await;
        if failed.load(Ordering::Relaxed) {
            return None;
        }
        let written = self
            .write_one(app, ctx, mode, item, &record_key, i, suspect)
            .await;
        match (&written, suspect) {
            (Ok((outcome, _)), Some(recheck)) => recheck.remember_answer(record_key, outcome),
            (Err(_), _) => failed.store(true, Ordering::Relaxed),
            _ => {}
        }
        Some(written)
    }

    /// One record's write: its outcome and the exchanges it took.
    #[allow(clippy::too_many_arguments)]
    async fn write_one(
        &self,
        app: &App,
        ctx: &TenantCtx,
        mode: &str,
        item: &Item,
        record_key: &str,
        i: usize,
        suspect: Option<&Recheck>,
    ) -> OneWrite {
        let mut exchanges = Vec::new();
        let mut record = self.prepare(mode, item);
        let id = item
            .dest_id
            .clone()
            .or_else(|| record.get(&self.key_field).and_then(id_text));
        let (method, path, shown) = match self.address(mode, item, &mut record) {
            Ok(address) => address,
            Err(why) => return Ok((Outcome::Rejected(why), exchanges)),
        };
        if mode == "update" {
            if let (Some(fetch), Some(id)) = (&self.object.update_fetch, &id) {
                match self
                    .current_version(app, ctx, fetch, id, &mut exchanges)
                    .await?
                {
                    Ok(fields) => record.extend(fields),
                    Err(why) => return Ok((Outcome::Rejected(why), exchanges)),
                }
            }
            record.extend(self.object.update_fields.clone());
        }
        let body = self.single_body(mode, record, id.as_deref(), i);
        let (fetched, ms) = rate::paced_call(
            self.provider,
            app,
            ctx,
            self.connection,
            &self.recent,
            &ApiCall {
                method: method.clone(),
                path: &path,
                link: false,
                query: &[],
                body: Some(&body),
                headers: &[("Idempotency-Key", record_key.to_owned())],
            },
        )
        .await;
        let fetched = answered(suspect, fetched)?;
        exchanges.push(Exchange {
            method: method.to_string(),
            path: shown,
            status: fetched.status.as_u16(),
            ms,
            records: 1,
        });
        let what = format!("writing {}", self.object.name);
        let outcome = match Fault::of_answer(self.provider, Phase::Write, &what, &fetched) {
            None => {
                let answer: Json = serde_json::from_slice(&fetched.body).unwrap_or(Json::Null);
                let id = self
                    .created_id(&answer)
                    .or_else(|| item.dest_id.clone().filter(|_| mode == "update"));
                Outcome::Written(id)
            }
            Some(fault) if fault.refuses_record() => Outcome::Rejected(fault.message),
            Some(fault) => return Err(fault),
        };
        Ok((outcome, exchanges))
    }

    /// A template's text with the connection's values filled in (only names the
    /// provider declares; record values never pass through here).
    fn with_values(&self, mut text: String) -> String {
        for source in self.provider.value_sources() {
            if let Some(value) = self.values.get(source.name) {
                text = text.replace(&format!("{{{}}}", source.name), value);
            }
        }
        text
    }

    /// The body of one record's write: the provider's envelope for `mode`, the record
    /// wrapped in `write_body_key`, or the record itself.
    fn single_body(
        &self,
        mode: &str,
        record: Map<String, Json>,
        id: Option<&str>,
        position: usize,
    ) -> Json {
        if let Some(template) = self.object.write_item.get(mode) {
            let fill = |text: &str| -> Json {
                if text == "{record}" {
                    return Json::Object(record.clone());
                }
                Json::String(
                    self.with_values(
                        text.replace("{id}", id.unwrap_or_default())
                            .replace("{field}", &self.key_field)
                            .replace("{trace}", &position.to_string()),
                    ),
                )
            };
            return fill_template(template, &fill);
        }
        match &self.object.write_body_key {
            Some(k) => json!({ k: record }),
            None => Json::Object(record),
        }
    }

    /// The fields an update of record `id` must carry from its current version
    /// (QuickBooks' `SyncToken`); a record that is gone or refused is a reason.
    async fn current_version(
        &self,
        app: &App,
        ctx: &TenantCtx,
        fetch: &UpdateFetch,
        id: &str,
        exchanges: &mut Vec<Exchange>,
    ) -> Result<Result<Map<String, Json>, String>, Fault> {
        let encoded = url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>();
        let path = fetch.path.replace("{id}", &encoded);
        let query: Vec<(String, String)> = fetch
            .query
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let (fetched, ms) = rate::paced_call(
            self.provider,
            app,
            ctx,
            self.connection,
            &self.recent,
            &ApiCall {
                method: reqwest::Method::GET,
                path: &path,
                link: false,
                query: &query,
                body: None,
                headers: &[],
            },
        )
        .await;
        let fetched = fetched?;
        exchanges.push(Exchange {
            method: "GET".into(),
            path: fetch.path.clone(),
            status: fetched.status.as_u16(),
            ms,
            records: 1,
        });
        let what = format!("reading the {} to update", self.object.name);
        if let Some(fault) = Fault::of_answer(self.provider, Phase::Write, &what, &fetched) {
            return if fault.refuses_record() {
                Ok(Err(fault.message))
            } else {
                Err(fault)
            };
        }
        let answer: Json = serde_json::from_slice(&fetched.body).unwrap_or(Json::Null);
        let mut fields = Map::new();
        for (name, path) in &fetch.fields {
            let found = JsonPath::parse(path)
                .ok()
                .and_then(|p| p.query(&answer).first().cloned());
            match found {
                Some(value) => {
                    fields.insert(name.clone(), value);
                }
                None => return Ok(Err(format!("{what}: its answer has no {path}"))),
            }
        }
        Ok(Ok(fields))
    }

    /// Where one record is written in `mode`: method, path, and the path as the run
    /// log shows it (the template, without record values). The record's address leaves
    /// its body: APIs refuse the id (or the external id of an upsert) among the fields.
    fn address(
        &self,
        mode: &str,
        item: &Item,
        record: &mut Map<String, Json>,
    ) -> Result<(reqwest::Method, String, String), String> {
        let object = self.object;
        let encoded =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let method_of = |declared: &Option<String>, default: reqwest::Method| {
            declared
                .as_deref()
                .and_then(|m| m.parse().ok())
                .unwrap_or(default)
        };
        let cannot = || format!("cannot {mode} {}", object.name);
        match mode {
            "create" => {
                let path = object.write_path.clone().ok_or_else(cannot)?;
                Ok((reqwest::Method::POST, path.clone(), path))
            }
            "update" => {
                let template = object.update_path.clone().ok_or_else(cannot)?;
                let from_key = record.get(&self.key_field).and_then(id_text);
                let id =
                    item.dest_id.clone().or(from_key).ok_or_else(|| {
                        format!("no {} to find the record to update", self.key_field)
                    })?;
                if self.key_field == object.id_field && !object.update_id_in_body {
                    record.remove(&self.key_field);
                }
                let path = template.replace("{id}", &encoded(&id));
                Ok((
                    method_of(&object.update_method, reqwest::Method::PATCH),
                    path,
                    template,
                ))
            }
            "upsert" => {
                let template = object.upsert_path.clone().ok_or_else(cannot)?;
                let value = record
                    .get(&self.key_field)
                    .and_then(id_text)
                    .ok_or_else(|| format!("no {} to upsert by", self.key_field))?;
                // A key in the URL leaves the body; an endpoint that matches by the
                // body (Zendesk's create_or_update) needs it there.
                if template.contains("{value}") {
                    record.remove(&self.key_field);
                }
                let path = template
                    .replace("{field}", &encoded(&self.key_field))
                    .replace("{value}", &encoded(&value));
                Ok((
                    method_of(&object.upsert_method, reqwest::Method::PATCH),
                    path,
                    template,
                ))
            }
            _ => Err(cannot()),
        }
    }

    /// The id the destination gave a record it wrote, if its answer says.
    fn created_id(&self, answer: &Json) -> Option<String> {
        if let Some(path) = &self.object.created_id_path {
            return JsonPath::parse(path)
                .ok()?
                .query(answer)
                .first()
                .and_then(id_text);
        }
        answer
            .get(&self.object.id_field)
            .or_else(|| {
                self.object
                    .write_body_key
                    .as_ref()
                    .and_then(|k| answer.get(k))
                    .and_then(|inner| inner.get(&self.object.id_field))
            })
            .and_then(id_text)
    }
}

/// Fills a write template: every string is passed to `fill` (which may turn
/// `"{record}"` into the record), objects and arrays are filled within. An object's
/// `"..."` key spreads what it holds (the record) into that object, under the
/// template's own keys.
fn fill_template(template: &Json, fill: &dyn Fn(&str) -> Json) -> Json {
    match template {
        Json::String(text) => fill(text),
        Json::Object(map) => {
            let mut out = match map.get("...").map(|spread| fill_template(spread, fill)) {
                Some(Json::Object(spread)) => spread,
                _ => Map::new(),
            };
            for (k, v) in map.iter().filter(|(k, _)| k.as_str() != "...") {
                out.insert(k.clone(), fill_template(v, fill));
            }
            Json::Object(out)
        }
        Json::Array(items) => Json::Array(items.iter().map(|v| fill_template(v, fill)).collect()),
        other => other.clone(),
    }
}

/// Outcomes of a batch whose results come in any order, each echoing its item's trace
/// (its position). An item without a result was refused: the answer's error messages
/// say why.
fn matched_by_trace(
    answer: &Json,
    results: &[Json],
    trace: &str,
    positions: &[usize],
    id_field: &str,
) -> Vec<Outcome> {
    let by_trace: HashMap<String, &Json> = results
        .iter()
        .filter_map(|r| Some((r.get(trace).and_then(id_text)?, r)))
        .collect();
    let why = answer
        .get("errors")
        .and_then(Json::as_array)
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e.get("message").and_then(Json::as_str))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "the destination gave no result for this record".into());
    positions
        .iter()
        .map(|position| match by_trace.get(&position.to_string()) {
            Some(result) => outcome_of(result, id_field),
            None => Outcome::Rejected(why.clone()),
        })
        .collect()
}

/// A short key naming which of a group's records are sent.
fn rest_key(indexes: &[usize]) -> String {
    let mut h = Sha256::new();
    for i in indexes {
        h.update((*i as u64).to_le_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

fn id_text(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One per-record result of a batch; its id is `id` or the object's id field.
fn outcome_of(result: &Json, id_field: &str) -> Outcome {
    let status = result.get("status").and_then(Json::as_str).unwrap_or("ok");
    match status {
        "created" | "updated" | "ok" | "success" | "unchanged" => Outcome::Written(
            result
                .get("id")
                .or_else(|| result.get(id_field))
                .and_then(id_text),
        ),
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
    fn a_template_spreads_the_record_under_its_own_keys() {
        let template = json!({"data": {"...": "{record}", "workspace": "{ws}"}});
        let record = json!({"name": "Call Ada", "workspace": "other"});
        let fill = |text: &str| match text {
            "{record}" => record.clone(),
            other => Json::String(other.replace("{ws}", "123")),
        };
        assert_eq!(
            fill_template(&template, &fill),
            json!({"data": {"name": "Call Ada", "workspace": "123"}})
        );
    }

    #[test]
    fn batch_results_become_outcomes() {
        assert_eq!(
            outcome_of(&json!({"status": "created", "id": "cus_1"}), "id"),
            Outcome::Written(Some("cus_1".into()))
        );
        assert_eq!(
            outcome_of(
                &json!({"status": "invalid", "fields": {"email": "is required"}}),
                "id"
            ),
            Outcome::Rejected(r#"invalid {"email":"is required"}"#.into())
        );
    }
}
