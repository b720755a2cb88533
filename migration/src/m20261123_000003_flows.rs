//! Flows and the sync engine: flows with immutable versions, runs with their step log,
//! dead letters, the record ledger (idempotency and change detection) and inbound webhook
//! events.

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("flows")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("tenant_id"))
                .col(string("name"))
                .col(string("status"))
                .col(uuid("current_version_id"))
                .col(big_integer("version"))
                .col(string("trigger_kind"))
                .col(timestamp_with_time_zone_null("next_run_at"))
                .col(integer("consecutive_failures"))
                .col(text_null("paused_reason"))
                .col(text_null("watermark"))
                .col(string_null("webhook_token"))
                .col(text_null("webhook_secret_enc"))
                .col(uuid("source_connection_id"))
                .col(uuid("destination_connection_id"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut tenant_fk("fk_flows_tenant", "flows"))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_flows_tenant_name",
            "flows",
            &["tenant_id", "name"],
            true,
        )
        .await?;
        // The scheduler scans across tenants for due flows; the webhook endpoint finds its
        // flow by the token in the URL.
        index(m, "ix_flows_due", "flows", &["next_run_at"], false).await?;
        index(
            m,
            "ux_flows_webhook_token",
            "flows",
            &["webhook_token"],
            true,
        )
        .await?;

        m.create_table(
            Table::create()
                .table("flow_versions")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("tenant_id"))
                .col(uuid("flow_id"))
                .col(big_integer("number"))
                .col(text("spec"))
                .col(uuid_null("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut tenant_fk("fk_flow_versions_tenant", "flow_versions"))
                .foreign_key(&mut flow_fk("fk_flow_versions_flow", "flow_versions"))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_flow_versions_number",
            "flow_versions",
            &["tenant_id", "flow_id", "number"],
            true,
        )
        .await?;

        m.create_table(
            Table::create()
                .table("runs")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("tenant_id"))
                .col(uuid("flow_id"))
                .col(uuid("flow_version_id"))
                .col(big_integer("version"))
                .col(string("trigger"))
                .col(string("status"))
                .col(boolean("cancel_requested"))
                .col(text_null("cursor"))
                .col(text_null("watermark"))
                .col(big_integer("pages"))
                .col(big_integer("records_read"))
                .col(big_integer("records_written"))
                .col(big_integer("records_unchanged"))
                .col(big_integer("records_filtered"))
                .col(big_integer("records_failed"))
                .col(big_integer_null("records_total"))
                .col(text_null("replay"))
                .col(text_null("error"))
                .col(string_null("lease_holder"))
                .col(timestamp_with_time_zone_null("heartbeat_at"))
                .col(uuid_null("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("started_at"))
                .col(timestamp_with_time_zone_null("finished_at"))
                .foreign_key(&mut tenant_fk("fk_runs_tenant", "runs"))
                .foreign_key(&mut flow_fk("fk_runs_flow", "runs"))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_runs_tenant_flow_created",
            "runs",
            &["tenant_id", "flow_id", "created_at"],
            false,
        )
        .await?;
        index(
            m,
            "ix_runs_tenant_status",
            "runs",
            &["tenant_id", "status"],
            false,
        )
        .await?;
        // Orphan recovery scans across tenants for running runs whose heartbeat stopped.
        index(
            m,
            "ix_runs_status_heartbeat",
            "runs",
            &["status", "heartbeat_at"],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table("run_events")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("tenant_id"))
                .col(uuid("run_id"))
                .col(timestamp_with_time_zone("at"))
                .col(string("level"))
                .col(text("message"))
                .col(text_null("detail"))
                .foreign_key(&mut tenant_fk("fk_run_events_tenant", "run_events"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_run_events_run")
                        .from("run_events", "run_id")
                        .to("runs", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_run_events_run",
            "run_events",
            &["tenant_id", "run_id", "at"],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table("dead_letters")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("tenant_id"))
                .col(uuid("flow_id"))
                .col(uuid("run_id"))
                .col(text("record_key"))
                .col(text("payload"))
                .col(string("error_class"))
                .col(text("error"))
                .col(integer("attempts"))
                .col(string("state"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut tenant_fk("fk_dead_letters_tenant", "dead_letters"))
                .foreign_key(&mut flow_fk("fk_dead_letters_flow", "dead_letters"))
                .to_owned(),
        )
        .await?;
        // One dead letter per source record and flow: failing again bumps its attempts.
        index(
            m,
            "ux_dead_letters_record",
            "dead_letters",
            &["tenant_id", "flow_id", "record_key"],
            true,
        )
        .await?;
        index(
            m,
            "ix_dead_letters_state",
            "dead_letters",
            &["tenant_id", "flow_id", "state", "updated_at"],
            false,
        )
        .await?;
        index(
            m,
            "ix_dead_letters_run",
            "dead_letters",
            &["tenant_id", "run_id"],
            false,
        )
        .await?;

        // The ledger holds one row per synced record, so it is kept as small as possible:
        // digests instead of keys, no surrogate id, and on SQLite no rowid.
        let sql = match m.get_database_backend() {
            DbBackend::Sqlite => {
                "CREATE TABLE IF NOT EXISTS record_ledger (\
                 tenant_id BLOB NOT NULL, flow_id BLOB NOT NULL, key_hash BLOB NOT NULL, \
                 content_hash BLOB NOT NULL, dest_id TEXT, \
                 PRIMARY KEY (tenant_id, flow_id, key_hash), \
                 FOREIGN KEY (flow_id) REFERENCES flows(id) ON DELETE CASCADE) WITHOUT ROWID"
            }
            _ => {
                "CREATE TABLE IF NOT EXISTS record_ledger (\
                 tenant_id UUID NOT NULL, flow_id UUID NOT NULL REFERENCES flows(id) ON DELETE CASCADE, \
                 key_hash BYTEA NOT NULL, content_hash BYTEA NOT NULL, dest_id TEXT, \
                 PRIMARY KEY (tenant_id, flow_id, key_hash))"
            }
        };
        m.get_connection().execute_unprepared(sql).await?;

        m.create_table(
            Table::create()
                .table("webhook_events")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("tenant_id"))
                .col(uuid("flow_id"))
                .col(string("message_id"))
                .col(timestamp_with_time_zone("received_at"))
                .col(text("payload"))
                .col(uuid_null("run_id"))
                .foreign_key(&mut tenant_fk("fk_webhook_events_tenant", "webhook_events"))
                .foreign_key(&mut flow_fk("fk_webhook_events_flow", "webhook_events"))
                .to_owned(),
        )
        .await?;
        // Replay protection: a message id is accepted once per flow.
        index(
            m,
            "ux_webhook_events_message",
            "webhook_events",
            &["tenant_id", "flow_id", "message_id"],
            true,
        )
        .await?;
        index(
            m,
            "ix_webhook_events_received",
            "webhook_events",
            &["received_at"],
            false,
        )
        .await?;

        // The sandbox remembers idempotency keys of create calls, like real payment and
        // CRM APIs do, so a retried write after a crash does not create twice.
        m.create_table(
            Table::create()
                .table("sandbox_idempotency")
                .if_not_exists()
                .col(string("key").primary_key())
                .col(text("response"))
                .col(timestamp_with_time_zone("created_at"))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "sandbox_idempotency",
            "webhook_events",
            "record_ledger",
            "dead_letters",
            "run_events",
            "runs",
            "flow_versions",
            "flows",
        ] {
            m.drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

fn tenant_fk(name: &str, table: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, "tenant_id")
        .to("tenants", "id")
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn flow_fk(name: &str, table: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, "flow_id")
        .to("flows", "id")
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

async fn index(
    m: &SchemaManager<'_>,
    name: &str,
    table: &'static str,
    cols: &[&'static str],
    unique: bool,
) -> Result<(), DbErr> {
    let mut stmt = Index::create();
    stmt.if_not_exists().name(name).table(table);
    for col in cols {
        stmt.col(*col);
    }
    if unique {
        stmt.unique();
    }
    m.create_index(stmt.to_owned()).await
}
