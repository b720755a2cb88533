//! The sandbox authorization server: consent page, token endpoint, revocation.

use crate::support as tokens;
use crate::support::now;
use crate::{Sandbox, csrf, db};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use base64::Engine;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

const CODE_TTL_SECS: i64 = 120;
const REFRESH_TTL_DAYS: i64 = 30;

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage {
    csrf: String,
    params: AuthorizeParams,
    scopes: Vec<String>,
}

#[derive(Template)]
#[template(path = "landing.html")]
struct Landing {
    counters: Vec<(String, i64)>,
    base: String,
}

/// Query (and echoed form) parameters of an authorization request.
#[derive(Deserialize, Clone, Debug, Default)]
pub struct AuthorizeParams {
    #[serde(default)]
    response_type: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    scope: String,
    #[serde(default)]
    code_challenge: String,
    #[serde(default)]
    code_challenge_method: String,
}

/// GET /sandbox — what the sandbox is.
pub async fn landing(sandbox: web::Data<Sandbox>) -> actix_web::Result<HttpResponse> {
    let counters = db::counters(&sandbox.db).await.unwrap_or_default();
    let page = Landing {
        counters,
        base: sandbox.issuer(),
    };
    let body = page
        .render()
        .map_err(actix_web::error::ErrorInternalServerError)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body))
}

fn bad_request(message: &str) -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("text/plain; charset=utf-8")
        .body(format!("Sandbox authorization error: {message}"))
}

/// Problems that must not redirect (RFC 6749 §4.1.2.1: unknown client or bad redirect URI).
fn check_client(sandbox: &Sandbox, params: &AuthorizeParams) -> Result<(), HttpResponse> {
    if params.client_id != sandbox.client.id {
        return Err(bad_request("unknown client_id"));
    }
    if !sandbox.client.redirect_uris.contains(&params.redirect_uri) {
        return Err(bad_request(
            "redirect_uri is not registered for this client",
        ));
    }
    Ok(())
}

fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> HttpResponse {
    let mut url = match url::Url::parse(redirect_uri) {
        Ok(u) => u,
        Err(_) => return bad_request("invalid redirect_uri"),
    };
    url.query_pairs_mut().extend_pairs(pairs);
    HttpResponse::Found()
        .insert_header((header::LOCATION, url.to_string()))
        .finish()
}

/// GET /sandbox/oauth/authorize — the consent page.
pub async fn authorize_form(
    sandbox: web::Data<Sandbox>,
    query: web::Query<AuthorizeParams>,
) -> HttpResponse {
    let params = query.into_inner();
    if let Err(response) = check_client(&sandbox, &params) {
        return response;
    }
    if params.response_type != "code" {
        return redirect_with(
            &params.redirect_uri,
            &[
                ("error", "unsupported_response_type"),
                ("state", &params.state),
            ],
        );
    }
    if params.code_challenge.is_empty() || params.code_challenge_method != "S256" {
        return redirect_with(
            &params.redirect_uri,
            &[
                ("error", "invalid_request"),
                ("error_description", "PKCE with S256 is required"),
                ("state", &params.state),
            ],
        );
    }
    let scopes = params.scope.split_whitespace().map(str::to_owned).collect();
    let (csrf, cookie) = csrf::issue();
    let page = ConsentPage {
        csrf,
        params,
        scopes,
    };
    match page.render() {
        Ok(body) => HttpResponse::Ok()
            .cookie(cookie)
            .content_type("text/html; charset=utf-8")
            .body(body),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

/// The consent decision.
#[derive(Deserialize)]
pub struct Decision {
    decision: String,
    #[serde(default)]
    csrf_token: String,
    #[serde(flatten)]
    params: AuthorizeParams,
}

/// POST /sandbox/oauth/authorize — approve (code) or deny (access_denied).
pub async fn authorize_decision(
    req: HttpRequest,
    sandbox: web::Data<Sandbox>,
    form: web::Form<Decision>,
) -> HttpResponse {
    let Decision {
        decision,
        csrf_token,
        params,
    } = form.into_inner();
    if !csrf::verify(&req, &csrf_token) {
        return HttpResponse::Forbidden()
            .content_type("text/plain; charset=utf-8")
            .body("Sandbox authorization error: the form expired or came from another site; go back and try again");
    }
    if let Err(response) = check_client(&sandbox, &params) {
        return response;
    }
    let issuer = sandbox.issuer();
    if decision != "approve" {
        return redirect_with(
            &params.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "The user denied access"),
                ("state", &params.state),
                ("iss", &issuer),
            ],
        );
    }
    let code = tokens::random_secret();
    let family = uuid::Uuid::now_v7().to_string();
    let stored = db::insert_grant(
        &sandbox.db,
        &code,
        "code",
        &params.client_id,
        &family,
        &params.scope,
        Some(&params.redirect_uri),
        Some(&params.code_challenge),
        now() + chrono::Duration::seconds(CODE_TTL_SECS),
    )
    .await;
    if stored.is_err() {
        return redirect_with(
            &params.redirect_uri,
            &[
                ("error", "server_error"),
                ("state", &params.state),
                ("iss", &issuer),
            ],
        );
    }
    redirect_with(
        &params.redirect_uri,
        &[("code", &code), ("state", &params.state), ("iss", &issuer)],
    )
}

/// Token endpoint form.
#[derive(Deserialize)]
pub struct TokenForm {
    grant_type: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn oauth_error(status: u16, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .insert_header((header::CACHE_CONTROL, "no-store"))
    .json(json!({ "error": error, "error_description": description }))
}

/// Client authentication: HTTP basic or form fields.
fn authenticate_client(sandbox: &Sandbox, req: &HttpRequest, form: &TokenForm) -> bool {
    let from_basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, p)| (urlencoding_decode(u), urlencoding_decode(p)))
        });
    let (id, secret) = match from_basic {
        Some(pair) => pair,
        None => (
            form.client_id.clone().unwrap_or_default(),
            form.client_secret.clone().unwrap_or_default(),
        ),
    };
    id == sandbox.client.id && tokens::equal(&secret, &sandbox.client.secret)
}

fn urlencoding_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn issue(
    sandbox: &Sandbox,
    client_id: &str,
    family: &str,
    scope: &str,
) -> Result<serde_json::Value, sea_orm::DbErr> {
    let access = format!("sbx_at_{}", tokens::random_secret());
    let refresh = format!("sbx_rt_{}", tokens::random_secret());
    let ttl = sandbox.settings.token_ttl;
    db::insert_grant(
        &sandbox.db,
        &access,
        "access",
        client_id,
        family,
        scope,
        None,
        None,
        now() + chrono::Duration::from_std(ttl).unwrap_or_default(),
    )
    .await?;
    db::insert_grant(
        &sandbox.db,
        &refresh,
        "refresh",
        client_id,
        family,
        scope,
        None,
        None,
        now() + chrono::Duration::days(REFRESH_TTL_DAYS),
    )
    .await?;
    Ok(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl.as_secs(),
        "refresh_token": refresh,
        "scope": scope,
    }))
}

/// POST /sandbox/oauth/token
pub async fn token(
    req: HttpRequest,
    sandbox: web::Data<Sandbox>,
    form: web::Form<TokenForm>,
) -> HttpResponse {
    let form = form.into_inner();
    if !authenticate_client(&sandbox, &req, &form) {
        return oauth_error(401, "invalid_client", "client authentication failed");
    }
    // Counted after authentication and only for known grants: no rows for strangers.
    if let Some(grant) = ["authorization_code", "refresh_token", "client_credentials"]
        .into_iter()
        .find(|g| *g == form.grant_type)
    {
        let _ = db::bump(&sandbox.db, &format!("token.{grant}"), 1).await;
    }
    let result = match form.grant_type.as_str() {
        "authorization_code" => exchange_code(&sandbox, &form).await,
        "refresh_token" => refresh(&sandbox, &form).await,
        "client_credentials" => {
            let family = uuid::Uuid::now_v7().to_string();
            issue(
                &sandbox,
                &sandbox.client.id,
                &family,
                form.scope.as_deref().unwrap_or("crm.read erp.read"),
            )
            .await
            .map(|mut body| {
                if let Some(obj) = body.as_object_mut() {
                    obj.remove("refresh_token");
                }
                Ok(body)
            })
            .unwrap_or_else(|_| Err(oauth_error(500, "server_error", "storage failed")))
        }
        _ => Err(oauth_error(
            400,
            "unsupported_grant_type",
            "unsupported grant_type",
        )),
    };
    match result {
        Ok(body) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(body),
        Err(response) => response,
    }
}

async fn exchange_code(
    sandbox: &Sandbox,
    form: &TokenForm,
) -> Result<serde_json::Value, HttpResponse> {
    let invalid = |d: &str| oauth_error(400, "invalid_grant", d);
    let code = form
        .code
        .as_deref()
        .ok_or_else(|| invalid("code is required"))?;
    let grant = db::grant(&sandbox.db, code)
        .await
        .map_err(|_| oauth_error(500, "server_error", "storage failed"))?
        .filter(|g| g.kind == "code")
        .ok_or_else(|| invalid("unknown code"))?;
    if !db::use_grant(&sandbox.db, code).await.unwrap_or(false) {
        // A replayed code: revoke everything issued from it (RFC 6749 §4.1.2).
        let _ = db::revoke_family(&sandbox.db, &grant.family).await;
        return Err(invalid("code already used"));
    }
    if grant.revoked || grant.expires_at <= now() {
        return Err(invalid("code expired"));
    }
    if grant.redirect_uri.as_deref() != form.redirect_uri.as_deref() {
        return Err(invalid("redirect_uri does not match"));
    }
    let verifier = form.code_verifier.as_deref().unwrap_or_default();
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    if grant.challenge.as_deref() != Some(computed.as_str()) {
        return Err(invalid("PKCE verification failed"));
    }
    issue(sandbox, &grant.client_id, &grant.family, &grant.scope)
        .await
        .map_err(|_| oauth_error(500, "server_error", "storage failed"))
}

async fn refresh(sandbox: &Sandbox, form: &TokenForm) -> Result<serde_json::Value, HttpResponse> {
    let invalid = |d: &str| oauth_error(400, "invalid_grant", d);
    let token = form
        .refresh_token
        .as_deref()
        .ok_or_else(|| invalid("refresh_token is required"))?;
    let grant = db::grant(&sandbox.db, token)
        .await
        .map_err(|_| oauth_error(500, "server_error", "storage failed"))?
        .filter(|g| g.kind == "refresh")
        .ok_or_else(|| invalid("unknown refresh token"))?;
    if grant.revoked || grant.expires_at <= now() {
        return Err(invalid("refresh token revoked or expired"));
    }
    if !db::use_grant(&sandbox.db, token).await.unwrap_or(false) {
        // Reuse of a rotated refresh token: assume theft, revoke the whole family.
        let _ = db::revoke_family(&sandbox.db, &grant.family).await;
        let _ = db::bump(&sandbox.db, "refresh.reuse_detected", 1).await;
        return Err(invalid(
            "refresh token already used; the grant has been revoked",
        ));
    }
    issue(sandbox, &grant.client_id, &grant.family, &grant.scope)
        .await
        .map_err(|_| oauth_error(500, "server_error", "storage failed"))
}

/// Revocation form (RFC 7009).
#[derive(Deserialize)]
pub struct RevokeForm {
    token: String,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// POST /sandbox/oauth/revoke — revokes the token's whole family. Always 200 (RFC 7009).
pub async fn revoke(
    req: HttpRequest,
    sandbox: web::Data<Sandbox>,
    form: web::Form<RevokeForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let as_token_form = TokenForm {
        grant_type: String::new(),
        code: None,
        redirect_uri: None,
        code_verifier: None,
        refresh_token: None,
        scope: None,
        client_id: form.client_id.clone(),
        client_secret: form.client_secret.clone(),
    };
    if !authenticate_client(&sandbox, &req, &as_token_form) {
        return oauth_error(401, "invalid_client", "client authentication failed");
    }
    let _ = db::bump(&sandbox.db, "revoke", 1).await;
    if let Ok(Some(grant)) = db::grant(&sandbox.db, &form.token).await {
        let _ = db::revoke_family(&sandbox.db, &grant.family).await;
    }
    HttpResponse::Ok().finish()
}

/// The scope set an access token grants, if it is valid now.
pub async fn check_access(sandbox: &Sandbox, bearer: &str) -> Option<Vec<String>> {
    let grant = db::grant(&sandbox.db, bearer).await.ok()??;
    (grant.kind == "access" && !grant.revoked && grant.expires_at > now())
        .then(|| grant.scope.split_whitespace().map(str::to_owned).collect())
}
