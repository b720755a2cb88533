//! Flow pages: the list, the editor (with field samples and a dry run), the flow page
//! (runs, versions, schedule, webhook), version diffs, dead letters, and the inbound
//! webhook endpoint.

use super::auth::render;
use super::extract::Member;
use super::filters::ListFilter;
use super::flash::{self, Flash};
use super::flow_form::{FlowForm, MappingInput};
use super::shell::Shell;
use crate::app::App;
use crate::connectors::catalogue;
use crate::domain::text::Grouped;
use crate::domain::{
    ConnectionStatus, DeadLetterId, DeadLetterState, FieldErrors, FlowId, FlowSpec, FlowStatus,
    LetterSelection, RecordFault, RunId, RunStatus, RunTrigger, TimeZone,
};
use crate::error::{AppError, AppResult};
use crate::services::flow_templates;
use crate::services::flows::{self, DryRow, SampleField};
use crate::services::records;
use crate::services::runs as run_service;
use crate::services::webhooks::{self, WebhookError, WebhookHeaders, WebhookRefusal};
use crate::sync::mapping::FieldType;
use crate::sync::trigger;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

/// Runs per page of a flow's history.
const RUNS_PER_PAGE: u64 = 20;
/// Dead letters per page.
const LETTERS_PER_PAGE: u64 = 50;
/// Records in a dry run.
const DRY_RUN_RECORDS: u32 = 10;

/// A flow in the list.
pub struct FlowRow {
    flow: records::Flow,
    status: FlowStatus,
    trigger: String,
    last_run: Option<RunView>,
}

/// A run prepared for display.
pub struct RunView {
    /// The row.
    pub run: records::Run,
    /// Parsed status.
    pub status: RunStatus,
    /// Parsed trigger.
    pub trigger: RunTrigger,
}

impl RunView {
    /// Wraps a row.
    pub fn new(run: records::Run) -> Self {
        Self {
            status: run.status,
            trigger: run.trigger,
            run,
        }
    }

    /// Wall time so far or in total.
    pub fn duration(&self) -> String {
        let Some(start) = self.run.started_at else {
            return "—".into();
        };
        let end = self.run.finished_at.unwrap_or_else(chrono::Utc::now);
        let ms = (end - start).num_milliseconds().max(0);
        if ms < 1000 {
            format!("{ms} ms")
        } else if ms < 120_000 {
            format!("{:.1} s", ms as f64 / 1000.0)
        } else {
            format!("{} min {} s", ms / 60_000, (ms / 1000) % 60)
        }
    }

    /// Percentage done, when the total is known.
    pub fn percent(&self) -> Option<i64> {
        if self.status.is_finished() {
            return Some(100);
        }
        self.run
            .records_total
            .filter(|t| *t > 0)
            .map(|t| (self.run.records_read * 100 / t).clamp(0, 100))
    }
}

#[derive(Template)]
#[template(path = "flows/index.html")]
struct IndexPage {
    shell: Shell,
    flows: Vec<FlowRow>,
    has_connections: bool,
    /// The search and status filter.
    filter: ListFilter,
    /// Flows in the workspace, whatever the filter.
    total: usize,
}

/// GET /flows?q=&only=active|paused
pub async fn index(
    app: web::Data<App>,
    member: Member,
    filter: web::Query<ListFilter>,
) -> AppResult<HttpResponse> {
    let filter = filter.into_inner();
    let all = flows::list(&app, &member.ctx).await?;
    let total = all.len();
    let mut rows = Vec::new();
    for flow in all
        .into_iter()
        .filter(|f| filter.keeps(&[&f.name], f.status.as_str()))
    {
        let id = flow.id;
        let last_run = flows::runs(&app, &member.ctx, id, None, 1)
            .await?
            .into_iter()
            .next()
            .map(RunView::new);
        let trigger = match flows::load(&app, &member.ctx, id).await {
            Ok(view) => trigger::describe(&view.spec.trigger),
            Err(_) => flow.trigger_kind.to_string(),
        };
        rows.push(FlowRow {
            status: flow.status,
            flow,
            trigger,
            last_run,
        });
    }
    let has_connections = !crate::services::connections::list(&app, &member.ctx)
        .await?
        .is_empty();
    render(
        &IndexPage {
            shell: member.shell("flows"),
            flows: rows,
            has_connections,
            filter,
            total,
        },
        StatusCode::OK,
    )
}

/// A selectable connection + object.
pub struct EndpointOption {
    value: String,
    label: String,
}

/// The options of one connection.
pub struct EndpointGroup {
    label: String,
    options: Vec<EndpointOption>,
}

#[derive(Template)]
#[template(path = "flows/edit.html")]
struct EditPage {
    shell: Shell,
    flow_id: Option<String>,
    form: FlowForm,
    errors: FieldErrors,
    endpoints: Vec<EndpointGroup>,
    field_types: Vec<&'static str>,
    /// Fields of the live sample carried in `form.sample`, with example values.
    sample_fields: Vec<SampleField>,
    /// What each of `form.mapping_rows()` makes of the first sample record.
    previews: Vec<Option<Result<String, String>>>,
    sample_error: Option<String>,
    /// The destination's fields, once a destination is chosen.
    target_fields: Option<flows::ObjectFields>,
    dry: Option<Vec<DryRow>>,
    dry_error: Option<String>,
    /// What writing one record as a test did.
    test_write: Option<flows::TestWrite>,
    schedule_words: String,
    upcoming: Vec<String>,
    time_zone: TimeZone,
    /// Templates to start from (New flow only).
    templates: Vec<TemplateCard>,
    /// What a chosen template still needs.
    template_note: Option<String>,
}

impl EditPage {
    /// A dry run in one line: "8 valid · 1 failing · 1 filtered".
    fn dry_summary(&self) -> String {
        let rows = self.dry.as_deref().unwrap_or_default();
        let filtered = rows.iter().filter(|r| r.filtered).count();
        let failing = rows
            .iter()
            .filter(|r| !r.filtered && r.error.is_some())
            .count();
        let valid = rows.len() - filtered - failing;
        format!("{valid} valid · {failing} failing · {filtered} filtered")
    }

    /// Row `i`'s preview on the sample: the value or the error, and whether it failed.
    fn preview_of(&self, i: &usize) -> Option<(&str, bool)> {
        match self.previews.get(*i)?.as_ref()? {
            Ok(value) => Some((value.as_str(), false)),
            Err(error) => Some((error.as_str(), true)),
        }
    }

    /// Whether a mapping row writes `field`.
    fn is_mapped(&self, field: &str) -> bool {
        self.form.mapping.iter().any(|r| r.target.trim() == field)
    }
}

async fn endpoints(app: &App, member: &Member) -> AppResult<Vec<EndpointGroup>> {
    Ok(crate::services::connections::list(app, &member.ctx)
        .await?
        .into_iter()
        .filter(|c| c.status != ConnectionStatus::Disconnected)
        .filter_map(|c| {
            let provider = catalogue::get(&c.provider_id)?;
            Some(EndpointGroup {
                label: format!("{} ({})", c.name, provider.name),
                options: provider
                    .objects
                    .iter()
                    .map(|o| EndpointOption {
                        value: format!("{}:{}", c.id, o.id),
                        label: format!("{} · {}", c.name, o.name),
                    })
                    .collect(),
            })
        })
        .collect())
}

/// Moves service error keys onto the editor's inputs.
fn form_errors(errors: FieldErrors) -> FieldErrors {
    let mut out = FieldErrors::new();
    for (field, message) in errors.iter() {
        let key = match field {
            "source.incremental" => "incremental",
            "destination.write_mode" => "write_mode",
            "destination.key_field" => "key_field",
            "trigger.cron" => "cron",
            "trigger.interval_minutes" => "interval_minutes",
            f if f.starts_with("source.") => "source",
            f if f.starts_with("destination.") => "destination",
            f => f,
        };
        out.add(key, message);
    }
    out
}

async fn edit_page(
    app: &App,
    member: &Member,
    flow_id: Option<FlowId>,
    form: FlowForm,
    errors: FieldErrors,
) -> AppResult<EditPage> {
    let time_zone = crate::services::tenants::get(app, &member.ctx)
        .await?
        .time_zone;
    // The schedule is previewed from the trigger's own fields, whatever else the form
    // still lacks; asked for, a schedule that cannot run says why at its field.
    let mut errors = errors;
    let (schedule_words, upcoming) = match form.trigger_spec() {
        Ok(spec) => match trigger::validate(&spec) {
            Ok(()) => (
                trigger::describe(&spec),
                trigger::upcoming(&spec, time_zone, chrono::Utc::now(), 3),
            ),
            Err((field, message)) => {
                if form.action == "preview" {
                    errors.add(&format!("trigger.{field}"), message);
                }
                (String::new(), Vec::new())
            }
        },
        Err(problems) => {
            if form.action == "preview" {
                for (field, message) in problems.iter() {
                    errors.add(field, message);
                }
            }
            (String::new(), Vec::new())
        }
    };
    let errors = form_errors(errors);
    let target_fields = match endpoint(&form.destination) {
        Some((conn, object)) => {
            flows::object_fields(app, &member.ctx, conn, &object, false).await?
        }
        None => None,
    };
    let mut form = form;
    if let Some(fields) = &target_fields {
        prelist_required(&mut form, fields);
    }
    let records: Vec<serde_json::Value> = serde_json::from_str(&form.sample).unwrap_or_default();
    let previews = match records.first() {
        Some(record) if member.ctx.role().can_write() => {
            let lookups = super::flow_form::parse_lookups(&form.lookups).unwrap_or_default();
            let rows = form
                .mapping_rows()
                .iter()
                .map(MappingInput::to_spec)
                .collect();
            flows::preview_mapping(&member.ctx, rows, lookups, record.clone()).await?
        }
        _ => Vec::new(),
    };
    Ok(EditPage {
        shell: member.shell("flows"),
        flow_id: flow_id.map(|f| f.to_string()),
        endpoints: endpoints(app, member).await?,
        field_types: FieldType::ALL.iter().map(|t| t.name()).collect(),
        sample_fields: flows::sample_fields(&records),
        previews,
        sample_error: None,
        target_fields,
        dry: None,
        dry_error: None,
        test_write: None,
        schedule_words,
        upcoming,
        time_zone,
        templates: Vec::new(),
        template_note: None,
        form,
        errors,
    })
}

/// Query of the New flow page.
#[derive(Deserialize)]
pub struct NewFlowQuery {
    /// A template to start from.
    template: Option<String>,
}

/// GET /flows/new — empty, or filled in from a template with the workspace's
/// connections of its providers.
pub async fn new_form(
    app: web::Data<App>,
    member: Member,
    q: web::Query<NewFlowQuery>,
) -> AppResult<HttpResponse> {
    let chosen = q.template.as_deref().map(flow_templates::get);
    let (form, note) = match chosen {
        None => (FlowForm::default(), None),
        Some(None) => return Err(AppError::NotFound),
        Some(Some(template)) => {
            let prepared = flow_templates::prepare(&app, &member.ctx, template).await?;
            let mut form = FlowForm::from_spec(&prepared.spec, 0);
            form.expected_version = String::new();
            let (source, destination) = prepared.found;
            if !source {
                form.source = String::new();
            }
            if !destination {
                form.destination = String::new();
            }
            let note = (!prepared.missing.is_empty()).then(|| {
                format!(
                    "This template needs a connection to {}: add it, then start from the template again.",
                    prepared.missing.join(" and ")
                )
            });
            (form, note)
        }
    };
    let mut page = edit_page(&app, &member, None, form, FieldErrors::new()).await?;
    page.template_note = note;
    let ready = flow_templates::ready(&app, &member.ctx).await?;
    let mut cards: Vec<TemplateCard> = flow_templates::all()
        .iter()
        .map(|t| TemplateCard {
            id: t.id,
            title: t.title.clone(),
            description: t.description.clone(),
            chosen: q.template.as_deref() == Some(t.id),
            ready: ready.iter().any(|r| r.id == t.id),
        })
        .collect();
    // Those the workspace can use now come first.
    cards.sort_by_key(|c| !c.ready);
    page.templates = cards;
    render(&page, StatusCode::OK)
}

/// A template offered on the New flow page.
pub struct TemplateCard {
    id: &'static str,
    title: String,
    description: String,
    chosen: bool,
    /// Whether the workspace has the connections it uses.
    ready: bool,
}

/// GET /flows/{id}/edit
pub async fn edit_form(
    app: web::Data<App>,
    member: Member,
    id: web::Path<FlowId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let view = flows::load(&app, &member.ctx, id).await?;
    let form = FlowForm::from_spec(&view.spec, view.flow.version);
    let page = edit_page(&app, &member, Some(id), form, FieldErrors::new()).await?;
    render(&page, StatusCode::OK)
}

/// POST /flows and POST /flows/{id}: save, or one of the editor's helper actions.
async fn submit(
    app: &App,
    member: Member,
    existing: Option<FlowId>,
    pairs: Vec<(String, String)>,
) -> AppResult<HttpResponse> {
    let form = FlowForm::from_pairs(&pairs);
    let spec = form.to_spec();
    match form.action.as_str() {
        "sample" => {
            let mut form = form;
            let sampled = match endpoint(&form.source) {
                Some((conn, object)) => flows::sample(app, &member.ctx, conn, &object)
                    .await
                    .map_err(|e| e.public_message()),
                None => Err("Choose a source first.".into()),
            };
            let sample_error = match sampled {
                Ok(sample) => {
                    form.sample = sample;
                    None
                }
                Err(message) => Some(message),
            };
            let mut page =
                edit_page(app, &member, existing, form.clone(), FieldErrors::new()).await?;
            page.sample_error = sample_error;
            // The destination's custom fields, when its vendor lists them.
            if let Some((conn, object)) = endpoint(&form.destination)
                && page.target_fields.as_ref().is_some_and(|f| f.describable)
            {
                page.target_fields =
                    flows::object_fields(app, &member.ctx, conn, &object, true).await?;
            }
            render(&page, StatusCode::OK)
        }
        "dry_run" => {
            let mut page =
                edit_page(app, &member, existing, form.clone(), FieldErrors::new()).await?;
            match spec {
                Ok(spec) => match flows::dry_run(app, &member.ctx, &spec, DRY_RUN_RECORDS).await {
                    Ok(rows) => page.dry = Some(rows),
                    Err(AppError::Invalid(errors)) => page.errors = form_errors(errors),
                    Err(e) => page.dry_error = Some(e.public_message()),
                },
                Err(errors) => page.errors = form_errors(errors),
            }
            render(&page, StatusCode::OK)
        }
        "test_write" => {
            let mut page =
                edit_page(app, &member, existing, form.clone(), FieldErrors::new()).await?;
            let record = serde_json::from_str::<Vec<serde_json::Value>>(&form.sample)
                .ok()
                .and_then(|records| records.into_iter().next());
            match spec {
                Ok(spec) => {
                    match flows::test_write(app, &member.ctx, &member.actor(), &spec, record).await
                    {
                        Ok(done) => page.test_write = Some(done),
                        Err(AppError::Invalid(errors)) => page.errors = form_errors(errors),
                        Err(e) => page.dry_error = Some(e.public_message()),
                    }
                }
                Err(errors) => page.errors = form_errors(errors),
            }
            render(&page, StatusCode::OK)
        }
        a if a == "add_rows" || a == "preview" || a.starts_with("remove:") => {
            let page = edit_page(app, &member, existing, form, FieldErrors::new()).await?;
            render(&page, StatusCode::OK)
        }
        _ => {
            let result = match spec {
                Ok(spec) => {
                    // A form value, not a stored one: a missing or tampered version (0)
                    // matches none, so the save is refused as a conflict, never applied blind.
                    let expected =
                        existing.map(|id| (id, form.expected_version.parse().unwrap_or(0)));
                    flows::save(app, &member.ctx, &member.actor(), expected, spec).await
                }
                Err(errors) => Err(AppError::Invalid(errors)),
            };
            match result {
                Ok(saved) => {
                    let message = match (existing, saved.changed) {
                        (None, _) => "Flow created.".to_owned(),
                        (Some(_), true) => format!("Saved as version {}.", saved.version),
                        (Some(_), false) => "Nothing changed.".to_owned(),
                    };
                    Ok(flash::redirect(
                        &format!("/flows/{}", saved.id),
                        Flash::success(message),
                    ))
                }
                Err(AppError::Invalid(errors)) => {
                    let page = edit_page(app, &member, existing, form, form_errors(errors)).await?;
                    render(&page, StatusCode::UNPROCESSABLE_ENTITY)
                }
                Err(AppError::Conflict(message)) => {
                    let mut page =
                        edit_page(app, &member, existing, form, FieldErrors::new()).await?;
                    page.shell.flashes.push(Flash::error(message));
                    render(&page, StatusCode::CONFLICT)
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// Gives each field the destination needs a row to fill, when none maps it yet: the
/// key field of an update or upsert, and the fields a create requires.
fn prelist_required(form: &mut FlowForm, fields: &flows::ObjectFields) {
    let key = form.key_field.trim().to_owned();
    let needs_key = form.write_mode != "create" && !key.is_empty();
    let wanted = fields
        .fields
        .iter()
        .filter(|f| !f.read_only && (f.required || (needs_key && f.name == key)))
        .map(|f| (f.name.clone(), FieldType::parse(f.data_type.as_str())));
    let wanted: Vec<_> = (needs_key && !fields.fields.iter().any(|f| f.name == key))
        .then(|| (key.clone(), None))
        .into_iter()
        .chain(wanted)
        .collect();
    for (name, field_type) in wanted {
        if !form.mapping.iter().any(|r| r.target.trim() == name) {
            form.mapping.push(MappingInput {
                target: name,
                field_type: field_type.map(|t| t.name().to_owned()).unwrap_or_default(),
                ..MappingInput::default()
            });
        }
    }
}

/// A `connection_id:object` choice of the editor.
fn endpoint(choice: &str) -> Option<(crate::domain::ConnectionId, String)> {
    let (c, o) = choice.split_once(':')?;
    Some((c.parse().ok()?, o.to_owned()))
}

/// POST /flows
pub async fn create(
    app: web::Data<App>,
    member: Member,
    form: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    submit(&app, member, None, form.into_inner()).await
}

/// POST /flows/{id}
pub async fn update(
    app: web::Data<App>,
    member: Member,
    id: web::Path<FlowId>,
    form: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    flows::get(&app, &member.ctx, id).await?;
    submit(&app, member, Some(id), form.into_inner()).await
}

#[derive(Template)]
#[template(path = "flows/show.html")]
struct ShowPage {
    shell: Shell,
    flow: records::Flow,
    status: FlowStatus,
    spec: FlowSpec,
    source_name: String,
    destination_name: String,
    schedule_words: String,
    upcoming: Vec<String>,
    time_zone: TimeZone,
    runs: Vec<RunView>,
    next_page: Option<String>,
    versions: Vec<records::FlowVersion>,
    open_letters: u64,
    webhook_url: Option<String>,
    new_secret: Option<String>,
}

#[derive(Deserialize)]
pub struct ShowQuery {
    before: Option<String>,
}

async fn connection_label(
    app: &App,
    member: &Member,
    id: crate::domain::ConnectionId,
    object: &str,
) -> AppResult<String> {
    Ok(
        match crate::services::connections::get(app, &member.ctx, id).await {
            Ok(c) => {
                let object = catalogue::get(&c.provider_id)
                    .and_then(|p| p.objects.iter().find(|o| o.id == object))
                    .map(|o| o.name.clone())
                    .unwrap_or_else(|| object.to_owned());
                format!("{} · {object}", c.name)
            }
            Err(AppError::NotFound) => format!("(deleted connection) · {object}"),
            Err(e) => return Err(e),
        },
    )
}

async fn show_page(
    app: &App,
    member: &Member,
    id: FlowId,
    before: Option<RunId>,
    new_secret: Option<String>,
) -> AppResult<ShowPage> {
    let view = flows::load(app, &member.ctx, id).await?;
    let time_zone = crate::services::tenants::get(app, &member.ctx)
        .await?
        .time_zone;
    let runs: Vec<RunView> = flows::runs(app, &member.ctx, id, before, RUNS_PER_PAGE + 1)
        .await?
        .into_iter()
        .map(RunView::new)
        .collect();
    let next_page = (runs.len() as u64 > RUNS_PER_PAGE)
        .then(|| {
            runs.get(RUNS_PER_PAGE as usize - 1)
                .map(|r| r.run.id.to_string())
        })
        .flatten();
    let runs = runs.into_iter().take(RUNS_PER_PAGE as usize).collect();
    let status = view.flow.status;
    let upcoming = if status == FlowStatus::Active {
        trigger::upcoming(&view.spec.trigger, time_zone, chrono::Utc::now(), 3)
    } else {
        Vec::new()
    };
    Ok(ShowPage {
        shell: member.shell("flows"),
        source_name: connection_label(
            app,
            member,
            view.spec.source.connection_id,
            &view.spec.source.object,
        )
        .await?,
        destination_name: connection_label(
            app,
            member,
            view.spec.destination.connection_id,
            &view.spec.destination.object,
        )
        .await?,
        schedule_words: trigger::describe(&view.spec.trigger),
        upcoming,
        time_zone,
        runs,
        next_page,
        versions: flows::versions(app, &member.ctx, id).await?,
        open_letters: flows::open_dead_letter_count(app, &member.ctx, id).await?,
        webhook_url: view
            .flow
            .webhook_token
            .as_deref()
            .map(|t| webhooks::url(app, t)),
        new_secret,
        status,
        spec: view.spec,
        flow: view.flow,
    })
}

/// GET /flows/{id}
pub async fn show(
    app: web::Data<App>,
    member: Member,
    id: web::Path<FlowId>,
    query: web::Query<ShowQuery>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let before = query.before.as_deref().and_then(|b| b.parse().ok());
    let page = show_page(&app, &member, id, before, None).await?;
    render(&page, StatusCode::OK)
}

/// POST /flows/{id}/run
pub async fn run_now(
    app: web::Data<App>,
    member: Member,
    id: web::Path<FlowId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let run = flows::run_now(&app, &member.ctx, &member.actor(), id).await?;
    Ok(flash::redirect(
        &format!("/runs/{run}"),
        Flash::success("Run started."),
    ))
}

/// POST /flows/{id}/enable
pub async fn enable(
    app: web::Data<App>,
    member: Member,
    id: web::Path<FlowId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    flows::set_status(&app, &member.ctx, &member.actor(), id, FlowStatus::Active).await?;
    Ok(flash::redirect(
        &format!("/flows/{id}"),
        Flash::success("Flow enabled."),
    ))
}

/// POST /flows/{id}/pause
pub async fn pause(
    app: web::Data<App>,
    member: Member,
    id: web::Path<FlowId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    flows::set_status(&app, &member.ctx, &member.actor(), id, FlowStatus::Paused).await?;
    Ok(flash::redirect(
        &format!("/flows/{id}"),
        Flash::success("Flow paused: its triggers will not start runs."),
    ))
}

/// POST /flows/{id}/delete
pub async fn delete(
    app: web::Data<App>,
    member: Member,
    id: web::Path<FlowId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let name = flows::delete(&app, &member.ctx, &member.actor(), id).await?;
    Ok(flash::redirect(
        "/flows",
        Flash::success(format!("Flow {name} deleted.")),
    ))
}

/// POST /flows/{id}/webhook — creates or rotates the webhook secret; shown once.
pub async fn rotate_webhook(
    app: web::Data<App>,
    member: Member,
    id: web::Path<FlowId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let (_, secret) = webhooks::rotate_secret(&app, &member.ctx, &member.actor(), id).await?;
    let page = show_page(&app, &member, id, None, Some(secret)).await?;
    render(&page, StatusCode::OK)
}

#[derive(Template)]
#[template(path = "flows/diff.html")]
struct DiffPage {
    shell: Shell,
    flow: records::Flow,
    from: i64,
    to: i64,
    versions: Vec<i64>,
    changes: Vec<(String, String, String)>,
}

#[derive(Deserialize)]
pub struct DiffQuery {
    from: Option<i64>,
    to: Option<i64>,
}

/// GET /flows/{id}/diff?from=&to=
pub async fn diff(
    app: web::Data<App>,
    member: Member,
    id: web::Path<FlowId>,
    query: web::Query<DiffQuery>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let flow = flows::get(&app, &member.ctx, id).await?;
    let to = query.to.unwrap_or(flow.version);
    let from = query.from.unwrap_or((to - 1).max(1));
    let load = |n: i64| {
        let app = app.clone();
        let ctx = member.ctx.clone();
        async move {
            let v = flows::version(&app, &ctx, id, n).await?;
            flows::spec_of(&v)
        }
    };
    let (older, newer) = (load(from).await?, load(to).await?);
    let versions = flows::versions(&app, &member.ctx, id)
        .await?
        .into_iter()
        .map(|v| v.number)
        .collect();
    render(
        &DiffPage {
            shell: member.shell("flows"),
            changes: newer.changes_from(&older),
            flow,
            from,
            to,
            versions,
        },
        StatusCode::OK,
    )
}

#[derive(Template)]
#[template(path = "flows/dead_letters.html")]
struct DeadLettersPage {
    shell: Shell,
    flow: records::Flow,
    state: DeadLetterState,
    run: Option<String>,
    letters: Vec<records::DeadLetter>,
    open: u64,
    page: u64,
    has_more: bool,
    /// The error class the table is filtered by.
    class: Option<RecordFault>,
    /// Letters of this state (and run) grouped by error, largest first.
    groups: Vec<run_service::LetterGroup>,
    /// How many letters the groups were made from.
    grouped: u64,
    /// How many letters each tab holds.
    counts: Vec<(DeadLetterState, u64)>,
}

impl DeadLettersPage {
    /// Whether the table is filtered by error class `c`.
    fn is_class(&self, c: &RecordFault) -> bool {
        self.class == Some(*c)
    }

    /// The query string of this view without the page, for tabs and page links.
    fn view_query(&self, state: &DeadLetterState) -> String {
        let mut q = format!("state={}", state.as_str());
        if let Some(r) = &self.run {
            q.push_str(&format!("&run={r}"));
        }
        if let Some(c) = self.class {
            q.push_str(&format!("&class={}", c.as_str()));
        }
        q
    }
}

#[derive(Deserialize)]
pub struct LettersQuery {
    state: Option<String>,
    run: Option<String>,
    page: Option<u64>,
    class: Option<String>,
}

/// GET /flows/{id}/dead-letters?state=&run=&page=
pub async fn dead_letters(
    app: web::Data<App>,
    member: Member,
    id: web::Path<FlowId>,
    query: web::Query<LettersQuery>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let flow = flows::get(&app, &member.ctx, id).await?;
    let state = query
        .state
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DeadLetterState::Open);
    let run: Option<RunId> = query.run.as_deref().and_then(|r| r.parse().ok());
    let class: Option<RecordFault> = query.class.as_deref().and_then(|c| c.parse().ok());
    let page = query.page.unwrap_or(1).max(1);
    let mut letters = run_service::dead_letters(
        &app,
        &member.ctx,
        id,
        run_service::LetterQuery {
            state,
            run,
            class,
            offset: (page - 1) * LETTERS_PER_PAGE,
            limit: LETTERS_PER_PAGE + 1,
        },
    )
    .await?;
    let has_more = letters.len() as u64 > LETTERS_PER_PAGE;
    letters.truncate(LETTERS_PER_PAGE as usize);
    let (groups, grouped) = run_service::letter_groups(&app, &member.ctx, id, state, run).await?;
    let mut counts = Vec::new();
    for s in DeadLetterState::ALL {
        counts.push((
            *s,
            flows::dead_letter_count(&app, &member.ctx, id, *s).await?,
        ));
    }
    render(
        &DeadLettersPage {
            shell: member.shell("flows"),
            open: flows::open_dead_letter_count(&app, &member.ctx, id).await?,
            flow,
            state,
            run: run.map(|r| r.to_string()),
            letters,
            page,
            has_more,
            class,
            groups,
            grouped,
            counts,
        },
        StatusCode::OK,
    )
}

/// Which dead letters a bulk form chose: a group's open ones when the form says
/// `scope=group` (with the group's `signature`), else [`selected`].
async fn chosen(
    app: &App,
    member: &Member,
    flow: FlowId,
    pairs: &[(String, String)],
) -> AppResult<Result<LetterSelection, Flash>> {
    if !pairs.iter().any(|(k, v)| k == "scope" && v == "group") {
        return Ok(selected(pairs));
    }
    let signature = pairs
        .iter()
        .find(|(k, _)| k == "signature")
        .map_or("", |(_, v)| v.as_str());
    let ids = run_service::open_letters_in_group(app, &member.ctx, flow, signature).await?;
    Ok(LetterSelection::of(ids).ok_or_else(|| {
        Flash::error("No open dead letter has this error any more; nothing was changed.")
    }))
}

/// Which dead letters a bulk form chose: all open ones only when the form says
/// `scope=all`, else the ticked ids. An id that does not parse refuses the whole form:
/// acting on part of a selection the user did not make is worse than acting on none.
fn selected(pairs: &[(String, String)]) -> Result<LetterSelection, Flash> {
    let all = pairs.iter().any(|(k, v)| k == "scope" && v == "all");
    let ids: Result<Vec<DeadLetterId>, _> = pairs
        .iter()
        .filter(|(k, _)| k == "id")
        .map(|(_, v)| v.parse())
        .collect();
    let Ok(ids) = ids else {
        return Err(Flash::error(
            "The selection was not understood; nothing was changed.",
        ));
    };
    match (all, ids.is_empty()) {
        (true, true) => Ok(LetterSelection::All),
        (true, false) => Err(Flash::error(
            "Choose either all dead letters or some; nothing was changed.",
        )),
        (false, _) => {
            LetterSelection::of(ids).ok_or_else(|| Flash::error("Select at least one dead letter."))
        }
    }
}

/// Back to the flow's dead letters with a message.
fn to_letters(id: FlowId, flash: Flash) -> HttpResponse {
    flash::redirect(&format!("/flows/{id}/dead-letters"), flash)
}

/// POST /flows/{id}/dead-letters/replay
pub async fn replay(
    app: web::Data<App>,
    member: Member,
    id: web::Path<FlowId>,
    form: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let ids = match chosen(&app, &member, id, &form).await? {
        Ok(ids) => ids,
        Err(flash) => return Ok(to_letters(id, flash)),
    };
    match flows::replay(&app, &member.ctx, &member.actor(), id, ids).await {
        Ok(run) => Ok(flash::redirect(
            &format!("/runs/{run}"),
            Flash::success("Replay started on the current flow version."),
        )),
        Err(AppError::Conflict(m)) => Ok(to_letters(id, Flash::error(m))),
        Err(e) => Err(e),
    }
}

/// POST /flows/{id}/dead-letters/discard
pub async fn discard(
    app: web::Data<App>,
    member: Member,
    id: web::Path<FlowId>,
    form: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let ids = match chosen(&app, &member, id, &form).await? {
        Ok(ids) => ids,
        Err(flash) => return Ok(to_letters(id, flash)),
    };
    let n = flows::discard(&app, &member.ctx, &member.actor(), id, ids).await?;
    Ok(to_letters(
        id,
        Flash::success(format!("{n} dead letter(s) discarded.")),
    ))
}

/// POST /hooks/{token} — an inbound, signed webhook (no session, no CSRF: the signature
/// is the authentication).
pub async fn receive_webhook(
    app: web::Data<App>,
    req: HttpRequest,
    token: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let headers = WebhookHeaders {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
    };
    let refuse = |status: StatusCode, message: String| {
        HttpResponse::build(status).json(serde_json::json!({ "error": message }))
    };
    match webhooks::receive(&app, &token, &headers, &body).await {
        Ok(event) => HttpResponse::Accepted().json(serde_json::json!({ "event_id": event })),
        Err(WebhookError::Refused(r)) => {
            let status = match r {
                WebhookRefusal::Unknown => StatusCode::NOT_FOUND,
                WebhookRefusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                WebhookRefusal::Replayed => StatusCode::CONFLICT,
                WebhookRefusal::BadSignature(_) | WebhookRefusal::Stale => StatusCode::UNAUTHORIZED,
            };
            refuse(status, r.to_string())
        }
        Err(WebhookError::Internal(e)) => {
            tracing::error!(error = %e, "webhook could not be stored");
            refuse(StatusCode::SERVICE_UNAVAILABLE, "try again later".into())
        }
    }
}
