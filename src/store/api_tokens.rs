//! API tokens: bearer credentials for the JSON API, one tenant each. Only digests are kept.

use super::entities::api_tokens;
use super::{Store, now};
use crate::domain::{ApiTokenId, Role, TenantCtx, TenantId, UserId};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::sea_query::ExprTrait;
use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};

/// What is stored for a new token.
pub struct NewApiToken<'a> {
    /// Display name.
    pub name: &'a str,
    /// The first characters of the token, to recognise it in lists.
    pub prefix: &'a str,
    /// SHA-256 of the whole token.
    pub digest: &'a str,
    /// What the token may do.
    pub role: Role,
    /// Optional expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token found by its digest, and whether it may still be used.
#[derive(Clone, Copy, Debug)]
pub struct ApiTokenState {
    /// The token.
    pub token: ActiveApiToken,
    /// Revoked by a member.
    pub revoked: bool,
    /// Past its expiry.
    pub expired: bool,
}

/// What a token grants.
#[derive(Clone, Copy, Debug)]
pub struct ActiveApiToken {
    /// The token.
    pub id: ApiTokenId,
    /// The tenant it acts in.
    pub tenant_id: TenantId,
    /// The role chosen when it was created (a ceiling, not a grant).
    pub role: Role,
    /// The member who created it.
    pub created_by: Option<UserId>,
}

impl Store {
    /// Stores a token for the scoped tenant.
    pub async fn create_api_token(
        &self,
        ctx: &TenantCtx,
        token: NewApiToken<'_>,
    ) -> Result<ApiTokenId, DbErr> {
        let row = api_tokens::ActiveModel {
            name: Set(token.name.to_owned()),
            prefix: Set(token.prefix.to_owned()),
            token_digest: Set(token.digest.to_owned()),
            role: Set(token.role),
            created_by: Set(ctx.user_id()),
            last_used_at: Set(None),
            expires_at: Set(token.expires_at),
            revoked_at: Set(None),
            ..api_tokens::ActiveModel::fresh(ctx)
        }
        .insert(&self.db)
        .await?;
        Ok(row.id)
    }

    /// Tokens of the scoped tenant that are not revoked, newest first.
    pub async fn api_tokens(&self, ctx: &TenantCtx) -> Result<Vec<api_tokens::Model>, DbErr> {
        api_tokens::Entity::find()
            .filter(api_tokens::Column::TenantId.eq(ctx.tenant_id()))
            .filter(api_tokens::Column::RevokedAt.is_null())
            .order_by_desc(api_tokens::Column::CreatedAt)
            .all(&self.db)
            .await
    }

    /// Revokes a token of the scoped tenant; false if none matched.
    pub async fn revoke_api_token(&self, ctx: &TenantCtx, id: ApiTokenId) -> Result<bool, DbErr> {
        let result = api_tokens::Entity::update_many()
            .col_expr(api_tokens::Column::RevokedAt, Expr::value(now()))
            .filter(api_tokens::Column::Id.eq(id))
            .filter(api_tokens::Column::TenantId.eq(ctx.tenant_id()))
            .filter(api_tokens::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// A token by digest, usable or not (so a caller can be told why not). Whether its
    /// creator may still use it is the caller's decision: see
    /// `services::api_tokens::authenticate`.
    pub async fn api_token_by_digest(&self, digest: &str) -> Result<Option<ApiTokenState>, DbErr> {
        let at = now();
        Ok(api_tokens::Entity::find()
            .filter(api_tokens::Column::TokenDigest.eq(digest))
            .one(&self.db)
            .await?
            .map(|t| ApiTokenState {
                revoked: t.revoked_at.is_some(),
                expired: t.expires_at.is_some_and(|e| e <= at),
                token: ActiveApiToken {
                    id: t.id,
                    tenant_id: t.tenant_id,
                    role: t.role,
                    created_by: t.created_by,
                },
            }))
    }

    /// Records that a token was used (at most about once a minute per token).
    pub async fn touch_api_token(&self, id: ApiTokenId) -> Result<(), DbErr> {
        let at = now();
        api_tokens::Entity::update_many()
            .col_expr(api_tokens::Column::LastUsedAt, Expr::value(at))
            .filter(api_tokens::Column::Id.eq(id))
            .filter(
                api_tokens::Column::LastUsedAt
                    .is_null()
                    .or(api_tokens::Column::LastUsedAt.lt(at - chrono::Duration::minutes(1))),
            )
            .exec(&self.db)
            .await
            .map(|_| ())
    }
}
