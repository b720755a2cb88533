//! Connection pages: the list, the provider catalogue, connecting, the connection page,
//! OAuth apps, and the OAuth callback.

use super::auth::render;
use super::extract::{MaybeUser, Member};
use super::filters::ListFilter;
use super::flash::{self, Flash};
use super::shell::Shell;
use crate::app::App;
use crate::connectors::catalogue::{self, Provider};
use crate::domain::{ConnectionId, ConnectionStatus, FieldErrors};
use crate::error::{AppError, AppResult};
use crate::services::connections::{
    self, Begin, Binding, CallbackMember, CallbackParams, ConnectRequest,
};
use crate::services::records;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use std::collections::HashMap;

/// A connection row prepared for display.
pub struct ConnectionView {
    /// The row.
    pub row: records::Connection,
    /// Its provider's name.
    pub provider_name: String,
    /// Parsed status.
    pub status: ConnectionStatus,
}

impl ConnectionView {
    fn new(row: records::Connection) -> Self {
        let provider_name = catalogue::get(&row.provider_id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| row.provider_id.clone());
        let status = row.status;
        Self {
            row,
            provider_name,
            status,
        }
    }
}

#[derive(Template)]
#[template(path = "connections/index.html")]
struct IndexPage {
    shell: Shell,
    connections: Vec<ConnectionView>,
    /// The search and provider filter.
    filter: ListFilter,
    /// Connections in the workspace, whatever the filter.
    total: usize,
    /// The providers connected, for the filter: (id, name).
    providers: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "connections/catalogue.html")]
struct CataloguePage {
    shell: Shell,
    query: String,
    providers: Vec<&'static Provider>,
    configured: Vec<String>,
}

#[derive(Template)]
#[template(path = "connections/new.html")]
struct NewPage {
    shell: Shell,
    provider: &'static Provider,
    callback_url: String,
    has_app: bool,
    name: String,
    values: HashMap<String, String>,
    errors: FieldErrors,
    reconnect: Option<String>,
}

#[derive(Template)]
#[template(path = "connections/show.html")]
struct ShowPage {
    shell: Shell,
    c: ConnectionView,
    provider: Option<&'static Provider>,
    events: Vec<records::ConnectionLogEntry>,
    choices: Option<connections::Choices>,
    next_step: Option<NextStep>,
}

/// What a workspace without flows should do next, shown on a connection's page.
pub enum NextStep {
    /// Connect the system to sync with.
    SecondConnection,
    /// Create the first flow, perhaps from these templates (id, title).
    FirstFlow(Vec<(&'static str, String)>),
}

/// The next step of a first run: none once a flow exists, or for viewers.
async fn next_step(app: &App, member: &Member) -> AppResult<Option<NextStep>> {
    if !member.ctx.role().can_write()
        || !crate::services::flows::list(app, &member.ctx)
            .await?
            .is_empty()
    {
        return Ok(None);
    }
    let connections = crate::services::connections::list(app, &member.ctx).await?;
    Ok(Some(if connections.len() < 2 {
        NextStep::SecondConnection
    } else {
        NextStep::FirstFlow(
            crate::services::flow_templates::ready(app, &member.ctx)
                .await?
                .into_iter()
                .map(|t| (t.id, t.title.clone()))
                .collect(),
        )
    }))
}

#[derive(Template)]
#[template(path = "connections/oauth_apps.html")]
struct OAuthAppsPage {
    shell: Shell,
    rows: Vec<(&'static Provider, Option<records::OAuthApp>)>,
}

#[derive(Template)]
#[template(path = "connections/oauth_app.html")]
struct OAuthAppPage {
    shell: Shell,
    provider: &'static Provider,
    callback_url: String,
    client_id: String,
    has_secret: bool,
    values: HashMap<String, String>,
    errors: FieldErrors,
}

/// GET /connections
pub async fn index(
    app: web::Data<App>,
    member: Member,
    filter: web::Query<ListFilter>,
) -> AppResult<HttpResponse> {
    let filter = filter.into_inner();
    let all: Vec<ConnectionView> = crate::services::connections::list(&app, &member.ctx)
        .await?
        .into_iter()
        .map(ConnectionView::new)
        .collect();
    let total = all.len();
    let mut providers: Vec<(String, String)> = all
        .iter()
        .map(|c| (c.row.provider_id.clone(), c.provider_name.clone()))
        .collect();
    providers.sort_by(|a, b| a.1.cmp(&b.1));
    providers.dedup();
    let connections = all
        .into_iter()
        .filter(|c| {
            let customer = c.row.customer_ref.as_deref().unwrap_or_default();
            filter.keeps(
                &[&c.row.name, &c.provider_name, customer],
                &c.row.provider_id,
            )
        })
        .collect();
    render(
        &IndexPage {
            shell: member.shell("connections"),
            connections,
            filter,
            total,
            providers,
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
}

/// GET /connections/catalogue?q=
pub async fn catalogue_page(
    app: web::Data<App>,
    member: Member,
    query: web::Query<SearchQuery>,
) -> AppResult<HttpResponse> {
    let q = query.q.clone().unwrap_or_default();
    let configured = crate::services::connections::oauth_apps(&app, &member.ctx)
        .await?
        .into_iter()
        .map(|a| a.provider_id)
        .collect();
    render(
        &CataloguePage {
            shell: member.shell("connections"),
            providers: catalogue::search(&q),
            query: q,
            configured,
        },
        StatusCode::OK,
    )
}

async fn new_page(
    app: &App,
    member: &Member,
    provider: &'static Provider,
    name: String,
    values: HashMap<String, String>,
    errors: FieldErrors,
    reconnect: Option<String>,
) -> AppResult<NewPage> {
    let has_app = !provider.needs_oauth_app()
        || crate::services::connections::oauth_app(app, &member.ctx, &provider.id)
            .await?
            .is_some();
    Ok(NewPage {
        shell: member.shell("connections"),
        provider,
        callback_url: connections::callback_url(app, provider),
        has_app,
        name,
        values,
        errors,
        reconnect,
    })
}

/// GET /connections/new/{provider}
pub async fn new_form(
    app: web::Data<App>,
    member: Member,
    provider_id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let provider = connections::provider(&provider_id)?;
    let page = new_page(
        &app,
        &member,
        provider,
        String::new(),
        HashMap::new(),
        FieldErrors::new(),
        None,
    )
    .await?;
    render(&page, StatusCode::OK)
}

/// Handles the outcome of starting to connect (shared by new and reconnect).
fn begun(result: Begin) -> AppResult<HttpResponse> {
    match result {
        Begin::Redirect(url) => super::consent::continue_to_provider(&url),
        Begin::Connected(id) => Ok(flash::redirect(
            &format!("/connections/{id}"),
            Flash::success("Connected."),
        )),
    }
}

/// POST /connections/new/{provider}
pub async fn create(
    app: web::Data<App>,
    member: Member,
    provider_id: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> AppResult<HttpResponse> {
    let provider = connections::provider(&provider_id)?;
    let form = form.into_inner();
    let reconnect = match form.get("reconnect").filter(|r| !r.is_empty()) {
        // A reconnect of something malformed names nothing that exists.
        Some(r) => Some(r.parse::<ConnectionId>().map_err(|_| AppError::NotFound)?),
        None => None,
    };
    let request = ConnectRequest {
        provider_id: provider.id.clone(),
        name: form.get("name").cloned().unwrap_or_default(),
        form: form.clone(),
        reconnect,
        customer_ref: None,
    };
    let binding = Binding::Session(member.who.session.id.clone());
    match connections::begin(&app, &member.ctx, &member.actor(), binding, request).await {
        Ok(result) => begun(result),
        Err(AppError::Invalid(errors)) => {
            let mut values = form.clone();
            for secret in ["api_key", "password"] {
                values.remove(secret);
            }
            let page = new_page(
                &app,
                &member,
                provider,
                form.get("name").cloned().unwrap_or_default(),
                values,
                errors,
                reconnect.map(|r| r.to_string()),
            )
            .await?;
            render(&page, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(AppError::Conflict(m) | AppError::BadRequest(m)) => Ok(flash::redirect(
            &format!("/connections/new/{}", provider.id),
            Flash::error(m),
        )),
        Err(e) => Err(e),
    }
}

/// GET /connections/{id}
pub async fn show(
    app: web::Data<App>,
    member: Member,
    id: web::Path<ConnectionId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let row = crate::services::connections::get(&app, &member.ctx, id).await?;
    let events = crate::services::connections::events(&app, &member.ctx, id, 50).await?;
    let provider = catalogue::get(&row.provider_id);
    let choices = connections::choices(&row);
    render(
        &ShowPage {
            next_step: next_step(&app, &member).await?,
            shell: member.shell("connections"),
            c: ConnectionView::new(row),
            provider,
            events,
            choices,
        },
        StatusCode::OK,
    )
}

#[derive(Template)]
#[template(path = "connections/sample.html")]
struct SamplePage {
    shell: Shell,
    id: ConnectionId,
    name: String,
    sample: connections::Sample,
}

/// POST /connections/{id}/sample — "Test request": the first page of its first object
/// as a run would read it, with the raw answer.
pub async fn sample(
    app: web::Data<App>,
    member: Member,
    id: web::Path<ConnectionId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let row = crate::services::connections::get(&app, &member.ctx, id).await?;
    match connections::sample(&app, &member.ctx, id).await {
        Ok(sample) => render(
            &SamplePage {
                shell: member.shell("connections"),
                id,
                name: row.name,
                sample,
            },
            StatusCode::OK,
        ),
        Err(AppError::BadRequest(m)) => Ok(flash::redirect(
            &format!("/connections/{id}"),
            Flash::error(m),
        )),
        Err(e) => Err(e),
    }
}

/// The account picked on a connection page.
#[derive(serde::Deserialize)]
pub struct ChoiceForm {
    choice: String,
}

/// POST /connections/{id}/choose — which of the accounts its grant reaches the
/// connection uses.
pub async fn choose(
    app: web::Data<App>,
    member: Member,
    id: web::Path<ConnectionId>,
    form: web::Form<ChoiceForm>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let here = format!("/connections/{id}");
    Ok(
        match connections::choose(&app, &member.ctx, &member.actor(), id, &form.choice).await {
            Ok(note) => flash::redirect(&here, Flash::success(note)),
            Err(AppError::Invalid(errors)) => {
                flash::redirect(&here, Flash::error(errors.summary()))
            }
            Err(AppError::BadRequest(m)) => flash::redirect(&here, Flash::error(m)),
            Err(e) => return Err(e),
        },
    )
}

/// POST /connections/{id}/test
pub async fn test(
    app: web::Data<App>,
    member: Member,
    id: web::Path<ConnectionId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let outcome = connections::test(&app, &member.ctx, id).await?;
    let flash = if outcome.ok {
        Flash::success(outcome.message)
    } else {
        Flash::error(outcome.message)
    };
    Ok(flash::redirect(&format!("/connections/{id}"), flash))
}

/// POST /connections/{id}/disconnect
pub async fn disconnect(
    app: web::Data<App>,
    member: Member,
    id: web::Path<ConnectionId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let note = connections::disconnect(&app, &member.ctx, &member.actor(), id).await?;
    Ok(flash::redirect(
        &format!("/connections/{id}"),
        Flash::success(note),
    ))
}

/// POST /connections/{id}/reconnect — the same form as connecting, bound to this row.
pub async fn reconnect(
    app: web::Data<App>,
    member: Member,
    id: web::Path<ConnectionId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let row = crate::services::connections::get(&app, &member.ctx, id).await?;
    let provider = connections::provider(&row.provider_id)?;
    let config: HashMap<String, String> =
        serde_json::from_str::<HashMap<String, String>>(&row.config)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (format!("field_{k}"), v))
            .collect();
    let page = new_page(
        &app,
        &member,
        provider,
        row.name,
        config,
        FieldErrors::new(),
        Some(id.to_string()),
    )
    .await?;
    render(&page, StatusCode::OK)
}

/// GET /settings/oauth-apps
pub async fn oauth_apps(app: web::Data<App>, member: Member) -> AppResult<HttpResponse> {
    let apps = crate::services::connections::oauth_apps(&app, &member.ctx).await?;
    let rows = catalogue::all()
        .iter()
        .filter(|p| p.needs_oauth_app())
        .map(|p| (p, apps.iter().find(|a| a.provider_id == p.id).cloned()))
        .collect();
    render(
        &OAuthAppsPage {
            shell: member.shell("oauth_apps"),
            rows,
        },
        StatusCode::OK,
    )
}

/// GET /settings/oauth-apps/{provider}
pub async fn oauth_app_form(
    app: web::Data<App>,
    member: Member,
    provider_id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let provider = connections::provider(&provider_id)?;
    if !provider.needs_oauth_app() {
        return Err(AppError::NotFound);
    }
    let existing = crate::services::connections::oauth_app(&app, &member.ctx, &provider.id).await?;
    let values = existing
        .as_ref()
        .map(|a| {
            serde_json::from_str::<HashMap<String, String>>(&a.config)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (format!("field_{k}"), v))
                .collect()
        })
        .unwrap_or_default();
    render(
        &OAuthAppPage {
            shell: member.shell("oauth_apps"),
            provider,
            callback_url: connections::callback_url(&app, provider),
            client_id: existing
                .as_ref()
                .map(|a| a.client_id.clone())
                .unwrap_or_default(),
            has_secret: existing.is_some_and(|a| a.client_secret_enc.is_some()),
            values,
            errors: FieldErrors::new(),
        },
        StatusCode::OK,
    )
}

/// POST /settings/oauth-apps/{provider}
pub async fn oauth_app_save(
    app: web::Data<App>,
    member: Member,
    provider_id: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> AppResult<HttpResponse> {
    let provider = connections::provider(&provider_id)?;
    let form = form.into_inner();
    match connections::save_oauth_app(&app, &member.ctx, &member.actor(), &provider.id, &form).await
    {
        Ok(()) => Ok(flash::redirect(
            "/settings/oauth-apps",
            Flash::success(format!("OAuth app for {} saved.", provider.name)),
        )),
        Err(AppError::Invalid(errors)) => {
            let mut values = form.clone();
            values.remove("client_secret");
            render(
                &OAuthAppPage {
                    shell: member.shell("oauth_apps"),
                    provider,
                    callback_url: connections::callback_url(&app, provider),
                    client_id: form.get("client_id").cloned().unwrap_or_default(),
                    has_secret: false,
                    values,
                    errors,
                },
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
        Err(e) => Err(e),
    }
}

#[derive(Template)]
#[template(path = "connections/outcome.html")]
struct OutcomePage {
    brand: Option<crate::services::branding::Brand>,
    flashes: Vec<Flash>,
    ok: bool,
    tenant_name: String,
    provider_name: String,
    message: String,
}

/// GET /oauth/callback/{provider} — admins land on the connection page; end customers on
/// a clear success or failure page.
pub async fn callback(
    req: actix_web::HttpRequest,
    app: web::Data<App>,
    user: MaybeUser,
    provider_id: web::Path<String>,
    query: web::Query<CallbackParams>,
) -> AppResult<HttpResponse> {
    let member = user.0.as_ref().map(|u| CallbackMember {
        session_digest: u.session.id.clone(),
        user: u.user.id,
        actor: u.actor(),
    });
    let browser = req
        .cookie(super::consent::BROWSER_COOKIE)
        .map(|c| crate::auth::tokens::digest(c.value()));
    let result =
        connections::callback(&app, &provider_id, query.into_inner(), member, browser).await?;
    if result.link.is_some() {
        let tenant_name = crate::services::tenants::get(&app, &result.ctx).await?.name;
        let (ok, message) = match &result.outcome {
            Ok(_) => (
                true,
                format!(
                    "Your {} account is now connected to {} You can close this window.",
                    result.provider.name,
                    crate::domain::text::ending(&tenant_name)
                ),
            ),
            Err(m) => (false, m.clone()),
        };
        return render(
            &OutcomePage {
                brand: Some(crate::services::branding::brand(&app, &result.ctx).await?),
                flashes: Vec::new(),
                ok,
                tenant_name,
                provider_name: result.provider.name.clone(),
                message,
            },
            if ok {
                StatusCode::OK
            } else {
                StatusCode::BAD_REQUEST
            },
        );
    }
    Ok(match result.outcome {
        Ok(id) => flash::redirect(
            &format!("/connections/{id}"),
            Flash::success(format!("{} connected.", result.provider.name)),
        ),
        Err(m) => flash::redirect(
            &format!("/connections/new/{}", result.provider.id),
            Flash::error(m),
        ),
    })
}
