//! Spreadsheet tabs as records: the header row names the fields, each later row is a
//! record addressed by its row number; new records are appended in the header's order,
//! changed ones rewrite their own row. See [`TableSpec`].

use super::target::{Item, Outcome, Target};
use super::{Exchange, Fault, Phase, rate};
use crate::app::App;
use crate::connectors::catalogue::TableSpec;
use crate::connectors::session::ApiCall;
use crate::domain::TenantCtx;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value as Json, json};
use std::collections::BTreeMap;

/// The field carrying a record's row number.
pub const ROW: &str = "_row";

/// What stays literal in an encoded range: what A1 notation needs and a path allows.
const RANGE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b':')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.');

/// A tab's name in A1 notation: quoted, with quotes inside doubled (`'Q1 ''Leads'''`).
pub fn quoted(sheet: &str) -> String {
    format!("'{}'", sheet.replace('\'', "''"))
}

/// `path` with `{range}` set to `range`, percent-encoded for a URL path.
pub fn at(path: &str, range: &str) -> String {
    path.replace("{range}", &utf8_percent_encode(range, RANGE).to_string())
}

/// The tab a connection's values name, in A1 notation.
pub fn sheet(table: &TableSpec, values: &BTreeMap<String, String>) -> Result<String, Fault> {
    values
        .get(&table.sheet)
        .map(|s| quoted(s))
        .ok_or_else(|| Fault::fatal(format!("the connection names no {}", table.sheet)))
}

/// Rows as records: the first row names the fields; each later non-empty row becomes a
/// record with its cells under those names and its row number in [`ROW`].
pub fn records(mut rows: Vec<Json>) -> Vec<Json> {
    if rows.is_empty() {
        return rows;
    }
    let header: Vec<String> = match rows.remove(0) {
        Json::Array(cells) => cells.iter().map(cell_text).collect(),
        _ => Vec::new(),
    };
    rows.into_iter()
        .enumerate()
        .filter_map(|(i, row)| {
            let Json::Array(cells) = row else { return None };
            if cells.iter().all(|c| cell_text(c).is_empty()) {
                return None;
            }
            let mut record = Map::new();
            for (name, cell) in header.iter().zip(cells) {
                if !name.is_empty() && !record.contains_key(name) {
                    record.insert(name.clone(), cell);
                }
            }
            // Row 1 is the header.
            record.insert(ROW.into(), Json::String((i + 2).to_string()));
            Some(Json::Object(record))
        })
        .collect()
}

fn cell_text(cell: &Json) -> String {
    match cell {
        Json::String(s) => s.trim().to_owned(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// A record as a row in the header's order: a value for a field the header lacks
/// refuses it, an unmapped column is null (the API leaves such a cell as it is).
fn row(header: &[String], record: &Map<String, Json>) -> Result<Json, String> {
    if let Some(unknown) = record
        .iter()
        .find(|(k, v)| k.as_str() != ROW && !v.is_null() && !header.contains(k))
        .map(|(k, _)| k)
    {
        return Err(format!(
            "the sheet has no column '{unknown}': add it to the header row, then replay"
        ));
    }
    Ok(Json::Array(
        header
            .iter()
            .map(|name| match record.get(name) {
                None | Some(Json::Null) => Json::Null,
                Some(v @ (Json::String(_) | Json::Number(_) | Json::Bool(_))) => v.clone(),
                Some(other) => Json::String(other.to_string()),
            })
            .collect(),
    ))
}

/// The first row number of an `updatedRange` such as `'Q1 Leads'!A4:C5`.
fn first_row(range: &str) -> Option<u64> {
    let cells = range.rsplit('!').next()?;
    let start = cells.split(':').next()?;
    start
        .trim_start_matches(|c: char| c.is_ascii_alphabetic())
        .parse()
        .ok()
}

impl Target {
    /// Writes records to a tab: appends new ones in one call, rewrites changed rows.
    pub(super) async fn write_table(
        &self,
        app: &App,
        ctx: &TenantCtx,
        table: &TableSpec,
        mode: &str,
        group: &[Item],
        exchanges: &mut Vec<Exchange>,
    ) -> Result<Vec<Outcome>, Fault> {
        let sheet = sheet(table, &self.values)?;
        let header = self.header(app, ctx, table, &sheet, exchanges).await?;
        let mut outcomes: Vec<Option<Outcome>> = vec![None; group.len()];
        let mut cells = Vec::new();
        for (i, item) in group.iter().enumerate() {
            match row(&header, &item.record) {
                Ok(r) => cells.push((i, r)),
                Err(why) => outcomes[i] = Some(Outcome::Rejected(why)),
            }
        }
        match mode {
            "create" if !cells.is_empty() => {
                let answer = self
                    .send(
                        app,
                        ctx,
                        reqwest::Method::POST,
                        &format!("{}:append", at(&table.values_path, &sheet)),
                        &[
                            ("valueInputOption", "RAW"),
                            ("insertDataOption", "INSERT_ROWS"),
                        ],
                        json!({ "majorDimension": "ROWS", "values": cells.iter().map(|(_, r)| r.clone()).collect::<Vec<_>>() }),
                        exchanges,
                    )
                    .await?;
                let start = answer
                    .pointer("/updates/updatedRange")
                    .and_then(Json::as_str)
                    .and_then(first_row);
                for (n, (i, _)) in cells.iter().enumerate() {
                    let id = start.map(|s| (s + n as u64).to_string());
                    outcomes[*i] = Some(Outcome::Written(id));
                }
            }
            "update" => {
                for (i, cells) in cells {
                    let Some(number) = group[i]
                        .dest_id
                        .as_deref()
                        .filter(|r| r.parse::<u64>().is_ok())
                    else {
                        outcomes[i] = Some(Outcome::Rejected("no row number to update".into()));
                        continue;
                    };
                    let range = format!("{sheet}!{number}:{number}");
                    self.send(
                        app,
                        ctx,
                        reqwest::Method::PUT,
                        &at(&table.values_path, &range),
                        &[("valueInputOption", "RAW")],
                        json!({ "range": range, "majorDimension": "ROWS", "values": [cells] }),
                        exchanges,
                    )
                    .await
                    .map(|_| outcomes[i] = Some(Outcome::Written(Some(number.to_owned()))))
                    .or_else(|fault| {
                        if fault.refuses_record() {
                            outcomes[i] = Some(Outcome::Rejected(fault.message));
                            Ok(())
                        } else {
                            Err(fault)
                        }
                    })?;
                }
            }
            _ => {}
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| Outcome::Rejected(format!("cannot {mode} rows"))))
            .collect())
    }

    /// The tab's header row (its field names).
    async fn header(
        &self,
        app: &App,
        ctx: &TenantCtx,
        table: &TableSpec,
        sheet: &str,
        exchanges: &mut Vec<Exchange>,
    ) -> Result<Vec<String>, Fault> {
        let path = at(&table.values_path, &format!("{sheet}!1:1"));
        let answer = self
            .send(
                app,
                ctx,
                reqwest::Method::GET,
                &path,
                &[("majorDimension", "ROWS")],
                Json::Null,
                exchanges,
            )
            .await?;
        let header: Vec<String> = answer
            .pointer("/values/0")
            .and_then(Json::as_array)
            .map(|cells| cells.iter().map(cell_text).collect())
            .unwrap_or_default();
        if header.iter().all(String::is_empty) {
            return Err(Fault::fatal(format!(
                "{}: the sheet has no header row; write the field names in row 1",
                self.object.name
            )));
        }
        Ok(header)
    }

    /// One call to the values endpoint; a refused call is a fault.
    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        app: &App,
        ctx: &TenantCtx,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Json,
        exchanges: &mut Vec<Exchange>,
    ) -> Result<Json, Fault> {
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (fetched, ms) = rate::paced_call(
            self.provider,
            app,
            ctx,
            self.connection,
            &self.recent,
            &ApiCall {
                method: method.clone(),
                path,
                link: false,
                query: &query,
                body: (!body.is_null()).then_some(&body),
                headers: &[],
            },
        )
        .await;
        let fetched = fetched?;
        exchanges.push(Exchange {
            method: method.to_string(),
            path: self
                .object
                .table
                .as_ref()
                .map_or_else(String::new, |t| t.values_path.clone()),
            status: fetched.status.as_u16(),
            ms,
            records: 1,
        });
        let what = format!("writing {}", self.object.name);
        if let Some(fault) = Fault::of_answer(self.provider, Phase::Write, &what, &fetched) {
            return Err(fault);
        }
        Ok(serde_json::from_slice(&fetched.body).unwrap_or(Json::Null))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_row_names_the_fields_of_each_later_row() {
        let rows = vec![
            json!(["Name", "Email", "", "Score"]),
            json!(["Ada", "ada@example.com", "x", 36]),
            json!([]),
            json!(["Grace"]),
        ];
        let records = records(rows);
        assert_eq!(
            records,
            vec![
                json!({"Name": "Ada", "Email": "ada@example.com", "Score": 36, "_row": "2"}),
                json!({"Name": "Grace", "_row": "4"}),
            ]
        );
    }

    #[test]
    fn a_tab_name_is_quoted_and_encoded() {
        let range = format!("{}!5:5", quoted("Q1 Leads!"));
        assert_eq!(range, "'Q1 Leads!'!5:5");
        assert_eq!(
            at("/spreadsheets/abc/values/{range}", &range),
            "/spreadsheets/abc/values/%27Q1%20Leads!%27!5:5"
        );
        assert_eq!(quoted("Bob's"), "'Bob''s'");
        assert_eq!(
            at("/v/{range}", "'a/b?c#d'"),
            "/v/%27a%2Fb%3Fc%23d%27",
            "nothing in a name can reshape the path"
        );
    }

    #[test]
    fn rows_follow_the_header_and_unknown_fields_are_refused() {
        let header = vec!["Name".to_owned(), "Email".to_owned(), "Notes".to_owned()];
        let mut record = Map::new();
        record.insert("Email".into(), json!("ada@example.com"));
        record.insert("Name".into(), json!("Ada"));
        assert_eq!(
            row(&header, &record).unwrap(),
            json!(["Ada", "ada@example.com", null])
        );
        record.insert("Phone".into(), Json::Null);
        assert!(row(&header, &record).is_ok(), "nothing to write there");
        record.insert("Phone".into(), json!("1"));
        assert!(row(&header, &record).unwrap_err().contains("'Phone'"));
        assert_eq!(first_row("'Q1 Leads'!A4:C5"), Some(4));
        assert_eq!(first_row("Sheet1!A12"), Some(12));
    }
}
