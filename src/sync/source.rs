//! Reading a source object page by page: cursor, offset, page number or `Link` header.

use super::{Exchange, Fault, Phase, rate, since, table};
use crate::app::App;
use crate::connectors::catalogue::{ObjectSpec, Pagination, PaginationStyle, Provider};
use crate::connectors::session::{ApiCall, Recent};
use crate::domain::{ConnectionId, TenantCtx};
use crate::store::entities::connections;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use serde_json_path::JsonPath;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// A source object of a connection.
pub struct Source {
    /// Connection.
    pub connection: ConnectionId,
    /// Provider.
    pub provider: &'static Provider,
    /// Object.
    pub object: &'static ObjectSpec,
    /// The last page read: where it started and a fingerprint of its body, to catch a
    /// provider that answers a new request with the page it just gave.
    last_read: Mutex<Option<(Option<Resume>, u64)>>,
    /// The connection's values (a spreadsheet's tab).
    values: BTreeMap<String, String>,
    /// The connection's row as last read, for the next calls.
    recent: Recent,
    /// The last answer as it came (status, body cut at [`RAW_LIMIT`]), kept only for
    /// people testing a description ([`Source::keeping_answers`]).
    raw: Option<Mutex<Option<(u16, String)>>>,
}

/// How much of an answer a test request shows.
const RAW_LIMIT: usize = 20_000;

/// Where the next page starts: the checkpoint stored after each committed page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resume {
    /// An opaque cursor from the previous page.
    Cursor(String),
    /// Records to skip.
    Offset(u64),
    /// Page number (first page is 1).
    Page(u64),
    /// The next page's URL, from a `Link` header or the body (absolute, or relative to
    /// the base URL).
    Url(String),
    /// The last page is committed; only finishing the run is left.
    End,
}

/// One page of source records.
pub struct Page {
    /// The records.
    pub records: Vec<Json>,
    /// Where the next page starts (none: this was the last page).
    pub next: Option<Resume>,
    /// Total records, when the API says.
    pub total: Option<i64>,
    /// The exchange, for the run log.
    pub exchange: Exchange,
}

impl Source {
    /// The source `object` of `provider` at `connection`.
    pub fn new(
        connection: ConnectionId,
        provider: &'static Provider,
        object: &'static ObjectSpec,
    ) -> Self {
        Source {
            connection,
            provider,
            object,
            last_read: Mutex::new(None),
            values: BTreeMap::new(),
            recent: Recent::default(),
            raw: None,
        }
    }

    /// The same source, starting from its connection's row as just read: its values, and
    /// the credentials its first calls use.
    pub fn with_connection(mut self, conn: connections::Model) -> Self {
        self.values = crate::connectors::credentials::config_of(&conn);
        self.recent = Recent::seeded(conn);
        self
    }

    /// The same source, keeping each answer as it came, for [`Source::last_answer`].
    pub fn keeping_answers(mut self) -> Self {
        self.raw = Some(Mutex::new(None));
        self
    }

    /// The last answer as it came: status and body (cut), when kept.
    pub fn last_answer(&self) -> Option<(u16, String)> {
        self.raw.as_ref()?.lock().ok()?.clone()
    }

    /// How the object's list pages.
    fn paging(&self) -> &'static Pagination {
        self.object.paging(self.provider)
    }

    /// `since` as this object's filter takes it.
    fn since_text(&self, since: &str) -> String {
        since::since_text(
            since,
            self.object.since_format.as_deref(),
            self.object.lookback_seconds,
        )
    }

    /// Page size: the provider's default, capped by the caller.
    pub fn page_size(&self, cap: Option<u32>) -> u32 {
        let size = self.paging().page_size.unwrap_or(100);
        cap.map_or(size, |c| size.min(c)).max(1)
    }

    /// The query of a page's request before its position: `list_params`, on
    /// incremental runs laid over by `incremental_params`, with `{since}`,
    /// `{page_size}` and `{offset}` (a query language's own paging) filled in.
    fn first_query(
        &self,
        since: Option<&str>,
        page_size: u32,
        offset: u64,
    ) -> Vec<(String, String)> {
        let paging = self.paging();
        let object = self.object;
        let since = since.map(|s| self.since_text(s));
        let mut params = object.list_params.clone();
        if since.is_some() {
            params.extend(object.incremental_params.clone());
        }
        let mut query: Vec<(String, String)> = params
            .into_iter()
            .map(|(k, v)| {
                let v = v
                    .replace("{page_size}", &page_size.to_string())
                    .replace("{offset}", &offset.to_string());
                let v = match &since {
                    Some(since) => v.replace("{since}", since),
                    None => v,
                };
                (k, v)
            })
            .collect();
        if let Some(p) = &paging.limit_param {
            query.push((p.clone(), page_size.to_string()));
        }
        if let (Some(p), Some(since)) = (&object.updated_since_param, &since)
            && !p.is_empty()
        {
            query.push((p.clone(), since.clone()));
        }
        query
    }

    /// Fetches one page. `since` filters by last modified when the object supports it.
    pub async fn fetch(
        &self,
        app: &App,
        ctx: &TenantCtx,
        resume: Option<&Resume>,
        since: Option<&str>,
        page_size: u32,
    ) -> Result<Page, Fault> {
        let paging = self.paging();
        let mut query = Vec::new();
        let mut path = match &self.object.table {
            Some(table) => table::at(&self.object.list_path, &table::sheet(table, &self.values)?),
            None => self.object.list_path.clone(),
        };
        let mut method = reqwest::Method::GET;
        let mut body = None;
        if let (Some(search), Some(since)) = (&self.object.search, since) {
            // Changes only: the search endpoint, paged inside its body.
            let since = self.since_text(since);
            let cursor = match resume {
                Some(Resume::Cursor(c)) => Some(c.as_str()),
                _ => None,
            };
            path = search.path.clone();
            method = search.method.parse().unwrap_or(reqwest::Method::POST);
            body = Some(search.body(&since, page_size, cursor).ok_or_else(|| {
                Fault::fatal(format!(
                    "{} {}: the search body is not JSON",
                    self.provider.name, self.object.name
                ))
            })?);
        } else if let Some(Resume::Url(url)) = resume {
            // The provider's next link already carries every parameter.
            path = url.clone();
        } else if let Some(template) = since
            .and(self.object.incremental_body.as_ref())
            .or(self.object.list_body.as_ref())
        {
            // A read with a body (GraphQL): the position goes inside it.
            let offset = match resume {
                Some(Resume::Offset(n)) => *n,
                _ => paging.offset_start,
            };
            let cursor = match resume {
                Some(Resume::Cursor(c)) => Some(c.as_str()),
                _ => None,
            };
            let since = since.map(|s| self.since_text(s));
            query = self.first_query(None, page_size, offset);
            method = self
                .object
                .list_method
                .as_deref()
                .and_then(|m| m.parse().ok())
                .unwrap_or(reqwest::Method::POST);
            body = Some(filled_body(
                template,
                page_size,
                cursor,
                since.as_deref(),
                offset,
            ));
        } else {
            let offset = match resume {
                Some(Resume::Offset(n)) => *n,
                _ => paging.offset_start,
            };
            query = self.first_query(since, page_size, offset);
            match (paging.style, resume) {
                (PaginationStyle::Cursor, Some(Resume::Cursor(c))) => {
                    if let Some(p) = &paging.cursor_param {
                        query.push((p.clone(), c.clone()));
                    }
                }
                (PaginationStyle::Offset, _) => {
                    if let Some(p) = &paging.offset_param
                        && (resume.is_some() || offset > 0)
                    {
                        query.push((p.clone(), offset.to_string()));
                    }
                }
                (PaginationStyle::Page, _) => {
                    let n = match resume {
                        Some(Resume::Page(n)) => *n,
                        _ => 1,
                    };
                    if let Some(p) = &paging.page_param {
                        query.push((p.clone(), n.to_string()));
                    }
                }
                _ => {}
            }
        }
        // Changes only, by a header (`If-Modified-Since`).
        let headers: Vec<(&str, String)> = match since {
            Some(since) => {
                let since = self.since_text(since);
                self.object
                    .incremental_headers
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.replace("{since}", &since)))
                    .collect()
            }
            None => Vec::new(),
        };
        let (fetched, ms) = rate::paced_call(
            self.provider,
            app,
            ctx,
            self.connection,
            &self.recent,
            &ApiCall {
                method: method.clone(),
                path: &path,
                link: matches!(resume, Some(Resume::Url(_))),
                query: &query,
                body: body.as_ref(),
                headers: &headers,
            },
        )
        .await;
        let fetched = fetched?;
        if let Some(raw) = &self.raw
            && let Ok(mut kept) = raw.lock()
        {
            let cut = &fetched.body[..fetched.body.len().min(RAW_LIMIT)];
            *kept = Some((
                fetched.status.as_u16(),
                String::from_utf8_lossy(cut).into_owned(),
            ));
        }
        let what = format!("reading {}", self.object.name);
        if let Some(fault) = Fault::of_answer(self.provider, Phase::Read, &what, &fetched) {
            return Err(fault);
        }
        let fingerprint = fingerprint(&fetched.body);
        let body: Json = serde_json::from_slice(&fetched.body)
            .map_err(|e| Fault::fatal(format!("{what}: the answer is not JSON ({e})")))?;
        let more = paging
            .has_more_path
            .as_deref()
            .is_none_or(|p| first(&body, p) == Some(Json::Bool(true)))
            && paging
                .done_path
                .as_deref()
                .is_none_or(|p| first(&body, p) != Some(Json::Bool(true)));
        let next_url = paging
            .next_url_path
            .as_deref()
            .and_then(|p| first(&body, p));
        let Read {
            records,
            cursor,
            total,
        } = read_body(
            body,
            &self.object.records_path,
            paging.cursor_path.as_deref(),
            paging.total_path.as_deref(),
            self.object.records_optional,
        )
        .ok_or_else(|| {
            Fault::fatal(format!(
                "{what}: no records at {}",
                self.object.records_path
            ))
        })?;
        // A tab's rows become records under its header row.
        let records = if self.object.table.is_some() {
            table::records(records)
        } else {
            records
        };
        let full = records.len() as u64 >= u64::from(page_size);
        let next = match paging.style {
            PaginationStyle::Cursor => cursor.and_then(text).map(Resume::Cursor),
            PaginationStyle::NextUrl => next_url.and_then(text).map(Resume::Url),
            PaginationStyle::Offset => full.then(|| {
                let before = match resume {
                    Some(Resume::Offset(n)) => *n,
                    _ => paging.offset_start,
                };
                Resume::Offset(before + records.len() as u64)
            }),
            PaginationStyle::Page => full.then(|| {
                let before = match resume {
                    Some(Resume::Page(n)) => *n,
                    _ => 1,
                };
                Resume::Page(before + 1)
            }),
            PaginationStyle::LinkHeader => fetched
                .headers
                .get_all(reqwest::header::LINK)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(next_link)
                .map(Resume::Url),
            PaginationStyle::None => None,
        }
        // An empty page ends the read whatever else it says.
        .filter(|_| more && !records.is_empty());
        self.refuse_repeat(resume, next.as_ref(), fingerprint, records.is_empty())?;
        Ok(Page {
            exchange: Exchange {
                method: method.to_string(),
                path: path.split('?').next().unwrap_or_default().to_owned(),
                status: fetched.status.as_u16(),
                ms,
                records: records.len(),
            },
            records,
            next,
            total,
        })
    }

    /// Fails the run when paging would go round in circles: the next request would be
    /// the one just sent (a cursor or next URL that did not advance), or a new request
    /// got the very page the one before it got (a provider ignoring the position).
    /// Without this, such a provider keeps a run reading forever.
    fn refuse_repeat(
        &self,
        resume: Option<&Resume>,
        next: Option<&Resume>,
        fingerprint: u64,
        empty: bool,
    ) -> Result<(), Fault> {
        let name = format!("{} {}", self.provider.name, self.object.name);
        if next.is_some() && next == resume {
            return Err(Fault::fatal(format!(
                "{name}: the provider gave the same next-page position it was just asked \
                 for, so the next request would repeat the last one; the run stopped \
                 instead of reading the same page forever"
            )));
        }
        let Ok(mut last) = self.last_read.lock() else {
            return Ok(());
        };
        let repeated = matches!(
            &*last,
            Some((before, print)) if before.as_ref() != resume && *print == fingerprint
        );
        *last = Some((resume.cloned(), fingerprint));
        if repeated && !empty {
            return Err(Fault::fatal(format!(
                "{name}: the provider answered the request for the next page with the \
                 page before it; the run stopped instead of reading the same page forever"
            )));
        }
        Ok(())
    }
}

/// A list body template filled in: a string that is exactly `{page_size}` becomes the
/// number, exactly `{cursor}` the cursor (null on the first page); `{since}`, `{offset}`
/// and `{page_size}` inside longer strings are replaced as text.
fn filled_body(
    template: &Json,
    page_size: u32,
    cursor: Option<&str>,
    since: Option<&str>,
    offset: u64,
) -> Json {
    match template {
        Json::String(text) => match text.as_str() {
            "{page_size}" => Json::from(page_size),
            "{offset}" => Json::from(offset),
            "{cursor}" => cursor.map_or(Json::Null, Json::from),
            "{since}" => since.map_or(Json::Null, Json::from),
            _ => Json::String(
                text.replace("{page_size}", &page_size.to_string())
                    .replace("{offset}", &offset.to_string())
                    .replace("{since}", since.unwrap_or_default()),
            ),
        },
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), filled_body(v, page_size, cursor, since, offset)))
                .collect(),
        ),
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|v| filled_body(v, page_size, cursor, since, offset))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A next-page position as text: a non-empty string, or a number.
fn text(value: Json) -> Option<String> {
    match value {
        Json::String(s) if !s.is_empty() => Some(s),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A cheap fingerprint of a page's body.
fn fingerprint(body: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    h.finish()
}

/// What a page's body holds.
struct Read {
    records: Vec<Json>,
    cursor: Option<Json>,
    total: Option<i64>,
}

/// Reads the records, the next cursor and the total from a page's body. The cursor and
/// total are read first: a cursor may lie inside the records (the last record's id),
/// which are then taken out of the body. A body without records is none, or an empty
/// page when they are `optional`.
fn read_body(
    mut body: Json,
    records_path: &str,
    cursor_path: Option<&str>,
    total_path: Option<&str>,
    optional: bool,
) -> Option<Read> {
    let cursor = cursor_path.and_then(|p| first(&body, p));
    let total = total_path
        .and_then(|p| first(&body, p))
        .and_then(|v| v.as_i64());
    let records = match select_records(&mut body, records_path) {
        Some(records) => records,
        None if optional && body.is_object() => Vec::new(),
        None => return None,
    };
    Some(Read {
        records,
        cursor,
        total,
    })
}

/// The records a JSONPath selects: the elements of a selected array (taken out of the
/// body, which is large and read once), or copies of the selected objects themselves.
fn select_records(body: &mut Json, path: &str) -> Option<Vec<Json>> {
    let path = JsonPath::parse(path).ok()?;
    let array_at = {
        let nodes = path.query_located(body).all();
        match nodes.as_slice() {
            [node] if node.node().is_array() => node.location().to_json_pointer(),
            [] => return None,
            many => return Some(many.iter().map(|n| n.node().clone()).collect()),
        }
    };
    match body.pointer_mut(&array_at)?.take() {
        Json::Array(items) => Some(items),
        _ => None,
    }
}

fn first(body: &Json, path: &str) -> Option<Json> {
    JsonPath::parse(path).ok()?.query(body).first().cloned()
}

/// The `rel="next"` target of an RFC 8288 `Link` header. Hand-written: the parser crate
/// on offer splits targets at commas and refuses query parameters without `=`, both
/// legal in a next-page URL.
fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    loop {
        let start = rest.find('<')?;
        let end = start + rest[start..].find('>')?;
        let target = &rest[start + 1..end];
        // The parameters run to the next link's `<` (a `<` cannot appear in them unquoted).
        let params_end = rest[end..].find('<').map_or(rest.len(), |at| end + at);
        let is_next = rest[end + 1..params_end].split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_end_matches(',')
                    .trim()
                    .trim_matches('"')
                    .split_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.to_owned());
        }
        rest = &rest[params_end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_next_link_is_found_among_others() {
        let header = r#"<https://api.example.com/items?page=1>; rel="prev", <https://api.example.com/items?page=3>; rel="next""#;
        assert_eq!(
            next_link(header).as_deref(),
            Some("https://api.example.com/items?page=3")
        );
        assert_eq!(next_link(r#"<https://x/y>; rel="last""#), None);
        // Commas and bare parameters inside the target, several relations in one value.
        assert_eq!(
            next_link(r#"<https://x/i?ids=1,2&raw>; rel="prev", <https://x/i?ids=3,4&raw>; title="a; b"; rel="next last""#)
                .as_deref(),
            Some("https://x/i?ids=3,4&raw")
        );
        assert_eq!(
            next_link("<https://x/i?p=2>;rel=next").as_deref(),
            Some("https://x/i?p=2")
        );
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn a_cursor_inside_the_records_is_read_before_they_are_taken_out() {
        let body =
            json!({"data": [{"id": "cus_1"}, {"id": "cus_2"}], "has_more": true, "total": 9});
        let read = read_body(
            body,
            "$.data",
            Some("$.data[-1].id"),
            Some("$.total"),
            false,
        )
        .unwrap();
        assert_eq!(read.records.len(), 2);
        assert_eq!(read.cursor, Some(json!("cus_2")));
        assert_eq!(read.total, Some(9));
    }

    fn salesforce_accounts() -> Source {
        let provider = crate::connectors::catalogue::get("salesforce").unwrap();
        Source::new(ConnectionId::new(), provider, &provider.objects[0])
    }

    #[test]
    fn a_position_that_does_not_advance_stops_the_read() {
        let source = salesforce_accounts();
        let url = Resume::Url("/services/data/v66.0/query/01g-2000".into());
        assert!(source.refuse_repeat(None, Some(&url), 1, false).is_ok());
        let fault = source
            .refuse_repeat(Some(&url), Some(&url), 2, false)
            .unwrap_err();
        assert!(!fault.is_retryable());
        assert!(
            fault.message().starts_with("Salesforce Accounts:"),
            "{}",
            fault.message()
        );
        let cursor = Resume::Cursor("abc".into());
        assert!(
            salesforce_accounts()
                .refuse_repeat(Some(&cursor), Some(&cursor), 3, false)
                .is_err(),
            "a cursor that does not advance"
        );
    }

    #[test]
    fn a_page_answered_again_for_a_new_request_stops_the_read() {
        let source = salesforce_accounts();
        let (second, third) = (Resume::Page(2), Resume::Page(3));
        assert!(source.refuse_repeat(None, Some(&second), 7, false).is_ok());
        // A retry of the same request may get the same page.
        assert!(source.refuse_repeat(None, Some(&second), 7, false).is_ok());
        let fault = source
            .refuse_repeat(Some(&second), Some(&third), 7, false)
            .unwrap_err();
        assert!(
            fault.message().contains("the page before it"),
            "{}",
            fault.message()
        );
        // Two empty pages in a row are just the end.
        let other = super::Source::new(ConnectionId::new(), source.provider, source.object);
        assert!(other.refuse_repeat(None, None, 9, true).is_ok());
        assert!(other.refuse_repeat(Some(&second), None, 9, true).is_ok());
    }

    #[test]
    fn a_graphql_body_takes_the_page_size_cursor_and_since() {
        let template = json!({
            "query": "query($first: Int!, $after: String, $query: String) { … }",
            "variables": {"first": "{page_size}", "after": "{cursor}", "query": "updated_at:>'{since}'"}
        });
        let first = filled_body(&template, 50, None, Some("2026-01-01T00:00:00Z"), 0);
        assert_eq!(first["variables"]["first"], json!(50));
        assert_eq!(first["variables"]["after"], Json::Null);
        assert_eq!(
            first["variables"]["query"],
            json!("updated_at:>'2026-01-01T00:00:00Z'")
        );
        let next = filled_body(&template, 50, Some("eyJsYXN0X2lkIjo"), None, 0);
        assert_eq!(next["variables"]["after"], json!("eyJsYXN0X2lkIjo"));
    }

    #[test]
    fn records_are_read_from_an_array_or_from_matches() {
        let body = json!({"data": [{"id": 1}, {"id": 2}], "meta": {"records": [{"id": 3}]}});
        assert_eq!(
            select_records(&mut body.clone(), "$.data").map(|r| r.len()),
            Some(2)
        );
        assert_eq!(
            select_records(&mut body.clone(), "$.data[*]").map(|r| r.len()),
            Some(2)
        );
        assert_eq!(
            select_records(&mut body.clone(), "$.meta.records"),
            Some(vec![json!({"id": 3})])
        );
        assert_eq!(select_records(&mut body.clone(), "$.missing"), None);
    }
}
