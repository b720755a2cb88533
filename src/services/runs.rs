//! Run history and the run inspector: filtered, keyset-paginated history, CSV export,
//! comparison with the last successful run, and redaction of anything secret-looking in
//! payloads and exchanges before they are shown.

use super::require_write;
use crate::app::{App, AuditActor};
use crate::connectors::redact::{redact_json_text, redact_text};
use crate::domain::{
    DeadLetterId, DeadLetterState, FlowId, RecordFault, RunId, RunStatus, TenantCtx, TimeZone,
};
use crate::error::{AppError, AppResult};
use crate::store::entities::{dead_letters, flows, runs};
use crate::store::{RunEnd, RunFilter};
use std::collections::HashMap;

/// Rows in one CSV export at most.
pub const CSV_MAX_ROWS: usize = 100_000;

/// A page of history, with the cursor of the next page.
pub struct HistoryPage {
    /// The runs, newest first.
    pub runs: Vec<runs::Model>,
    /// The cursor for older runs, if there are any.
    pub next: Option<RunId>,
}

/// One page of the tenant's run history.
pub async fn history(
    app: &App,
    ctx: &TenantCtx,
    filter: &RunFilter,
    before: Option<RunId>,
    per_page: u64,
) -> AppResult<HistoryPage> {
    let mut runs = app
        .store
        .run_history(ctx, filter, before, per_page + 1)
        .await?;
    let next = if runs.len() as u64 > per_page {
        runs.truncate(per_page as usize);
        runs.last().map(|r| r.id)
    } else {
        None
    };
    Ok(HistoryPage { runs, next })
}

/// Names of the tenant's flows by id.
pub async fn flow_names(app: &App, ctx: &TenantCtx) -> AppResult<HashMap<FlowId, String>> {
    Ok(app
        .store
        .flows(ctx)
        .await?
        .into_iter()
        .map(|f| (f.id, f.name))
        .collect())
}

fn csv_field(out: &mut String, value: &str) {
    // Quote everything; a leading formula character is neutralised so a spreadsheet never
    // evaluates text that came from a provider.
    let risky = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    out.push('"');
    if risky {
        out.push('\'');
    }
    out.push_str(&value.replace('"', "\"\""));
    out.push('"');
}

/// The filtered history as CSV (newest first, at most [`CSV_MAX_ROWS`] rows), times with
/// the offset of the workspace zone `tz`.
pub async fn history_csv(
    app: &App,
    ctx: &TenantCtx,
    filter: &RunFilter,
    tz: TimeZone,
) -> AppResult<String> {
    let names = flow_names(app, ctx).await?;
    let mut out = String::from(
        "run_id,flow_id,flow,trigger,status,created_at,started_at,finished_at,duration_ms,records_read,records_written,records_unchanged,records_filtered,records_failed,error_class,error\n",
    );
    let mut before = None;
    let mut rows = 0;
    while rows < CSV_MAX_ROWS {
        let page = app.store.run_history(ctx, filter, before, 1000).await?;
        let Some(last) = page.last() else { break };
        before = Some(last.id);
        for r in &page {
            let fields = [
                r.id.to_string(),
                r.flow_id.to_string(),
                names.get(&r.flow_id).cloned().unwrap_or_default(),
                r.trigger.to_string(),
                r.status.to_string(),
                tz.rfc3339(r.created_at),
                r.started_at.map(|t| tz.rfc3339(t)).unwrap_or_default(),
                r.finished_at.map(|t| tz.rfc3339(t)).unwrap_or_default(),
                r.duration_ms.map(|d| d.to_string()).unwrap_or_default(),
                r.records_read.to_string(),
                r.records_written.to_string(),
                r.records_unchanged.to_string(),
                r.records_filtered.to_string(),
                r.records_failed.to_string(),
                r.error_class.map(|c| c.to_string()).unwrap_or_default(),
                r.error.as_deref().map(redact_text).unwrap_or_default(),
            ];
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                csv_field(&mut out, f);
            }
            out.push('\n');
            rows += 1;
        }
        if page.len() < 1000 {
            break;
        }
    }
    Ok(out)
}

/// How a run compares with the flow's last successful run before it.
pub struct Comparison {
    /// That run.
    pub baseline: runs::Model,
    /// Differences, e.g. ("Records read", "-120 (-40 %)").
    pub rows: Vec<(&'static str, String, String, String)>,
}

fn delta(now: i64, then: i64) -> String {
    let d = now - then;
    if then == 0 {
        return format!("{d:+}");
    }
    format!("{d:+} ({:+.0} %)", 100.0 * d as f64 / then as f64)
}

/// Compares a run with the last successful run of its flow before it.
pub async fn compare_with_last_success(
    app: &App,
    ctx: &TenantCtx,
    run: &runs::Model,
) -> AppResult<Option<Comparison>> {
    let Some(baseline) = app
        .store
        .recent_successes(ctx, run.flow_id, run.id, 1)
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let pairs: [(&'static str, i64, i64); 6] = [
        ("Records read", run.records_read, baseline.records_read),
        ("Written", run.records_written, baseline.records_written),
        (
            "Unchanged",
            run.records_unchanged,
            baseline.records_unchanged,
        ),
        ("Filtered", run.records_filtered, baseline.records_filtered),
        ("Failed", run.records_failed, baseline.records_failed),
        (
            "Duration (ms)",
            run.duration_ms.unwrap_or(0),
            baseline.duration_ms.unwrap_or(0),
        ),
    ];
    let rows = pairs
        .into_iter()
        .map(|(label, a, b)| (label, a.to_string(), b.to_string(), delta(a, b)))
        .collect();
    Ok(Some(Comparison { baseline, rows }))
}

/// Everything the run inspector shows besides the live part.
pub struct Inspection {
    /// The run.
    pub run: runs::Model,
    /// Its flow.
    pub flow: flows::Model,
    /// Comparison with the last success.
    pub comparison: Option<Comparison>,
    /// The run's record failures (first 50), payloads redacted.
    pub failures: Vec<dead_letters::Model>,
}

/// Loads a run for the inspector.
pub async fn inspect(app: &App, ctx: &TenantCtx, id: RunId) -> AppResult<Inspection> {
    let run = get(app, ctx, id).await?;
    let flow = app
        .store
        .flow(ctx, run.flow_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let comparison = if run.status.is_finished() {
        compare_with_last_success(app, ctx, &run).await?
    } else {
        None
    };
    let failures = app
        .store
        .dead_letters_of_run(ctx, id, 50)
        .await?
        .into_iter()
        .map(redacted)
        .collect();
    Ok(Inspection {
        run,
        flow,
        comparison,
        failures,
    })
}

/// A dead letter as it may be shown: secret-looking values in its payload and error
/// masked. Every page and API answer that shows dead letters goes through this, whatever
/// the viewer's role: what a provider or a source record put there is not ours to show.
fn redacted(mut letter: dead_letters::Model) -> dead_letters::Model {
    letter.payload = redact_json_text(&letter.payload);
    letter.error = redact_text(&letter.error);
    letter
}

/// Which of a flow's dead letters to list.
#[derive(Clone, Copy, Debug)]
pub struct LetterQuery {
    /// Their state.
    pub state: DeadLetterState,
    /// Only this run's.
    pub run: Option<RunId>,
    /// Only this error class.
    pub class: Option<RecordFault>,
    /// Skip this many.
    pub offset: u64,
    /// At most this many.
    pub limit: u64,
}

/// A page of a flow's dead letters, newest first, redacted; 404 for another tenant's
/// flow.
pub async fn dead_letters(
    app: &App,
    ctx: &TenantCtx,
    flow: FlowId,
    query: LetterQuery,
) -> AppResult<Vec<dead_letters::Model>> {
    crate::services::flows::get(app, ctx, flow).await?;
    Ok(app
        .store
        .dead_letters(
            ctx,
            flow,
            Some(query.state),
            query.run,
            query.class,
            query.offset,
            query.limit,
        )
        .await?
        .into_iter()
        .map(redacted)
        .collect())
}

/// Open dead letters a group action reaches at most (the rest stay for the next one).
pub const GROUP_ACTION_MAX: u64 = 5000;
/// Dead letters read to group them by error.
const GROUPED_MAX: u64 = 20_000;

/// Dead letters that failed the same way: same class, same message once the values that
/// differ from record to record (numbers, quoted text) are set aside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LetterGroup {
    /// The shared shape of the message, which names the group in forms.
    pub signature: String,
    /// Error class.
    pub class: String,
    /// One of the messages, as it was.
    pub example: String,
    /// How many.
    pub count: u64,
}

/// A flow's dead letters in `state` (optionally of one run) grouped by error, the
/// largest group first, with how many were read (at most 20,000).
pub async fn letter_groups(
    app: &App,
    ctx: &TenantCtx,
    flow: FlowId,
    state: DeadLetterState,
    run: Option<RunId>,
) -> AppResult<(Vec<LetterGroup>, u64)> {
    crate::services::flows::get(app, ctx, flow).await?;
    let rows = app
        .store
        .dead_letter_errors(ctx, flow, state, run, GROUPED_MAX)
        .await?;
    let read = rows.len() as u64;
    let mut groups: Vec<LetterGroup> = Vec::new();
    for (_, class, error) in rows {
        let signature = format!("{class}: {}", error_signature(&error));
        match groups.iter_mut().find(|g| g.signature == signature) {
            Some(group) => group.count += 1,
            None => groups.push(LetterGroup {
                signature,
                class,
                example: redact_text(&error),
                count: 1,
            }),
        }
    }
    groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.signature.cmp(&b.signature)));
    Ok((groups, read))
}

/// The open dead letters of the group with this signature (at most
/// [`GROUP_ACTION_MAX`]), for replaying or discarding a group.
pub async fn open_letters_in_group(
    app: &App,
    ctx: &TenantCtx,
    flow: FlowId,
    signature: &str,
) -> AppResult<Vec<DeadLetterId>> {
    crate::services::flows::get(app, ctx, flow).await?;
    Ok(app
        .store
        .dead_letter_errors(ctx, flow, DeadLetterState::Open, None, GROUPED_MAX)
        .await?
        .into_iter()
        .filter(|(_, class, error)| format!("{class}: {}", error_signature(error)) == signature)
        .map(|(id, _, _)| id)
        .take(GROUP_ACTION_MAX as usize)
        .collect())
}

/// A message with what varies between records set aside: runs of digits become `#`,
/// quoted text `"…"`, so "row 12: 'a@b' is taken" and "row 7: 'c@d' is taken" match.
fn error_signature(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '0'..='9' => {
                while chars.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                }
                out.push('#');
            }
            '"' | '\'' | '`' => {
                // Only a closed quote is set aside; an apostrophe in a word stays.
                let rest: String = chars.clone().take(200).collect();
                match rest.find(c) {
                    Some(end) => {
                        for _ in 0..=rest[..end].chars().count() {
                            chars.next();
                        }
                        out.push(c);
                        out.push('…');
                        out.push(c);
                    }
                    None => out.push(c),
                }
            }
            c => out.push(c),
        }
        if out.len() > 300 {
            break;
        }
    }
    out
}

/// A run, or 404.
pub async fn get(app: &App, ctx: &TenantCtx, id: RunId) -> AppResult<runs::Model> {
    app.store.run(ctx, id).await?.ok_or(AppError::NotFound)
}

/// Asks a run to stop; a run no worker has picked up ends at once.
pub async fn cancel(app: &App, ctx: &TenantCtx, actor: &AuditActor, id: RunId) -> AppResult<()> {
    require_write(ctx)?;
    let run = get(app, ctx, id).await?;
    if !app.store.request_cancel(ctx, id).await? {
        return Err(AppError::Conflict("This run has already ended.".into()));
    }
    if run.lease_holder.is_none() {
        app.store
            .finish_run(ctx, id, None, RunEnd::plain(RunStatus::Cancelled))
            .await?;
    }
    app.audit(ctx, actor, "run.cancelled", Some(id.to_string()), None)
        .await?;
    Ok(())
}

/// A run's log, oldest first.
pub async fn events(
    app: &App,
    ctx: &TenantCtx,
    id: RunId,
    limit: u64,
) -> AppResult<Vec<crate::store::entities::run_events::Model>> {
    Ok(app.store.run_events(ctx, id, limit).await?)
}

/// What an unfinished run is waiting for, when it is waiting: its latest log line is a
/// warning (a retry after a failed call, a pause after a storage error).
pub async fn waiting_for(
    app: &App,
    ctx: &TenantCtx,
    run: &crate::store::entities::runs::Model,
) -> AppResult<Option<String>> {
    if run.status.is_finished() {
        return Ok(None);
    }
    Ok(app
        .store
        .latest_run_event(ctx, run.id)
        .await?
        .filter(|e| e.level == "warn")
        .map(|e| e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        let mut out = String::new();
        csv_field(&mut out, r#"=HYPERLINK("x")"#);
        assert_eq!(out, r#""'=HYPERLINK(""x"")""#);
    }

    #[test]
    fn messages_that_differ_only_in_their_values_share_a_signature() {
        let a = error_signature("HTTP 422: row 12: 'ada@example.com' is taken");
        let b = error_signature("HTTP 422: row 7: 'bob@example.org' is taken");
        assert_eq!(a, b);
        assert_eq!(a, "HTTP #: row #: '…' is taken");
        assert_ne!(a, error_signature("HTTP 422: row 7: email is missing"));
        assert_eq!(
            error_signature("the customer's e-mail"),
            "the customer's e-mail"
        );
        assert_eq!(
            error_signature(r#"field "email" is "" "#),
            r#"field "…" is "…" "#
        );
    }
}
