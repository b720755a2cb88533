//! Cross-cutting HTTP concerns: security headers, CSRF, flash cookies, request metrics.

use super::flash::{self, Flash};
use crate::auth::tokens;
use actix_web::body::MessageBody;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage};
use std::time::Instant;

/// The CSRF cookie (double-submit: forms echo it in `csrf_token`). Over HTTPS it is
/// `__Host-` prefixed: browsers then accept it only with `Secure`, `Path=/` and no
/// `Domain`, so neither a sibling subdomain nor a plain-http response can plant one.
pub fn csrf_cookie_name(https: bool) -> &'static str {
    if https {
        "__Host-sluice_csrf"
    } else {
        "sluice_csrf"
    }
}

/// The CSRF token for this request, for forms (set by [`csrf_and_flash`]).
#[derive(Clone, Debug)]
pub struct CsrfToken(pub String);

/// Flash messages that arrived with this request.
#[derive(Clone, Debug, Default)]
pub struct IncomingFlashes(pub Vec<Flash>);

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; object-src 'none'";

/// Adds security headers to every response; pages are never cached (they may show
/// secrets once), static assets may be.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let is_static = req.path().starts_with("/static/");
    let https = req
        .app_data::<actix_web::web::Data<crate::app::App>>()
        .is_some_and(|app| app.settings.is_https());
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    let pairs: [(&str, &str); 6] = [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=(), payment=()",
        ),
        ("cross-origin-opener-policy", "same-origin"),
    ];
    for (name, value) in pairs {
        headers.insert(
            header::HeaderName::from_static(name),
            header::HeaderValue::from_static(value),
        );
    }
    if https {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            header::HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    if !is_static && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    Ok(res)
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Paths that authenticate by other means than the browser's cookies (bearer tokens,
/// signed webhooks) and so need no CSRF token.
fn csrf_exempt(path: &str) -> bool {
    path.starts_with("/api/")
        // Inbound webhooks come from other servers and authenticate by signature.
        || path.starts_with("/hooks/")
}

/// Whether an `Origin` header names this site: exactly (scheme, host and port) the
/// configured public URL, or the scheme and `Host` this request came in on. `null`
/// (sandboxed frames, some redirects, `file:` pages) and anything unparsable are foreign.
fn is_own_origin(req: &ServiceRequest, origin: &header::HeaderValue) -> bool {
    let Some(origin) = origin
        .to_str()
        .ok()
        .filter(|o| *o != "null")
        .and_then(|o| url::Url::parse(o).ok())
        .map(|u| u.origin())
        .filter(url::Origin::is_tuple)
    else {
        return false;
    };
    let public = req
        .app_data::<actix_web::web::Data<crate::app::App>>()
        .map(|app| app.settings.public_url.origin());
    let info = req.connection_info();
    let requested = url::Url::parse(&format!("{}://{}", info.scheme(), info.host()))
        .ok()
        .map(|u| u.origin());
    public.as_ref() == Some(&origin) || requested.as_ref() == Some(&origin)
}

/// CSRF protection for every state-changing browser request: the request must not come
/// from another site (Fetch Metadata / Origin), and its form must echo the CSRF cookie.
/// Also hands the token and any flash messages to the handlers, and clears shown flashes.
pub async fn csrf_and_flash(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let https = req
        .app_data::<actix_web::web::Data<crate::app::App>>()
        .is_some_and(|app| app.settings.is_https());
    let cookie_name = csrf_cookie_name(https);
    let existing = req
        .cookie(cookie_name)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() == 43);
    let token = existing.clone().unwrap_or_else(tokens::random_secret);

    // Decide on the path as the router sees it (percent-decoded), not the raw one.
    let routed_path = actix_web::dev::Url::new(req.uri().clone())
        .path()
        .to_owned();
    if is_unsafe(req.method()) && !csrf_exempt(&routed_path) {
        let cross_site = req
            .headers()
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "cross-site");
        let foreign_origin = req
            .headers()
            .get(header::ORIGIN)
            .is_some_and(|origin| !is_own_origin(&req, origin));
        let body = req
            .extract::<Bytes>()
            .await
            .map_err(|e| super::rejections::body(e, req.request()))?;
        let submitted = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| {
                url::form_urlencoded::parse(&body)
                    .find(|(k, _)| k == "csrf_token")
                    .map(|(_, v)| v.into_owned())
            });
        req.set_payload(bytes_to_payload(body));
        let matches = match (&existing, &submitted) {
            (Some(cookie), Some(form)) => tokens::equal(cookie, form),
            _ => false,
        };
        if cross_site || foreign_origin || !matches {
            tracing::info!(path = %req.match_pattern().unwrap_or_default(), "CSRF check failed");
            return Err(crate::error::AppError::Csrf.into());
        }
    }

    let flashes = req
        .cookie(flash::COOKIE)
        .map(|c| flash::decode(c.value()))
        .unwrap_or_default();
    let had_flash = !flashes.is_empty();
    req.extensions_mut().insert(CsrfToken(token.clone()));
    req.extensions_mut().insert(IncomingFlashes(flashes));

    let mut res = next.call(req).await?;
    if existing.is_none() {
        let cookie = Cookie::build(cookie_name, token)
            .path("/")
            .http_only(true)
            .secure(https)
            .same_site(SameSite::Strict)
            .finish();
        res.response_mut().add_cookie(&cookie)?;
    }
    // A flash is shown by the page that follows the redirect; drop it once an HTML page
    // has shown it (not on assets, which a previous page may still be fetching).
    let is_page = (res.status().is_success() || res.status().is_client_error())
        && res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
    let sets_flash = res.response().cookies().any(|c| c.name() == flash::COOKIE);
    if had_flash && is_page && !sets_flash {
        let mut gone = Cookie::build(flash::COOKIE, "").path("/").finish();
        gone.make_removal();
        res.response_mut().add_cookie(&gone)?;
    }
    Ok(res)
}

fn bytes_to_payload(body: Bytes) -> actix_web::dev::Payload {
    let (_, mut payload) = actix_http::h1::Payload::create(true);
    payload.unread_data(body);
    actix_web::dev::Payload::from(payload)
}

/// Counts requests and their latency by route pattern (never by raw path: ids and tokens
/// in paths would explode label cardinality and leak secrets).
pub async fn http_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16().to_string();
    metrics::counter!("sluice_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("sluice_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    Ok(res)
}
