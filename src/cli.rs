//! `sluice flows …`: the command line as a client of a Sluice server's JSON API, so flows
//! kept in git can be exported and deployed with an API token, through the same tenant
//! scoping, roles, validation and audit log as the web UI.
//!
//! The server is the operator's own (`--url`), so the outbound guard, which protects a
//! server from its tenants' URLs, does not apply here.

use crate::domain::FlowDocument;
use anyhow::{Context, bail};
use serde_json::Value;

/// A Sluice server and the API token to use there.
pub struct Remote {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// A flow as listed.
pub struct ListedFlow {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `active` or `paused`.
    pub status: String,
    /// Current version.
    pub version: i64,
}

impl Remote {
    /// A client of the server at `url` (e.g. `http://127.0.0.1:8080`).
    pub fn new(url: &str, token: &str) -> anyhow::Result<Remote> {
        if token.trim().is_empty() {
            bail!(
                "an API token is needed: pass --token or set SLUICE_API_TOKEN (Settings → API tokens)"
            );
        }
        Ok(Remote {
            base: url.trim_end_matches('/').to_owned(),
            token: token.trim().to_owned(),
            http: reqwest::Client::builder()
                .user_agent(concat!("sluice-cli/", env!("CARGO_PKG_VERSION")))
                .build()?,
        })
    }

    /// The workspace's flows.
    pub async fn flows(&self) -> anyhow::Result<Vec<ListedFlow>> {
        let listed = self.call(self.http.get(self.url("/flows"))).await?;
        let flows = listed
            .as_array()
            .context("the server did not answer a list")?;
        Ok(flows
            .iter()
            .map(|f| ListedFlow {
                id: text(f, "id"),
                name: text(f, "name"),
                status: text(f, "status"),
                version: f["version"].as_i64().unwrap_or_default(),
            })
            .collect())
    }

    /// The document of the flow with this id or name.
    pub async fn export(&self, flow: &str) -> anyhow::Result<FlowDocument> {
        let id = self.flow_id(flow).await?;
        let value = self
            .call(self.http.get(self.url(&format!("/flows/{id}/export"))))
            .await?;
        FlowDocument::read_value(value).map_err(anyhow::Error::msg)
    }

    /// Imports a document; returns the flow's id, version and whether it is new.
    pub async fn import(
        &self,
        document: &FlowDocument,
        replace: bool,
    ) -> anyhow::Result<(String, i64, bool)> {
        let request = self
            .http
            .post(self.url("/flows/import"))
            .query(&[("replace", replace)])
            .json(document);
        let (status, flow) = self.send(request).await?;
        let created = status == reqwest::StatusCode::CREATED;
        Ok((
            text(&flow, "id"),
            flow["version"].as_i64().unwrap_or_default(),
            created,
        ))
    }

    /// A flow's id from its id or its exact name.
    async fn flow_id(&self, flow: &str) -> anyhow::Result<String> {
        if uuid::Uuid::parse_str(flow).is_ok() {
            return Ok(flow.to_owned());
        }
        self.flows()
            .await?
            .into_iter()
            .find(|f| f.name == flow)
            .map(|f| f.id)
            .with_context(|| format!("no flow is named {flow:?} in this workspace"))
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        Ok(self.send(request).await?.1)
    }

    /// Sends a request; a non-success answer becomes an error with the API's message
    /// and the fields at fault.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<(reqwest::StatusCode, Value)> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok((status, value));
        }
        let error = &value["error"];
        let mut message = match error["message"].as_str() {
            Some(m) => format!("the server refused ({status}): {m}"),
            None => format!("the server answered {status}"),
        };
        for field in error["fields"].as_array().into_iter().flatten() {
            message.push_str(&format!(
                "\n  {}: {}",
                text(field, "field"),
                text(field, "message")
            ));
        }
        bail!(message)
    }
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_owned()
}
