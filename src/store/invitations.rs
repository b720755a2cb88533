//! Invitations: single-use links that add a person to a tenant with a role.

use super::entities::{invitations, memberships, tenants};
use super::{Store, now};
use crate::domain::{InvitationId, Role, TenantCtx, TenantId, UserId};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set,
    TransactionTrait,
};

/// An invitation looked up by its link, with the tenant it leads to.
#[derive(Clone, Debug)]
pub struct InvitationWithTenant {
    /// The invitation row.
    pub invitation: invitations::Model,
    /// The tenant's display name.
    pub tenant_name: String,
}

impl InvitationWithTenant {
    /// The tenant the invitation leads to.
    pub fn tenant_id(&self) -> TenantId {
        self.invitation.tenant_id
    }
}

impl Store {
    /// Creates an invitation in the scoped tenant.
    pub async fn create_invitation(
        &self,
        ctx: &TenantCtx,
        email: &str,
        role: Role,
        digest: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<InvitationId, DbErr> {
        let row = invitations::ActiveModel {
            email: Set(email.to_owned()),
            role: Set(role),
            token_digest: Set(digest.to_owned()),
            invited_by: Set(ctx.user_id()),
            expires_at: Set(expires_at),
            accepted_at: Set(None),
            revoked_at: Set(None),
            ..invitations::ActiveModel::fresh(ctx)
        }
        .insert(&self.db)
        .await?;
        Ok(row.id)
    }

    /// Invitations of the scoped tenant that can still be accepted, newest first.
    pub async fn pending_invitations(
        &self,
        ctx: &TenantCtx,
    ) -> Result<Vec<invitations::Model>, DbErr> {
        invitations::Entity::find()
            .filter(invitations::Column::TenantId.eq(ctx.tenant_id()))
            .filter(invitations::Column::AcceptedAt.is_null())
            .filter(invitations::Column::RevokedAt.is_null())
            .filter(invitations::Column::ExpiresAt.gt(now()))
            .order_by_desc(invitations::Column::CreatedAt)
            .all(&self.db)
            .await
    }

    /// Revokes a pending invitation of the scoped tenant; false if none matched.
    pub async fn revoke_invitation(
        &self,
        ctx: &TenantCtx,
        id: InvitationId,
    ) -> Result<bool, DbErr> {
        let result = invitations::Entity::update_many()
            .col_expr(invitations::Column::RevokedAt, Expr::value(now()))
            .filter(invitations::Column::Id.eq(id))
            .filter(invitations::Column::TenantId.eq(ctx.tenant_id()))
            .filter(invitations::Column::AcceptedAt.is_null())
            .filter(invitations::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// An invitation by its link digest. The link itself is the authorisation, so this
    /// lookup is not tenant-scoped.
    pub async fn invitation_by_digest(
        &self,
        digest: &str,
    ) -> Result<Option<InvitationWithTenant>, DbErr> {
        let Some(invitation) = invitations::Entity::find()
            .filter(invitations::Column::TokenDigest.eq(digest))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let tenant_name = tenants::Entity::find_by_id(invitation.tenant_id)
            .one(&self.db)
            .await?
            .map(|t| t.name)
            .unwrap_or_default();
        Ok(Some(InvitationWithTenant {
            invitation,
            tenant_name,
        }))
    }

    /// Accepts an invitation for `user`: marks it used (exactly once, even under races)
    /// and adds the membership, atomically. False when it was no longer valid.
    pub async fn accept_invitation(&self, id: InvitationId, user: UserId) -> Result<bool, DbErr> {
        let txn = self.db.begin().await?;
        let at = now();
        let claimed = invitations::Entity::update_many()
            .col_expr(invitations::Column::AcceptedAt, Expr::value(at))
            .filter(invitations::Column::Id.eq(id))
            .filter(invitations::Column::AcceptedAt.is_null())
            .filter(invitations::Column::RevokedAt.is_null())
            .filter(invitations::Column::ExpiresAt.gt(at))
            .exec(&txn)
            .await?;
        if claimed.rows_affected != 1 {
            return Ok(false);
        }
        let Some(invitation) = invitations::Entity::find_by_id(id).one(&txn).await? else {
            return Ok(false);
        };
        let existing = memberships::Entity::find()
            .filter(memberships::Column::TenantId.eq(invitation.tenant_id))
            .filter(memberships::Column::UserId.eq(user))
            .one(&txn)
            .await?;
        if existing.is_none() {
            memberships::ActiveModel {
                user_id: Set(user),
                role: Set(invitation.role),
                ..memberships::ActiveModel::fresh_in(invitation.tenant_id)
            }
            .insert(&txn)
            .await?;
        }
        txn.commit().await?;
        Ok(true)
    }
}
