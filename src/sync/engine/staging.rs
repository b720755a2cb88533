//! Staging a page: mapping, validation and filtering on the expression pool, then the
//! ledger lookup that tells unchanged records from those to write.

use super::{Runner, Stop};
use crate::connectors::catalogue::ObjectSpec;
use crate::domain::RecordFault;
use crate::store::{Failure, LedgerEntry, PageCommit};
use crate::sync::expression::pool;
use crate::sync::mapping::{Mapping, RecordError};
use crate::sync::source::{Page, Source};
use crate::sync::target::Target;
use crate::sync::{Fault, since};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// A source record ready to write.
pub(super) struct Prepared {
    pub(super) key: String,
    pub(super) key_hash: Vec<u8>,
    pub(super) content_hash: Vec<u8>,
    pub(super) record: Arc<serde_json::Map<String, Json>>,
    pub(super) source: Json,
}

/// Ledger rows by key digest.
pub(super) type Ledger = HashMap<Vec<u8>, LedgerEntry>;

/// A page mapped, validated, filtered and looked up in the ledger, waiting for its turn
/// to be written.
pub(super) struct Staged {
    pub(super) page: Page,
    /// Counts and failures so far; the write adds its outcomes.
    pub(super) commit: PageCommit,
    /// Records that passed, one per key, in page order.
    pub(super) items: Vec<Prepared>,
    /// What the ledger held for them when the page was staged.
    pub(super) ledger: Ledger,
    /// The latest last-modified value on the page.
    pub(super) watermark: Option<String>,
}

impl Staged {
    /// The records to write, with the destination id each is known by: those whose
    /// content the ledger already has are counted unchanged. `recent` holds the rows of
    /// pages written since the lookup, newest first; they win over it.
    pub(super) fn resolve(
        &mut self,
        recent: &[Ledger],
        close_dead_letters: bool,
    ) -> Vec<(Prepared, Option<String>)> {
        let mut to_write = Vec::with_capacity(self.items.len());
        for p in std::mem::take(&mut self.items) {
            let entry = recent
                .iter()
                .find_map(|rows| rows.get(&p.key_hash))
                .or_else(|| self.ledger.get(&p.key_hash));
            match entry {
                Some(entry) if entry.content_hash == p.content_hash => {
                    self.commit.unchanged += 1;
                    if close_dead_letters {
                        self.commit.delivered.push(p.key);
                    }
                }
                entry => {
                    let dest = entry.and_then(|e| e.dest_id.clone());
                    to_write.push((p, dest));
                }
            }
        }
        to_write
    }
}

/// Counts a record as failed, for the dead letters.
pub(super) fn fail(
    commit: &mut PageCommit,
    key: String,
    record: &Json,
    class: RecordFault,
    error: String,
) {
    commit.failed += 1;
    commit.failures.push(Failure {
        record_key: key,
        payload: record.to_string(),
        error_class: class,
        error,
    });
}

pub(super) fn digest(parts: &[&[u8]], len: usize) -> Vec<u8> {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    h.finalize()[..len].to_vec()
}

/// The ledger's key for a record key. Keys of up to 16 bytes (most numeric and short ids)
/// are kept as they are: no larger than a digest, and as sources tend to hand out ids in
/// increasing order, a page's new rows land side by side in the ledger's index instead of
/// one per random index page (a page commit then writes a few index pages, not hundreds;
/// three times faster in a 100k-row test). Longer keys become a 12-byte digest behind a
/// 0xFF byte, which never occurs in UTF-8 text, so a digest cannot equal a kept key.
fn ledger_key(key: &str) -> Vec<u8> {
    if key.len() <= 16 {
        key.as_bytes().to_vec()
    } else {
        let mut out = Vec::with_capacity(13);
        out.push(0xFF);
        out.extend(digest(&[key.as_bytes()], 12));
        out
    }
}

/// A page's records mapped, validated and filtered, before the ledger lookup.
struct Mapped {
    commit: PageCommit,
    items: Vec<Prepared>,
    watermark: Option<String>,
}

/// Maps, validates and filters a page's records; `key_field` is the destination field
/// that must be set to match records (update and upsert).
fn map_page(
    records: Vec<Json>,
    mapping: &Mapping,
    object: &ObjectSpec,
    key_field: Option<String>,
) -> Mapped {
    let mut commit = PageCommit {
        read: records.len() as i64,
        ..PageCommit::default()
    };
    let mut watermark: Option<String> = None;
    let mut items: Vec<Prepared> = Vec::with_capacity(records.len());
    let mut position: HashMap<Vec<u8>, usize> = HashMap::new();
    for record in records {
        let _budget = mapping.record_budget();
        if let Some(field) = &object.updated_field
            && let Some(at) = since::field_value(&record, field)
            && watermark.as_deref().is_none_or(|w| since::is_later(&at, w))
        {
            watermark = Some(at);
        }
        let key = match mapping.key(&record) {
            Ok(k) => k,
            Err(e) => {
                let fallback = record
                    .get(&object.id_field)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| hex::encode(digest(&[record.to_string().as_bytes()], 8)));
                fail(&mut commit, fallback, &record, e.kind, describe(&e));
                continue;
            }
        };
        match mapping.keep(&record) {
            Ok(true) => {}
            Ok(false) => {
                commit.filtered += 1;
                continue;
            }
            Err(e) => {
                fail(&mut commit, key, &record, e.kind, describe(&e));
                continue;
            }
        }
        let mapped = match mapping.apply(&record) {
            Ok(m) => m,
            Err(e) => {
                fail(&mut commit, key, &record, e.kind, describe(&e));
                continue;
            }
        };
        if let Some(field) = &key_field
            && mapped.get(field).is_none_or(Json::is_null)
        {
            fail(
                &mut commit,
                key,
                &record,
                RecordFault::Validation,
                format!("{field}: is required to match the destination record"),
            );
            continue;
        }
        let content = serde_json::to_vec(&mapped).unwrap_or_default();
        let item = Prepared {
            key_hash: ledger_key(&key),
            content_hash: digest(&[&content], 8),
            key,
            record: Arc::new(mapped),
            source: record,
        };
        // The same record twice in one page: the later copy wins.
        match position.get(&item.key_hash) {
            Some(&i) => {
                items[i] = item;
                commit.unchanged += 1;
            }
            None => {
                position.insert(item.key_hash.clone(), items.len());
                items.push(item);
            }
        }
    }
    Mapped {
        commit,
        items,
        watermark,
    }
}

fn describe(e: &RecordError) -> String {
    format!("{}: {}", e.field, e.message)
}

/// Pages of at most this many records, with a mapping of fast forms only, are mapped on
/// the run's task: the trip to the expression pool (a thread woken there, and this one
/// woken again) costs more than their mapping.
const MAPPED_IN_PLACE: usize = 16;

impl Runner<'_> {
    /// Maps, validates and filters a page, and looks its keys up in the ledger. The
    /// mapping runs on the expression pool: it is a few milliseconds of CPU per page, and on
    /// this task it would hold up the write and the commit polled beside it. Small pages
    /// of fast forms are the exception ([`MAPPED_IN_PLACE`]).
    pub(super) async fn stage(
        &self,
        mut page: Page,
        mapping: &Arc<Mapping>,
        source: &Source,
        target: &Target,
    ) -> Result<Staged, Stop> {
        let records = std::mem::take(&mut page.records);
        let (mapping, object) = (Arc::clone(mapping), source.object);
        let key_field =
            (target.mode != crate::domain::WriteMode::Create).then(|| target.key_field.clone());
        let Mapped {
            commit,
            items,
            watermark,
        } = if records.len() <= MAPPED_IN_PLACE && mapping.is_native() {
            map_page(records, &mapping, object, key_field)
        } else {
            pool::run(move || map_page(records, &mapping, object, key_field))
                .await
                .map_err(|e| Fault::fatal(format!("mapping the page failed: {e}")))?
        };
        let keys: Vec<Vec<u8>> = items.iter().map(|p| p.key_hash.clone()).collect();
        let ledger = self
            .app
            .store
            .ledger_entries(self.ctx, self.flow_id(), &keys)
            .await?;
        Ok(Staged {
            page,
            commit,
            items,
            ledger,
            watermark,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::Exchange;

    fn entry(content: &[u8], dest: Option<&str>) -> LedgerEntry {
        LedgerEntry {
            content_hash: content.to_vec(),
            dest_id: dest.map(str::to_owned),
        }
    }

    #[test]
    fn short_record_keys_are_kept_in_order_and_long_ones_digested_apart_from_them() {
        assert_eq!(ledger_key("con_000042"), b"con_000042".to_vec());
        assert!(ledger_key("1001") < ledger_key("1002"));
        let long = "cus_0192f3a4b5c6d7e8f9a0b1c2d3e4f5a6";
        let hashed = ledger_key(long);
        assert_eq!(hashed.len(), 13);
        assert_eq!(hashed[0], 0xFF, "no UTF-8 key starts with this byte");
        assert_eq!(hashed, ledger_key(long), "stable");
        assert_ne!(hashed, ledger_key("cus_0192f3a4b5c6d7e8f9a0b1c2d3e4f5a7"));
    }

    fn staged(keys: &[(&str, &[u8])], ledger: Ledger) -> Staged {
        Staged {
            page: Page {
                records: Vec::new(),
                next: None,
                total: None,
                exchange: Exchange {
                    method: "GET".into(),
                    path: "/".into(),
                    status: 200,
                    ms: 0,
                    records: keys.len(),
                },
            },
            commit: PageCommit::default(),
            items: keys
                .iter()
                .map(|(key, content)| Prepared {
                    key: (*key).to_owned(),
                    key_hash: key.as_bytes().to_vec(),
                    content_hash: content.to_vec(),
                    record: Arc::default(),
                    source: Json::Null,
                })
                .collect(),
            ledger,
            watermark: None,
        }
    }

    #[test]
    fn a_page_is_resolved_against_pages_written_after_its_ledger_lookup_newest_first() {
        // The lookup saw "a" and "b" as they were before the last two pages were written;
        // the page before last delivered "b" (as cus_2) and "c", the last page "c" anew.
        let looked_up = Ledger::from([
            (b"a".to_vec(), entry(b"a1", Some("cus_1"))),
            (b"b".to_vec(), entry(b"b0", None)),
        ]);
        let last = Ledger::from([(b"c".to_vec(), entry(b"c2", Some("cus_3")))]);
        let before_last = Ledger::from([
            (b"b".to_vec(), entry(b"b1", Some("cus_2"))),
            (b"c".to_vec(), entry(b"c1", Some("cus_3"))),
        ]);
        let mut page = staged(
            &[("a", b"a1"), ("b", b"b1"), ("c", b"c1"), ("d", b"d1")],
            looked_up,
        );
        let to_write = page.resolve(&[last, before_last], true);
        let written: Vec<(&str, Option<&str>)> = to_write
            .iter()
            .map(|(p, dest)| (p.key.as_str(), dest.as_deref()))
            .collect();
        // "a" and "b" are unchanged; "c" changed since the page before last (it is
        // written back to its record); "d" is new.
        assert_eq!(written, [("c", Some("cus_3")), ("d", None)]);
        assert_eq!(page.commit.unchanged, 2);
        assert_eq!(page.commit.delivered, ["a", "b"]);
    }
}
