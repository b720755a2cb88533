//! Server-side sessions (keyed by the digest of the cookie value) and login throttling.

use super::entities::{invitations, login_throttle, sessions, setup_tokens};
use super::{Store, now};
use crate::domain::{TenantId, UserId};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::ExprTrait;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, Set};

impl Store {
    /// Stores a new session.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_session(
        &self,
        digest: &str,
        user: UserId,
        tenant: Option<TenantId>,
        expires_at: DateTime<Utc>,
        ip: Option<String>,
        user_agent: Option<String>,
    ) -> Result<(), DbErr> {
        let at = now();
        sessions::ActiveModel {
            id: Set(digest.to_owned()),
            user_id: Set(user),
            tenant_id: Set(tenant),
            created_at: Set(at),
            last_seen_at: Set(at),
            expires_at: Set(expires_at),
            ip: Set(ip),
            user_agent: Set(user_agent),
        }
        .insert(&self.db)
        .await
        .map(|_| ())
    }

    /// A session by digest.
    pub async fn session(&self, digest: &str) -> Result<Option<sessions::Model>, DbErr> {
        sessions::Entity::find_by_id(digest.to_owned())
            .one(&self.db)
            .await
    }

    /// Records activity, which extends the idle timeout.
    pub async fn touch_session(&self, digest: &str) -> Result<(), DbErr> {
        sessions::Entity::update_many()
            .col_expr(sessions::Column::LastSeenAt, Expr::value(now()))
            .filter(sessions::Column::Id.eq(digest))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    /// Switches the session's current tenant.
    pub async fn set_session_tenant(&self, digest: &str, tenant: TenantId) -> Result<(), DbErr> {
        sessions::Entity::update_many()
            .col_expr(sessions::Column::TenantId, Expr::value(tenant))
            .filter(sessions::Column::Id.eq(digest))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    /// Ends one session.
    pub async fn delete_session(&self, digest: &str) -> Result<(), DbErr> {
        sessions::Entity::delete_many()
            .filter(sessions::Column::Id.eq(digest))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    /// Ends every session of a user except `keep` (the one changing the password).
    pub async fn delete_user_sessions(
        &self,
        user: UserId,
        keep: Option<&str>,
    ) -> Result<u64, DbErr> {
        let mut query = sessions::Entity::delete_many().filter(sessions::Column::UserId.eq(user));
        if let Some(keep) = keep {
            query = query.filter(sessions::Column::Id.ne(keep));
        }
        Ok(query.exec(&self.db).await?.rows_affected)
    }

    /// Deletes sessions past their absolute or idle limit, expired invitations and setup
    /// links, and stale throttle windows. Returns the number of rows removed.
    pub async fn purge_expired(
        &self,
        idle_cutoff: DateTime<Utc>,
        throttle_cutoff: DateTime<Utc>,
    ) -> Result<u64, DbErr> {
        let at = now();
        let mut removed = sessions::Entity::delete_many()
            .filter(
                sessions::Column::ExpiresAt
                    .lte(at)
                    .or(sessions::Column::LastSeenAt.lt(idle_cutoff)),
            )
            .exec(&self.db)
            .await?
            .rows_affected;
        removed += invitations::Entity::delete_many()
            .filter(invitations::Column::ExpiresAt.lte(at))
            .filter(invitations::Column::AcceptedAt.is_null())
            .exec(&self.db)
            .await?
            .rows_affected;
        removed += setup_tokens::Entity::delete_many()
            .filter(setup_tokens::Column::ExpiresAt.lte(at))
            .exec(&self.db)
            .await?
            .rows_affected;
        removed += login_throttle::Entity::delete_many()
            .filter(login_throttle::Column::WindowStartedAt.lt(throttle_cutoff))
            .filter(
                login_throttle::Column::BlockedUntil
                    .is_null()
                    .or(login_throttle::Column::BlockedUntil.lt(at)),
            )
            .exec(&self.db)
            .await?
            .rows_affected;
        Ok(removed)
    }

    /// The throttle state for a key: (failures in the window, window start, blocked until).
    pub async fn throttle(&self, key: &str) -> Result<Option<login_throttle::Model>, DbErr> {
        login_throttle::Entity::find_by_id(key.to_owned())
            .one(&self.db)
            .await
    }

    /// Writes the throttle state for a key.
    pub async fn save_throttle(&self, row: login_throttle::Model) -> Result<(), DbErr> {
        login_throttle::Entity::insert(login_throttle::ActiveModel::from(row))
            .on_conflict(
                OnConflict::column(login_throttle::Column::Key)
                    .update_columns([
                        login_throttle::Column::Failures,
                        login_throttle::Column::WindowStartedAt,
                        login_throttle::Column::BlockedUntil,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await
            .map(|_| ())
    }

    /// Forgets the throttle state for a key (after a successful sign-in).
    pub async fn clear_throttle(&self, key: &str) -> Result<(), DbErr> {
        login_throttle::Entity::delete_many()
            .filter(login_throttle::Column::Key.eq(key))
            .exec(&self.db)
            .await
            .map(|_| ())
    }
}
