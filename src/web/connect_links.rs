//! Connect links: the tenant's list and form, and the end customer's landing page.

use super::auth::render;
use super::extract::{Member, client_info, csrf_token};
use super::filters::ListFilter;
use super::flash::{self, Flash};
use super::shell::Shell;
use crate::app::App;
use crate::connectors::catalogue::{self, AuthKind, Provider};
use crate::domain::{ConnectLinkId, FieldErrors};
use crate::error::{AppError, AppResult};
use crate::services::branding::{self, Brand};
use crate::services::connect_links::{self, Closed, CreatedLink, LinkState};
use crate::services::connections::Begin;
use crate::services::records;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Template)]
#[template(path = "connect_links/index.html")]
struct IndexPage {
    shell: Shell,
    links: Vec<(records::ConnectLink, &'static str, String)>,
    providers: Vec<&'static Provider>,
    created: Option<CreatedLink>,
    provider: String,
    customer_ref: String,
    ttl_hours: String,
    errors: FieldErrors,
    /// The search and state filter.
    filter: ListFilter,
    /// Links listed, whatever the filter.
    total: usize,
}

/// The states a link can be in, for the filter.
const LINK_STATES: &[&str] = &[
    "pending",
    "connected",
    "denied",
    "failed",
    "revoked",
    "expired",
];

async fn page(app: &App, member: &Member, filter: ListFilter) -> AppResult<IndexPage> {
    let all: Vec<_> = connect_links::list(app, &member.ctx, 200)
        .await?
        .into_iter()
        .map(|l| {
            let state = connect_links::state_of(&l);
            let name = catalogue::get(&l.provider_id)
                .map(|p| p.name.clone())
                .unwrap_or_else(|| l.provider_id.clone());
            (l, state, name)
        })
        .collect();
    let total = all.len();
    let links = all
        .into_iter()
        .filter(|(l, state, name)| filter.keeps(&[&l.customer_ref, name], state))
        .collect();
    Ok(IndexPage {
        shell: member.shell("connect_links"),
        filter,
        total,
        links,
        providers: catalogue::all().iter().collect(),
        created: None,
        provider: String::new(),
        customer_ref: String::new(),
        ttl_hours: "72".into(),
        errors: FieldErrors::new(),
    })
}

/// GET /connect-links
pub async fn index(
    app: web::Data<App>,
    member: Member,
    filter: web::Query<ListFilter>,
) -> AppResult<HttpResponse> {
    render(
        &page(&app, &member, filter.into_inner()).await?,
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct CreateForm {
    provider: String,
    customer_ref: String,
    ttl_hours: String,
}

/// POST /connect-links — shows the link once.
pub async fn create(
    app: web::Data<App>,
    member: Member,
    form: web::Form<CreateForm>,
) -> AppResult<HttpResponse> {
    let form = form.into_inner();
    match connect_links::create(
        &app,
        &member.ctx,
        &member.actor(),
        &form.provider,
        &form.customer_ref,
        &form.ttl_hours,
    )
    .await
    {
        Ok(created) => {
            let mut p = page(&app, &member, ListFilter::default()).await?;
            p.shell.flashes.push(Flash::success(format!(
                "Connect link created for {}.",
                form.customer_ref.trim()
            )));
            p.created = Some(created);
            render(&p, StatusCode::OK)
        }
        Err(AppError::Invalid(errors)) => {
            let mut p = page(&app, &member, ListFilter::default()).await?;
            p.provider = form.provider;
            p.customer_ref = form.customer_ref;
            p.ttl_hours = form.ttl_hours;
            p.errors = errors;
            render(&p, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => Err(e),
    }
}

/// POST /connect-links/{id}/revoke
pub async fn revoke(
    app: web::Data<App>,
    member: Member,
    id: web::Path<ConnectLinkId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    connect_links::revoke(&app, &member.ctx, &member.actor(), id).await?;
    Ok(flash::redirect(
        "/connect-links",
        Flash::success("Link revoked."),
    ))
}

#[derive(Template)]
#[template(path = "connect_links/landing.html")]
struct LandingPage {
    brand: Option<Brand>,
    csrf: String,
    flashes: Vec<Flash>,
    token: String,
    tenant_name: String,
    provider: &'static Provider,
    is_oauth: bool,
    is_api_key: bool,
    is_basic: bool,
    errors: FieldErrors,
}

async fn landing(
    app: &App,
    req: &HttpRequest,
    token: &str,
    errors: FieldErrors,
) -> AppResult<LandingPage> {
    let open = connect_links::open(app, token).await?;
    let provider = catalogue::get(&open.link.provider_id).ok_or(AppError::NotFound)?;
    Ok(LandingPage {
        brand: Some(branding::brand(app, &open.ctx).await?),
        csrf: csrf_token(req),
        flashes: super::extract::flashes(req),
        token: token.to_owned(),
        tenant_name: open.tenant_name,
        provider,
        is_oauth: provider.auth.kind == AuthKind::Oauth2Code,
        is_api_key: provider.auth.kind == AuthKind::ApiKey,
        is_basic: provider.auth.kind == AuthKind::Basic,
        errors,
    })
}

#[derive(Template)]
#[template(path = "connect_links/closed.html")]
struct ClosedPage {
    brand: Option<Brand>,
    flashes: Vec<Flash>,
    title: &'static str,
    message: String,
}

/// The page of a link that does not work (any more): what happened and whom to ask, in
/// the sending workspace's name; `None` while the link works.
async fn closed_page(app: &App, token: &str) -> AppResult<Option<ClosedPage>> {
    let (why, provider_id, ctx) = match connect_links::state(app, token).await? {
        LinkState::Open(_) => return Ok(None),
        LinkState::Unknown => {
            return Ok(Some(ClosedPage {
                brand: None,
                flashes: Vec::new(),
                title: "This link does not work",
                message: "No connect link matches this address: it may have been copied only in part. Check the link you received, or ask the company that sent it for a new one.".into(),
            }));
        }
        LinkState::Closed {
            why,
            provider_id,
            ctx,
        } => (why, provider_id, ctx),
    };
    let brand = branding::brand(app, &ctx).await?;
    let tz = crate::services::tenants::get(app, &ctx).await?.time_zone;
    let provider = catalogue::display_name(&provider_id);
    let sender = &brand.name;
    let (title, message) = match why {
        Closed::Used(at) => (
            "This link was already used",
            format!(
                "It connected a {provider} account{}. A link works once: if you need to connect again, ask {sender} for a new link.",
                at.map(|t| format!(" on {}", tz.at(t))).unwrap_or_default()
            ),
        ),
        Closed::Revoked => (
            "This link was withdrawn",
            format!(
                "{sender} withdrew this link, so it no longer connects anything. If you still need to connect your {provider} account, ask {sender} for a new link."
            ),
        ),
        Closed::Expired(at) => (
            "This link has expired",
            format!(
                "It could be used until {}. To connect your {provider} account, ask {sender} for a new link.",
                tz.at(at)
            ),
        ),
    };
    Ok(Some(ClosedPage {
        brand: Some(brand),
        flashes: Vec::new(),
        title,
        message,
    }))
}

/// The brand of the workspace that sent a link, whatever its state.
async fn brand_of_link(app: &App, token: &str) -> AppResult<Option<Brand>> {
    let ctx = match connect_links::state(app, token).await? {
        LinkState::Open(open) => open.ctx,
        LinkState::Closed { ctx, .. } => ctx,
        LinkState::Unknown => return Ok(None),
    };
    Ok(Some(branding::brand(app, &ctx).await?))
}

/// GET /connect/{token} — the end customer's page: who asks, what is shared.
pub async fn open(
    req: HttpRequest,
    app: web::Data<App>,
    token: web::Path<String>,
) -> AppResult<HttpResponse> {
    if let Some(page) = closed_page(&app, &token).await? {
        return render(&page, StatusCode::GONE);
    }
    render(
        &landing(&app, &req, &token, FieldErrors::new()).await?,
        StatusCode::OK,
    )
}

/// POST /connect/{token} — continue to the provider (or save the key).
pub async fn start(
    req: HttpRequest,
    app: web::Data<App>,
    token: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> AppResult<HttpResponse> {
    // One binding secret per browser, so several tabs of one customer all work.
    let browser = req
        .cookie(super::consent::BROWSER_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() == 43)
        .unwrap_or_else(crate::auth::tokens::random_secret);
    let digest = crate::auth::tokens::digest(&browser);
    let ip = Some(client_info(&req).ip);
    if let Some(page) = closed_page(&app, &token).await? {
        return render(&page, StatusCode::GONE);
    }
    match connect_links::begin(&app, &token, digest, form.into_inner(), ip).await {
        Ok(Begin::Redirect(url)) => {
            let mut response = super::consent::continue_to_provider(&url)?;
            let cookie = actix_web::cookie::Cookie::build(super::consent::BROWSER_COOKIE, browser)
                .path("/")
                .http_only(true)
                .secure(app.settings.is_https())
                .same_site(actix_web::cookie::SameSite::Lax)
                .max_age(actix_web::cookie::time::Duration::minutes(20))
                .finish();
            response
                .add_cookie(&cookie)
                .map_err(|e| AppError::Internal(e.into()))?;
            Ok(response)
        }
        Ok(Begin::Connected(_)) => render(
            &ConnectedPage {
                brand: brand_of_link(&app, &token).await?,
                flashes: Vec::new(),
            },
            StatusCode::OK,
        ),
        Err(AppError::Invalid(errors)) => render(
            &landing(&app, &req, &token, errors).await?,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Err(e) => Err(e),
    }
}

#[derive(Template)]
#[template(path = "connect_links/connected.html")]
struct ConnectedPage {
    brand: Option<Brand>,
    flashes: Vec<Flash>,
}
