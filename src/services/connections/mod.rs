//! Connection use cases: connecting (OAuth, API key, basic) and the OAuth callback, the
//! tenant's OAuth apps, "Test connection", and disconnecting. Talking to the provider
//! with a connection is the connector runtime's ([`crate::connectors::session`]).

mod connect;
mod manage;
mod oauth_apps;

pub use connect::{
    Begin, Binding, CallbackMember, CallbackParams, CallbackResult, ConnectRequest, begin, callback,
};
pub use manage::{Choices, Sample, TestOutcome, choices, choose, disconnect, sample, test};
pub use oauth_apps::save_oauth_app;
// Pages show the callback URL to register at the provider.
pub use crate::connectors::session::callback_url;

use super::records;
use crate::app::App;
use crate::connectors::catalogue::{self, FieldKind, Provider};
use crate::domain::{ConnectionId, FieldErrors, TenantCtx};
use crate::error::{AppError, AppResult};
use std::collections::{BTreeMap, HashMap};

/// A provider by id, or 404.
pub fn provider(id: &str) -> AppResult<&'static Provider> {
    catalogue::get(id).ok_or(AppError::NotFound)
}

/// Validates the values a provider asks for when connecting.
pub fn parse_fields(
    provider: &Provider,
    raw: &HashMap<String, String>,
) -> Result<BTreeMap<String, String>, FieldErrors> {
    let values = parse_field_values(&provider.connection_fields(), raw)?;
    if provider.generic
        && let Err(why) = catalogue::check_description(provider, &values)
    {
        return Err(FieldErrors::single(
            "field_paging_style",
            format!("The API description is incomplete: {why}."),
        ));
    }
    Ok(values)
}

/// Validates `field_<name>` form values by what each holds: a field with options takes
/// only one of them, URLs must be http(s), paths start with `/`, JSONPaths parse,
/// numbers are whole, names hold only characters that cannot reshape a URL. An empty
/// field takes its default, or is left out when optional.
fn parse_field_values(
    fields: &[&crate::connectors::catalogue::AuthField],
    raw: &HashMap<String, String>,
) -> Result<BTreeMap<String, String>, FieldErrors> {
    let mut errors = FieldErrors::new();
    let mut values = BTreeMap::new();
    for field in fields {
        let key = format!("field_{}", field.name);
        let value = raw
            .get(&key)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .or_else(|| field.default.clone())
            .or_else(|| field.options.first().map(|o| o.value.clone()))
            .unwrap_or_default();
        if value.is_empty() && field.optional {
            continue;
        }
        let problem = if field.text {
            // Any text: it never reaches a URL unencoded.
            (value.is_empty() || value.chars().count() > 100 || value.chars().any(char::is_control))
                .then(|| {
                    format!(
                        "Enter the {} (up to 100 characters).",
                        field.label.to_lowercase()
                    )
                })
        } else if !field.options.is_empty() {
            // A choice among the vendor's own hosts: nothing else may be sent.
            (!field.options.iter().any(|o| o.value == value))
                .then(|| "Choose one of the options.".into())
        } else if value.is_empty() {
            Some(format!("Enter the {}.", field.label.to_lowercase()))
        } else if (field.kind() == FieldKind::Path
            && value.replace("{id}", "").contains(['{', '}']))
            || (field.kind() != FieldKind::Path && value.contains(['{', '}']))
        {
            Some("Braces are not allowed here.".into())
        } else {
            match field.kind() {
                FieldKind::Url => match url::Url::parse(&value) {
                    Ok(u)
                        if matches!(u.scheme(), "http" | "https")
                            && u.host().is_some()
                            && u.username().is_empty() =>
                    {
                        None
                    }
                    _ => Some("Enter an http:// or https:// URL.".into()),
                },
                FieldKind::Jsonpath => serde_json_path::JsonPath::parse(&value)
                    .is_err()
                    .then(|| "Enter a JSONPath such as $.data (RFC 9535).".into()),
                FieldKind::Path => (!value.starts_with('/')
                    || value.contains(char::is_whitespace)
                    || value.contains(".."))
                .then(|| "Enter a path starting with /.".into()),
                FieldKind::Number => (!value.parse::<u32>().is_ok_and(|n| n > 0))
                    .then(|| "Enter a whole number above 0.".into()),
                FieldKind::Name => (!catalogue::is_plain_value(&value))
                    .then(|| "Use only letters, digits, '.', '-' and '_'.".into()),
            }
        };
        match problem {
            Some(message) => errors.add(&key, message),
            None => {
                values.insert(field.name.clone(), value);
            }
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

/// The tenant's connections, newest first.
pub async fn list(app: &App, ctx: &TenantCtx) -> AppResult<Vec<records::Connection>> {
    Ok(app.store.connections(ctx).await?)
}

/// A connection, or 404.
pub async fn get(app: &App, ctx: &TenantCtx, id: ConnectionId) -> AppResult<records::Connection> {
    app.store
        .connection(ctx, id)
        .await?
        .ok_or(AppError::NotFound)
}

/// A connection's latest events (connected, refreshed, tested, …).
pub async fn events(
    app: &App,
    ctx: &TenantCtx,
    id: ConnectionId,
    limit: u64,
) -> AppResult<Vec<records::ConnectionLogEntry>> {
    Ok(app.store.connection_events(ctx, id, limit).await?)
}

/// The tenant's OAuth apps.
pub async fn oauth_apps(app: &App, ctx: &TenantCtx) -> AppResult<Vec<records::OAuthApp>> {
    Ok(app.store.oauth_apps(ctx).await?)
}

/// The tenant's OAuth app for a provider, if any.
pub async fn oauth_app(
    app: &App,
    ctx: &TenantCtx,
    provider: &str,
) -> AppResult<Option<records::OAuthApp>> {
    Ok(app.store.oauth_app(ctx, provider).await?)
}
