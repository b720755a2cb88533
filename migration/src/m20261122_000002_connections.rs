//! Connections: tenant OAuth apps, connections with encrypted credentials and their event
//! timeline, connect links for end customers, one-time OAuth states, and the tables of the
//! built-in sandbox SaaS (OAuth server, CRM and ERP records).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("oauth_apps")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("tenant_id"))
                .col(string("provider_id"))
                .col(string("client_id"))
                .col(text_null("client_secret_enc"))
                .col(text("config"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut tenant_fk("fk_oauth_apps_tenant", "oauth_apps"))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_oauth_apps_tenant_provider",
            "oauth_apps",
            &["tenant_id", "provider_id"],
            true,
        )
        .await?;

        m.create_table(
            Table::create()
                .table("connections")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("tenant_id"))
                .col(string("provider_id"))
                .col(string("name"))
                .col(string("status"))
                .col(text_null("credentials_enc"))
                .col(text("config"))
                .col(text_null("scopes"))
                .col(big_integer("token_version"))
                .col(timestamp_with_time_zone_null("access_expires_at"))
                .col(timestamp_with_time_zone_null("last_refresh_at"))
                .col(timestamp_with_time_zone_null("last_used_at"))
                .col(text_null("last_error"))
                .col(integer("refresh_failures"))
                .col(string_null("lease_holder"))
                .col(timestamp_with_time_zone_null("lease_until"))
                .col(string_null("customer_ref"))
                .col(uuid_null("connect_link_id"))
                .col(uuid_null("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(&mut tenant_fk("fk_connections_tenant", "connections"))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_connections_tenant_created",
            "connections",
            &["tenant_id", "created_at"],
            false,
        )
        .await?;
        // The proactive refresher scans across tenants for tokens about to expire.
        index(
            m,
            "ix_connections_expiry",
            "connections",
            &["status", "access_expires_at"],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table("connection_events")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("tenant_id"))
                .col(uuid("connection_id"))
                .col(string("kind"))
                .col(text_null("detail"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(&mut tenant_fk(
                    "fk_connection_events_tenant",
                    "connection_events",
                ))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_connection_events_tenant_conn",
            "connection_events",
            &["tenant_id", "connection_id", "created_at"],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table("connect_links")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("tenant_id"))
                .col(string("provider_id"))
                .col(string_uniq("token_digest"))
                .col(string("customer_ref"))
                .col(uuid_null("created_by"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("expires_at"))
                .col(timestamp_with_time_zone_null("used_at"))
                .col(timestamp_with_time_zone_null("revoked_at"))
                .col(uuid_null("connection_id"))
                .col(string_null("outcome"))
                .col(text_null("outcome_detail"))
                .foreign_key(&mut tenant_fk("fk_connect_links_tenant", "connect_links"))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_connect_links_tenant_created",
            "connect_links",
            &["tenant_id", "created_at"],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table("oauth_states")
                .if_not_exists()
                .col(string("id").primary_key())
                .col(uuid("tenant_id"))
                .col(string("provider_id"))
                .col(string_null("session_digest"))
                .col(uuid_null("connect_link_id"))
                .col(uuid_null("connection_id"))
                .col(string("connection_name"))
                .col(text("config"))
                .col(text("verifier_enc"))
                .col(string("redirect_uri"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("expires_at"))
                .foreign_key(&mut tenant_fk("fk_oauth_states_tenant", "oauth_states"))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_oauth_states_expires",
            "oauth_states",
            &["expires_at"],
            false,
        )
        .await?;

        // The built-in sandbox SaaS keeps its own state, apart from Sluice's.
        m.create_table(
            Table::create()
                .table("sandbox_grants")
                .if_not_exists()
                .col(string("id").primary_key())
                .col(string("kind"))
                .col(string("client_id"))
                .col(string("family"))
                .col(string("scope"))
                .col(string_null("redirect_uri"))
                .col(string_null("challenge"))
                .col(timestamp_with_time_zone("expires_at"))
                .col(boolean("used"))
                .col(boolean("revoked"))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_sandbox_grants_family",
            "sandbox_grants",
            &["family"],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table("sandbox_records")
                .if_not_exists()
                .col(string("object"))
                .col(string("id"))
                .col(big_integer("seq"))
                .col(text("data"))
                .col(string_null("ext_key"))
                .col(timestamp_with_time_zone("updated_at"))
                .primary_key(Index::create().col("object").col("id"))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_sandbox_records_seq",
            "sandbox_records",
            &["object", "seq"],
            true,
        )
        .await?;
        index(
            m,
            "ix_sandbox_records_ext_key",
            "sandbox_records",
            &["object", "ext_key"],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table("sandbox_counters")
                .if_not_exists()
                .col(string("name").primary_key())
                .col(big_integer("value"))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "sandbox_counters",
            "sandbox_records",
            "sandbox_grants",
            "oauth_states",
            "connect_links",
            "connection_events",
            "connections",
            "oauth_apps",
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
