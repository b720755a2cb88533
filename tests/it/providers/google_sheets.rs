//! Google Sheets: Google OAuth (offline access, PKCE), one tab of a spreadsheet read
//! through `values.get` with its first row naming the fields, new rows added with
//! `values.append` and changed rows rewritten with `values.update` (both with
//! `valueInputOption`, the body's range equal to the URL's), tab names in A1 notation
//! quoted (`'Q1 Leads!'!5:5`) and percent-encoded in the path, Google's error shape, and
//! 429 `RESOURCE_EXHAUSTED`.
//!
//! Shapes from Google's documentation: "Using OAuth 2.0 for Web Server Applications"
//! (`access_type=offline`, token answer `access_token`, `expires_in`, `refresh_token`,
//! `scope`, `token_type`), the Sheets API v4 reference (`spreadsheets.values.get` with
//! `majorDimension`, `valueRenderOption`; `ValueRange` with `range`, `majorDimension`,
//! `values`, trailing empty cells and a missing `values` for an empty range;
//! `spreadsheets.values.append` with `valueInputOption`, `insertDataOption`, answering
//! `updates.updatedRange`; `spreadsheets.values.update`, where null cells are left as
//! they are), "A1 notation" (sheet names with spaces or punctuation in single quotes, a
//! quote doubled), "Usage limits" (429) and the Google API error model (`error.code`,
//! `message`, `status`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{
    Answer, ClientAuth, Codes, OAuthVendor, Request, SEEDED, Vendor, approve, bearer, flow_fields,
    redeem, run_ending,
};
use crate::common::flows::{count, create_flow, touch_contacts};
use serde_json::{Value, json};

const ACCOUNTS: &str = "https://accounts.google.com";
const TOKENS: &str = "https://oauth2.googleapis.com";
const SHEETS: &str = "https://sheets.googleapis.com";
const CLIENT_ID: &str = "123-fake.apps.googleusercontent.com";
const CLIENT_SECRET: &str = "GOCSPX-fake";
const SPREADSHEET: &str = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms";
/// A tab whose name needs quoting: a space and a `!`.
const TAB: &str = "Q1 Leads!";

/// One spreadsheet with one tab: its rows (row 1 the header), grants, misbehaviour.
pub struct Spreadsheet {
    rows: Vec<Vec<Value>>,
    codes: Codes,
    tokens: Vec<String>,
    /// The next this many calls are over quota.
    pub exhausted: u32,
}

impl Default for Spreadsheet {
    fn default() -> Self {
        Spreadsheet {
            rows: vec![vec![json!("Name"), json!("Email"), json!("Score")]],
            codes: Codes::default(),
            tokens: Vec::new(),
            exhausted: 0,
        }
    }
}

fn error(code: u16, message: &str, status: &str) -> Answer {
    Answer::json(
        code,
        json!({ "error": { "code": code, "message": message, "status": status } }),
    )
}

/// The tab and rows an A1 range names: `'Q1 Leads!'`, `'Q1 Leads!'!1:1` or `'Q1 Leads!'!7:7`.
fn parse(range: &str) -> Result<(String, Option<usize>), Answer> {
    let bad = || {
        error(
            400,
            &format!("Unable to parse range: {range}"),
            "INVALID_ARGUMENT",
        )
    };
    let (name, rows) = if let Some(quoted) = range.strip_prefix('\'') {
        let mut name = String::new();
        let mut chars = quoted.chars().peekable();
        loop {
            match chars.next() {
                Some('\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                    name.push('\'');
                }
                Some('\'') => break,
                Some(c) => name.push(c),
                None => return Err(bad()),
            }
        }
        let rest: String = chars.collect();
        (name, rest)
    } else {
        // Unquoted names may not hold spaces or punctuation.
        let (name, rest) = range.split_once('!').map_or((range, ""), |(n, r)| (n, r));
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(bad());
        }
        (name.to_owned(), format!("!{rest}"))
    };
    let rows = match rows.as_str() {
        "" | "!" => None,
        r => {
            let (a, b) = r
                .strip_prefix('!')
                .and_then(|r| r.split_once(':'))
                .ok_or_else(bad)?;
            if a != b {
                return Err(bad());
            }
            Some(a.parse().map_err(|_| bad())?)
        }
    };
    Ok((name, rows))
}

impl Spreadsheet {
    pub fn rows(&self) -> Vec<Vec<Value>> {
        self.rows.clone()
    }

    pub fn set(&mut self, row: usize, column: usize, value: Value) {
        self.rows[row - 1][column] = value;
    }

    fn token(&mut self, r: &Request) -> Answer {
        match redeem(
            &mut self.codes,
            r,
            (CLIENT_ID, CLIENT_SECRET),
            ClientAuth::Post,
        ) {
            Err(error) => Answer::json(
                400,
                json!({ "error": error, "error_description": "Bad Request" }),
            ),
            Ok(()) => {
                let token = format!("ya29.fake{:030}", self.tokens.len());
                self.tokens.push(token.clone());
                Answer::json(
                    200,
                    json!({ "access_token": token, "expires_in": 3599, "refresh_token": format!("1//fakerefresh{}", self.tokens.len()), "scope": "https://www.googleapis.com/auth/spreadsheets", "token_type": "Bearer" }),
                )
            }
        }
    }

    fn shown(&self, range: &str) -> String {
        format!("{range}!A1:C{}", self.rows.len().max(1))
    }

    fn values(&mut self, r: &Request, range: &str, append: bool) -> Answer {
        let (name, rows) = match parse(range) {
            Ok(parsed) => parsed,
            Err(answer) => return answer,
        };
        if name != TAB {
            return error(
                400,
                &format!("Unable to parse range: {range}"),
                "INVALID_ARGUMENT",
            );
        }
        match (r.method.as_str(), append) {
            ("GET", false) => {
                let selected: Vec<Vec<Value>> = match rows {
                    None => self.rows.clone(),
                    Some(n) => self.rows.get(n - 1).cloned().into_iter().collect(),
                };
                // Trailing empty cells are left out.
                let selected: Vec<Value> = selected
                    .into_iter()
                    .map(|mut row| {
                        while row.last().is_some_and(|c| c.is_null() || c == "") {
                            row.pop();
                        }
                        Value::Array(row)
                    })
                    .collect();
                Answer::json(
                    200,
                    json!({ "range": self.shown(range), "majorDimension": "ROWS", "values": selected }),
                )
            }
            ("POST", true) | ("PUT", false) => {
                if r.param("valueInputOption").is_none() {
                    return error(
                        400,
                        "'valueInputOption' is required but not specified",
                        "INVALID_ARGUMENT",
                    );
                }
                let Some(body) = r.json() else {
                    return error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT");
                };
                let Some(values) = body["values"].as_array().cloned() else {
                    return error(400, "Invalid values", "INVALID_ARGUMENT");
                };
                if let Some(asked) = body["range"].as_str()
                    && asked != range
                {
                    return error(
                        400,
                        &format!(
                            "Requested writing within range [{range}], but tried writing to [{asked}]"
                        ),
                        "INVALID_ARGUMENT",
                    );
                }
                if append {
                    let start = self.rows.len() + 1;
                    for row in &values {
                        self.rows.push(row.as_array().unwrap().clone());
                    }
                    let end = self.rows.len();
                    return Answer::json(
                        200,
                        json!({ "spreadsheetId": SPREADSHEET, "tableRange": format!("'{TAB}'!A1:C{}", start - 1), "updates": { "spreadsheetId": SPREADSHEET, "updatedRange": format!("'{TAB}'!A{start}:C{end}"), "updatedRows": values.len(), "updatedColumns": 3, "updatedCells": values.len() * 3 } }),
                    );
                }
                let Some(n) = rows.filter(|n| *n >= 2 && *n <= self.rows.len()) else {
                    return error(400, "Rows must be within the grid", "INVALID_ARGUMENT");
                };
                let cells = values[0].as_array().unwrap();
                for (i, cell) in cells.iter().enumerate() {
                    // Null cells are left as they are.
                    if !cell.is_null() {
                        self.rows[n - 1][i] = cell.clone();
                    }
                }
                Answer::json(
                    200,
                    json!({ "spreadsheetId": SPREADSHEET, "updatedRange": format!("'{TAB}'!A{n}:C{n}"), "updatedRows": 1, "updatedColumns": cells.len(), "updatedCells": cells.len() }),
                )
            }
            _ => error(404, "Method not found.", "NOT_FOUND"),
        }
    }
}

impl Vendor for Spreadsheet {
    fn handle(&mut self, r: &Request) -> Answer {
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/o/oauth2/v2/auth") if r.param("access_type") == Some("offline") => {
                return approve(&mut self.codes, r, CLIENT_ID, "4/fakecode{n}");
            }
            ("POST", "/token") => return self.token(r),
            _ => {}
        }
        if !bearer(r, &self.tokens) {
            return error(
                401,
                "Request had invalid authentication credentials.",
                "UNAUTHENTICATED",
            );
        }
        if self.exhausted > 0 {
            self.exhausted -= 1;
            return error(
                429,
                "Quota exceeded for quota metric 'Read requests' and limit 'Read requests per minute per user' of service 'sheets.googleapis.com'",
                "RESOURCE_EXHAUSTED",
            );
        }
        let prefix = format!("/v4/spreadsheets/{SPREADSHEET}/values/");
        let Some(raw) = r.path.strip_prefix(&prefix) else {
            return error(404, "Requested entity was not found.", "NOT_FOUND");
        };
        let decoded = percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .unwrap()
            .into_owned();
        match decoded.strip_suffix(":append") {
            Some(range) => self.values(r, range, true),
            None => self.values(r, &decoded, false),
        }
    }
}

const GOOGLE: OAuthVendor = OAuthVendor {
    provider: "google_sheets",
    origins: &[ACCOUNTS, TOKENS, SHEETS],
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
};

async fn connect(extra: &[(&str, &str)]) -> super::Connected<Spreadsheet> {
    GOOGLE
        .connect_with::<Spreadsheet>(
            extra,
            &[],
            &[("field_spreadsheet_id", SPREADSHEET), ("field_sheet", TAB)],
        )
        .await
}

#[tokio::test]
async fn google_sheets_reads_rows_under_the_header_of_a_tab_whose_name_needs_quoting() {
    let s = connect(&[]).await;
    {
        let mut sheet = s.vendor.lock().unwrap();
        sheet
            .rows
            .push(vec![json!("Ada"), json!("ada@example.com"), json!(36)]);
        sheet.rows.push(vec![json!(""), json!(""), json!("")]);
        sheet
            .rows
            .push(vec![json!("Grace"), json!("grace@example.com")]);
        sheet
            .rows
            .push(vec![json!("Linus"), json!("linus@example.com"), json!(7)]);
        sheet.exhausted = 1;
    }
    let crm = s.sandbox("sandbox_crm").await;
    let source = s.object("rows");
    let destination = format!("{crm}:companies");
    let flow = create_flow(
        &s.admin,
        &flow_fields(
            &[
                ("name", "Leads to companies"),
                ("source", &source),
                ("destination", &destination),
                ("write_mode", "create"),
                ("key_field", ""),
                ("record_key", "record._row"),
            ],
            &[("name", "record.Name"), ("domain", "record.Email")],
        ),
    )
    .await;
    let (page, log) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert!(
        log.contains("RESOURCE_EXHAUSTED"),
        "the quota was waited out: {log}"
    );
    assert_eq!(
        count(&page, "read"),
        3,
        "the header and the empty row are not records"
    );
    let read = s.fake.requests_to("/v4/spreadsheets").pop().unwrap();
    assert!(
        read.path.ends_with("/values/%27Q1%20Leads!%27"),
        "{}",
        read.path
    );

    // A cell changes: the next run writes that row only.
    s.vendor.lock().unwrap().set(5, 0, json!("Linus T."));
    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 3);
    assert_eq!(count(&page, "written"), 1);
    s.app.stop().await;
}

#[tokio::test]
async fn google_sheets_appends_rows_in_header_order_and_rewrites_changed_ones() {
    let s = connect(SEEDED).await;
    let flow = s
        .contacts_into(
            "rows",
            &[
                // Mapped out of the header's order; one record also has a phone, a
                // column the sheet does not have.
                ("Email", "record.email"),
                ("Name", "record.name"),
                ("Phone", "'555-0100' if record.id == 'con_000003' else none"),
            ],
        )
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 11);
    let dead = s.admin.get(&format!("{flow}/dead-letters")).await.body;
    assert!(dead.contains("no column"), "{dead}");
    let rows = s.vendor.lock().unwrap().rows();
    assert_eq!(rows.len(), 12, "the header and eleven rows");
    assert!(
        rows[1][0].as_str().unwrap().contains(' ') && rows[1][1].as_str().unwrap().contains('@'),
        "Name, then Email: {:?}",
        rows[1]
    );
    let appends = s
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with(":append"))
        .count();
    assert_eq!(appends, 1, "one append for the page");

    touch_contacts(&s.app, 2, "Renamed").await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 2);
    let puts: Vec<Request> = s
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 2);
    let rows = s.vendor.lock().unwrap().rows();
    assert_eq!(rows.len(), 12, "rewritten in place, not appended");
    assert_eq!(
        rows.iter()
            .filter(|r| r[0].as_str().is_some_and(|n| n.starts_with("Renamed")))
            .count(),
        2
    );
    s.app.stop().await;
}
