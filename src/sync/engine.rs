//! The run loop. A run pages through its source (or, for a replay, through the chosen
//! dead letters), maps, validates and filters each record, skips records whose content
//! the ledger says was already delivered, writes the rest in batches, and commits each
//! page — counts, checkpoint, ledger rows and dead letters — in one transaction guarded
//! by the run's lease. A worker that dies mid-page leaves the page uncommitted; whoever
//! takes the run over resumes from the checkpoint, and the idempotency keys on the writes
//! keep the destination from seeing a record twice.

use super::expression::pool;
use super::mapping::{Mapping, RecordError};
use super::source::{Page, Resume, Source};
use super::target::{Item, Outcome, Recheck, Target};
use super::{Exchange, Fault};
use crate::app::App;
use crate::connectors::catalogue::{self, ObjectSpec, Provider};
use crate::domain::{
    ConnectionId, DeadLetterId, DeadLetterState, ErrorClass, FlowId, FlowSpec, FlowStatus, RunId,
    RunStatus, RunTrigger, TenantCtx,
};
use crate::queue::JobError;
use crate::queue::retry::OutagePolicy;
use crate::store::entities::runs;
use crate::store::{Failure, LedgerEntry, PageCommit, RunEnd, now};
use sea_orm::DbErr;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Tries per page read or batch write, at least, before the run fails.
const CALL_ATTEMPTS: u32 = 10;
/// Backoff for retried calls within a run (the ceiling doubles per attempt).
const CALL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait of our own choosing between tries: how late a recovery may be noticed.
const CALL_MAX_WAIT: Duration = Duration::from_secs(15);

/// Why a run stopped early.
enum Stop {
    /// A failure that ends the run.
    Fault(Fault),
    /// Another worker holds the run now (we were presumed dead): leave it alone.
    LostLease,
    /// Cancelled on request.
    Cancelled,
    /// The process is shutting down: the run stops at a page boundary and is handed back.
    Handover,
    /// Storage failed: the job retries, and the run resumes from its checkpoint.
    Db(DbErr),
}

impl From<DbErr> for Stop {
    fn from(e: DbErr) -> Self {
        Stop::Db(e)
    }
}

impl From<Fault> for Stop {
    fn from(f: Fault) -> Self {
        Stop::Fault(f)
    }
}

/// A page commit under way (true if the lease still held).
type Commit<'a> = std::pin::Pin<Box<dyn Future<Output = Result<bool, DbErr>> + Send + 'a>>;

/// Waits for a page commit, if one is under way; a lost lease stops the run.
async fn landed(commit: Option<Commit<'_>>) -> Result<(), Stop> {
    let held = match commit {
        Some(c) => c.await?,
        None => true,
    };
    if held { Ok(()) } else { Err(Stop::LostLease) }
}

/// Runs whose lease holder has not been heard from since this instant are taken over.
pub fn stale_before(app: &App) -> chrono::DateTime<chrono::Utc> {
    now() - chrono::Duration::from_std(app.settings.run_lease).unwrap_or_default()
}

/// Renews the run's lease every quarter lease for as long as the execution lives.
/// Returns only when the execution must stop: another worker holds the run, or the lease
/// went unrenewed for so long that a call started now could outlive it (the outbound
/// timeout is at most three quarters of the lease, checked at start-up).
async fn keep_lease(app: &App, ctx: &TenantCtx, id: RunId, holder: &str) -> Stop {
    let every = app.settings.run_lease / 4;
    let give_up_after = app
        .settings
        .run_lease
        .saturating_sub(app.settings.outbound_timeout);
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match app.store.heartbeat_run(ctx, id, holder).await {
            Ok(true) => renewed = tokio::time::Instant::now(),
            Ok(false) => return Stop::LostLease,
            Err(e) if renewed.elapsed() + every > give_up_after => {
                tracing::warn!(run = %id, error = %e, "the run lease could not be renewed; stopping the run");
                return Stop::Db(e);
            }
            Err(e) => {
                tracing::warn!(run = %id, error = %e, "the run lease could not be renewed; will retry");
            }
        }
    }
}

/// Releases runs this process holds and queues them again, so another worker (or this
/// one, restarted) resumes them from their checkpoint without waiting for the lease.
pub async fn hand_back(
    app: &App,
    runs: &[(crate::domain::TenantId, RunId)],
    held: Option<(&TenantCtx, &str)>,
) {
    if let Some((ctx, holder)) = held
        && let Some((_, id)) = runs.first()
        && let Err(e) = app.store.release_run(ctx, *id, holder).await
    {
        tracing::warn!(run = %id, error = %e, "could not release the run lease; it lapses instead");
        return;
    }
    for (tenant_id, run_id) in runs {
        let job = crate::queue::RunFlow {
            tenant_id: *tenant_id,
            run_id: *run_id,
        };
        match app.queue.push(job).await {
            Ok(()) => tracing::info!(run = %run_id, "run handed back at shutdown"),
            Err(e) => {
                tracing::warn!(run = %run_id, error = %e, "run released; recovery will queue it")
            }
        }
    }
}

/// What [`execute`] decided.
pub enum Executed {
    /// The run ended or is somebody else's.
    Done,
    /// Not now (the tenant is at its concurrency cap, or this process is stopping): try
    /// again after this delay.
    Deferred(Duration),
}

/// Executes (or resumes) a run. Safe to call twice: the lease admits one worker.
pub async fn execute(app: &App, ctx: &TenantCtx, id: RunId) -> Result<Executed, JobError> {
    let Some(run) = app.store.run(ctx, id).await? else {
        return Ok(Executed::Done);
    };
    let status: RunStatus = run.status.parse().map_err(JobError::permanent)?;
    if status.is_finished() {
        return Ok(Executed::Done);
    }
    let ours_or_free =
        run.lease_holder.is_none() || run.heartbeat_at.is_none_or(|at| at < stale_before(app));
    if !ours_or_free {
        return Ok(Executed::Done);
    }
    if *app.stopping.borrow() {
        // Fetched while this process drains for a shutdown: leave it to another worker
        // (or to this one, restarted).
        return Ok(Executed::Deferred(Duration::from_secs(1)));
    }
    if run.cancel_requested {
        app.store
            .finish_run(ctx, id, None, RunEnd::plain(RunStatus::Cancelled))
            .await?;
        return Ok(Executed::Done);
    }
    let follows_a_live_run = run.trigger != RunTrigger::Replay.as_str()
        && app
            .store
            .flow_busy(ctx, FlowId::from_uuid(run.flow_id), id, stale_before(app))
            .await?;
    if follows_a_live_run
        || app.store.live_runs(ctx, stale_before(app)).await?
            >= u64::from(app.settings.tenant_concurrency)
    {
        app.store.touch_queued_run(ctx, id).await?;
        return Ok(Executed::Deferred(Duration::from_secs(2)));
    }
    // Named after the process, so a shutdown can release what it could not stop.
    let holder = format!("{}/{}", app.process, uuid::Uuid::now_v7());
    if !app
        .store
        .claim_run(ctx, id, &holder, stale_before(app))
        .await?
    {
        return Ok(Executed::Done);
    }
    let mut runner = Runner {
        app,
        ctx,
        // A holder still named means the last execution did not hand the run back: it
        // died, lost its lease or was cut mid-page.
        interrupted: run.lease_holder.is_some(),
        run,
        holder: holder.clone(),
        providers: None,
    };
    // The lease is renewed beside the run, not by it: a call that stalls for longer than
    // the lease must not make this worker look dead while it is still waiting. A database
    // that stops taking writes (a full disk, a failover) pauses the run instead of ending
    // it; it resumes from its checkpoint once writes are accepted again.
    let outcome = loop {
        let attempt = tokio::select! {
            outcome = runner.drive() => outcome,
            stop = keep_lease(app, ctx, id, &holder) => Err(stop),
        };
        match attempt {
            Err(Stop::Db(e)) => match runner.wait_for_database(&e).await {
                Ok(()) => continue,
                Err(stop) => break Err(stop),
            },
            other => break other,
        }
    };
    match outcome {
        Ok(()) => Ok(Executed::Done),
        Err(Stop::LostLease) => Ok(Executed::Done),
        Err(Stop::Handover) => {
            runner
                .log(
                    "info",
                    &format!(
                        "Handed back at shutdown after page {}; the next worker resumes from here.",
                        runner.run.pages
                    ),
                    None,
                )
                .await;
            hand_back(app, &[(ctx.tenant_id(), id)], Some((ctx, &holder))).await;
            Ok(Executed::Done)
        }
        Err(Stop::Cancelled) => {
            runner.log("warn", "Cancelled on request.", None).await;
            app.store
                .finish_run(
                    ctx,
                    id,
                    Some(&runner.holder),
                    RunEnd::plain(RunStatus::Cancelled),
                )
                .await?;
            Ok(Executed::Done)
        }
        Err(Stop::Fault(fault)) => {
            runner.fail(&fault).await?;
            Ok(Executed::Done)
        }
        Err(Stop::Db(e)) => Err(JobError::retryable(format!("database: {e}"))),
    }
}

struct Runner<'a> {
    app: &'a App,
    ctx: &'a TenantCtx,
    run: runs::Model,
    holder: String,
    /// Whether an earlier execution may have written pages past the checkpoint.
    interrupted: bool,
    /// Source and destination provider ids, once known (failures name the one at fault).
    providers: Option<(&'static str, &'static str)>,
}

/// A source record ready to write.
struct Prepared {
    key: String,
    key_hash: Vec<u8>,
    content_hash: Vec<u8>,
    record: serde_json::Map<String, Json>,
    source: Json,
}

/// Ledger rows by key digest.
type Ledger = HashMap<Vec<u8>, LedgerEntry>;

/// A page mapped, validated, filtered and looked up in the ledger, waiting for its turn
/// to be written.
struct Staged {
    page: Page,
    /// Counts and failures so far; the write adds its outcomes.
    commit: PageCommit,
    /// Records that passed, one per key, in page order.
    items: Vec<Prepared>,
    /// What the ledger held for them when the page was staged.
    ledger: Ledger,
    /// The latest last-modified value on the page.
    watermark: Option<String>,
}

impl Staged {
    /// The records to write, with the destination id each is known by: those whose
    /// content the ledger already has are counted unchanged. `recent` holds the rows of
    /// pages written since the lookup, newest first; they win over it.
    fn resolve(
        &mut self,
        recent: &[Ledger],
        close_dead_letters: bool,
    ) -> Vec<(Prepared, Option<String>)> {
        let mut to_write = Vec::with_capacity(self.items.len());
        for p in std::mem::take(&mut self.items) {
            let entry = recent
                .iter()
                .find_map(|rows| rows.get(&p.key_hash))
                .or_else(|| self.ledger.get(&p.key_hash));
            match entry {
                Some(entry) if entry.content_hash == p.content_hash => {
                    self.commit.unchanged += 1;
                    if close_dead_letters {
                        self.commit.delivered.push(p.key);
                    }
                }
                entry => {
                    let dest = entry.and_then(|e| e.dest_id.clone());
                    to_write.push((p, dest));
                }
            }
        }
        to_write
    }
}

/// Counts a record as failed, for the dead letters.
fn fail(commit: &mut PageCommit, key: String, record: &Json, class: &str, error: String) {
    commit.failed += 1;
    commit.failures.push(Failure {
        record_key: key,
        payload: record.to_string(),
        error_class: class.to_owned(),
        error,
    });
}

fn digest(parts: &[&[u8]], len: usize) -> Vec<u8> {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize()[..len].to_vec()
}

/// The ledger's key for a record key. Keys of up to 16 bytes (most numeric and short ids)
/// are kept as they are: no larger than a digest, and as sources tend to hand out ids in
/// increasing order, a page's new rows land side by side in the ledger's index instead of
/// one per random index page (a page commit then writes a few index pages, not hundreds;
/// three times faster in a 100k-row test). Longer keys become a 12-byte digest behind a
/// 0xFF byte, which never occurs in UTF-8 text, so a digest cannot equal a kept key.
fn ledger_key(key: &str) -> Vec<u8> {
    if key.len() <= 16 {
        key.as_bytes().to_vec()
    } else {
        let mut out = Vec::with_capacity(13);
        out.push(0xFF);
        out.extend(digest(&[key.as_bytes()], 12));
        out
    }
}

fn object_of(provider: &'static Provider, object: &str) -> Result<&'static ObjectSpec, Fault> {
    provider
        .objects
        .iter()
        .find(|o| o.id == object)
        .ok_or_else(|| Fault::Fatal(format!("{} has no object '{object}'", provider.name)))
}

/// A page's records mapped, validated and filtered, before the ledger lookup.
struct Mapped {
    commit: PageCommit,
    items: Vec<Prepared>,
    watermark: Option<String>,
}

/// Maps, validates and filters a page's records; `key_field` is the destination field
/// that must be set to match records (update and upsert).
fn map_page(
    records: Vec<Json>,
    mapping: &Mapping,
    object: &ObjectSpec,
    key_field: Option<String>,
) -> Mapped {
    let mut commit = PageCommit {
        read: records.len() as i64,
        ..PageCommit::default()
    };
    let mut watermark: Option<String> = None;
    let mut items: Vec<Prepared> = Vec::with_capacity(records.len());
    let mut position: HashMap<Vec<u8>, usize> = HashMap::new();
    for record in records {
        let _budget = mapping.record_budget();
        if let Some(field) = &object.updated_field
            && let Some(Json::String(at)) = record.get(field)
            && watermark.as_deref().is_none_or(|w| at.as_str() > w)
        {
            watermark = Some(at.clone());
        }
        let key = match mapping.key(&record) {
            Ok(k) => k,
            Err(e) => {
                let fallback = record
                    .get(&object.id_field)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| hex::encode(digest(&[record.to_string().as_bytes()], 8)));
                fail(&mut commit, fallback, &record, e.kind, describe(&e));
                continue;
            }
        };
        match mapping.keep(&record) {
            Ok(true) => {}
            Ok(false) => {
                commit.filtered += 1;
                continue;
            }
            Err(e) => {
                fail(&mut commit, key, &record, e.kind, describe(&e));
                continue;
            }
        }
        let mapped = match mapping.apply(&record) {
            Ok(m) => m,
            Err(e) => {
                fail(&mut commit, key, &record, e.kind, describe(&e));
                continue;
            }
        };
        if let Some(field) = &key_field
            && mapped.get(field).is_none_or(Json::is_null)
        {
            fail(
                &mut commit,
                key,
                &record,
                "validation",
                format!("{field}: is required to match the destination record"),
            );
            continue;
        }
        let content = serde_json::to_vec(&mapped).unwrap_or_default();
        let item = Prepared {
            key_hash: ledger_key(&key),
            content_hash: digest(&[&content], 8),
            key,
            record: mapped,
            source: record,
        };
        // The same record twice in one page: the later copy wins.
        match position.get(&item.key_hash) {
            Some(&i) => {
                items[i] = item;
                commit.unchanged += 1;
            }
            None => {
                position.insert(item.key_hash.clone(), items.len());
                items.push(item);
            }
        }
    }
    Mapped {
        commit,
        items,
        watermark,
    }
}

impl Runner<'_> {
    fn id(&self) -> RunId {
        RunId::from_uuid(self.run.id)
    }

    fn flow_id(&self) -> FlowId {
        FlowId::from_uuid(self.run.flow_id)
    }

    /// Appends to the run log; a failure to log never fails the run.
    async fn log(&self, level: &str, message: &str, detail: Option<Json>) {
        if let Err(e) = self
            .app
            .store
            .log_run_event(self.ctx, self.id(), level, message, detail)
            .await
        {
            tracing::warn!(run = %self.id(), error = %e, "could not write the run log");
        }
    }

    /// Waits, holding the run, until the database accepts writes again; then takes the
    /// run up where its last commit left it. Stops instead when the process is shutting
    /// down or another worker took the run meanwhile.
    async fn wait_for_database(&mut self, error: &DbErr) -> Result<(), Stop> {
        tracing::warn!(run = %self.id(), error = %error, "the database refused the run's writes; pausing it until it accepts them");
        let paused = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(250);
        let run = loop {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
            if *self.app.stopping.borrow() {
                return Err(Stop::Handover);
            }
            if self.app.store.write_probe(&self.app.process).await.is_err() {
                continue;
            }
            match self
                .app
                .store
                .heartbeat_run(self.ctx, self.id(), &self.holder)
                .await
            {
                Ok(true) => {}
                Ok(false) => return Err(Stop::LostLease),
                Err(_) => continue,
            }
            match self.app.store.run(self.ctx, self.id()).await {
                Ok(Some(run)) => break run,
                Ok(None) => return Err(Stop::LostLease),
                Err(_) => continue,
            }
        };
        self.run = run;
        self.interrupted = true;
        self.log(
            "warn",
            &format!(
                "Paused for {} s: the database did not accept writes ({error}). Resuming from the checkpoint.",
                paused.elapsed().as_secs()
            ),
            None,
        )
        .await;
        Ok(())
    }

    async fn provider_of(&self, connection: ConnectionId) -> Result<&'static Provider, Stop> {
        let conn = self
            .app
            .store
            .connection(self.ctx, connection)
            .await?
            .ok_or_else(|| Fault::Fatal("a connection of this flow was deleted".into()))?;
        Ok(catalogue::get(&conn.provider_id)
            .ok_or_else(|| Fault::Fatal(format!("unknown provider {}", conn.provider_id)))?)
    }

    async fn drive(&mut self) -> Result<(), Stop> {
        let flow = self
            .app
            .store
            .flow(self.ctx, self.flow_id())
            .await?
            .ok_or_else(|| Fault::Fatal("the flow was deleted".into()))?;
        let version = self
            .app
            .store
            .flow_version(self.ctx, self.flow_id(), self.run.version)
            .await?
            .ok_or_else(|| Fault::Fatal("the flow version is missing".into()))?;
        let spec: FlowSpec = serde_json::from_str(&version.spec)
            .map_err(|e| Fault::Fatal(format!("the flow version cannot be read: {e}")))?;
        let mapping = Arc::new(
            Mapping::compile_on_pool(spec.clone())
                .await
                .map_err(|e| Fault::Fatal(e.to_string()))?
                .map_err(|e| Fault::Fatal(format!("the mapping does not compile: {e}")))?,
        );
        let source_provider = self.provider_of(spec.source.connection_id).await?;
        let source = Source {
            connection: spec.source.connection_id,
            provider: source_provider,
            object: object_of(source_provider, &spec.source.object)?,
        };
        let target_provider = self.provider_of(spec.destination.connection_id).await?;
        self.providers = Some((&source_provider.id, &target_provider.id));
        let target = Target {
            connection: spec.destination.connection_id,
            provider: target_provider,
            object: object_of(target_provider, &spec.destination.object)?,
            mode: spec.destination.write_mode,
            key_field: spec.destination.key_field.clone(),
        };
        let replay: Option<Vec<DeadLetterId>> = match &self.run.replay {
            Some(text) => Some(
                serde_json::from_str::<Option<Vec<DeadLetterId>>>(text)
                    .map_err(|e| Fault::Fatal(format!("the replay selection cannot be read: {e}")))?
                    .unwrap_or_default(),
            ),
            None => None,
        };
        let replay_all = matches!(&self.run.replay, Some(t) if t == "null");
        let mut resume: Option<Resume> = match &self.run.cursor {
            Some(c) => Some(
                serde_json::from_str(c)
                    .map_err(|e| Fault::Fatal(format!("the checkpoint cannot be read: {e}")))?,
            ),
            None => None,
        };
        let since = (spec.source.incremental && replay.is_none())
            .then(|| flow.watermark.clone())
            .flatten();
        let mut watermark = self.run.watermark.clone();
        let close_dead_letters = replay.is_some()
            || self
                .app
                .store
                .count_dead_letters(self.ctx, self.flow_id(), DeadLetterState::Open)
                .await?
                > 0;
        if self.run.pages > 0 {
            self.log(
                "warn",
                &format!(
                    "Resumed after an interruption, from the checkpoint after page {}.",
                    self.run.pages
                ),
                None,
            )
            .await;
        } else {
            let what = match (&replay, replay_all) {
                (Some(_), true) => "Replaying all open dead letters".to_owned(),
                (Some(ids), false) => format!("Replaying {} dead letter(s)", ids.len()),
                (None, _) => format!(
                    "Reading {} from {}{}",
                    source.object.name,
                    source.provider.name,
                    since
                        .as_deref()
                        .map(|s| format!(" changed since {s}"))
                        .unwrap_or_default()
                ),
            };
            self.log(
                "info",
                &format!(
                    "Started with version {} ({}). {what}.",
                    self.run.version,
                    RunTrigger::from_str_or_manual(&self.run.trigger).label()
                ),
                None,
            )
            .await;
        }
        let page_size = source.page_size(None);
        let batch = spec.batch_size.clamp(1, target.batch_max()) as usize;
        let mut page_number = self.run.pages;
        // Up to two pages past the checkpoint may have been written by an execution that
        // stopped before committing them (page N is written while N-1 commits).
        let recheck_through = if self.interrupted && target.mode == crate::domain::WriteMode::Create
        {
            let how = match target.can_look_up() {
                Some(_) => format!(
                    "records to create on the next two pages are first looked up by {} at {}",
                    target.key_field, target.provider.name
                ),
                None => format!(
                    "{} cannot look records up{}, so re-sent records rely on its idempotency keys",
                    target.provider.name,
                    if target.key_field.is_empty() {
                        " without a destination key field".to_owned()
                    } else {
                        format!(" by {}", target.key_field)
                    }
                ),
            };
            self.log(
                "info",
                &format!("The last execution stopped mid-page: {how}."),
                None,
            )
            .await;
            page_number + 2
        } else {
            0
        };
        // Four pages are in the air at once: page N is written while page N+1 is mapped
        // and looked up in the ledger, page N+2 is fetched and page N-1 commits. Commits
        // stay in page order, so the checkpoint never passes a page that is not
        // committed; `recent` holds the ledger rows of the last two pages written, which
        // the ledger lookup of the page after them may not have seen yet.
        let mut staged_ahead: Option<Result<Staged, Stop>> = None;
        let mut fetched_ahead: Option<Result<Page, Stop>> = None;
        let mut committing: Option<Commit<'_>> = None;
        let mut recent: [Ledger; 2] = Default::default();
        let (mapping, source, target, since) = (&mapping, &source, &target, since.as_deref());
        // Whatever ends the loop, the commit under way lands (or fails) before the run
        // moves on: dropping it would lose a page the destination already has.
        let outcome = async {
            while resume != Some(Resume::End) {
                self.check_cancel().await?;
                page_number += 1;
                let mut current = match staged_ahead.take() {
                    Some(staged) => staged?,
                    None => {
                        let page = match &replay {
                            Some(ids) => {
                                self.dead_letter_page(ids, replay_all, resume.as_ref(), page_size)
                                    .await?
                            }
                            None => {
                                self.fetch_page(
                                    source,
                                    resume.as_ref(),
                                    since,
                                    page_size,
                                    page_number,
                                )
                                .await?
                            }
                        };
                        self.stage(page, mapping, source, target).await?
                    }
                };
                let to_write = current.resolve(&recent, close_dead_letters);
                let next = match (&replay, &current.page.next) {
                    (None, Some(next)) => Some(next.clone()),
                    _ => None,
                };
                let further = fetched_ahead.take();
                let ahead = async {
                    let next = next?;
                    let page = match further {
                        Some(page) => page,
                        None => {
                            self.fetch_page(source, Some(&next), since, page_size, page_number + 1)
                                .await
                        }
                    };
                    let page = match page {
                        Ok(page) => page,
                        Err(e) => return Some((Err(e), None)),
                    };
                    let after = page.next.clone();
                    let fetch_after = async {
                        match &after {
                            Some(after) => Some(
                                self.fetch_page(
                                    source,
                                    Some(after),
                                    since,
                                    page_size,
                                    page_number + 2,
                                )
                                .await,
                            ),
                            None => None,
                        }
                    };
                    let (staged, fetched) =
                        tokio::join!(self.stage(page, mapping, source, target), fetch_after);
                    Some((staged, fetched))
                };
                let write = self.write(
                    to_write,
                    target,
                    batch,
                    close_dead_letters,
                    &mut current.commit,
                    page_number <= recheck_through,
                );
                let previous = landed(committing.take());
                let (written, ahead, previous) = tokio::join!(write, ahead, previous);
                previous?;
                if let Some((staged, fetched)) = ahead {
                    staged_ahead = Some(staged);
                    fetched_ahead = fetched;
                }
                let (exchanges, cancelled) = written?;
                let Staged {
                    page,
                    mut commit,
                    watermark: seen,
                    ..
                } = current;
                if seen.as_deref() > watermark.as_deref() {
                    watermark = seen;
                }
                let summary = format!(
                    "Page {page_number}: read {}, wrote {}, unchanged {}, filtered {}, failed {}.",
                    commit.read, commit.written, commit.unchanged, commit.filtered, commit.failed
                );
                let mut all = vec![page.exchange];
                all.extend(exchanges);
                commit.log = Some((summary, json!({ "exchanges": all })));
                commit.watermark = watermark.clone();
                commit.total = page.total.filter(|_| page_number == 1);
                let next = page.next.unwrap_or(Resume::End);
                // A page cut short by a cancel keeps its start as the checkpoint.
                let checkpoint = if cancelled {
                    resume.clone()
                } else {
                    Some(next.clone())
                };
                commit.cursor = checkpoint.map(|c| serde_json::to_string(&c).unwrap_or_default());
                let written_now: Ledger = commit.ledger.iter().cloned().collect();
                recent = [written_now, std::mem::take(&mut recent[0])];
                committing = Some(Box::pin(self.app.store.commit_page(
                    self.ctx,
                    self.flow_id(),
                    self.id(),
                    &self.holder,
                    commit,
                )));
                if cancelled {
                    return Err(Stop::Cancelled);
                }
                resume = Some(next);
            }
            Ok::<(), Stop>(())
        }
        .await;
        landed(committing.take()).await?;
        outcome?;
        self.finish(&flow, &spec, replay.is_some(), watermark).await
    }

    async fn fetch_page(
        &self,
        source: &Source,
        resume: Option<&Resume>,
        since: Option<&str>,
        page_size: u32,
        number: i64,
    ) -> Result<Page, Stop> {
        self.retrying(&format!("Reading page {number}"), || {
            source.fetch(self.app, self.ctx, resume, since, page_size)
        })
        .await
    }

    /// At each page boundary: stops for a lost lease, a cancel request or a shutdown.
    async fn check_cancel(&self) -> Result<(), Stop> {
        if *self.app.stopping.borrow() {
            return Err(Stop::Handover);
        }
        let current = self
            .app
            .store
            .run(self.ctx, self.id())
            .await?
            .ok_or(Stop::LostLease)?;
        if current.lease_holder.as_deref() != Some(self.holder.as_str()) {
            return Err(Stop::LostLease);
        }
        if current.cancel_requested {
            return Err(Stop::Cancelled);
        }
        Ok(())
    }

    async fn dead_letter_page(
        &self,
        ids: &[DeadLetterId],
        all: bool,
        resume: Option<&Resume>,
        page_size: u32,
    ) -> Result<Page, Stop> {
        let after = match resume {
            Some(Resume::Cursor(c)) => c.parse::<DeadLetterId>().ok(),
            _ => None,
        };
        let letters = self
            .app
            .store
            .open_dead_letters(
                self.ctx,
                self.flow_id(),
                (!all).then_some(ids),
                after,
                u64::from(page_size),
            )
            .await?;
        let next = (letters.len() as u64 >= u64::from(page_size))
            .then(|| letters.last().map(|l| Resume::Cursor(l.id.to_string())))
            .flatten();
        Ok(Page {
            exchange: Exchange {
                method: "REPLAY".into(),
                path: "dead letters".into(),
                status: 200,
                ms: 0,
                records: letters.len(),
            },
            records: letters
                .iter()
                .map(|l| serde_json::from_str(&l.payload).unwrap_or(Json::Null))
                .collect(),
            next,
            total: None,
        })
    }

    /// Calls `call` until it succeeds, backing off between attempts (or waiting what the
    /// provider's `Retry-After` asks, clamped).
    async fn retrying<T, F: Future<Output = Result<T, Fault>>>(
        &self,
        what: &str,
        mut call: impl FnMut() -> F,
    ) -> Result<T, Stop> {
        let policy = OutagePolicy {
            base: CALL_BACKOFF,
            max_wait: CALL_MAX_WAIT,
            patience: self.app.settings.call_patience,
            min_attempts: CALL_ATTEMPTS,
            retry_after_cap: self.app.settings.retry_after_cap,
        };
        let mut attempt = 1;
        let mut first_failure: Option<tokio::time::Instant> = None;
        loop {
            let outcome = call().await;
            let failing_for = first_failure.map_or(Duration::ZERO, |at| at.elapsed());
            match outcome {
                Ok(v) => return Ok(v),
                Err(Fault::Retryable {
                    message,
                    retry_after,
                }) => {
                    first_failure.get_or_insert_with(tokio::time::Instant::now);
                    let Some(delay) = policy.next_wait(attempt, failing_for, retry_after) else {
                        // Still retryable in kind, so the run is filed as unavailable or
                        // rate limited rather than as a refusal.
                        return Err(Stop::Fault(Fault::Retryable {
                            message: format!(
                                "{what} kept failing for {} s ({attempt} tries); last error: {message}",
                                failing_for.as_secs()
                            ),
                            retry_after: None,
                        }));
                    };
                    let why = match retry_after {
                        Some(asked) if asked > self.app.settings.retry_after_cap => format!(
                            "Retry-After asked {} s, clamped to {} s",
                            asked.as_secs(),
                            delay.as_secs()
                        ),
                        Some(asked) => format!("Retry-After: {} s", asked.as_secs()),
                        None => "backoff with jitter".into(),
                    };
                    self.log(
                        "warn",
                        &format!(
                            "{what} failed (try {attempt}): {message}. Retrying in {:.1} s ({why}).",
                            delay.as_secs_f64()
                        ),
                        None,
                    )
                    .await;
                    // The lease is kept alive meanwhile by `keep_lease`.
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(other) => return Err(Stop::Fault(other)),
            }
        }
    }

    /// Maps, validates and filters a page, and looks its keys up in the ledger. The
    /// mapping runs on the expression pool: it is a few milliseconds of CPU per page, and on
    /// this task it would hold up the write and the commit polled beside it.
    async fn stage(
        &self,
        mut page: Page,
        mapping: &Arc<Mapping>,
        source: &Source,
        target: &Target,
    ) -> Result<Staged, Stop> {
        let records = std::mem::take(&mut page.records);
        let (mapping, object) = (Arc::clone(mapping), source.object);
        let key_field =
            (target.mode != crate::domain::WriteMode::Create).then(|| target.key_field.clone());
        let Mapped {
            commit,
            items,
            watermark,
        } = pool::run(move || map_page(records, &mapping, object, key_field))
            .await
            .map_err(|e| Fault::Fatal(format!("mapping the page failed: {e}")))?;
        let keys: Vec<Vec<u8>> = items.iter().map(|p| p.key_hash.clone()).collect();
        let ledger = self
            .app
            .store
            .ledger_entries(self.ctx, self.flow_id(), &keys)
            .await?;
        Ok(Staged {
            page,
            commit,
            items,
            ledger,
            watermark,
        })
    }

    /// Writes records in batches and counts the outcomes into the page's commit. A cancel
    /// stops between batches (true); what was written is committed all the same.
    /// `recheck`: an earlier execution may have written this page without committing it.
    async fn write(
        &self,
        to_write: Vec<(Prepared, Option<String>)>,
        target: &Target,
        batch: usize,
        close_dead_letters: bool,
        commit: &mut PageCommit,
        recheck: bool,
    ) -> Result<(Vec<Exchange>, bool), Stop> {
        let mut exchanges = Vec::new();
        let run_id = self.run.id.to_string();
        for (n, chunk) in to_write.chunks(batch).enumerate() {
            if n > 0 {
                match self.check_cancel().await {
                    Ok(()) => {}
                    Err(Stop::Cancelled) => {
                        let left = to_write.len() - n * batch;
                        commit.read -= left as i64;
                        return Ok((exchanges, true));
                    }
                    Err(other) => return Err(other),
                }
            }
            // Same records, same key: a write repeated after a crash is recognised.
            let mut parts: Vec<&[u8]> = vec![run_id.as_bytes()];
            for (p, _) in chunk {
                parts.push(&p.key_hash);
                parts.push(&p.content_hash);
            }
            let key = hex::encode(digest(&parts, 16));
            let recheck = if recheck {
                Recheck::suspected()
            } else {
                Recheck::default()
            };
            let (app, ctx, key, recheck) = (self.app, self.ctx, &key, &recheck);
            let written = self
                .retrying(&format!("Writing {} record(s)", chunk.len()), move || {
                    let items = chunk
                        .iter()
                        .map(|(p, dest)| Item {
                            record: p.record.clone(),
                            dest_id: dest.clone(),
                        })
                        .collect();
                    target.write(app, ctx, items, key, recheck)
                })
                .await?;
            exchanges.extend(written.exchanges);
            for ((p, dest), outcome) in chunk.iter().zip(written.outcomes) {
                match outcome {
                    Outcome::Written(id) => {
                        commit.written += 1;
                        let dest_id = match target.mode {
                            crate::domain::WriteMode::Create => id.or_else(|| dest.clone()),
                            _ => None,
                        };
                        commit.ledger.push((
                            p.key_hash.clone(),
                            LedgerEntry {
                                content_hash: p.content_hash.clone(),
                                dest_id,
                            },
                        ));
                        if close_dead_letters {
                            commit.delivered.push(p.key.clone());
                        }
                    }
                    Outcome::Rejected(message) => {
                        fail(commit, p.key.clone(), &p.source, "rejected", message);
                    }
                }
            }
        }
        Ok((exchanges, false))
    }

    async fn finish(
        &self,
        flow: &crate::store::entities::flows::Model,
        spec: &FlowSpec,
        replay: bool,
        watermark: Option<String>,
    ) -> Result<(), Stop> {
        let run = self
            .app
            .store
            .run(self.ctx, self.id())
            .await?
            .ok_or(Stop::LostLease)?;
        let end = if run.records_failed > 0 {
            RunEnd {
                class: Some(ErrorClass::Records),
                provider: self.providers.map(|(_, target)| target.to_owned()),
                ..RunEnd::plain(RunStatus::PartiallyFailed)
            }
        } else {
            RunEnd::plain(RunStatus::Succeeded)
        };
        let status = end.status;
        let Some(run) = self
            .app
            .store
            .finish_run(self.ctx, self.id(), Some(&self.holder), end)
            .await?
        else {
            return Err(Stop::LostLease);
        };
        let moved = (spec.source.incremental && !replay)
            .then_some(watermark)
            .flatten();
        self.app
            .store
            .record_flow_outcome(self.ctx, FlowId::from_uuid(flow.id), true, moved)
            .await?;
        self.log(
            "info",
            &format!(
                "Finished: {}. Read {}, wrote {}, unchanged {}, filtered {}, failed {}.",
                status.label().to_lowercase(),
                run.records_read,
                run.records_written,
                run.records_unchanged,
                run.records_filtered,
                run.records_failed
            ),
            None,
        )
        .await;
        let tenant = crate::telemetry::tenant_label(self.ctx.tenant_id());
        metrics::counter!("sluice_runs_total", "tenant" => tenant.clone(), "outcome" => status.as_str()).increment(1);
        metrics::counter!("sluice_records_total", "tenant" => tenant.clone(), "outcome" => "written")
            .increment(u64::try_from(run.records_written).unwrap_or(0));
        metrics::counter!("sluice_records_total", "tenant" => tenant, "outcome" => "failed")
            .increment(u64::try_from(run.records_failed).unwrap_or(0));
        evaluate_alerts(self.app, self.ctx, self.id()).await;
        Ok(())
    }

    /// Ends the run as failed, and pauses the flow after too many failures in a row.
    async fn fail(&self, fault: &Fault) -> Result<(), DbErr> {
        let message = fault.message().to_owned();
        self.log("error", &format!("Failed: {message}"), None).await;
        let provider = self.providers.map(|(source, target)| {
            if fault.while_writing() {
                target
            } else {
                source
            }
            .to_owned()
        });
        let end = RunEnd {
            status: RunStatus::Failed,
            error: Some(message.clone()),
            class: Some(fault.class()),
            provider,
        };
        if self
            .app
            .store
            .finish_run(self.ctx, self.id(), Some(&self.holder), end)
            .await?
            .is_none()
        {
            return Ok(());
        }
        metrics::counter!("sluice_runs_total", "tenant" => crate::telemetry::tenant_label(self.ctx.tenant_id()), "outcome" => "failed").increment(1);
        let streak = self
            .app
            .store
            .record_flow_outcome(self.ctx, self.flow_id(), false, None)
            .await?;
        let Some(flow) = self.app.store.flow(self.ctx, self.flow_id()).await? else {
            return Ok(());
        };
        let limit = self
            .app
            .store
            .flow_version(self.ctx, self.flow_id(), flow.version)
            .await?
            .and_then(|v| serde_json::from_str::<FlowSpec>(&v.spec).ok())
            .map_or(0, |s| s.auto_pause_after);
        if limit > 0
            && streak >= i32::try_from(limit).unwrap_or(i32::MAX)
            && flow.status == FlowStatus::Active.as_str()
        {
            let reason = format!(
                "Paused automatically after {streak} failed runs in a row. Last error: {message}"
            );
            self.app
                .store
                .set_flow_status(
                    self.ctx,
                    self.flow_id(),
                    FlowStatus::Paused,
                    Some(reason.clone()),
                    None,
                )
                .await?;
            self.log("error", &reason, None).await;
            tracing::warn!(flow = %self.flow_id(), streak, "flow paused automatically after repeated failures");
        }
        evaluate_alerts(self.app, self.ctx, self.id()).await;
        Ok(())
    }
}

/// Enqueues the alert evaluation of a finished run. If the push is lost, the alert sweep
/// finds the run (its alerts are marked unchecked) a little later.
async fn evaluate_alerts(app: &App, ctx: &TenantCtx, id: RunId) {
    let job = crate::queue::EvaluateRun {
        tenant_id: ctx.tenant_id(),
        run_id: id,
    };
    if let Err(e) = app.queue.push(job).await {
        tracing::warn!(run = %id, error = %e, "could not enqueue alert evaluation");
    }
}

fn describe(e: &RecordError) -> String {
    format!("{}: {}", e.field, e.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(content: &[u8], dest: Option<&str>) -> LedgerEntry {
        LedgerEntry {
            content_hash: content.to_vec(),
            dest_id: dest.map(str::to_owned),
        }
    }

    #[test]
    fn short_record_keys_are_kept_in_order_and_long_ones_digested_apart_from_them() {
        assert_eq!(ledger_key("con_000042"), b"con_000042".to_vec());
        assert!(ledger_key("1001") < ledger_key("1002"));
        let long = "cus_0192f3a4b5c6d7e8f9a0b1c2d3e4f5a6";
        let hashed = ledger_key(long);
        assert_eq!(hashed.len(), 13);
        assert_eq!(hashed[0], 0xFF, "no UTF-8 key starts with this byte");
        assert_eq!(hashed, ledger_key(long), "stable");
        assert_ne!(hashed, ledger_key("cus_0192f3a4b5c6d7e8f9a0b1c2d3e4f5a7"));
    }

    fn staged(keys: &[(&str, &[u8])], ledger: Ledger) -> Staged {
        Staged {
            page: Page {
                records: Vec::new(),
                next: None,
                total: None,
                exchange: Exchange {
                    method: "GET".into(),
                    path: "/".into(),
                    status: 200,
                    ms: 0,
                    records: keys.len(),
                },
            },
            commit: PageCommit::default(),
            items: keys
                .iter()
                .map(|(key, content)| Prepared {
                    key: (*key).to_owned(),
                    key_hash: key.as_bytes().to_vec(),
                    content_hash: content.to_vec(),
                    record: serde_json::Map::new(),
                    source: Json::Null,
                })
                .collect(),
            ledger,
            watermark: None,
        }
    }

    #[test]
    fn a_page_is_resolved_against_pages_written_after_its_ledger_lookup_newest_first() {
        // The lookup saw "a" and "b" as they were before the last two pages were written;
        // the page before last delivered "b" (as cus_2) and "c", the last page "c" anew.
        let looked_up = Ledger::from([
            (b"a".to_vec(), entry(b"a1", Some("cus_1"))),
            (b"b".to_vec(), entry(b"b0", None)),
        ]);
        let last = Ledger::from([(b"c".to_vec(), entry(b"c2", Some("cus_3")))]);
        let before_last = Ledger::from([
            (b"b".to_vec(), entry(b"b1", Some("cus_2"))),
            (b"c".to_vec(), entry(b"c1", Some("cus_3"))),
        ]);
        let mut page = staged(
            &[("a", b"a1"), ("b", b"b1"), ("c", b"c1"), ("d", b"d1")],
            looked_up,
        );
        let to_write = page.resolve(&[last, before_last], true);
        let written: Vec<(&str, Option<&str>)> = to_write
            .iter()
            .map(|(p, dest)| (p.key.as_str(), dest.as_deref()))
            .collect();
        // "a" and "b" are unchanged; "c" changed since the page before last (it is
        // written back to its record); "d" is new.
        assert_eq!(written, [("c", Some("cus_3")), ("d", None)]);
        assert_eq!(page.commit.unchanged, 2);
        assert_eq!(page.commit.delivered, ["a", "b"]);
    }
}
