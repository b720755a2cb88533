//! The provider catalogue: definitions in `providers/*.toml`, embedded at build time and
//! validated at start-up (a broken definition stops the server with a clear message).

use super::fields::{DescribeSpec, FieldSpec};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// How a provider authenticates.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// OAuth 2.0 authorization code (with PKCE unless the provider opts out).
    Oauth2Code,
    /// OAuth 2.0 client credentials.
    Oauth2ClientCredentials,
    /// An API key in a header or query parameter.
    ApiKey,
    /// HTTP basic authentication.
    Basic,
    /// No authentication.
    None,
}

impl AuthKind {
    /// Stored and API name (as in the provider files).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::Oauth2Code => "oauth2_code",
            AuthKind::Oauth2ClientCredentials => "oauth2_client_credentials",
            AuthKind::ApiKey => "api_key",
            AuthKind::Basic => "basic",
            AuthKind::None => "none",
        }
    }

    /// Human label.
    pub fn label(self) -> &'static str {
        match self {
            AuthKind::Oauth2Code => "OAuth 2.0",
            AuthKind::Oauth2ClientCredentials => "OAuth 2.0 client credentials",
            AuthKind::ApiKey => "API key",
            AuthKind::Basic => "Username and password",
            AuthKind::None => "No authentication",
        }
    }

    /// Whether connecting goes through OAuth (and so needs an OAuth app).
    pub fn is_oauth(self) -> bool {
        matches!(
            self,
            AuthKind::Oauth2Code | AuthKind::Oauth2ClientCredentials
        )
    }
}

/// Where an API key goes.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum KeyPlacement {
    /// In a request header.
    #[default]
    Header,
    /// In a query parameter.
    Query,
}

/// How client credentials are sent to the token endpoint.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// HTTP basic authentication.
    #[default]
    ClientSecretBasic,
    /// In the form body.
    ClientSecretPost,
}

/// A value the tenant enters when connecting (e.g. a shop subdomain).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthField {
    /// Placeholder name used in URLs as `{name}`.
    pub name: String,
    /// Form label.
    pub label: String,
    /// Example value.
    #[serde(default)]
    pub placeholder: String,
    /// Help text.
    #[serde(default)]
    pub help: String,
    /// The only values allowed, shown as a choice (e.g. a vendor's production and
    /// sandbox hosts); the first is the default.
    #[serde(default)]
    pub options: Vec<FieldOption>,
    /// The value when left empty (e.g. `https://gitlab.com` for a self-hostable vendor).
    pub default: Option<String>,
    /// Part of the OAuth app, not of a connection: an address the access token is sent
    /// to (GitHub Enterprise Server's API), which whoever connects must not choose.
    #[serde(default)]
    pub app: bool,
    /// Any text (a spreadsheet tab's name, spaces and `!` included): never placed in a
    /// URL as it is, only where a `[objects.table]` quotes and encodes it.
    #[serde(default)]
    pub text: bool,
    /// What it holds (default: by its name: `…url` a URL, `…records_path` a JSONPath,
    /// `…path` a path, anything else a name).
    pub kind: Option<FieldKind>,
    /// May be left empty.
    #[serde(default)]
    pub optional: bool,
    /// A heading the form shows before this field (it starts a group).
    pub section: Option<String>,
}

/// What an [`AuthField`] holds, for its validation.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// An http(s) URL.
    Url,
    /// A path starting with `/` (`{id}` allowed, for an update path).
    Path,
    /// An RFC 9535 JSONPath.
    Jsonpath,
    /// Letters, digits, `.`, `-` and `_` (a parameter, header or field name, an id).
    Name,
    /// A positive whole number.
    Number,
}

impl AuthField {
    /// What the field holds.
    pub fn kind(&self) -> FieldKind {
        self.kind.unwrap_or(if self.name.ends_with("url") {
            FieldKind::Url
        } else if self.name.ends_with("records_path") {
            FieldKind::Jsonpath
        } else if self.name.ends_with("path") {
            FieldKind::Path
        } else {
            FieldKind::Name
        })
    }
}

/// One allowed value of an [`AuthField`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldOption {
    /// The value.
    pub value: String,
    /// What the form shows.
    pub label: String,
}

/// A call made right after consent, whose answer says which of the vendor's accounts
/// (Xero organisations, Jira sites, Asana workspaces) the grant reaches: one becomes a
/// connection value, and the tenant picks when there are several.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverySpec {
    /// `GET` path: relative to the base URL, or absolute on its origin (`/connections`).
    pub path: String,
    /// JSONPath to the list of choices.
    #[serde(default = "dollar")]
    pub records_path: String,
    /// Field (dotted) of a choice holding the value.
    pub value: String,
    /// Field (dotted) of a choice naming it for people.
    pub label: String,
    /// The connection value it fills (used as `{name}` in URLs and headers).
    pub into: String,
    /// What a choice is called, e.g. "Xero organisation".
    pub title: String,
}

/// A connection value: a field, something the vendor sent back, or a choice.
pub struct ValueSource<'a> {
    /// Its name, as `{name}` in templates.
    pub name: &'a str,
    /// What to tell a user whose connection lacks it.
    pub remedy: String,
}

/// Authentication settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// The kind.
    pub kind: AuthKind,
    /// OAuth authorize endpoint.
    pub authorize_url: Option<String>,
    /// OAuth token endpoint.
    pub token_url: Option<String>,
    /// Token revocation endpoint.
    pub revoke_url: Option<String>,
    /// Default scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Separator between scopes in requests.
    #[serde(default = "space")]
    pub scope_separator: String,
    /// How client credentials reach the token endpoint.
    #[serde(default)]
    pub token_auth_method: TokenAuthMethod,
    /// Whether PKCE is used (default: yes).
    #[serde(default = "yes")]
    pub pkce: bool,
    /// Extra authorize query parameters.
    #[serde(default)]
    pub authorize_params: BTreeMap<String, String>,
    /// Extra token request parameters (code exchange and client credentials), e.g. an
    /// `audience`; values may name connection values.
    #[serde(default)]
    pub token_params: BTreeMap<String, String>,
    /// Extra refresh request parameters (vendors that want `scope` again, or a
    /// `redirect_uri`); values may name connection values.
    #[serde(default)]
    pub refresh_params: BTreeMap<String, String>,
    /// API key placement.
    #[serde(default)]
    pub api_key_in: KeyPlacement,
    /// API key header or parameter name.
    pub api_key_name: Option<String>,
    /// Prefix before the key in a header (e.g. `Bearer `).
    #[serde(default)]
    pub api_key_prefix: String,
    /// Values asked for when connecting.
    #[serde(default)]
    pub fields: Vec<AuthField>,
    /// The authorization server's issuer identifier, checked against `iss` on callbacks
    /// (RFC 9207) when the server sends one.
    pub issuer: Option<String>,
    /// Connection values read from the token response when connecting: name → JSONPath
    /// (e.g. Salesforce's `instance_url`, the host every API call goes to).
    #[serde(default)]
    pub token_values: BTreeMap<String, String>,
    /// Connection values read from the callback's query when connecting: name → query
    /// parameter (QuickBooks sends the company as `realmId`).
    #[serde(default)]
    pub callback_values: BTreeMap<String, String>,
    /// A call after consent that fills a connection value (see [`DiscoverySpec`]).
    pub discovery: Option<DiscoverySpec>,
    /// The header an OAuth access token goes in (default `Authorization`).
    pub token_header: Option<String>,
    /// What precedes the token in that header (default `Bearer `).
    pub token_prefix: Option<String>,
}

fn space() -> String {
    " ".into()
}

fn yes() -> bool {
    true
}

/// Pagination styles of list endpoints.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum PaginationStyle {
    /// Opaque cursor from the response body.
    Cursor,
    /// Numeric offset.
    Offset,
    /// Page numbers from 1.
    Page,
    /// RFC 8288 `Link: <…>; rel="next"`.
    LinkHeader,
    /// The next page's URL (absolute, or relative to the base URL) from the body.
    NextUrl,
    /// One page only.
    #[default]
    None,
}

/// How list endpoints page.
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Pagination {
    /// The style.
    #[serde(default)]
    pub style: PaginationStyle,
    /// Page size parameter.
    pub limit_param: Option<String>,
    /// Page size.
    pub page_size: Option<u32>,
    /// Cursor request parameter.
    pub cursor_param: Option<String>,
    /// JSONPath to the next cursor.
    pub cursor_path: Option<String>,
    /// Offset parameter (or `{offset}` inside a list parameter, for a query language).
    pub offset_param: Option<String>,
    /// The first record's offset (default 0; QuickBooks counts from 1).
    #[serde(default)]
    pub offset_start: u64,
    /// Page number parameter.
    pub page_param: Option<String>,
    /// JSONPath to the total number of records, when the API reports it (progress bars).
    pub total_path: Option<String>,
    /// next_url: JSONPath to the next page's URL in the body.
    pub next_url_path: Option<String>,
    /// JSONPath to a flag that is true while more pages follow (`has_more`); paging
    /// stops when it is false or absent.
    pub has_more_path: Option<String>,
    /// JSONPath to a flag that is true on the last page (`done`, `isLast`).
    pub done_path: Option<String>,
}

/// How request bodies are written.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BodyEncoding {
    /// `application/json`.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`, nested values in bracket notation
    /// (`metadata[plan]=pro`, `items[0][price]=p`), as Stripe takes them.
    Form,
}

impl BodyEncoding {
    /// The form pairs of a JSON body: objects and arrays flattened in bracket notation,
    /// null as an empty value (which clears a field at Stripe).
    pub fn form_pairs(body: &serde_json::Value) -> Vec<(String, String)> {
        fn walk(prefix: String, value: &serde_json::Value, out: &mut Vec<(String, String)>) {
            use serde_json::Value;
            match value {
                Value::Object(map) => {
                    for (key, inner) in map {
                        let name = if prefix.is_empty() {
                            key.clone()
                        } else {
                            format!("{prefix}[{key}]")
                        };
                        walk(name, inner, out);
                    }
                }
                Value::Array(items) => {
                    for (i, inner) in items.iter().enumerate() {
                        walk(format!("{prefix}[{i}]"), inner, out);
                    }
                }
                Value::Null => out.push((prefix, String::new())),
                Value::String(text) => out.push((prefix, text.clone())),
                other => out.push((prefix, other.to_string())),
            }
        }
        let mut out = Vec::new();
        walk(String::new(), body, &mut out);
        out
    }
}

/// What an answer matching an [`ErrorRule`] means.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorAction {
    /// A rate limit: wait (as the vendor's headers say) and try again.
    RateLimit,
    /// A passing failure: try again later.
    Retry,
    /// The request is refused: a refused write makes a dead letter and the run goes
    /// on; a refused read fails the run.
    Reject,
    /// Nothing more can work (a suspended account, a missing permission): the run
    /// fails, writes included.
    Fail,
}

/// An answer the vendor means differently from its status.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorRule {
    /// The status it applies to (any when absent).
    pub status: Option<u16>,
    /// Text the body must contain (e.g. `REQUEST_LIMIT_EXCEEDED`).
    pub body_contains: Option<String>,
    /// What it means.
    pub action: ErrorAction,
}

impl ErrorRule {
    /// Whether an answer with this status and body matches.
    pub fn matches(&self, status: u16, body: &[u8]) -> bool {
        self.status.is_none_or(|s| s == status)
            && self.body_contains.as_ref().is_none_or(|needle| {
                body.windows(needle.len().max(1))
                    .any(|w| w == needle.as_bytes())
            })
    }
}

/// A client-side rate limit per connection.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed…
    pub requests: u32,
    /// …per this many seconds.
    pub per_seconds: u32,
}

/// One of the provider's objects (contacts, invoices, …).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSpec {
    /// Id within the provider.
    pub id: String,
    /// Display name.
    pub name: String,
    /// List endpoint (GET unless `list_method` says), relative to the base URL.
    pub list_path: String,
    /// The list request's method, for APIs that read with a body (GraphQL).
    pub list_method: Option<String>,
    /// The list request's JSON body (a GraphQL query and its variables): a string that
    /// is exactly `{page_size}` becomes a number, `{cursor}` the next page's cursor or
    /// null; `{since}` and `{offset}` are filled in inside strings.
    pub list_body: Option<serde_json::Value>,
    /// The body of incremental runs, in place of `list_body`; names `{since}`.
    pub incremental_body: Option<serde_json::Value>,
    /// JSONPath to the records array.
    #[serde(default = "dollar")]
    pub records_path: String,
    /// Record id field.
    #[serde(default = "id_field")]
    pub id_field: String,
    /// Last-modified field.
    pub updated_field: Option<String>,
    /// Query parameter filtering by last modified.
    pub updated_since_param: Option<String>,
    /// Extra list parameters; values may name connection values and `{page_size}`.
    #[serde(default)]
    pub list_params: BTreeMap<String, String>,
    /// Parameters that replace (or join) `list_params` on incremental runs; `{since}`
    /// is the last-modified value the previous run reached (e.g. a query language's
    /// `WHERE LastModifiedDate > {since}`).
    #[serde(default)]
    pub incremental_params: BTreeMap<String, String>,
    /// How `{since}` is written, as a chrono format of the UTC time (e.g.
    /// `%Y-%m-%dT%H:%M:%SZ`); the value is sent as read from the records when absent.
    pub since_format: Option<String>,
    /// Create endpoint (POST).
    pub write_path: Option<String>,
    /// Wrap the record as `{key: record}` when writing.
    pub write_body_key: Option<String>,
    /// Update endpoint, with `{id}`.
    pub update_path: Option<String>,
    /// Update method.
    pub update_method: Option<String>,
    /// Whether an update also carries the record's id in its body (APIs whose update
    /// path does not name the record, and batch updates). Off by default: most APIs
    /// refuse the id among the fields.
    #[serde(default)]
    pub update_id_in_body: bool,
    /// Upsert endpoint for one record, with `{field}` (the flow's key field) and
    /// `{value}` (its value), e.g. Salesforce's external-id `PATCH`.
    pub upsert_path: Option<String>,
    /// Upsert method (default PATCH).
    pub upsert_method: Option<String>,
    /// JSONPath to the created record's id in a create's answer (default: the id field,
    /// at the top or inside `write_body_key`).
    pub created_id_path: Option<String>,
    /// Batch create endpoint.
    pub batch_path: Option<String>,
    /// Body key holding the batch array.
    pub batch_key: Option<String>,
    /// Largest batch.
    pub batch_max: Option<u32>,
    /// Body key carrying the write mode (create, update, upsert) of a batch, for APIs
    /// whose one batch endpoint does all three.
    pub batch_mode_key: Option<String>,
    /// JSONPath to the per-record results of a batch, in request order unless
    /// `batch_trace_field` says how to match them.
    pub batch_results_path: Option<String>,
    /// Each batch item per mode (`create`, `update`, `upsert`), as a JSON template:
    /// `"{record}"` is the mapped record, `"{id}"` the destination id, `"{field}"` and
    /// `"{value}"` the key field and its value, `"{trace}"` the item's position. Without
    /// one, items are the records themselves. `{mode}` in `batch_path` names the mode.
    #[serde(default)]
    pub batch_item: BTreeMap<String, serde_json::Value>,
    /// A field each item carries `{trace}` in and each result echoes, for APIs whose
    /// results come in any order (HubSpot's `objectWriteTraceId`).
    pub batch_trace_field: Option<String>,
    /// How incremental runs read, when the list endpoint cannot filter by last change
    /// (a search endpoint taking a JSON body).
    pub search: Option<SearchSpec>,
    /// How to find a record by the value of one of its fields.
    pub lookup: Option<LookupSpec>,
    /// Paging for this object, when it differs from the provider's.
    pub pagination: Option<Pagination>,
    /// Headers laid over the provider's on incremental runs (`If-Modified-Since`);
    /// `{since}` as in `incremental_params`.
    #[serde(default)]
    pub incremental_headers: BTreeMap<String, String>,
    /// Seconds taken off `{since}` before it is sent, for APIs whose filter is coarser
    /// than their timestamps (minutes) or whose clocks lag; records seen again are not
    /// written again.
    #[serde(default)]
    pub lookback_seconds: u32,
    /// An answer without `records_path` is an empty page (QuickBooks leaves the list
    /// out when nothing matches); otherwise it fails the read.
    #[serde(default)]
    pub records_optional: bool,
    /// Each single write's body per mode, as a JSON template like `batch_item`
    /// (`{ Contacts = ["{record}"] }`); overrides `write_body_key`.
    #[serde(default)]
    pub write_item: BTreeMap<String, serde_json::Value>,
    /// Fields read from the record before each update and sent with it (QuickBooks'
    /// `SyncToken`, a version the update must name).
    pub update_fetch: Option<UpdateFetch>,
    /// Fields every update carries (QuickBooks' `sparse = true`).
    #[serde(default)]
    pub update_fields: BTreeMap<String, serde_json::Value>,
    /// Mapped fields an update leaves out, because the API refuses to change them
    /// (Jira's `project`).
    #[serde(default)]
    pub update_omit: Vec<String>,
    /// A spreadsheet tab: rows under a header row (see [`TableSpec`]).
    pub table: Option<TableSpec>,
    /// The fields its records carry, as a mapping names them (for the flow editor and
    /// the mapping's checks).
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
    /// How the vendor lists the object's fields, custom ones included.
    pub describe: Option<DescribeSpec>,
}

/// A spreadsheet tab read and written as records: the first row names the fields, each
/// later row is a record whose id is its row number (`_row`); new records are appended
/// in the header's column order, changed ones rewrite their row (cells of unmapped
/// columns are left as they are). `{range}` in `list_path` and `values_path` is the tab
/// in A1 notation (`'Q1 Orders'!…`), quoted and encoded here.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// The connection value naming the tab (a `text` field).
    pub sheet: String,
    /// The values endpoint, with `{range}`.
    pub values_path: String,
}

/// Reading a record's current version fields before an update.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateFetch {
    /// `GET` path with `{id}`.
    pub path: String,
    /// Query parameters.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Body field → JSONPath into the answer.
    pub fields: BTreeMap<String, String>,
}

/// Reading the records changed since a time through a search endpoint: one request
/// with a JSON body, paged by a cursor inside that body.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSpec {
    /// Method (default POST).
    #[serde(default = "post")]
    pub method: String,
    /// Path relative to the base URL.
    pub path: String,
    /// The JSON body: `{since}` inside a string, `{page_size}` as a number.
    pub body: String,
    /// Body key carrying the cursor of the next page (the provider's `cursor_path`).
    pub cursor_key: String,
}

fn post() -> String {
    "POST".into()
}

impl SearchSpec {
    /// The body of a request for the records changed since `since`, `page_size` at a
    /// time, from `cursor` on. None when the template is not JSON once filled in.
    pub fn body(
        &self,
        since: &str,
        page_size: u32,
        cursor: Option<&str>,
    ) -> Option<serde_json::Value> {
        // `since` lands inside a JSON string: escape it as one.
        let since = serde_json::to_string(since).ok()?;
        let since = since.trim_matches('"');
        let text = self
            .body
            .replace("{since}", since)
            .replace("{page_size}", &page_size.to_string());
        let mut body: serde_json::Value = serde_json::from_str(&text).ok()?;
        if let (Some(cursor), Some(map)) = (cursor, body.as_object_mut()) {
            map.insert(
                self.cursor_key.clone(),
                serde_json::Value::String(cursor.to_owned()),
            );
        }
        Some(body)
    }
}

/// Finding one record by a field's value (`GET`). A create whose outcome is unknown (a
/// timeout, a reset, an answer lost on the way, a worker that died mid-call) is looked
/// up by the flow's key field before it is sent again, so the re-send writes only what
/// did not land, also at a destination that ignores `Idempotency-Key`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupSpec {
    /// Path relative to the base URL; `{field}` and `{value}` are replaced (URL-encoded).
    pub path: String,
    /// Query parameters; `{field}` and `{value}` are replaced in their values.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// JSONPath to the matches in the answer: an array, or one record. A 404 means none.
    #[serde(default = "dollar")]
    pub records_path: String,
    /// The only fields the endpoint can search by (any field when absent).
    pub fields: Option<Vec<String>>,
}

impl ObjectSpec {
    /// Whether records are written in batches in `mode` ("create", "update",
    /// "upsert"): a batch endpoint for creates, one that is told the mode, or one per
    /// mode.
    pub fn batches(&self, mode: &str) -> bool {
        self.batch_path.as_ref().is_some_and(|path| {
            mode == "create" || self.batch_mode_key.is_some() || path.contains("{mode}")
        })
    }

    /// Whether a read can ask for only the records changed since a time (incremental
    /// syncs): by a query parameter, or `{since}` in the incremental parameters or
    /// headers.
    pub fn reads_changes(&self) -> bool {
        self.search.is_some()
            || self
                .updated_since_param
                .as_deref()
                .is_some_and(|p| !p.is_empty())
            || self
                .incremental_params
                .values()
                .chain(self.incremental_headers.values())
                .any(|v| v.contains("{since}"))
            || self
                .incremental_body
                .as_ref()
                .is_some_and(|b| b.to_string().contains("{since}"))
    }

    /// Whether records can be written in `mode` ("create", "update", "upsert"): by an
    /// endpoint for one record, a batch endpoint, or as a spreadsheet's rows.
    pub fn writes(&self, mode: &str) -> bool {
        match mode {
            "create" => self.table.is_some() || self.write_path.is_some() || self.batches("create"),
            "update" => {
                self.table.is_some() || self.update_path.is_some() || self.batches("update")
            }
            "upsert" => self.upsert_path.is_some() || self.batches("upsert"),
            _ => false,
        }
    }

    /// How this object's list pages: its own paging, or the provider's.
    pub fn paging<'a>(&'a self, provider: &'a Provider) -> &'a Pagination {
        self.pagination.as_ref().unwrap_or(&provider.pagination)
    }
}

impl LookupSpec {
    /// Whether records can be looked up by `field`.
    pub fn searches(&self, field: &str) -> bool {
        !field.is_empty()
            && self
                .fields
                .as_ref()
                .is_none_or(|fields| fields.iter().any(|f| f == field))
    }
}

fn dollar() -> String {
    "$".into()
}

fn id_field() -> String {
    "id".into()
}

/// A provider definition.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Stable id (file name).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Category for browsing.
    pub category: String,
    /// One sentence.
    pub description: String,
    /// Link to the provider's API docs.
    #[serde(default)]
    pub docs_url: String,
    /// API base URL, possibly with `{field}` placeholders.
    pub base_url: String,
    /// Authentication.
    pub auth: AuthSpec,
    /// Default headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Pagination.
    #[serde(default)]
    pub pagination: Pagination,
    /// Client-side rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Answers that mean something other than their status says (a 403 that is a rate
    /// limit, a 200 that is an error), first match wins.
    #[serde(default)]
    pub errors: Vec<ErrorRule>,
    /// Objects.
    #[serde(default)]
    pub objects: Vec<ObjectSpec>,
    /// Whether this is one of the built-in sandbox systems.
    #[serde(default)]
    pub sandbox: bool,
    /// How request bodies are written.
    #[serde(default)]
    pub body_encoding: BodyEncoding,
    /// A generic connector: the tenant describes the API (paging, records, writes) in
    /// the connection's values, which [`resolve`] turns into the provider calls use.
    #[serde(default)]
    pub generic: bool,
}

impl Provider {
    /// Whether connecting needs a tenant OAuth app (the sandbox brings its own).
    pub fn needs_oauth_app(&self) -> bool {
        self.auth.kind.is_oauth() && !self.sandbox
    }

    /// Fields that shape the authorization server's URLs (e.g. a custom token endpoint).
    /// They belong to the tenant's OAuth app, never to a connection: whoever connects —
    /// an end customer through a link included — must not choose where the client secret
    /// is sent.
    pub fn app_fields(&self) -> Vec<&AuthField> {
        let auth = &self.auth;
        let templates: Vec<&String> = [&auth.authorize_url, &auth.token_url, &auth.revoke_url]
            .into_iter()
            .flatten()
            .collect();
        self.auth
            .fields
            .iter()
            .filter(|f| {
                self.needs_oauth_app()
                    && (f.app
                        || f.name.ends_with("url")
                            && templates
                                .iter()
                                .any(|t| t.contains(&format!("{{{}}}", f.name))))
            })
            .collect()
    }

    /// Fields asked for when connecting (all but the OAuth app's).
    pub fn connection_fields(&self) -> Vec<&AuthField> {
        let app = self.app_fields();
        self.auth
            .fields
            .iter()
            .filter(|f| !app.iter().any(|a| a.name == f.name))
            .collect()
    }

    /// Every connection value the provider's templates may name, with what a user whose
    /// connection lacks it should do.
    pub fn value_sources(&self) -> Vec<ValueSource<'_>> {
        let auth = &self.auth;
        let reconnect = || format!("reconnect it to {}", self.name);
        let mut sources: Vec<ValueSource<'_>> = auth
            .fields
            .iter()
            .map(|f| ValueSource {
                name: &f.name,
                remedy: format!("reconnect it and enter the {}", f.label.to_lowercase()),
            })
            .collect();
        sources.extend(
            auth.token_values
                .keys()
                .chain(auth.callback_values.keys())
                .map(|name| ValueSource {
                    name,
                    remedy: reconnect(),
                }),
        );
        if let Some(d) = &auth.discovery {
            sources.push(ValueSource {
                name: &d.into,
                remedy: format!("choose the {} on the connection's page", d.title),
            });
        }
        sources
    }

    /// Replaces `{field}` placeholders with connection values (and `{sluice}` with the
    /// server's own URL, for the sandbox).
    pub fn expand(template: &str, values: &BTreeMap<String, String>) -> String {
        if !template.contains('{') {
            return template.to_owned();
        }
        let mut out = template.to_owned();
        for (key, value) in values {
            out = out.replace(&format!("{{{key}}}"), value);
        }
        out
    }

    fn validate(&self, file: &str) -> Result<(), String> {
        if format!("{}.toml", self.id) != file {
            return Err(format!("providers/{file}: the file name must be <id>.toml"));
        }
        self.check()
            .map_err(|what| format!("providers/{file}: {what}"))
    }

    /// What is wrong with the definition, if anything.
    fn check(&self) -> Result<(), String> {
        let problem = |what: &str| Err(what.to_owned());
        if !self
            .id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return problem("id must be lowercase letters, digits, '_' or '-'");
        }
        match self.auth.kind {
            AuthKind::Oauth2Code
                if self.auth.authorize_url.is_none() || self.auth.token_url.is_none() =>
            {
                problem("oauth2_code needs authorize_url and token_url")
            }
            AuthKind::Oauth2ClientCredentials if self.auth.token_url.is_none() => {
                problem("oauth2_client_credentials needs token_url")
            }
            AuthKind::ApiKey if self.auth.api_key_name.is_none() => {
                problem("api_key needs api_key_name")
            }
            _ => Ok(()),
        }?;
        // The provider's paging serves every object without its own.
        let shared: Vec<&ObjectSpec> = self
            .objects
            .iter()
            .filter(|o| o.pagination.is_none())
            .collect();
        if !shared.is_empty() {
            check_paging(&self.pagination, &shared).or_else(|e| problem(&e))?;
        }
        for object in &self.objects {
            if let Some(paging) = &object.pagination {
                check_paging(paging, &[object])
                    .or_else(|e| problem(&format!("{}: {e}", object.id)))?;
            }
        }
        for field in self.auth.fields.iter().filter(|f| f.text) {
            let placeholder = format!("{{{}}}", field.name);
            let mut templates: Vec<&str> = vec![self.base_url.as_str()];
            templates.extend(self.headers.values().map(String::as_str));
            templates.extend(
                [
                    &self.auth.authorize_url,
                    &self.auth.token_url,
                    &self.auth.revoke_url,
                ]
                .into_iter()
                .flatten()
                .map(String::as_str),
            );
            for object in &self.objects {
                templates.push(&object.list_path);
                templates.extend(object.list_params.values().map(String::as_str));
                templates.extend(
                    [&object.write_path, &object.update_path, &object.batch_path]
                        .into_iter()
                        .flatten()
                        .map(String::as_str),
                );
            }
            if templates.iter().any(|t| t.contains(&placeholder)) {
                return problem(&format!(
                    "{}: a text field is only for [objects.table], never inside a URL",
                    field.name
                ));
            }
        }
        for field in &self.auth.fields {
            if let Some(default) = &field.default
                && !field.options.is_empty()
                && !field.options.iter().any(|o| &o.value == default)
            {
                return problem(&format!("{}: the default is not an option", field.name));
            }
        }
        for object in &self.objects {
            let mut names = std::collections::BTreeSet::new();
            if let Some(twice) = object.fields.iter().find(|f| !names.insert(&f.name)) {
                return problem(&format!(
                    "{}: the field {} is declared twice",
                    object.id, twice.name
                ));
            }
            if let Some(format) = &object.since_format {
                let mut check = String::new();
                use std::fmt::Write;
                if write!(check, "{}", chrono::Utc::now().format(format)).is_err() {
                    return problem(&format!("'{format}' is not a chrono time format"));
                }
            }
            let declared = !object.incremental_params.is_empty()
                || !object.incremental_headers.is_empty()
                || object.incremental_body.is_some();
            if declared && !object.reads_changes() {
                return problem(&format!(
                    "{}: incremental_params, incremental_headers and incremental_body must use {{since}}",
                    object.id
                ));
            }
        }
        for path in self
            .objects
            .iter()
            .map(|o| o.records_path.as_str())
            .chain(
                self.objects
                    .iter()
                    .filter_map(|o| o.batch_results_path.as_deref()),
            )
            .chain(
                self.objects
                    .iter()
                    .filter_map(|o| o.lookup.as_ref().map(|l| l.records_path.as_str())),
            )
            .chain(
                self.objects
                    .iter()
                    .filter_map(|o| o.created_id_path.as_deref()),
            )
            .chain(
                self.objects
                    .iter()
                    .filter_map(|o| o.describe.as_ref().map(|d| d.records_path.as_str())),
            )
            .chain(self.auth.token_values.values().map(String::as_str))
            .chain(
                self.auth
                    .discovery
                    .as_ref()
                    .map(|d| d.records_path.as_str()),
            )
            .chain(
                self.objects
                    .iter()
                    .filter_map(|o| o.update_fetch.as_ref())
                    .flat_map(|f| f.fields.values().map(String::as_str)),
            )
            .chain(
                std::iter::once(&self.pagination)
                    .chain(self.objects.iter().filter_map(|o| o.pagination.as_ref()))
                    .flat_map(|p| {
                        [
                            &p.cursor_path,
                            &p.total_path,
                            &p.next_url_path,
                            &p.has_more_path,
                            &p.done_path,
                        ]
                        .into_iter()
                        .filter_map(|p| p.as_deref())
                    }),
            )
        {
            if serde_json_path::JsonPath::parse(path).is_err() {
                return problem(&format!("'{path}' is not a valid JSONPath (RFC 9535)"));
            }
        }
        Ok(())
    }
}

/// Whether a connection value is safe inside a URL: it cannot change the URL's shape.
pub fn is_plain_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 100
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// Whether `paging` is complete for its style, for the `objects` it serves: those may
/// carry the position themselves, `{offset}` in a list parameter (a query language's
/// own paging) or `{cursor}` in their body (GraphQL variables).
fn check_paging(paging: &Pagination, objects: &[&ObjectSpec]) -> Result<(), String> {
    let names = |placeholder: &str| {
        objects.iter().all(|o| {
            o.list_params.values().any(|v| v.contains(placeholder))
                || [&o.list_body, &o.incremental_body]
                    .into_iter()
                    .flatten()
                    .any(|b| b.to_string().contains(placeholder))
        })
    };
    let (offset_in_query, cursor_in_body) = (names("{offset}"), names("{cursor}"));
    let missing = match paging.style {
        PaginationStyle::Cursor if paging.cursor_path.is_none() => {
            "cursor pagination needs cursor_path"
        }
        PaginationStyle::Cursor if paging.cursor_param.is_none() && !cursor_in_body => {
            "cursor pagination needs cursor_param (a next URL in the body is style = \"next_url\")"
        }
        PaginationStyle::NextUrl if paging.next_url_path.is_none() => {
            "next_url pagination needs next_url_path"
        }
        PaginationStyle::Offset if paging.offset_param.is_none() && !offset_in_query => {
            "offset pagination needs offset_param, or {offset} in list_params"
        }
        PaginationStyle::Page if paging.page_param.is_none() => "page pagination needs page_param",
        _ => return Ok(()),
    };
    Err(missing.to_owned())
}

/// The connection values a generic connector reads its description from.
const DESCRIPTION: &[&str] = &[
    "key_style",
    "key_name",
    "records_path",
    "id_field",
    "updated_field",
    "updated_since_param",
    "paging_style",
    "page_size_param",
    "page_size",
    "cursor_param",
    "cursor_path",
    "next_url_path",
    "offset_param",
    "page_param",
    "has_more_path",
    "done_path",
    "write_path",
    "update_path",
    "update_method",
    "write_body_key",
    "batch_path",
    "batch_key",
    "batch_results_path",
    "batch_max",
];

/// The provider a connection talks to: the catalogue's own, or for a generic connector
/// the API the tenant described in the connection's values, checked like a provider
/// file. Each description is built once and kept for the life of the process (they
/// are few and small), so calls hold it like any catalogue entry.
pub fn resolve(
    provider: &'static Provider,
    config: &BTreeMap<String, String>,
) -> Result<&'static Provider, String> {
    if !provider.generic {
        return Ok(provider);
    }
    type Built = std::sync::Mutex<std::collections::HashMap<String, &'static Provider>>;
    static BUILT: OnceLock<Built> = OnceLock::new();
    let described: Vec<(&str, &str)> = DESCRIPTION
        .iter()
        .filter_map(|k| config.get(*k).map(|v| (*k, v.as_str())))
        .collect();
    let key = format!("{}{described:?}", provider.id);
    let built = BUILT.get_or_init(Default::default);
    if let Some(found) = built.lock().ok().and_then(|b| b.get(&key).copied()) {
        return Ok(found);
    }
    let described = described_by(provider, config)?;
    described.check()?;
    let leaked: &'static Provider = Box::leak(Box::new(described));
    if let Ok(mut b) = built.lock() {
        b.insert(key, leaked);
    }
    Ok(leaked)
}

/// What is wrong with the API a generic connector's values describe, if anything.
pub fn check_description(
    template: &Provider,
    config: &BTreeMap<String, String>,
) -> Result<(), String> {
    described_by(template, config)?.check()
}

/// `template` with what the connection's values say about the API laid over it.
fn described_by(
    template: &Provider,
    config: &BTreeMap<String, String>,
) -> Result<Provider, String> {
    let value = |k: &str| {
        config
            .get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let number = |k: &str| -> Result<Option<u32>, String> {
        value(k)
            .map(|v| v.parse().map_err(|_| format!("{k} must be a whole number")))
            .transpose()
    };
    let mut p = template.clone();
    if let Some(style) = value("paging_style") {
        p.pagination.style = serde_json::from_value(serde_json::Value::String(style.clone()))
            .map_err(|_| format!("'{style}' is not a paging style"))?;
    }
    let paging = &mut p.pagination;
    paging.limit_param = value("page_size_param");
    paging.page_size = number("page_size")?.or(paging.page_size);
    paging.cursor_param = value("cursor_param");
    paging.cursor_path = value("cursor_path");
    paging.next_url_path = value("next_url_path");
    paging.offset_param = value("offset_param");
    paging.page_param = value("page_param");
    paging.has_more_path = value("has_more_path");
    paging.done_path = value("done_path");
    match value("key_style").as_deref() {
        Some("header") => {
            p.auth.api_key_in = KeyPlacement::Header;
            p.auth.api_key_prefix = String::new();
            p.auth.api_key_name = Some(value("key_name").unwrap_or_else(|| "X-API-Key".into()));
        }
        Some("query") => {
            p.auth.api_key_in = KeyPlacement::Query;
            p.auth.api_key_name = Some(value("key_name").unwrap_or_else(|| "api_key".into()));
        }
        _ => {}
    }
    let object = p
        .objects
        .first_mut()
        .ok_or("a generic connector needs one object")?;
    if let Some(path) = value("records_path") {
        object.records_path = path;
    }
    if let Some(id) = value("id_field") {
        object.id_field = id;
    }
    object.updated_field = value("updated_field");
    object.updated_since_param = value("updated_since_param");
    object.write_path = value("write_path");
    object.update_path = value("update_path");
    object.update_method = value("update_method");
    object.write_body_key = value("write_body_key");
    object.batch_path = value("batch_path");
    object.batch_key = value("batch_key");
    object.batch_results_path = value("batch_results_path");
    object.batch_max = number("batch_max")?;
    Ok(p)
}

/// Every provider definition file, embedded.
const FILES: &[(&str, &str)] = &include!(concat!(env!("OUT_DIR"), "/providers.rs"));

/// The catalogue, parsed once.
pub fn catalogue() -> &'static Result<Vec<Provider>, String> {
    static CATALOGUE: OnceLock<Result<Vec<Provider>, String>> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let mut providers = Vec::new();
        for (file, text) in FILES {
            let provider: Provider =
                toml::from_str(text).map_err(|e| format!("providers/{file}: {e}"))?;
            provider.validate(file)?;
            providers.push(provider);
        }
        providers.sort_by(|a, b| {
            (!a.sandbox, a.name.to_lowercase()).cmp(&(!b.sandbox, b.name.to_lowercase()))
        });
        Ok(providers)
    })
}

/// What people call a provider: its name, or the id of one no longer in the catalogue.
pub fn display_name(id: &str) -> String {
    get(id).map_or_else(|| id.to_owned(), |p| p.name.clone())
}

/// All providers (empty if the catalogue failed to load; start-up refuses that case).
pub fn all() -> &'static [Provider] {
    catalogue().as_ref().map(Vec::as_slice).unwrap_or(&[])
}

/// One provider by id.
pub fn get(id: &str) -> Option<&'static Provider> {
    all().iter().find(|p| p.id == id)
}

/// Providers matching a search (name, id, category, description), case-insensitive.
pub fn search(query: &str) -> Vec<&'static Provider> {
    let q = query.trim().to_lowercase();
    all()
        .iter()
        .filter(|p| {
            q.is_empty()
                || [&p.name, &p.id, &p.category, &p.description]
                    .iter()
                    .any(|f| f.to_lowercase().contains(&q))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_catalogue_is_valid_and_complete() {
        let providers = super::catalogue().as_ref().expect("catalogue loads");
        assert!(
            providers.len() >= 15,
            "sandbox + generic + at least 12 real providers"
        );
        for id in [
            "sandbox_crm",
            "sandbox_erp",
            "http_json",
            "hubspot",
            "salesforce",
            "github",
        ] {
            assert!(super::get(id).is_some(), "{id} missing");
        }
        assert!(
            providers.iter().all(|p| !p.objects.is_empty()),
            "every provider lists objects"
        );
    }

    #[test]
    fn form_bodies_use_bracket_notation() {
        let body = serde_json::json!({
            "email": "a@b.example",
            "metadata": {"ref": "con_1", "tier": 2},
            "items": [{"price": "price_1"}],
            "description": null,
            "tax_exempt": false
        });
        let pairs = super::BodyEncoding::form_pairs(&body);
        let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            text,
            [
                "description=",
                "email=a@b.example",
                "items[0][price]=price_1",
                "metadata[ref]=con_1",
                "metadata[tier]=2",
                "tax_exempt=false"
            ]
        );
    }

    #[test]
    fn search_matches_names_and_categories() {
        assert!(super::search("hub").iter().any(|p| p.id == "hubspot"));
        assert!(super::search("crm").len() >= 2);
        assert!(super::search("no-such-thing").is_empty());
    }
}
