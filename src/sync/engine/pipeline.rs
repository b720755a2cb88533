//! The page pipeline. Four pages are in the air at once: page N is written while page
//! N+1 is mapped and looked up in the ledger, page N+2 is fetched and page N-1 commits.
//! Commits stay in page order, so the checkpoint never passes a page that is not
//! committed; `recent` holds the ledger rows of the last two pages written, which the
//! ledger lookup of the page after them may not have seen yet.

use super::plan::Plan;
use super::staging::{Ledger, Prepared, Staged, digest, fail};
use super::{Runner, Stop};
use crate::domain::RecordFault;
use crate::domain::{DeadLetterId, LetterSelection};
use crate::store::entities::runs;
use crate::store::{LedgerEntry, PageCommit, RunLine};
use crate::sync::source::{Page, Resume, Source};
use crate::sync::target::{Item, Outcome, Recheck, Target};
use crate::sync::{Exchange, Phase, since};
use sea_orm::DbErr;
use serde_json::{Value as Json, json};
use std::sync::Arc;

/// A page commit under way (true if the lease still held).
type Commit<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<Option<runs::Model>, DbErr>> + Send + 'a>>;

/// Waits for a page commit, if one is under way, and returns the run as it committed; a
/// lost lease stops the run.
async fn landed(commit: Option<Commit<'_>>) -> Result<Option<runs::Model>, Stop> {
    match commit {
        Some(c) => c.await?.map(Some).ok_or(Stop::LostLease),
        None => Ok(None),
    }
}

/// How the pages ended.
pub(super) struct Paged {
    /// The latest last-modified value seen.
    pub watermark: Option<String>,
    /// The run as its last page committed (none if no page was).
    pub committed: Option<runs::Model>,
    /// The source's last page, written but not committed: the run's end commits it, so
    /// that a one-page run costs one transaction rather than two.
    pub last: Option<PageCommit>,
}

/// The next page staged beside the current one, and the one after it fetched.
type Ahead = Option<(Result<Staged, Stop>, Option<Result<Page, Stop>>)>;

/// The pages of one execution in flight.
pub(super) struct Pipeline<'a> {
    runner: &'a Runner<'a>,
    plan: &'a Plan,
    page_number: i64,
    resume: Option<Resume>,
    watermark: Option<String>,
    staged_ahead: Option<Result<Staged, Stop>>,
    fetched_ahead: Option<Result<Page, Stop>>,
    committing: Option<Commit<'a>>,
    committed: Option<runs::Model>,
    last: Option<PageCommit>,
    recent: [Ledger; 2],
}

impl<'a> Pipeline<'a> {
    /// A pipeline that starts at the run's checkpoint.
    pub(super) fn new(runner: &'a Runner<'a>, plan: &'a Plan) -> Self {
        Pipeline {
            runner,
            plan,
            page_number: runner.run.pages,
            resume: plan.resume.clone(),
            watermark: runner.run.watermark.clone(),
            staged_ahead: None,
            fetched_ahead: None,
            committing: None,
            committed: None,
            last: None,
            recent: Default::default(),
        }
    }

    /// Pages through to the end.
    pub(super) async fn run(mut self) -> Result<Paged, Stop> {
        let outcome = self.pages().await;
        // Whatever ended the loop, the commit under way lands (or fails) before the run
        // moves on: dropping it would lose a page the destination already has.
        if let Some(run) = landed(self.committing.take()).await? {
            self.committed = Some(run);
        }
        outcome?;
        Ok(Paged {
            watermark: self.watermark,
            committed: self.committed,
            last: self.last,
        })
    }

    async fn pages(&mut self) -> Result<(), Stop> {
        let (runner, plan) = (self.runner, self.plan);
        while self.resume != Some(Resume::End) {
            // Before the first page the run was claimed a moment ago, cancel flag seen.
            if self.page_number > 0 {
                runner.check_cancel().await?;
            }
            self.page_number += 1;
            let mut current = self.next_staged().await?;
            let to_write = current.resolve(&self.recent, plan.close_dead_letters);
            let next = plan
                .replay
                .is_none()
                .then(|| current.page.next.clone())
                .flatten();
            let ahead = ahead(
                runner,
                plan,
                next,
                self.fetched_ahead.take(),
                self.page_number,
            );
            let write = runner.write(
                to_write,
                &plan.target,
                plan.batch,
                plan.close_dead_letters,
                &mut current.commit,
                self.page_number <= plan.recheck_through,
            );
            let previous = landed(self.committing.take());
            let (written, ahead, previous) = tokio::join!(write, ahead, previous);
            if let Some(run) = previous? {
                self.committed = Some(run);
            }
            if let Some((staged, fetched)) = ahead {
                self.staged_ahead = Some(staged);
                self.fetched_ahead = fetched;
            }
            let (exchanges, cancelled) = written?;
            let next = self.commit(current, exchanges, cancelled);
            if cancelled {
                return Err(Stop::Cancelled);
            }
            self.resume = Some(next);
        }
        Ok(())
    }

    /// The current page: staged beside the last one, or read and staged now.
    async fn next_staged(&mut self) -> Result<Staged, Stop> {
        if let Some(staged) = self.staged_ahead.take() {
            return staged;
        }
        let (runner, plan) = (self.runner, self.plan);
        let page = match &plan.replay {
            Some(selection) => {
                runner
                    .dead_letter_page(selection, self.resume.as_ref(), plan.page_size)
                    .await?
            }
            None => {
                runner
                    .fetch_page(
                        &plan.source,
                        self.resume.as_ref(),
                        plan.since.as_deref(),
                        plan.page_size,
                        self.page_number,
                    )
                    .await?
            }
        };
        runner
            .stage(page, &plan.mapping, &plan.source, &plan.target)
            .await
    }

    /// Starts committing a written page (counts, checkpoint, ledger, dead letters), or
    /// keeps the source's last page for the run's end to commit; returns where the next
    /// page starts.
    fn commit(&mut self, current: Staged, exchanges: Vec<Exchange>, cancelled: bool) -> Resume {
        let Staged {
            page,
            mut commit,
            watermark: seen,
            ..
        } = current;
        if let Some(seen) = seen
            && self
                .watermark
                .as_deref()
                .is_none_or(|w| since::is_later(&seen, w))
        {
            self.watermark = Some(seen);
        }
        let number = self.page_number;
        let summary = format!(
            "Page {number}: read {}, wrote {}, unchanged {}, filtered {}, failed {}.",
            commit.read, commit.written, commit.unchanged, commit.filtered, commit.failed
        );
        let mut all = vec![page.exchange];
        all.extend(exchanges);
        commit.log = Some(RunLine {
            at: crate::store::now(),
            level: "info",
            message: summary,
            detail: Some(json!({ "exchanges": all })),
        });
        commit.earlier = self.runner.take_held();
        commit.watermark = self.watermark.clone();
        commit.total = page.total.filter(|_| number == 1);
        let next = page.next.unwrap_or(Resume::End);
        // A page cut short by a cancel keeps its start as the checkpoint.
        let checkpoint = if cancelled {
            self.resume.clone()
        } else {
            Some(next.clone())
        };
        commit.cursor = checkpoint.map(|c| serde_json::to_string(&c).unwrap_or_default());
        if next == Resume::End && !cancelled {
            self.last = Some(commit);
            return next;
        }
        let written_now: Ledger = commit.ledger.iter().cloned().collect();
        self.recent = [written_now, std::mem::take(&mut self.recent[0])];
        let runner = self.runner;
        self.committing = Some(Box::pin(runner.app.store.commit_page(
            runner.ctx,
            runner.flow_id(),
            runner.id(),
            &runner.holder,
            commit,
        )));
        next
    }
}

/// Fetches the page after the current one (unless it was fetched already) and stages
/// it, while the page after that is fetched.
async fn ahead<'a>(
    runner: &'a Runner<'a>,
    plan: &'a Plan,
    next: Option<Resume>,
    further: Option<Result<Page, Stop>>,
    number: i64,
) -> Ahead {
    let next = next?;
    let page = match further {
        Some(page) => page,
        None => {
            runner
                .fetch_page(
                    &plan.source,
                    Some(&next),
                    plan.since.as_deref(),
                    plan.page_size,
                    number + 1,
                )
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
                runner
                    .fetch_page(
                        &plan.source,
                        Some(after),
                        plan.since.as_deref(),
                        plan.page_size,
                        number + 2,
                    )
                    .await,
            ),
            None => None,
        }
    };
    let (staged, fetched) = tokio::join!(
        runner.stage(page, &plan.mapping, &plan.source, &plan.target),
        fetch_after
    );
    Some((staged, fetched))
}

impl Runner<'_> {
    pub(super) async fn fetch_page(
        &self,
        source: &Source,
        resume: Option<&Resume>,
        since: Option<&str>,
        page_size: u32,
        number: i64,
    ) -> Result<Page, Stop> {
        self.retrying(Phase::Read, &format!("Reading page {number}"), || {
            source.fetch(self.app, self.ctx, resume, since, page_size)
        })
        .await
    }

    pub(super) async fn dead_letter_page(
        &self,
        selection: &LetterSelection,
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
                selection.ids(),
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

    /// Writes records in batches and counts the outcomes into the page's commit. A cancel
    /// stops between batches (true); what was written is committed all the same.
    /// `recheck`: an earlier execution may have written this page without committing it.
    pub(super) async fn write(
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
                .retrying(
                    Phase::Write,
                    &format!("Writing {} record(s)", chunk.len()),
                    move || {
                        let items = chunk
                            .iter()
                            .map(|(p, dest)| Item {
                                record: Arc::clone(&p.record),
                                dest_id: dest.clone(),
                            })
                            .collect();
                        target.write(app, ctx, items, key, recheck)
                    },
                )
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
                        fail(
                            commit,
                            p.key.clone(),
                            &p.source,
                            RecordFault::Rejected,
                            message,
                        );
                    }
                }
            }
        }
        Ok((exchanges, false))
    }
}
