//! The run's life around its pages: the run log, pausing while the database refuses
//! writes, cancel and shutdown checks, and the end (succeeded, partially failed or
//! failed, with auto-pause). A completed run's alert rules are asked before its end
//! whether they have anything to say; when they may, the job that ran it evaluates them.

use super::pipeline::Paged;
use super::plan::Plan;
use super::{Runner, Stop};
use crate::domain::{ErrorClass, FlowSpec, FlowStatus, RunStatus};
use crate::store::entities::{flows, runs};
use crate::store::{FinishedRun, RunEnd, RunLine};
use crate::sync::Fault;
use sea_orm::DbErr;
use serde_json::Value as Json;
use std::time::Duration;

/// The process log gets each run-log line too, inside the run's span (tenant, flow, run).
fn trace(level: &str, message: &str) {
    match level {
        "error" => tracing::error!("{message}"),
        "warn" => tracing::warn!("{message}"),
        _ => tracing::info!("{message}"),
    }
}

impl Runner<'_> {
    /// Appends to the run log; a failure to log never fails the run.
    pub(super) async fn log(&self, level: &str, message: &str, detail: Option<Json>) {
        trace(level, message);
        // Lines held for a commit that did not come go first, in their order.
        for line in self.take_held() {
            if let Err(e) = self
                .app
                .store
                .log_run_event(self.ctx, self.id(), line.level, &line.message, line.detail)
                .await
            {
                tracing::warn!(run = %self.id(), error = %e, "could not write the run log");
            }
        }
        if let Err(e) = self
            .app
            .store
            .log_run_event(self.ctx, self.id(), level, message, detail)
            .await
        {
            tracing::warn!(run = %self.id(), error = %e, "could not write the run log");
        }
    }

    /// Appends to the run log with the run's next commit (a page or its end), one
    /// transaction fewer than [`Runner::log`]. A line still held when the run stops
    /// otherwise is written before the line saying why.
    pub(super) fn hold(&self, level: &'static str, message: String) {
        trace(level, &message);
        if let Ok(mut held) = self.held.lock() {
            held.push(RunLine {
                at: crate::store::now(),
                level,
                message,
                detail: None,
            });
        }
    }

    /// The held lines, for the commit that writes them.
    pub(super) fn take_held(&self) -> Vec<RunLine> {
        self.held
            .lock()
            .map(|mut held| std::mem::take(&mut *held))
            .unwrap_or_default()
    }

    /// Waits, holding the run, until the database accepts writes again; then takes the
    /// run up where its last commit left it. Stops instead when the process is shutting
    /// down or another worker took the run meanwhile.
    pub(super) async fn wait_for_database(&mut self, error: &DbErr) -> Result<(), Stop> {
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

    /// At each page boundary: stops for a lost lease, a cancel request or a shutdown.
    pub(super) async fn check_cancel(&self) -> Result<(), Stop> {
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

    pub(super) async fn finish(&self, plan: &Plan, paged: Paged) -> Result<FinishedRun, Stop> {
        let (spec, replay) = (&plan.spec, plan.replay.is_some());
        let Paged {
            watermark,
            committed,
            last,
        } = paged;
        // The run's counts before the last page: as the page before it committed, or as
        // this execution found them (nobody else changes them while it holds the lease).
        let run = match committed {
            Some(run) => run,
            None if last.is_some() => self.run.clone(),
            None => self
                .app
                .store
                .run(self.ctx, self.id())
                .await?
                .ok_or(Stop::LostLease)?,
        };
        // ... and after it, as the end's commit will leave them.
        let mut counted = run.clone();
        if let Some(page) = &last {
            page.add_counts_to(&mut counted);
        }
        // The failure streak ends and the watermark moves in the run's final commit.
        let moved = (spec.source.incremental && !replay)
            .then_some(watermark)
            .flatten();
        let end = if counted.records_failed > 0 {
            // The destination is at fault only for records it refused; records the
            // flow's own mapping, filter or validation failed are the flow's.
            let refused = last.as_ref().is_some_and(|p| p.destination_refused())
                || (run.records_failed > 0
                    && self
                        .app
                        .store
                        .destination_refused_records(self.ctx, self.id())
                        .await?);
            RunEnd {
                class: Some(ErrorClass::Records),
                provider: self
                    .providers
                    .filter(|_| refused)
                    .map(|(_, target)| target.to_owned()),
                ..RunEnd::completed(RunStatus::PartiallyFailed, moved)
            }
        } else {
            RunEnd::completed(RunStatus::Succeeded, moved)
        };
        let status = end.status;
        // The counts do not change at the end: the line is written with it.
        self.hold(
            "info",
            format!(
                "Finished: {}. Read {}, wrote {}, unchanged {}, filtered {}, failed {}.",
                status.label().to_lowercase(),
                counted.records_read,
                counted.records_written,
                counted.records_unchanged,
                counted.records_filtered,
                counted.records_failed
            ),
        );
        let end = RunEnd {
            lines: self.take_held(),
            alerts_checked: self.quiet_end(plan, &counted, &end).await,
            also: self.with_end.clone(),
            ..end
        };
        let Some(finished) = self
            .app
            .store
            .finish_run_as_read(self.ctx, &run, Some(&self.holder), end, last)
            .await?
        else {
            return Err(Stop::LostLease);
        };
        let run = &finished.run;
        let tenant = crate::telemetry::tenant_label(self.ctx.tenant_id());
        metrics::counter!("sluice_runs_total", "tenant" => tenant.clone(), "outcome" => status.as_str()).increment(1);
        metrics::counter!("sluice_records_total", "tenant" => tenant.clone(), "outcome" => "written")
            .increment(u64::try_from(run.records_written).unwrap_or(0));
        metrics::counter!("sluice_records_total", "tenant" => tenant, "outcome" => "failed")
            .increment(u64::try_from(run.records_failed).unwrap_or(0));
        Ok(finished)
    }

    /// Whether the run's alert rules have nothing to say about `end` (see
    /// [`super::EndJudge`]); `counted` is the run with its last page. When they may, or
    /// the question fails, the job that ran the run judges it after its end.
    async fn quiet_end(&self, plan: &Plan, counted: &runs::Model, end: &RunEnd) -> bool {
        // The end of a run that went through its records ends the flow's failure streak.
        let flow = flows::Model {
            consecutive_failures: 0,
            ..plan.flow.clone()
        };
        let ended = end.applied_to(counted);
        self.judge
            .quiet(self.app, self.ctx, &ended, &flow, &plan.connections)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(run = %self.id(), error = %e, "alert rules left to judge after the end");
                false
            })
    }

    /// Ends the run as failed, and pauses the flow after too many failures in a row.
    pub(super) async fn fail(&self, fault: &Fault) -> Result<(), DbErr> {
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
            error: Some(message.clone()),
            class: Some(fault.class()),
            provider,
            ..RunEnd::plain(RunStatus::Failed)
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
            .extend_failure_streak(self.ctx, self.flow_id())
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
            && flow.status == FlowStatus::Active
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
        Ok(())
    }
}
