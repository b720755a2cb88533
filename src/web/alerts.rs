//! Alert pages: the alert list and detail (acknowledge, resolve, deliveries), and the
//! settings page for rules, channels and the delivery history.

use super::auth::render;
use super::extract::Member;
use super::flash::{self, Flash};
use super::shell::Shell;
use crate::app::App;
use crate::domain::{
    AlertId, AlertKind, AlertRuleId, AlertState, ChannelId, ChannelKind, DeliveryId, FieldErrors,
};
use crate::error::{AppError, AppResult};
use crate::services::alerts::{self, ChannelInput, RuleInput};
use crate::services::records;
use crate::services::records::AlertFilter;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use std::collections::HashMap;

const ALERTS_PER_PAGE: u64 = 50;
const DELIVERIES_PER_PAGE: u64 = 100;

/// Query of the alert list.
#[derive(Deserialize)]
pub struct ListQuery {
    state: Option<String>,
    before: Option<String>,
}

#[derive(Template)]
#[template(path = "alerts/index.html")]
struct ListPage {
    shell: Shell,
    tab: String,
    alerts: Vec<records::Alert>,
    next: Option<AlertId>,
}

/// GET /alerts
pub async fn index(
    app: web::Data<App>,
    member: Member,
    q: web::Query<ListQuery>,
) -> AppResult<HttpResponse> {
    let tab = q.state.clone().unwrap_or_else(|| "active".into());
    let filter = match tab.as_str() {
        "all" => AlertFilter::All,
        "active" => AlertFilter::Active,
        s => AlertFilter::State(s.parse::<AlertState>().unwrap_or(AlertState::Open)),
    };
    let before = q.before.as_deref().and_then(|b| b.parse().ok());
    let mut alerts = alerts::list(&app, &member.ctx, filter, before, ALERTS_PER_PAGE + 1).await?;
    let next = if alerts.len() as u64 > ALERTS_PER_PAGE {
        alerts.truncate(ALERTS_PER_PAGE as usize);
        alerts.last().map(|a| a.id)
    } else {
        None
    };
    render(
        &ListPage {
            shell: member.shell("alerts"),
            tab,
            alerts,
            next,
        },
        StatusCode::OK,
    )
}

/// Firings listed on an alert's page.
const OCCURRENCES_SHOWN: u64 = 50;

#[derive(Template)]
#[template(path = "alerts/show.html")]
struct ShowPage {
    shell: Shell,
    alert: records::Alert,
    occurrences: Vec<records::AlertOccurrence>,
    deliveries: Vec<records::Delivery>,
    channel_names: HashMap<ChannelId, String>,
}

impl ShowPage {
    fn channel_name(&self, id: &ChannelId) -> &str {
        self.channel_names
            .get(id)
            .map_or("(deleted channel)", String::as_str)
    }
}

async fn channel_names(app: &App, member: &Member) -> AppResult<HashMap<ChannelId, String>> {
    Ok(alerts::channels(app, &member.ctx)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect())
}

/// GET /alerts/{id}
pub async fn show(
    app: web::Data<App>,
    member: Member,
    id: web::Path<AlertId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let alert = alerts::get(&app, &member.ctx, id).await?;
    let occurrences = alerts::occurrences(&app, &member.ctx, id, OCCURRENCES_SHOWN).await?;
    let deliveries =
        alerts::deliveries(&app, &member.ctx, Some(id), None, DELIVERIES_PER_PAGE).await?;
    render(
        &ShowPage {
            shell: member.shell("alerts"),
            channel_names: channel_names(&app, &member).await?,
            deliveries,
            occurrences,
            alert,
        },
        StatusCode::OK,
    )
}

/// POST /alerts/{id}/acknowledge
pub async fn acknowledge(
    app: web::Data<App>,
    member: Member,
    id: web::Path<AlertId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let flash = match alerts::acknowledge(&app, &member.ctx, &member.actor(), id).await {
        Ok(_) => Flash::success("Acknowledged: no further notifications until it resolves."),
        Err(AppError::Conflict(m)) => Flash::error(m),
        Err(e) => return Err(e),
    };
    Ok(flash::redirect(&format!("/alerts/{id}"), flash))
}

/// POST /alerts/{id}/resolve
pub async fn resolve(
    app: web::Data<App>,
    member: Member,
    id: web::Path<AlertId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    alerts::resolve(&app, &member.ctx, &member.actor(), id).await?;
    Ok(flash::redirect(
        &format!("/alerts/{id}"),
        Flash::success("Resolved. It opens again if the condition comes back."),
    ))
}

/// A rule with what it means, for the settings page.
pub struct RuleRow {
    rule: records::AlertRule,
    explanation: String,
    flow_name: String,
}

#[derive(Template)]
#[template(path = "alerts/settings.html")]
struct SettingsPage {
    shell: Shell,
    rules: Vec<RuleRow>,
    channels: Vec<records::Channel>,
    flows: Vec<(String, String)>,
    kinds: &'static [AlertKind],
    channel_kinds: &'static [ChannelKind],
    smtp_configured: bool,
    new_secret: Option<String>,
    rule_form: RuleForm,
    channel_form: ChannelForm,
    errors: FieldErrors,
    channel_errors: FieldErrors,
}

async fn settings_page(app: &App, member: &Member) -> AppResult<SettingsPage> {
    let flows: Vec<(String, String)> = crate::services::flows::list(app, &member.ctx)
        .await?
        .into_iter()
        .map(|f| (f.id.to_string(), f.name))
        .collect();
    let names: HashMap<String, String> = flows.iter().cloned().collect();
    let rules = alerts::rules(app, &member.ctx)
        .await?
        .into_iter()
        .map(|rule| RuleRow {
            explanation: rule.kind.explain(rule.threshold, rule.window_minutes),
            flow_name: rule
                .flow_id
                .and_then(|f| names.get(&f.to_string()).cloned())
                .unwrap_or_else(|| "All flows".into()),
            rule,
        })
        .collect();
    Ok(SettingsPage {
        shell: member.shell("alert_settings"),
        rules,
        channels: alerts::channels(app, &member.ctx).await?,
        flows,
        kinds: AlertKind::ALL,
        channel_kinds: ChannelKind::ALL,
        smtp_configured: app.settings.smtp_url.is_some(),
        new_secret: None,
        rule_form: RuleForm::default(),
        channel_form: ChannelForm::default(),
        errors: FieldErrors::new(),
        channel_errors: FieldErrors::new(),
    })
}

/// GET /settings/alerts
pub async fn settings(app: web::Data<App>, member: Member) -> AppResult<HttpResponse> {
    render(&settings_page(&app, &member).await?, StatusCode::OK)
}

/// The rule form.
#[derive(Deserialize, Default, Clone)]
pub struct RuleForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    flow_id: String,
    #[serde(default)]
    threshold: String,
    #[serde(default)]
    window_minutes: String,
    #[serde(default)]
    throttle_minutes: String,
    #[serde(default)]
    enabled: Option<String>,
}

impl RuleForm {
    fn input(&self) -> RuleInput {
        RuleInput {
            kind: self.kind.clone(),
            flow_id: self.flow_id.clone(),
            threshold: self.threshold.clone(),
            window_minutes: self.window_minutes.clone(),
            throttle_minutes: self.throttle_minutes.clone(),
            enabled: self.enabled.is_some(),
        }
    }
}

/// POST /settings/alerts/rules
pub async fn create_rule(
    app: web::Data<App>,
    member: Member,
    form: web::Form<RuleForm>,
) -> AppResult<HttpResponse> {
    let form = form.into_inner();
    match alerts::create_rule(&app, &member.ctx, &member.actor(), &form.input()).await {
        Ok(_) => Ok(flash::redirect(
            "/settings/alerts",
            Flash::success("Rule added."),
        )),
        Err(AppError::Invalid(errors)) => {
            let mut p = settings_page(&app, &member).await?;
            p.rule_form = form;
            p.errors = errors;
            render(&p, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => Err(e),
    }
}

/// POST /settings/alerts/rules/{id}
pub async fn update_rule(
    app: web::Data<App>,
    member: Member,
    id: web::Path<AlertRuleId>,
    form: web::Form<RuleForm>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let flash =
        match alerts::update_rule(&app, &member.ctx, &member.actor(), id, &form.input()).await {
            Ok(()) => Flash::success("Rule saved."),
            Err(AppError::Invalid(errors)) => Flash::error(errors.summary()),
            Err(e) => return Err(e),
        };
    Ok(flash::redirect("/settings/alerts", flash))
}

/// POST /settings/alerts/rules/{id}/delete
pub async fn delete_rule(
    app: web::Data<App>,
    member: Member,
    id: web::Path<AlertRuleId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    alerts::delete_rule(&app, &member.ctx, &member.actor(), id).await?;
    Ok(flash::redirect(
        "/settings/alerts",
        Flash::success("Rule deleted. Its past alerts stay in the history."),
    ))
}

/// The channel form.
#[derive(Deserialize, Default, Clone)]
pub struct ChannelForm {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    target: String,
}

/// POST /settings/alerts/channels — a webhook's signing secret is shown in this
/// response only.
pub async fn create_channel(
    app: web::Data<App>,
    member: Member,
    form: web::Form<ChannelForm>,
) -> AppResult<HttpResponse> {
    let form = form.into_inner();
    let input = ChannelInput {
        kind: form.kind.clone(),
        name: form.name.clone(),
        target: form.target.clone(),
    };
    match alerts::create_channel(&app, &member.ctx, &member.actor(), &input).await {
        Ok(created) => {
            let mut p = settings_page(&app, &member).await?;
            p.new_secret = created.secret;
            p.shell.flashes.push(Flash::success(format!(
                "Channel “{}” added. New alerts are sent to it.",
                form.name.trim()
            )));
            render(&p, StatusCode::OK)
        }
        Err(AppError::Invalid(errors)) => {
            let mut p = settings_page(&app, &member).await?;
            p.channel_form = form;
            p.channel_errors = errors;
            render(&p, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => Err(e),
    }
}

/// POST /settings/alerts/channels/{id}/{action} — enable, disable or delete.
pub async fn channel_action(
    app: web::Data<App>,
    member: Member,
    path: web::Path<(ChannelId, String)>,
) -> AppResult<HttpResponse> {
    let (id, action) = path.into_inner();
    let message = match action.as_str() {
        "enable" => {
            alerts::set_channel_enabled(&app, &member.ctx, &member.actor(), id, true).await?;
            "Channel turned on."
        }
        "disable" => {
            alerts::set_channel_enabled(&app, &member.ctx, &member.actor(), id, false).await?;
            "Channel turned off."
        }
        "delete" => {
            alerts::delete_channel(&app, &member.ctx, &member.actor(), id).await?;
            "Channel deleted."
        }
        _ => return Err(AppError::NotFound),
    };
    Ok(flash::redirect("/settings/alerts", Flash::success(message)))
}

#[derive(Template)]
#[template(path = "alerts/deliveries.html")]
struct DeliveriesPage {
    shell: Shell,
    deliveries: Vec<records::Delivery>,
    channel_names: HashMap<ChannelId, String>,
    next: Option<DeliveryId>,
}

impl DeliveriesPage {
    fn channel_name(&self, id: &ChannelId) -> &str {
        self.channel_names
            .get(id)
            .map_or("(deleted channel)", String::as_str)
    }
}

/// Query of the delivery history.
#[derive(Deserialize)]
pub struct DeliveriesQuery {
    before: Option<String>,
}

/// GET /settings/alerts/deliveries
pub async fn deliveries(
    app: web::Data<App>,
    member: Member,
    q: web::Query<DeliveriesQuery>,
) -> AppResult<HttpResponse> {
    let before: Option<DeliveryId> = q.before.as_deref().and_then(|b| b.parse().ok());
    let mut deliveries =
        alerts::deliveries(&app, &member.ctx, None, before, DELIVERIES_PER_PAGE + 1).await?;
    let next = if deliveries.len() as u64 > DELIVERIES_PER_PAGE {
        deliveries.truncate(DELIVERIES_PER_PAGE as usize);
        deliveries.last().map(|d| d.id)
    } else {
        None
    };
    render(
        &DeliveriesPage {
            shell: member.shell("alert_settings"),
            channel_names: channel_names(&app, &member).await?,
            deliveries,
            next,
        },
        StatusCode::OK,
    )
}
