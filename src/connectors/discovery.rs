//! Which of the vendor's accounts a grant reaches (Xero organisations, Jira sites, Asana
//! workspaces): a call right after consent lists them; one becomes the connection value
//! the provider's URLs and headers name, and the tenant picks when there are several.

use super::ConnectionError;
use super::catalogue::{DiscoverySpec, Provider, is_plain_value};
use super::credentials::Credentials;
use super::http::{OutboundError, Purpose};
use super::session::{ApiCall, build_request};
use crate::app::App;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The connection value holding the choices, while the tenant has not picked one.
pub const CHOICES: &str = "__choices";

/// One account the grant reaches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// The connection value it stands for.
    pub value: String,
    /// Its name, for people.
    pub label: String,
}

/// Asks the vendor which accounts the new grant reaches.
pub async fn discover(
    app: &App,
    provider: &Provider,
    spec: &DiscoverySpec,
    values: &BTreeMap<String, String>,
    credentials: &Credentials,
) -> Result<Vec<Choice>, ConnectionError> {
    // Headers naming the value being discovered (Xero's tenant header) wait for it.
    let mut asking = provider.clone();
    let placeholder = format!("{{{}}}", spec.into);
    asking.headers.retain(|_, v| !v.contains(&placeholder));
    let request = build_request(
        app,
        &asking,
        values,
        credentials,
        &ApiCall {
            method: reqwest::Method::GET,
            path: &spec.path,
            link: true,
            query: &[],
            body: None,
            headers: &[],
        },
    )?;
    let fetched = app
        .outbound
        .send(request, Purpose::Api)
        .await
        .map_err(|e| match e {
            OutboundError::Transport(m) => ConnectionError::Transient(m),
            other => ConnectionError::Failed(other.to_string()),
        })?;
    let failed = |why: String| {
        ConnectionError::Failed(format!(
            "{} did not say which {} it reaches: {why}",
            provider.name, spec.title
        ))
    };
    if !fetched.status.is_success() {
        return Err(failed(format!("HTTP {}", fetched.status.as_u16())));
    }
    let body: serde_json::Value = serde_json::from_slice(&fetched.body)
        .map_err(|_| failed("the answer is not JSON".into()))?;
    Ok(choices_in(&body, spec))
}

/// The choices an answer lists. Values end up inside URLs: one that could reshape a URL
/// is left out.
fn choices_in(body: &serde_json::Value, spec: &DiscoverySpec) -> Vec<Choice> {
    let listed = serde_json_path::JsonPath::parse(&spec.records_path)
        .ok()
        .and_then(|p| p.query(body).first().cloned());
    let items = match listed {
        Some(serde_json::Value::Array(items)) => items,
        Some(one @ serde_json::Value::Object(_)) => vec![one],
        _ => Vec::new(),
    };
    items
        .iter()
        .filter_map(|item| {
            let value = text_at(item, &spec.value)?;
            is_plain_value(&value).then(|| Choice {
                label: text_at(item, &spec.label).unwrap_or_else(|| value.clone()),
                value,
            })
        })
        .collect()
}

fn text_at(item: &serde_json::Value, field: &str) -> Option<String> {
    match field
        .split('.')
        .try_fold(item, |node, part| node.get(part))?
    {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Records what discovery found in a connection's values: the one choice, the one
/// `kept` from before (a reconnect), or the list to pick from. None found is an error
/// for the user.
pub fn settle(
    config: &mut BTreeMap<String, String>,
    provider: &Provider,
    spec: &DiscoverySpec,
    choices: Vec<Choice>,
    kept: Option<&str>,
) -> Result<(), String> {
    config.remove(CHOICES);
    config.remove(&spec.into);
    let chosen = match choices.as_slice() {
        [] => {
            return Err(format!(
                "{} answered that this authorization reaches no {}: connect again and allow access to one",
                provider.name, spec.title
            ));
        }
        [one] => Some(one.value.clone()),
        many => kept
            .filter(|k| many.iter().any(|c| c.value == *k))
            .map(str::to_owned),
    };
    if choices.len() > 1 {
        config.insert(
            CHOICES.into(),
            serde_json::to_string(&choices).unwrap_or_default(),
        );
    }
    if let Some(value) = chosen {
        config.insert(spec.into.clone(), value);
    }
    Ok(())
}

/// The choices a connection's values keep (empty when there was only one).
pub fn choices(config: &BTreeMap<String, String>) -> Vec<Choice> {
    config
        .get(CHOICES)
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn xero() -> &'static Provider {
        crate::connectors::catalogue::get("xero").expect("xero")
    }

    #[test]
    fn one_choice_is_taken_and_several_wait_for_the_tenant() {
        let provider = xero();
        let spec = provider.auth.discovery.as_ref().expect("discovery");
        let body = json!([
            {"id": "c1", "tenantId": "a1b2-0001", "tenantType": "ORGANISATION", "tenantName": "Demo Company (UK)"},
            {"id": "c2", "tenantId": "../../evil", "tenantName": "Hostile"},
            {"id": "c3", "tenantId": "a1b2-0003", "tenantName": "Second Org"}
        ]);
        let found = choices_in(&body, spec);
        assert_eq!(
            found.iter().map(|c| c.label.as_str()).collect::<Vec<_>>(),
            ["Demo Company (UK)", "Second Org"],
            "a value that could reshape a URL is left out"
        );
        let mut config = BTreeMap::new();
        settle(&mut config, provider, spec, found.clone(), None).unwrap();
        assert!(
            !config.contains_key(&spec.into),
            "several: the tenant picks"
        );
        assert_eq!(choices(&config), found);
        settle(
            &mut config,
            provider,
            spec,
            found.clone(),
            Some("a1b2-0003"),
        )
        .unwrap();
        assert_eq!(
            config[&spec.into], "a1b2-0003",
            "a reconnect keeps the pick"
        );
        settle(&mut config, provider, spec, found[..1].to_vec(), None).unwrap();
        assert_eq!(config[&spec.into], "a1b2-0001");
        assert!(choices(&config).is_empty());
        assert!(settle(&mut config, provider, spec, Vec::new(), None).is_err());
    }
}
