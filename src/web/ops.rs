//! Operations endpoints: liveness, readiness, Prometheus metrics, and the request span.

use crate::app::App;
use crate::error::AppError;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::{Error, HttpRequest, HttpResponse, web};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder};

/// The process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// The process can serve: the database accepts a write (reads alone still work on a full
/// disk) and, where this process runs job workers, they are not failing. 503 otherwise,
/// so a load balancer or orchestrator stops sending work here until it recovers.
pub async fn readyz(app: web::Data<App>) -> HttpResponse {
    let problem = match crate::services::health::write_probe(&app, &app.process).await {
        Err(e) => {
            tracing::warn!(error = %e, "readiness: the database refused a write");
            Some("the database does not accept writes".to_owned())
        }
        Ok(()) => app.workers.unhealthy(),
    };
    match problem {
        None => HttpResponse::Ok().content_type("text/plain").body("ready"),
        Some(why) => HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body(why),
    }
}

/// `/metrics` on the main listener: it names every workspace with its volumes, so it
/// answers only a scraper presenting `SLUICE_METRICS_TOKEN`, and does not exist (404)
/// when no token is configured.
pub async fn metrics(req: HttpRequest, app: web::Data<App>) -> Result<HttpResponse, AppError> {
    let Some(expected) = app
        .settings
        .metrics_token
        .as_ref()
        .filter(|_| app.settings.metrics_enabled)
    else {
        return Err(AppError::NotFound);
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !same_secret(presented, expected.expose_secret()) {
        return Ok(HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
            .content_type("text/plain")
            .body("a bearer token is required"));
    }
    Ok(render_metrics(&app).await)
}

/// `/metrics` on the separate metrics listener (`SLUICE_METRICS_BIND`): whoever can reach
/// that address may scrape, so no token.
pub async fn metrics_unguarded(app: web::Data<App>) -> Result<HttpResponse, AppError> {
    if !app.settings.metrics_enabled {
        return Err(AppError::NotFound);
    }
    Ok(render_metrics(&app).await)
}

/// Compares in constant time. Both sides are hashed first, so neither the content nor
/// the length of the expected token shows in the timing.
fn same_secret(presented: &str, expected: &str) -> bool {
    let digest = |s: &str| Sha256::digest(s.as_bytes());
    digest(presented).ct_eq(&digest(expected)).into()
}

/// Prometheus text format.
async fn render_metrics(app: &App) -> HttpResponse {
    // Queue depth is read at scrape time: a gauge kept by workers would miss jobs other
    // processes pushed.
    match crate::services::health::queue_depths(app).await {
        Ok(depths) => {
            for queue in crate::queue::QUEUES {
                let n = depths
                    .iter()
                    .find(|(q, _)| q == queue)
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!("sluice_queue_depth", "queue" => queue).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read queue depths"),
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(crate::telemetry::prometheus().render())
}

/// Request spans that carry a request id and the route pattern, never the raw path or
/// query string (they can contain invitation tokens or OAuth codes).
pub struct RouteSpan;

impl RootSpanBuilder for RouteSpan {
    fn on_request_start(req: &ServiceRequest) -> Span {
        use actix_web::HttpMessage;
        let request_id = req
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(|r| r.to_string())
            .unwrap_or_default();
        let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
        tracing::info_span!(
            "http",
            method = %req.method(),
            route = %route,
            request_id = %request_id,
            status = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            http.status_code = tracing::field::Empty,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}
