//! Observability: per-minute and per-hour metric rollups maintained as runs finish, the
//! facts the dashboard and support search filter on (error class, duration, last run of
//! each flow), alert rules and alerts, notification channels and their deliveries.

use sea_orm_migration::sea_orm::ConnectionTrait;
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE statement.
        for column in [
            string_null("error_class"),
            string_null("error_provider"),
            big_integer_null("duration_ms"),
            boolean("alerts_checked").default(false).to_owned(),
        ] {
            add_column(m, "runs", column).await?;
        }
        for column in [
            uuid_null("last_run_id"),
            string_null("last_run_status"),
            timestamp_with_time_zone_null("last_run_at"),
            timestamp_with_time_zone_null("last_success_at"),
        ] {
            add_column(m, "flows", column).await?;
        }
        // A connect link can reconnect an existing connection (reauth alerts carry one).
        add_column(m, "connect_links", uuid_null("reconnects_connection_id")).await?;
        // Run history pages newest first by the time-ordered id, per tenant and filter.
        index(m, "ix_runs_tenant_id", "runs", &["tenant_id", "id"], false).await?;
        index(
            m,
            "ix_runs_tenant_flow_id",
            "runs",
            &["tenant_id", "flow_id", "id"],
            false,
        )
        .await?;
        index(
            m,
            "ix_runs_tenant_status_id",
            "runs",
            &["tenant_id", "status", "id"],
            false,
        )
        .await?;
        // Retention prunes run logs by age across tenants.
        index(m, "ix_run_events_at", "run_events", &["at"], false).await?;
        index(m, "ix_runs_finished", "runs", &["finished_at"], false).await?;
        let db = m.get_connection();
        // Support searches failed runs across tenants: only failed runs are indexed.
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS ix_runs_failures ON runs (id) WHERE error_class IS NOT NULL",
        )
        .await?;
        // The alert sweep finds finished runs whose alerts were never evaluated.
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS ix_runs_unchecked ON runs (finished_at) \
             WHERE alerts_checked = FALSE AND finished_at IS NOT NULL",
        )
        .await?;

        // One row per tenant, grain (60 = minute, 3600 = hour), bucket and flow. Buckets are
        // Unix seconds so upserts compare integers on every backend.
        m.create_table(
            Table::create()
                .table("metric_rollups")
                .if_not_exists()
                .col(uuid("tenant_id"))
                .col(integer("grain"))
                .col(big_integer("bucket"))
                .col(uuid("flow_id"))
                .col(big_integer("runs"))
                .col(big_integer("succeeded"))
                .col(big_integer("partially_failed"))
                .col(big_integer("failed"))
                .col(big_integer("cancelled"))
                .col(big_integer("records_read"))
                .col(big_integer("records_written"))
                .col(big_integer("records_failed"))
                .col(big_integer("duration_ms"))
                .primary_key(
                    Index::create()
                        .col("tenant_id")
                        .col("grain")
                        .col("bucket")
                        .col("flow_id"),
                )
                .foreign_key(&mut tenant_fk("fk_metric_rollups_tenant", "metric_rollups"))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_metric_rollups_bucket",
            "metric_rollups",
            &["grain", "bucket"],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table("alert_rules")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("tenant_id"))
                .col(uuid_null("flow_id"))
                .col(string("kind"))
                .col(double_null("threshold"))
                .col(integer_null("window_minutes"))
                .col(integer("throttle_minutes"))
                .col(boolean("enabled"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut tenant_fk("fk_alert_rules_tenant", "alert_rules"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_alert_rules_flow")
                        .from("alert_rules", "flow_id")
                        .to("flows", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_alert_rules_tenant",
            "alert_rules",
            &["tenant_id", "kind"],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table("alerts")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("tenant_id"))
                .col(uuid_null("rule_id"))
                .col(string("kind"))
                .col(uuid_null("flow_id"))
                .col(uuid_null("connection_id"))
                .col(uuid_null("run_id"))
                .col(string("subject"))
                .col(string("dedupe_key"))
                .col(string("state"))
                .col(text("title"))
                .col(text("detail"))
                .col(integer("occurrences"))
                .col(boolean("notified"))
                .col(timestamp_with_time_zone("opened_at"))
                .col(timestamp_with_time_zone("last_seen_at"))
                .col(timestamp_with_time_zone_null("acknowledged_at"))
                .col(string_null("acknowledged_by"))
                .col(timestamp_with_time_zone_null("resolved_at"))
                .col(text_null("resolution"))
                .foreign_key(&mut tenant_fk("fk_alerts_tenant", "alerts"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_alerts_rule")
                        .from("alerts", "rule_id")
                        .to("alert_rules", "id")
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
        // Dedupe: at most one unresolved alert per rule and subject, enforced by the
        // database so two evaluators racing cannot both open one.
        db.execute_unprepared(
            "CREATE UNIQUE INDEX IF NOT EXISTS ux_alerts_open ON alerts (tenant_id, dedupe_key) \
             WHERE state <> 'resolved'",
        )
        .await?;
        index(
            m,
            "ix_alerts_tenant_state",
            "alerts",
            &["tenant_id", "state", "id"],
            false,
        )
        .await?;
        index(
            m,
            "ix_alerts_tenant_dedupe",
            "alerts",
            &["tenant_id", "dedupe_key", "opened_at"],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table("notification_channels")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("tenant_id"))
                .col(string("kind"))
                .col(string("name"))
                .col(text("target"))
                .col(text_null("secret_enc"))
                .col(boolean("enabled"))
                .col(text_null("disabled_reason"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut tenant_fk(
                    "fk_notification_channels_tenant",
                    "notification_channels",
                ))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_notification_channels_tenant",
            "notification_channels",
            &["tenant_id", "name"],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table("notification_deliveries")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("tenant_id"))
                .col(uuid("alert_id"))
                .col(uuid("channel_id"))
                .col(string("event"))
                .col(string("state"))
                .col(integer("attempts"))
                .col(integer_null("last_status"))
                .col(text_null("last_error"))
                .col(timestamp_with_time_zone_null("next_attempt_at"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone_null("delivered_at"))
                .foreign_key(&mut tenant_fk(
                    "fk_notification_deliveries_tenant",
                    "notification_deliveries",
                ))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_notification_deliveries_alert")
                        .from("notification_deliveries", "alert_id")
                        .to("alerts", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_notification_deliveries_channel")
                        .from("notification_deliveries", "channel_id")
                        .to("notification_channels", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        // One delivery per alert, channel and event: a re-evaluated alert never notifies twice.
        index(
            m,
            "ux_notification_deliveries_once",
            "notification_deliveries",
            &["tenant_id", "alert_id", "channel_id", "event"],
            true,
        )
        .await?;
        index(
            m,
            "ix_notification_deliveries_pending",
            "notification_deliveries",
            &["state", "next_attempt_at"],
            false,
        )
        .await?;
        index(
            m,
            "ix_notification_deliveries_tenant",
            "notification_deliveries",
            &["tenant_id", "id"],
            false,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "notification_deliveries",
            "notification_channels",
            "alerts",
            "alert_rules",
            "metric_rollups",
        ] {
            m.drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

async fn add_column(
    m: &SchemaManager<'_>,
    table: &'static str,
    mut column: ColumnDef,
) -> Result<(), DbErr> {
    m.alter_table(
        Table::alter()
            .table(table)
            .add_column(&mut column)
            .to_owned(),
    )
    .await
}

fn tenant_fk(name: &str, table: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, "tenant_id")
        .to("tenants", "id")
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
