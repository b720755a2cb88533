//! The web layer: the one route table, middleware, extractors, and one module per
//! resource. Handlers are thin: form → service call → page or redirect.

pub mod api;
pub mod extract;
pub mod flash;
pub mod middleware;
pub mod shell;

mod account;
mod alerts;
mod assets;
mod auth;
mod charts;
mod connect_links;
mod connections;
mod consent;
mod dashboard;
mod filters;
mod flow_documents;
mod flow_form;
mod flow_preview;
mod flows;
mod members;
mod ops;
mod rejections;
mod runs;
mod support;
mod tokens;
mod workspaces;

use crate::app::App;
use crate::error::AppError;
use actix_web::middleware::{NormalizePath, TrailingSlash, from_fn};
use actix_web::{App as ActixApp, HttpRequest, HttpServer, dev::Server, web};
use std::net::TcpListener;
use tracing_actix_web::TracingLogger;

/// Largest form or JSON body accepted.
const BODY_LIMIT: usize = 256 * 1024;

/// Services of other systems served by this server (the built-in sandbox): mounted
/// before Sluice's routes and outside its sessions, flashes and CSRF checks.
pub type Mount = std::sync::Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// Builds the HTTP server on an already-bound listener.
pub fn server(app: App, listener: TcpListener, mounts: Vec<Mount>) -> anyhow::Result<Server> {
    let data = web::Data::new(app);
    let server = HttpServer::new(move || {
        let mounts = mounts.clone();
        ActixApp::new()
            .app_data(data.clone())
            .app_data(
                web::FormConfig::default()
                    .limit(BODY_LIMIT)
                    .error_handler(rejections::form),
            )
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .app_data(web::QueryConfig::default().error_handler(rejections::query))
            .app_data(web::PathConfig::default().error_handler(rejections::path))
            .app_data(
                web::JsonConfig::default()
                    .limit(BODY_LIMIT)
                    .error_handler(rejections::json),
            )
            .wrap(from_fn(middleware::security_headers))
            .wrap(from_fn(middleware::http_metrics))
            .wrap(NormalizePath::new(TrailingSlash::Trim))
            .wrap(TracingLogger::<ops::RouteSpan>::new())
            .configure(|cfg| mounts.iter().for_each(|mount| mount(cfg)))
            .service(
                web::scope("")
                    .wrap(from_fn(middleware::csrf_and_flash))
                    .configure(routes),
            )
    })
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(30)
    .run();
    Ok(server)
}

/// The separate metrics listener (`SLUICE_METRICS_BIND`): `/metrics` and nothing else.
pub fn metrics_server(app: App, listener: TcpListener) -> anyhow::Result<Server> {
    let data = web::Data::new(app);
    let server = HttpServer::new(move || {
        ActixApp::new()
            .app_data(data.clone())
            .route("/metrics", web::get().to(ops::metrics_unguarded))
            .default_service(web::to(not_found))
    })
    .workers(1)
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(5)
    .run();
    Ok(server)
}

/// The one route table.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(dashboard::home))
        .route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics))
        // Routes are tried in order, and each pattern with a `{segment}` costs a regular
        // expression match: the one path machines call by the thousand comes first.
        .route("/hooks/{token}", web::post().to(flows::receive_webhook))
        // Accounts
        .route("/setup/{token}", web::get().to(auth::setup_form))
        .route("/setup/{token}", web::post().to(auth::setup_submit))
        .route("/login", web::get().to(auth::login_form))
        .route("/login", web::post().to(auth::login_submit))
        .route("/logout", web::post().to(auth::logout))
        .route("/account", web::get().to(account::show))
        .route(
            "/account/password",
            web::post().to(account::change_password),
        )
        // Workspaces
        .route("/dashboard", web::get().to(dashboard::show))
        .route("/workspaces/new", web::get().to(workspaces::new_form))
        .route("/workspaces", web::post().to(workspaces::create))
        .route("/workspaces/switch", web::post().to(workspaces::switch))
        .route(
            "/settings/workspace",
            web::get().to(workspaces::settings_form),
        )
        .route(
            "/settings/workspace",
            web::post().to(workspaces::settings_submit),
        )
        .route(
            "/settings/workspace/logo",
            web::post().to(workspaces::logo_submit),
        )
        .route(
            "/settings/workspace/logo/remove",
            web::post().to(workspaces::logo_remove),
        )
        .route("/settings/audit", web::get().to(workspaces::audit_log))
        // Members and invitations
        .route("/settings/members", web::get().to(members::index))
        .route("/settings/members/invite", web::post().to(members::invite))
        .route(
            "/settings/members/invite",
            web::get().to(members::invite_reloaded),
        )
        .route(
            "/settings/members/{id}/role",
            web::post().to(members::change_role),
        )
        .route(
            "/settings/members/{id}/remove",
            web::post().to(members::remove),
        )
        .route(
            "/settings/invitations/{id}/revoke",
            web::post().to(members::revoke_invitation),
        )
        .route("/invite/{token}", web::get().to(members::invitation))
        .route("/invite/{token}", web::post().to(members::accept))
        // Connections
        .route("/connections", web::get().to(connections::index))
        .route(
            "/connections/catalogue",
            web::get().to(connections::catalogue_page),
        )
        .route(
            "/connections/new/{provider}",
            web::get().to(connections::new_form),
        )
        .route(
            "/connections/new/{provider}",
            web::post().to(connections::create),
        )
        .route("/connections/{id}", web::get().to(connections::show))
        .route("/connections/{id}/test", web::post().to(connections::test))
        .route(
            "/connections/{id}/choose",
            web::post().to(connections::choose),
        )
        .route(
            "/connections/{id}/sample",
            web::post().to(connections::sample),
        )
        .route(
            "/connections/{id}/disconnect",
            web::post().to(connections::disconnect),
        )
        .route(
            "/connections/{id}/reconnect",
            web::post().to(connections::reconnect),
        )
        .route(
            "/oauth/callback/{provider}",
            web::get().to(connections::callback),
        )
        .route(
            "/settings/oauth-apps",
            web::get().to(connections::oauth_apps),
        )
        .route(
            "/settings/oauth-apps/{provider}",
            web::get().to(connections::oauth_app_form),
        )
        .route(
            "/settings/oauth-apps/{provider}",
            web::post().to(connections::oauth_app_save),
        )
        .route("/connect-links", web::get().to(connect_links::index))
        .route("/connect-links", web::post().to(connect_links::create))
        .route(
            "/connect-links/{id}/revoke",
            web::post().to(connect_links::revoke),
        )
        .route("/connect/{token}", web::get().to(connect_links::open))
        .route("/connect/{token}", web::post().to(connect_links::start))
        // Flows, runs and dead letters
        .route("/flows", web::get().to(flows::index))
        .route("/flows", web::post().to(flows::create))
        .route("/flows/new", web::get().to(flows::new_form))
        .route("/flows/import", web::get().to(flow_documents::import_form))
        .route("/flows/import", web::post().to(flow_documents::import))
        .route(
            "/flows/mapping-preview",
            web::post().to(flow_preview::mapping_preview),
        )
        .route("/flows/{id}", web::get().to(flows::show))
        .route("/flows/{id}", web::post().to(flows::update))
        .route("/flows/{id}/edit", web::get().to(flows::edit_form))
        .route("/flows/{id}/run", web::post().to(flows::run_now))
        .route("/flows/{id}/enable", web::post().to(flows::enable))
        .route("/flows/{id}/pause", web::post().to(flows::pause))
        .route("/flows/{id}/delete", web::post().to(flows::delete))
        .route("/flows/{id}/webhook", web::post().to(flows::rotate_webhook))
        .route("/flows/{id}/diff", web::get().to(flows::diff))
        .route("/flows/{id}/export", web::get().to(flow_documents::export))
        .route(
            "/flows/{id}/duplicate",
            web::post().to(flow_documents::duplicate),
        )
        .route(
            "/flows/{id}/dead-letters",
            web::get().to(flows::dead_letters),
        )
        .route(
            "/flows/{id}/dead-letters/replay",
            web::post().to(flows::replay),
        )
        .route(
            "/flows/{id}/dead-letters/discard",
            web::post().to(flows::discard),
        )
        .route("/runs", web::get().to(runs::history))
        .route("/runs.csv", web::get().to(runs::export))
        .route("/runs/{id}", web::get().to(runs::show))
        .route("/runs/{id}/progress", web::get().to(runs::progress))
        .route("/runs/{id}/cancel", web::post().to(runs::cancel))
        .route("/support", web::get().to(support::index))
        .route("/support/runs/{id}", web::get().to(support::show))
        .route("/support/runs/{id}/reveal", web::post().to(support::reveal))
        .route("/support/runs/{id}/replay", web::post().to(support::replay))
        .route("/alerts", web::get().to(alerts::index))
        .route("/alerts/{id}", web::get().to(alerts::show))
        .route(
            "/alerts/{id}/acknowledge",
            web::post().to(alerts::acknowledge),
        )
        .route("/alerts/{id}/resolve", web::post().to(alerts::resolve))
        .route("/settings/alerts", web::get().to(alerts::settings))
        .route(
            "/settings/alerts/rules",
            web::post().to(alerts::create_rule),
        )
        .route(
            "/settings/alerts/rules/{id}",
            web::post().to(alerts::update_rule),
        )
        .route(
            "/settings/alerts/rules/{id}/delete",
            web::post().to(alerts::delete_rule),
        )
        .route(
            "/settings/alerts/channels",
            web::post().to(alerts::create_channel),
        )
        .route(
            "/settings/alerts/channels/{id}/{action}",
            web::post().to(alerts::channel_action),
        )
        .route(
            "/settings/alerts/deliveries",
            web::get().to(alerts::deliveries),
        )
        // API tokens
        .route("/settings/api-tokens", web::get().to(tokens::index))
        .route("/settings/api-tokens", web::post().to(tokens::create))
        .route(
            "/settings/api-tokens/{id}/revoke",
            web::post().to(tokens::revoke),
        )
        // JSON API
        .service(
            web::scope("/api/v1")
                .route("/openapi.json", web::get().to(api::openapi))
                .route("/me", web::get().to(api::me))
                .route("/members", web::get().to(api::members))
                .route("/audit-events", web::get().to(api::audit_events))
                .route("/providers", web::get().to(api::connections::providers))
                .route("/connections", web::get().to(api::connections::list))
                .route("/connections/{id}", web::get().to(api::connections::show))
                .route(
                    "/connections/{id}",
                    web::delete().to(api::connections::delete),
                )
                .route(
                    "/connections/{id}/test",
                    web::post().to(api::connections::test),
                )
                .route(
                    "/connect-links",
                    web::get().to(api::connections::list_links),
                )
                .route(
                    "/connect-links",
                    web::post().to(api::connections::create_link),
                )
                .route(
                    "/connect-links/{id}/revoke",
                    web::post().to(api::connections::revoke_link),
                )
                .route("/flows", web::get().to(api::flows::list))
                .route("/flows", web::post().to(api::flows::create))
                .route("/flows/import", web::post().to(api::flow_documents::import))
                .route("/flows/{id}", web::get().to(api::flows::show))
                .route("/flows/{id}", web::put().to(api::flows::update))
                .route("/flows/{id}", web::delete().to(api::flows::delete))
                .route("/flows/{id}/enable", web::post().to(api::flows::enable))
                .route("/flows/{id}/pause", web::post().to(api::flows::pause))
                .route("/flows/{id}/run", web::post().to(api::flows::run))
                .route("/flows/{id}/dry-run", web::post().to(api::flows::dry_run))
                .route("/flows/{id}/runs", web::get().to(api::flows::runs))
                .route(
                    "/flows/{id}/export",
                    web::get().to(api::flow_documents::export),
                )
                .route(
                    "/flows/{id}/duplicate",
                    web::post().to(api::flow_documents::duplicate),
                )
                .route(
                    "/flows/{id}/dead-letters",
                    web::get().to(api::flows::dead_letters),
                )
                .route(
                    "/flows/{id}/dead-letters/replay",
                    web::post().to(api::flows::replay),
                )
                .route(
                    "/flows/{id}/dead-letters/discard",
                    web::post().to(api::flows::discard),
                )
                .route("/runs", web::get().to(api::alerts::history))
                .route("/runs/{id}", web::get().to(api::flows::run_show))
                .route("/runs/{id}/cancel", web::post().to(api::flows::cancel))
                .route("/alerts", web::get().to(api::alerts::list))
                .route(
                    "/alerts/{id}/acknowledge",
                    web::post().to(api::alerts::acknowledge),
                )
                .route("/alerts/{id}/resolve", web::post().to(api::alerts::resolve))
                .route("/alert-rules", web::get().to(api::alerts::rules))
                .route("/alert-rules", web::post().to(api::alerts::create_rule))
                .route("/alert-rules/{id}", web::put().to(api::alerts::update_rule))
                .route(
                    "/alert-rules/{id}",
                    web::delete().to(api::alerts::delete_rule),
                )
                .route("/channels", web::get().to(api::alerts::channels))
                .route("/channels", web::post().to(api::alerts::create_channel))
                .route(
                    "/channels/{id}",
                    web::delete().to(api::alerts::delete_channel),
                )
                .default_service(web::to(api::not_found)),
        )
        .route("/static/{path:.*}", web::get().to(assets::serve))
        .default_service(web::to(not_found));
}

async fn not_found(_req: HttpRequest) -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::NotFound)
}
