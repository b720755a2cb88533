//! What a run works from, loaded once at its start: the flow version, its compiled
//! mapping, source and destination, the replay selection and the checkpoint.

use super::{Runner, Stop};
use crate::connectors::catalogue::{ObjectSpec, Provider};
use crate::connectors::session::Recent;
use crate::domain::{ConnectionId, FlowSpec, LetterSelection};
use crate::store::FlowToRun;
use crate::store::entities::{connections, flows};
use crate::sync::Fault;
use crate::sync::mapping::Mapping;
use crate::sync::source::{Resume, Source};
use crate::sync::target::Target;
use std::sync::Arc;

/// What a run works from.
pub(super) struct Plan {
    /// The flow version the run executes.
    pub(super) spec: FlowSpec,
    /// Its compiled mapping.
    pub(super) mapping: Arc<Mapping>,
    /// Where records come from.
    pub(super) source: Source,
    /// Where they go.
    pub(super) target: Target,
    /// The dead letters a replay re-sends (none: a run reads its source).
    pub(super) replay: Option<LetterSelection>,
    /// Where the run resumes (its checkpoint), if it ran before.
    pub(super) resume: Option<Resume>,
    /// Only records changed since this (incremental runs).
    pub(super) since: Option<String>,
    /// Whether delivered records close their open dead letters.
    pub(super) close_dead_letters: bool,
    /// Records per page read.
    pub(super) page_size: u32,
    /// Records per write.
    pub(super) batch: usize,
    /// Pages up to this number may have been written by an execution that stopped before
    /// committing them: their creates are looked up first.
    pub(super) recheck_through: i64,
    /// The flow and both ends' connections as the run found them (its alert rules judge
    /// its end by them).
    pub(super) flow: flows::Model,
    pub(super) connections: [connections::Model; 2],
}

impl Runner<'_> {
    /// Loads the flow version, compiles its mapping and resolves both ends.
    pub(super) async fn prepare(&mut self) -> Result<Plan, Stop> {
        let Some(FlowToRun {
            flow,
            version_id,
            spec,
            open_dead_letters,
        }) = self
            .app
            .store
            .flow_to_run(self.ctx, self.flow_id(), self.run.version)
            .await?
        else {
            return Err(Fault::fatal("the flow or the version run was deleted").into());
        };
        let spec: FlowSpec = serde_json::from_str(&spec)
            .map_err(|e| Fault::fatal(format!("the flow version cannot be read: {e}")))?;
        let mapping = Mapping::of_version(version_id, &spec)
            .await
            .map_err(|e| Fault::fatal(e.to_string()))?
            .map_err(|e| Fault::fatal(format!("the mapping does not compile: {e}")))?;
        let [
            (source_provider, source_conn),
            (target_provider, target_conn),
        ] = self
            .connections_of([spec.source.connection_id, spec.destination.connection_id])
            .await?;
        let connections = [source_conn.clone(), target_conn.clone()];
        let source = Source::new(
            spec.source.connection_id,
            source_provider,
            object_of(source_provider, &spec.source.object)?,
        )
        .with_connection(source_conn);
        self.providers = Some((&source_provider.id, &target_provider.id));
        let target = Target {
            connection: spec.destination.connection_id,
            provider: target_provider,
            object: object_of(target_provider, &spec.destination.object)?,
            mode: spec.destination.write_mode,
            key_field: spec.destination.key_field.clone(),
            values: crate::connectors::credentials::config_of(&target_conn),
            recent: Recent::seeded(target_conn),
        };
        let replay =
            match &self.run.replay {
                Some(text) => Some(LetterSelection::from_stored(text).map_err(|e| {
                    Fault::fatal(format!("the replay selection cannot be read: {e}"))
                })?),
                None => None,
            };
        let resume = match &self.run.cursor {
            Some(c) => Some(
                serde_json::from_str(c)
                    .map_err(|e| Fault::fatal(format!("the checkpoint cannot be read: {e}")))?,
            ),
            None => None,
        };
        let since = (spec.source.incremental && replay.is_none())
            .then(|| flow.watermark.clone())
            .flatten();
        let close_dead_letters = replay.is_some() || open_dead_letters;
        // Up to two pages past the checkpoint may have been written by an execution that
        // stopped before committing them (page N is written while N-1 commits).
        let recheck_through = if self.interrupted && target.mode == crate::domain::WriteMode::Create
        {
            self.run.pages + 2
        } else {
            0
        };
        Ok(Plan {
            page_size: source.page_size(None),
            batch: records_per_write(&spec, &target),
            spec,
            mapping,
            source,
            target,
            replay,
            resume,
            since,
            close_dead_letters,
            recheck_through,
            flow,
            connections,
        })
    }

    /// Says in the run log (with its first commit) what the run does: starts, resumes, replays, and whether it
    /// looks records up before creating them again.
    pub(super) fn announce(&self, plan: &Plan) {
        if self.run.pages > 0 {
            self.hold(
                "warn",
                format!(
                    "Resumed after an interruption, from the checkpoint after page {}.",
                    self.run.pages
                ),
            );
        } else {
            let what = match &plan.replay {
                Some(LetterSelection::All) => "Replaying all open dead letters".to_owned(),
                Some(LetterSelection::Ids(ids)) => {
                    format!("Replaying {} dead letter(s)", ids.len())
                }
                None => format!(
                    "Reading {} from {}{}",
                    plan.source.object.name,
                    plan.source.provider.name,
                    plan.since
                        .as_deref()
                        .map(|s| format!(" changed since {s}"))
                        .unwrap_or_default()
                ),
            };
            self.hold(
                "info",
                format!(
                    "Started with version {} ({}). {what}.",
                    self.run.version,
                    self.run.trigger.label()
                ),
            );
        }
        if plan.recheck_through > 0 {
            let target = &plan.target;
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
            self.hold(
                "info",
                format!("The last execution stopped mid-page: {how}."),
            );
        }
    }

    /// The source's and destination's connections, with their providers, read in one
    /// query.
    pub(super) async fn connections_of(
        &self,
        ends: [ConnectionId; 2],
    ) -> Result<[(&'static Provider, connections::Model); 2], Stop> {
        let connections = self.app.store.connections_by_id(self.ctx, &ends).await?;
        let resolve = |id: ConnectionId| {
            let conn = connections
                .iter()
                .find(|c| c.id == id)
                .ok_or_else(|| Fault::fatal("a connection of this flow was deleted"))?;
            let provider =
                crate::connectors::credentials::provider_of(conn).map_err(Fault::fatal)?;
            Ok::<_, Stop>((provider, conn.clone()))
        };
        Ok([resolve(ends[0])?, resolve(ends[1])?])
    }
}

/// Records handed to the destination per write: a batch, or for a destination that takes
/// one record a request, a group whose records go out several at a time (see
/// `Target::write_each`). A cancel is noticed between writes.
fn records_per_write(spec: &FlowSpec, target: &Target) -> usize {
    /// A hundred requests of a few milliseconds each at eight in flight: a cancel waits
    /// well under a second.
    const SINGLE_RECORD_GROUP: usize = 100;
    match target.batch_max() {
        1 => SINGLE_RECORD_GROUP,
        most => spec.batch_size.clamp(1, most) as usize,
    }
}

fn object_of(provider: &'static Provider, object: &str) -> Result<&'static ObjectSpec, Fault> {
    provider
        .objects
        .iter()
        .find(|o| o.id == object)
        .ok_or_else(|| Fault::fatal(format!("{} has no object '{object}'", provider.name)))
}
