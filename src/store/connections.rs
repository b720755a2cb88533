//! Connections, their credentials (stored encrypted by the service layer), events, OAuth
//! apps, connect links and one-time OAuth states.

use super::entities::{
    connect_links, connection_events, connections, oauth_apps, oauth_states, tenants,
};
use super::{Store, now};
use crate::domain::{
    ConnectLinkId, ConnectionEvent, ConnectionId, ConnectionStatus, OAuthAppId, TenantCtx, TenantId,
};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use std::time::Duration;

/// New tokens to store after an exchange or refresh.
pub struct StoredTokens {
    /// Encrypted credentials JSON.
    pub credentials_enc: String,
    /// When the access token expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Granted scopes.
    pub scopes: Option<String>,
}

impl Store {
    // ---- OAuth apps -------------------------------------------------------------------

    /// The tenant's OAuth app for a provider.
    pub async fn oauth_app(
        &self,
        ctx: &TenantCtx,
        provider: &str,
    ) -> Result<Option<oauth_apps::Model>, DbErr> {
        oauth_apps::Entity::find()
            .filter(oauth_apps::Column::TenantId.eq(ctx.tenant_id()))
            .filter(oauth_apps::Column::ProviderId.eq(provider))
            .one(&self.db)
            .await
    }

    /// All OAuth apps of the tenant.
    pub async fn oauth_apps(&self, ctx: &TenantCtx) -> Result<Vec<oauth_apps::Model>, DbErr> {
        oauth_apps::Entity::find()
            .filter(oauth_apps::Column::TenantId.eq(ctx.tenant_id()))
            .order_by_asc(oauth_apps::Column::ProviderId)
            .all(&self.db)
            .await
    }

    /// Creates or replaces the tenant's OAuth app for a provider. The id is chosen by the
    /// caller because the secret is encrypted bound to it.
    pub async fn save_oauth_app(
        &self,
        ctx: &TenantCtx,
        id: OAuthAppId,
        provider: &str,
        client_id: &str,
        client_secret_enc: Option<String>,
        config: &str,
    ) -> Result<(), DbErr> {
        let at = now();
        match self.oauth_app(ctx, provider).await? {
            Some(existing) => {
                let mut row: oauth_apps::ActiveModel = existing.into();
                row.client_id = Set(client_id.to_owned());
                row.client_secret_enc = Set(client_secret_enc);
                row.config = Set(config.to_owned());
                row.updated_at = Set(at);
                row.update(&self.db).await.map(|_| ())
            }
            None => oauth_apps::ActiveModel {
                id: Set(id),
                provider_id: Set(provider.to_owned()),
                client_id: Set(client_id.to_owned()),
                client_secret_enc: Set(client_secret_enc),
                config: Set(config.to_owned()),
                ..oauth_apps::ActiveModel::fresh(ctx)
            }
            .insert(&self.db)
            .await
            .map(|_| ()),
        }
    }

    /// Deletes the tenant's OAuth app for a provider.
    pub async fn delete_oauth_app(&self, ctx: &TenantCtx, provider: &str) -> Result<bool, DbErr> {
        let result = oauth_apps::Entity::delete_many()
            .filter(oauth_apps::Column::TenantId.eq(ctx.tenant_id()))
            .filter(oauth_apps::Column::ProviderId.eq(provider))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    // ---- Connections ------------------------------------------------------------------

    /// Stores a new connection.
    pub async fn insert_connection(
        &self,
        ctx: &TenantCtx,
        row: connections::ActiveModel,
    ) -> Result<(), DbErr> {
        // Scoped here too, whatever the caller set.
        let mut row = row;
        row.tenant_id = Set(ctx.tenant_id());
        row.insert(&self.db).await.map(|_| ())
    }

    /// The tenant's connections, newest first.
    pub async fn connections(&self, ctx: &TenantCtx) -> Result<Vec<connections::Model>, DbErr> {
        connections::Entity::find()
            .filter(connections::Column::TenantId.eq(ctx.tenant_id()))
            .order_by_desc(connections::Column::CreatedAt)
            .all(&self.db)
            .await
    }

    /// One connection of the tenant.
    pub async fn connection(
        &self,
        ctx: &TenantCtx,
        id: ConnectionId,
    ) -> Result<Option<connections::Model>, DbErr> {
        super::by_key(
            connections::Entity::find_by_id(id)
                .filter(connections::Column::TenantId.eq(ctx.tenant_id())),
            &self.db,
        )
        .await
    }

    /// The tenant's connections among `ids` (each once).
    pub async fn connections_by_id(
        &self,
        ctx: &TenantCtx,
        ids: &[ConnectionId],
    ) -> Result<Vec<connections::Model>, DbErr> {
        connections::Entity::find()
            .filter(connections::Column::TenantId.eq(ctx.tenant_id()))
            .filter(connections::Column::Id.is_in(ids.iter().copied()))
            .all(&self.db)
            .await
    }

    /// Stores new tokens if the token version is still `expected` (compare-and-set, so two
    /// processes can never both write), bumps the version, marks the connection active and
    /// releases any refresh lease. False when someone else wrote first.
    pub async fn store_tokens(
        &self,
        ctx: &TenantCtx,
        id: ConnectionId,
        expected: i64,
        tokens: StoredTokens,
        lease_holder: Option<&str>,
    ) -> Result<bool, DbErr> {
        let refreshed = lease_holder.is_some();
        let at = now();
        let mut update = connections::Entity::update_many()
            .col_expr(
                connections::Column::CredentialsEnc,
                Expr::value(tokens.credentials_enc),
            )
            .col_expr(
                connections::Column::AccessExpiresAt,
                Expr::value(tokens.expires_at),
            )
            .col_expr(
                connections::Column::TokenVersion,
                Expr::col(connections::Column::TokenVersion).add(1),
            )
            .col_expr(
                connections::Column::Status,
                Expr::value(ConnectionStatus::Active.as_str()),
            )
            .col_expr(
                connections::Column::LastError,
                Expr::value(Option::<String>::None),
            )
            .col_expr(connections::Column::RefreshFailures, Expr::value(0))
            .col_expr(
                connections::Column::LeaseHolder,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                connections::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(connections::Column::UpdatedAt, Expr::value(at));
        if tokens.scopes.is_some() {
            update = update.col_expr(connections::Column::Scopes, Expr::value(tokens.scopes));
        }
        if refreshed {
            update = update.col_expr(connections::Column::LastRefreshAt, Expr::value(at));
        }
        let mut update = update
            .filter(connections::Column::Id.eq(id))
            .filter(connections::Column::TenantId.eq(ctx.tenant_id()))
            .filter(connections::Column::TokenVersion.eq(expected));
        if let Some(holder) = lease_holder {
            // Only the lease holder may store a refresh result.
            update = update.filter(connections::Column::LeaseHolder.eq(holder));
        }
        Ok(update.exec(&self.db).await?.rows_affected == 1)
    }

    /// Replaces credentials and settings on reconnect.
    pub async fn reconnect(
        &self,
        ctx: &TenantCtx,
        id: ConnectionId,
        tokens: StoredTokens,
        config: &str,
    ) -> Result<bool, DbErr> {
        let Some(current) = self.connection(ctx, id).await? else {
            return Ok(false);
        };
        connections::Entity::update_many()
            .col_expr(connections::Column::Config, Expr::value(config))
            .filter(connections::Column::Id.eq(id))
            .filter(connections::Column::TenantId.eq(ctx.tenant_id()))
            .exec(&self.db)
            .await?;
        self.store_tokens(ctx, id, current.token_version, tokens, None)
            .await
    }

    /// Replaces a connection's values (a choice made after connecting); false when it
    /// is not in this tenant.
    pub async fn set_connection_config(
        &self,
        ctx: &TenantCtx,
        id: ConnectionId,
        config: &str,
    ) -> Result<bool, DbErr> {
        let result = connections::Entity::update_many()
            .col_expr(connections::Column::Config, Expr::value(config))
            .col_expr(connections::Column::UpdatedAt, Expr::value(now()))
            .filter(connections::Column::Id.eq(id))
            .filter(connections::Column::TenantId.eq(ctx.tenant_id()))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Marks an active connection at token `version` as needing a reconnect; false when the
    /// credentials changed meanwhile (a concurrent refresh or reconnect) or it is not active.
    pub async fn mark_reauth_required(
        &self,
        ctx: &TenantCtx,
        id: ConnectionId,
        version: i64,
        last_error: &str,
    ) -> Result<bool, DbErr> {
        let result = connections::Entity::update_many()
            .col_expr(
                connections::Column::Status,
                Expr::value(ConnectionStatus::ReauthRequired.as_str()),
            )
            .col_expr(connections::Column::LastError, Expr::value(last_error))
            .col_expr(connections::Column::UpdatedAt, Expr::value(now()))
            .filter(connections::Column::Id.eq(id))
            .filter(connections::Column::TenantId.eq(ctx.tenant_id()))
            .filter(connections::Column::TokenVersion.eq(version))
            .filter(connections::Column::Status.eq(ConnectionStatus::Active))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Counts a failed refresh and releases our lease.
    pub async fn record_refresh_failure(
        &self,
        ctx: &TenantCtx,
        id: ConnectionId,
        holder: &str,
        error: &str,
    ) -> Result<(), DbErr> {
        connections::Entity::update_many()
            .col_expr(
                connections::Column::RefreshFailures,
                Expr::col(connections::Column::RefreshFailures).add(1),
            )
            .col_expr(connections::Column::LastError, Expr::value(error))
            .col_expr(
                connections::Column::LeaseHolder,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                connections::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(connections::Column::Id.eq(id))
            .filter(connections::Column::TenantId.eq(ctx.tenant_id()))
            .filter(connections::Column::LeaseHolder.eq(holder))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    /// Takes the refresh lease of a connection if free (or expired) and the token version
    /// is still `version`: the one process that gets it refreshes, the others wait.
    pub async fn try_lease_connection(
        &self,
        ctx: &TenantCtx,
        id: ConnectionId,
        version: i64,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, DbErr> {
        let at = now();
        let until = at + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(30));
        let result = connections::Entity::update_many()
            .col_expr(connections::Column::LeaseHolder, Expr::value(holder))
            .col_expr(connections::Column::LeaseUntil, Expr::value(until))
            .filter(connections::Column::Id.eq(id))
            .filter(connections::Column::TenantId.eq(ctx.tenant_id()))
            .filter(connections::Column::TokenVersion.eq(version))
            .filter(
                connections::Column::LeaseUntil
                    .is_null()
                    .or(connections::Column::LeaseUntil.lt(at)),
            )
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Releases a refresh lease we hold (after a failure).
    pub async fn release_connection_lease(
        &self,
        ctx: &TenantCtx,
        id: ConnectionId,
        holder: &str,
    ) -> Result<(), DbErr> {
        connections::Entity::update_many()
            .col_expr(
                connections::Column::LeaseHolder,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                connections::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(connections::Column::Id.eq(id))
            .filter(connections::Column::TenantId.eq(ctx.tenant_id()))
            .filter(connections::Column::LeaseHolder.eq(holder))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    /// Records use (at most about once a minute).
    pub async fn touch_connection(&self, ctx: &TenantCtx, id: ConnectionId) -> Result<(), DbErr> {
        let at = now();
        connections::Entity::update_many()
            .col_expr(connections::Column::LastUsedAt, Expr::value(at))
            .filter(connections::Column::Id.eq(id))
            .filter(connections::Column::TenantId.eq(ctx.tenant_id()))
            .filter(
                connections::Column::LastUsedAt
                    .is_null()
                    .or(connections::Column::LastUsedAt.lt(at - chrono::Duration::minutes(1))),
            )
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    /// Deletes the stored credentials (disconnect).
    pub async fn wipe_credentials(&self, ctx: &TenantCtx, id: ConnectionId) -> Result<(), DbErr> {
        connections::Entity::update_many()
            .col_expr(
                connections::Column::CredentialsEnc,
                Expr::value(Option::<String>::None),
            )
            .col_expr(
                connections::Column::AccessExpiresAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                connections::Column::Status,
                Expr::value(ConnectionStatus::Disconnected.as_str()),
            )
            .col_expr(
                connections::Column::TokenVersion,
                Expr::col(connections::Column::TokenVersion).add(1),
            )
            .col_expr(connections::Column::UpdatedAt, Expr::value(now()))
            .filter(connections::Column::Id.eq(id))
            .filter(connections::Column::TenantId.eq(ctx.tenant_id()))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    /// Active OAuth connections (all tenants) whose access token expires before `before`:
    /// the proactive refresher's work list.
    pub async fn expiring_connections(
        &self,
        before: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<(TenantId, ConnectionId)>, DbErr> {
        Ok(connections::Entity::find()
            .filter(connections::Column::Status.eq(ConnectionStatus::Active))
            .filter(connections::Column::AccessExpiresAt.lt(before))
            .order_by_asc(connections::Column::AccessExpiresAt)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|c| (c.tenant_id, c.id))
            .collect())
    }

    /// Appends to a connection's timeline.
    pub async fn record_connection_event(
        &self,
        ctx: &TenantCtx,
        id: ConnectionId,
        kind: ConnectionEvent,
        detail: Option<String>,
    ) -> Result<(), DbErr> {
        connection_events::ActiveModel {
            connection_id: Set(id),
            kind: Set(kind),
            detail: Set(detail),
            ..connection_events::ActiveModel::fresh(ctx)
        }
        .insert(&self.db)
        .await
        .map(|_| ())
    }

    /// A connection's timeline, newest first.
    pub async fn connection_events(
        &self,
        ctx: &TenantCtx,
        id: ConnectionId,
        limit: u64,
    ) -> Result<Vec<connection_events::Model>, DbErr> {
        connection_events::Entity::find()
            .filter(connection_events::Column::TenantId.eq(ctx.tenant_id()))
            .filter(connection_events::Column::ConnectionId.eq(id))
            .order_by_desc(connection_events::Column::CreatedAt)
            .limit(limit)
            .all(&self.db)
            .await
    }

    // ---- Connect links ----------------------------------------------------------------

    /// Stores a connect link.
    pub async fn insert_connect_link(
        &self,
        ctx: &TenantCtx,
        row: connect_links::ActiveModel,
    ) -> Result<(), DbErr> {
        // Scoped here too, whatever the caller set.
        let mut row = row;
        row.tenant_id = Set(ctx.tenant_id());
        row.insert(&self.db).await.map(|_| ())
    }

    /// The tenant's connect links, newest first.
    pub async fn connect_links(
        &self,
        ctx: &TenantCtx,
        limit: u64,
    ) -> Result<Vec<connect_links::Model>, DbErr> {
        connect_links::Entity::find()
            .filter(connect_links::Column::TenantId.eq(ctx.tenant_id()))
            .order_by_desc(connect_links::Column::CreatedAt)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// One connect link of the tenant.
    pub async fn connect_link(
        &self,
        ctx: &TenantCtx,
        id: ConnectLinkId,
    ) -> Result<Option<connect_links::Model>, DbErr> {
        connect_links::Entity::find_by_id(id)
            .filter(connect_links::Column::TenantId.eq(ctx.tenant_id()))
            .one(&self.db)
            .await
    }

    /// Revokes an unused link of the tenant.
    pub async fn revoke_connect_link(
        &self,
        ctx: &TenantCtx,
        id: ConnectLinkId,
    ) -> Result<bool, DbErr> {
        let result = connect_links::Entity::update_many()
            .col_expr(connect_links::Column::RevokedAt, Expr::value(now()))
            .filter(connect_links::Column::Id.eq(id))
            .filter(connect_links::Column::TenantId.eq(ctx.tenant_id()))
            .filter(connect_links::Column::UsedAt.is_null())
            .filter(connect_links::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// A connect link by its secret's digest, with its tenant's name. The link is the
    /// authorisation, so this lookup is not tenant-scoped.
    pub async fn connect_link_by_digest(
        &self,
        digest: &str,
    ) -> Result<Option<(connect_links::Model, String)>, DbErr> {
        let Some(link) = connect_links::Entity::find()
            .filter(connect_links::Column::TokenDigest.eq(digest))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let name = tenants::Entity::find_by_id(link.tenant_id)
            .one(&self.db)
            .await?
            .map(|t| t.name)
            .unwrap_or_default();
        Ok(Some((link, name)))
    }

    /// Claims a link for connecting: true exactly once, and only while it is valid.
    pub async fn claim_connect_link(
        &self,
        ctx: &TenantCtx,
        id: ConnectLinkId,
    ) -> Result<bool, DbErr> {
        let at = now();
        let result = connect_links::Entity::update_many()
            .col_expr(connect_links::Column::UsedAt, Expr::value(at))
            .filter(connect_links::Column::Id.eq(id))
            .filter(connect_links::Column::TenantId.eq(ctx.tenant_id()))
            .filter(connect_links::Column::UsedAt.is_null())
            .filter(connect_links::Column::RevokedAt.is_null())
            .filter(connect_links::Column::ExpiresAt.gt(at))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Records a link's outcome. With a connection, the (claimed) link is done; without,
    /// the claim is released so the customer can try again.
    pub async fn finish_connect_link(
        &self,
        ctx: &TenantCtx,
        id: ConnectLinkId,
        outcome: &str,
        detail: Option<String>,
        connection: Option<ConnectionId>,
    ) -> Result<(), DbErr> {
        let mut update = connect_links::Entity::update_many()
            .col_expr(connect_links::Column::Outcome, Expr::value(outcome))
            .col_expr(connect_links::Column::OutcomeDetail, Expr::value(detail));
        update = match connection {
            Some(c) => update.col_expr(connect_links::Column::ConnectionId, Expr::value(c)),
            None => update.col_expr(
                connect_links::Column::UsedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            ),
        };
        update
            .filter(connect_links::Column::Id.eq(id))
            .filter(connect_links::Column::TenantId.eq(ctx.tenant_id()))
            .filter(connect_links::Column::ConnectionId.is_null())
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    // ---- OAuth states -----------------------------------------------------------------

    /// Stores a pending authorization (keyed by the digest of its `state`).
    pub async fn insert_oauth_state(
        &self,
        ctx: &TenantCtx,
        row: oauth_states::Model,
    ) -> Result<(), DbErr> {
        let mut row = row;
        row.tenant_id = ctx.tenant_id();
        oauth_states::ActiveModel::from(row)
            .insert(&self.db)
            .await
            .map(|_| ())
    }

    /// Takes a pending authorization: returns it once, never again (even under races),
    /// and only before it expires. The `state` is the authorisation, so not tenant-scoped.
    pub async fn take_oauth_state(
        &self,
        digest: &str,
    ) -> Result<Option<oauth_states::Model>, DbErr> {
        let Some(row) = oauth_states::Entity::find_by_id(digest.to_owned())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let deleted = oauth_states::Entity::delete_many()
            .filter(oauth_states::Column::Id.eq(digest))
            .exec(&self.db)
            .await?;
        Ok((deleted.rows_affected == 1 && row.expires_at > now()).then_some(row))
    }

    /// Deletes abandoned authorizations.
    pub async fn purge_oauth_states(&self) -> Result<u64, DbErr> {
        Ok(oauth_states::Entity::delete_many()
            .filter(oauth_states::Column::ExpiresAt.lte(now()))
            .exec(&self.db)
            .await?
            .rows_affected)
    }

    // ---- Key rotation -----------------------------------------------------------------

    /// Every encrypted value: (table, row id, tenant id, ciphertext).
    pub async fn encrypted_values(
        &self,
    ) -> Result<Vec<(&'static str, String, TenantId, String)>, DbErr> {
        let mut out = Vec::new();
        for app in oauth_apps::Entity::find().all(&self.db).await? {
            if let Some(v) = app.client_secret_enc {
                out.push(("oauth_apps", app.id.to_string(), app.tenant_id, v));
            }
        }
        for c in connections::Entity::find().all(&self.db).await? {
            if let Some(v) = c.credentials_enc {
                out.push(("connections", c.id.to_string(), c.tenant_id, v));
            }
        }
        for s in oauth_states::Entity::find().all(&self.db).await? {
            out.push(("oauth_states", s.id, s.tenant_id, s.verifier_enc));
        }
        for f in super::entities::flows::Entity::find().all(&self.db).await? {
            if let Some(v) = f.webhook_secret_enc {
                out.push(("flows", f.id.to_string(), f.tenant_id, v));
            }
        }
        for c in super::entities::notification_channels::Entity::find()
            .all(&self.db)
            .await?
        {
            if let Some(v) = c.secret_enc {
                out.push(("notification_channels", c.id.to_string(), c.tenant_id, v));
            }
        }
        Ok(out)
    }

    /// Replaces one encrypted value if it is unchanged since it was read.
    pub async fn replace_encrypted(
        &self,
        table: &str,
        id: &str,
        old: &str,
        new: &str,
    ) -> Result<bool, DbErr> {
        let affected = match table {
            "oauth_apps" => {
                oauth_apps::Entity::update_many()
                    .col_expr(oauth_apps::Column::ClientSecretEnc, Expr::value(new))
                    .filter(
                        oauth_apps::Column::Id.eq(uuid::Uuid::parse_str(id).unwrap_or_default()),
                    )
                    .filter(oauth_apps::Column::ClientSecretEnc.eq(old))
                    .exec(&self.db)
                    .await?
                    .rows_affected
            }
            "connections" => {
                connections::Entity::update_many()
                    .col_expr(connections::Column::CredentialsEnc, Expr::value(new))
                    .filter(
                        connections::Column::Id.eq(uuid::Uuid::parse_str(id).unwrap_or_default()),
                    )
                    .filter(connections::Column::CredentialsEnc.eq(old))
                    .exec(&self.db)
                    .await?
                    .rows_affected
            }
            "oauth_states" => {
                oauth_states::Entity::update_many()
                    .col_expr(oauth_states::Column::VerifierEnc, Expr::value(new))
                    .filter(oauth_states::Column::Id.eq(id))
                    .filter(oauth_states::Column::VerifierEnc.eq(old))
                    .exec(&self.db)
                    .await?
                    .rows_affected
            }
            "flows" => {
                use super::entities::flows;
                flows::Entity::update_many()
                    .col_expr(flows::Column::WebhookSecretEnc, Expr::value(new))
                    .filter(flows::Column::Id.eq(uuid::Uuid::parse_str(id).unwrap_or_default()))
                    .filter(flows::Column::WebhookSecretEnc.eq(old))
                    .exec(&self.db)
                    .await?
                    .rows_affected
            }
            "notification_channels" => {
                use super::entities::notification_channels as channels;
                channels::Entity::update_many()
                    .col_expr(channels::Column::SecretEnc, Expr::value(new))
                    .filter(channels::Column::Id.eq(uuid::Uuid::parse_str(id).unwrap_or_default()))
                    .filter(channels::Column::SecretEnc.eq(old))
                    .exec(&self.db)
                    .await?
                    .rows_affected
            }
            _ => 0,
        };
        Ok(affected == 1)
    }
}
