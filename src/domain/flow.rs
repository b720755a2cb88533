//! Flows: the definition a tenant admin edits (a [`FlowSpec`], stored immutably per
//! version) and the states of flows, runs and dead letters.

use super::ids::{ConnectionId, DeadLetterId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

named_states!(
    /// Whether a flow's triggers fire.
    FlowStatus {
        /// Triggers fire.
        Active = ("active", "Active", "success"),
        /// Triggers do not fire; "Run now" still works.
        Paused = ("paused", "Paused", "warning"),
    }
);

named_states!(
    /// Where a run stands. queued → running → one of the four ends.
    RunStatus {
        /// Waiting for a worker.
        Queued = ("queued", "Queued", "neutral"),
        /// A worker is paging through the source.
        Running = ("running", "Running", "info"),
        /// Every record delivered, skipped or filtered.
        Succeeded = ("succeeded", "Succeeded", "success"),
        /// Finished, but some records went to the dead letters.
        PartiallyFailed = ("partially_failed", "Partially failed", "warning"),
        /// Stopped by an error that affects the whole run.
        Failed = ("failed", "Failed", "danger"),
        /// Stopped on request.
        Cancelled = ("cancelled", "Cancelled", "neutral"),
    }
);

impl RunStatus {
    /// Whether the run has ended.
    pub fn is_finished(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    /// Whether the run went through to the end (some records may have failed).
    pub fn is_success(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::PartiallyFailed)
    }
}

named_states!(
    /// What started a run.
    RunTrigger {
        /// "Run now" by a member or API client.
        Manual = ("manual", "Run now", "neutral"),
        /// The schedule (cron or interval).
        Schedule = ("schedule", "Schedule", "neutral"),
        /// An inbound webhook.
        Webhook = ("webhook", "Webhook", "neutral"),
        /// A replay of dead letters.
        Replay = ("replay", "Replay", "neutral"),
    }
);

named_states!(
    /// Why one record went to the dead letters.
    RecordFault {
        /// A mapping expression failed on it.
        Mapping = ("mapping", "Mapping", "danger"),
        /// The filter expression failed on it.
        Filter = ("filter", "Filter", "danger"),
        /// It broke a validation rule.
        Validation = ("validation", "Validation", "danger"),
        /// The destination refused it.
        Rejected = ("rejected", "Rejected", "danger"),
    }
);

named_states!(
    /// A dead letter's state.
    DeadLetterState {
        /// Waiting for a replay or a discard.
        Open = ("open", "Open", "danger"),
        /// Delivered by a replay (or a later run).
        Replayed = ("replayed", "Replayed", "success"),
        /// Dismissed by a member.
        Discarded = ("discarded", "Discarded", "neutral"),
    }
);

named_states!(
    /// How records are written to the destination.
    WriteMode {
        /// New records are created; records seen before are updated by the id the
        /// destination gave them.
        Create = ("create", "Create", "neutral"),
        /// Existing destination records are updated (matched by the key field).
        Update = ("update", "Update", "neutral"),
        /// Created or updated, matched by the key field.
        Upsert = ("upsert", "Upsert by key", "neutral"),
    }
);

named_states!(
    /// What starts a flow besides "Run now".
    TriggerKind {
        /// Only "Run now" and the API.
        Manual = ("manual", "Manual only", "neutral"),
        /// Every N minutes.
        Interval = ("interval", "Fixed interval", "neutral"),
        /// A cron schedule in the tenant's time zone.
        Cron = ("cron", "Cron schedule", "neutral"),
        /// An inbound, signed webhook.
        Webhook = ("webhook", "Inbound webhook", "neutral"),
    }
);

/// Where records come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SourceSpec {
    /// Connection to read with.
    #[schema(value_type = uuid::Uuid)]
    pub connection_id: ConnectionId,
    /// Provider object (e.g. `contacts`).
    pub object: String,
    /// Only fetch records changed since the last successful run (when the provider
    /// offers a last-modified filter).
    pub incremental: bool,
}

/// Where records go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DestinationSpec {
    /// Connection to write with.
    #[schema(value_type = uuid::Uuid)]
    pub connection_id: ConnectionId,
    /// Provider object (e.g. `customers`).
    pub object: String,
    /// Create, update or upsert.
    pub write_mode: WriteMode,
    /// Destination field that identifies a record for update and upsert (e.g.
    /// `external_id`).
    pub key_field: String,
}

/// One mapping row as entered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MappingRowSpec {
    /// Destination field.
    pub target: String,
    /// Expression over `record`.
    pub expression: String,
    /// Default when the expression yields nothing.
    #[serde(default)]
    pub default: String,
    /// Type name (any, text, integer, number, boolean, date, datetime).
    #[serde(default)]
    pub field_type: String,
}

/// One validation rule as entered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ValidationSpec {
    /// Mapped field it checks.
    pub target: String,
    /// required, type, pattern, enum or expression.
    pub rule: String,
    /// The pattern, the type, the comma-separated values or the expression.
    #[serde(default)]
    pub argument: String,
    /// Message shown when it fails.
    #[serde(default)]
    pub message: String,
}

/// What starts the flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TriggerSpec {
    /// Kind.
    pub kind: TriggerKind,
    /// For `interval`: minutes between runs.
    #[serde(default)]
    pub interval_minutes: Option<u32>,
    /// For `cron`: the expression (5 fields).
    #[serde(default)]
    pub cron: Option<String>,
}

/// A flow's whole definition. Each save stores one, immutably, as a new version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FlowSpec {
    /// Display name.
    pub name: String,
    /// Source.
    pub source: SourceSpec,
    /// Destination.
    pub destination: DestinationSpec,
    /// Mapping rows.
    pub mapping: Vec<MappingRowSpec>,
    /// Validation rules.
    #[serde(default)]
    pub validations: Vec<ValidationSpec>,
    /// Records for which this is false are skipped.
    #[serde(default)]
    pub filter: String,
    /// Static lookup tables: table → key → value.
    #[serde(default)]
    pub lookups: BTreeMap<String, BTreeMap<String, String>>,
    /// Expression identifying a source record (dedup and idempotency key).
    pub record_key: String,
    /// Records per destination write.
    pub batch_size: u32,
    /// Trigger.
    pub trigger: TriggerSpec,
    /// Consecutive failed runs after which the flow pauses itself (0: never).
    pub auto_pause_after: u32,
}

impl FlowSpec {
    /// Lines describing what changed from `older` to this version, for the diff page.
    pub fn changes_from(&self, older: &FlowSpec) -> Vec<(String, String, String)> {
        let a = flatten(older);
        let b = flatten(self);
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter_map(|k| {
                let before = a.get(k).cloned().unwrap_or_default();
                let after = b.get(k).cloned().unwrap_or_default();
                (before != after).then(|| (k.clone(), before, after))
            })
            .collect()
    }
}

/// The spec as `path → value` lines (`mapping.2.expression → record.email`).
fn flatten(spec: &FlowSpec) -> BTreeMap<String, String> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&path, v, out);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(&format!("{prefix}.{}", i + 1), v, out);
                }
            }
            serde_json::Value::Null => {}
            serde_json::Value::String(s) if s.is_empty() => {}
            serde_json::Value::String(s) => {
                out.insert(prefix.to_owned(), s.clone());
            }
            other => {
                out.insert(prefix.to_owned(), other.to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(value) = serde_json::to_value(spec) {
        walk("", &value, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FlowSpec {
        FlowSpec {
            name: "Contacts to customers".into(),
            source: SourceSpec {
                connection_id: ConnectionId::new(),
                object: "contacts".into(),
                incremental: false,
            },
            destination: DestinationSpec {
                connection_id: ConnectionId::new(),
                object: "customers".into(),
                write_mode: WriteMode::Upsert,
                key_field: "external_id".into(),
            },
            mapping: vec![MappingRowSpec {
                target: "email".into(),
                expression: "record.email".into(),
                default: String::new(),
                field_type: "text".into(),
            }],
            validations: vec![],
            filter: String::new(),
            lookups: BTreeMap::new(),
            record_key: "record.id".into(),
            batch_size: 100,
            trigger: TriggerSpec {
                kind: TriggerKind::Manual,
                interval_minutes: None,
                cron: None,
            },
            auto_pause_after: 5,
        }
    }

    #[test]
    fn a_diff_lists_exactly_the_changed_lines() {
        let old = spec();
        let mut new = old.clone();
        new.mapping[0].expression = "record.email | lower".into();
        new.batch_size = 200;
        let changes = new.changes_from(&old);
        assert_eq!(
            changes,
            vec![
                ("batch_size".into(), "100".into(), "200".into()),
                (
                    "mapping.1.expression".into(),
                    "record.email".into(),
                    "record.email | lower".into()
                ),
            ]
        );
    }

    #[test]
    fn states_round_trip_through_their_stored_names() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>(), Ok(*s));
        }
        assert!("nonsense".parse::<RunStatus>().is_err());
    }
}

/// Which dead letters a replay or discard acts on. Acting on every open dead letter is a
/// choice the caller states; nothing (a missing or unreadable selection) ever means "all".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LetterSelection {
    /// Every open dead letter of the flow.
    All,
    /// These dead letters (never empty).
    Ids(Vec<DeadLetterId>),
}

impl LetterSelection {
    /// A selection of these ids; an empty list is no selection (never "all").
    pub fn of(ids: Vec<DeadLetterId>) -> Option<Self> {
        (!ids.is_empty()).then_some(LetterSelection::Ids(ids))
    }

    /// The ids chosen, or `None` for all open ones.
    pub fn ids(&self) -> Option<&[DeadLetterId]> {
        match self {
            LetterSelection::All => None,
            LetterSelection::Ids(ids) => Some(ids),
        }
    }

    /// How a replay run stores it: JSON `null` for all, the list of ids otherwise.
    pub fn to_stored(&self) -> String {
        serde_json::to_string(&self.ids()).unwrap_or_else(|_| "[]".into())
    }

    /// Reads a stored selection; anything else than `null` or a non-empty list of ids is
    /// an error, never "all".
    pub fn from_stored(text: &str) -> Result<Self, String> {
        match serde_json::from_str::<Option<Vec<DeadLetterId>>>(text) {
            Ok(None) => Ok(LetterSelection::All),
            Ok(Some(ids)) => LetterSelection::of(ids).ok_or_else(|| "an empty selection".into()),
            Err(e) => Err(e.to_string()),
        }
    }
}
