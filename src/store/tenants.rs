//! Tenants and memberships.

use super::entities::{api_tokens, memberships, tenant_logos, tenants, users};
use super::{Store, is_unique_violation, now};
use crate::domain::{MembershipId, Role, TenantCtx, TenantId, TimeZone, UserId};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    Set, TransactionTrait,
};

/// A tenant the user belongs to, with their role there.
#[derive(Clone, Debug)]
pub struct TenantMembership {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Its display name.
    pub tenant_name: String,
    /// Its URL-safe slug.
    pub slug: String,
    /// The user's role in it.
    pub role: Role,
    /// Its time zone, in which its pages show times.
    pub time_zone: TimeZone,
}

/// A member as listed on the members page.
#[derive(Clone, Debug)]
pub struct MemberRecord {
    /// The membership (what role changes and removals address).
    pub id: MembershipId,
    /// The person.
    pub user_id: UserId,
    /// Their name.
    pub name: String,
    /// Their e-mail.
    pub email: String,
    /// Their role here.
    pub role: Role,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
}

impl Store {
    /// Creates a tenant with `owner` as its first owner, atomically. `Ok(None)` when the slug
    /// is taken.
    pub async fn create_tenant(
        &self,
        name: &str,
        slug: &str,
        owner: UserId,
    ) -> Result<Option<TenantId>, DbErr> {
        let txn = self.db.begin().await?;
        let inserted = tenants::ActiveModel {
            name: Set(name.to_owned()),
            slug: Set(slug.to_owned()),
            time_zone: Set(TimeZone::UTC),
            ..tenants::ActiveModel::fresh()
        }
        .insert(&txn)
        .await;
        let id = match inserted {
            Ok(tenant) => tenant.id,
            Err(e) if is_unique_violation(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        memberships::ActiveModel {
            user_id: Set(owner),
            role: Set(Role::Owner),
            ..memberships::ActiveModel::fresh_in(id)
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        Ok(Some(id))
    }

    /// Whether a tenant slug is already used.
    pub async fn slug_taken(&self, slug: &str) -> Result<bool, DbErr> {
        Ok(tenants::Entity::find()
            .filter(tenants::Column::Slug.eq(slug))
            .count(&self.db)
            .await?
            > 0)
    }

    /// A tenant id by slug, for the command line.
    pub async fn tenant_by_slug(&self, slug: &str) -> Result<Option<TenantId>, DbErr> {
        Ok(tenants::Entity::find()
            .filter(tenants::Column::Slug.eq(slug))
            .one(&self.db)
            .await?
            .map(|t| t.id))
    }

    /// Every tenant a user belongs to, by name.
    pub async fn memberships_of(&self, user: UserId) -> Result<Vec<TenantMembership>, DbErr> {
        let rows = memberships::Entity::find()
            .filter(memberships::Column::UserId.eq(user))
            .all(&self.db)
            .await?;
        let ids: Vec<_> = rows.iter().map(|m| m.tenant_id).collect();
        let tenants = tenants::Entity::find()
            .filter(tenants::Column::Id.is_in(ids))
            .all(&self.db)
            .await?;
        let mut out: Vec<TenantMembership> = rows
            .into_iter()
            .filter_map(|m| {
                tenants
                    .iter()
                    .find(|t| t.id == m.tenant_id)
                    .map(|t| TenantMembership {
                        tenant_id: t.id,
                        tenant_name: t.name.clone(),
                        slug: t.slug.clone(),
                        role: m.role,
                        time_zone: t.time_zone,
                    })
            })
            .collect();
        out.sort_by(|a, b| {
            a.tenant_name
                .to_lowercase()
                .cmp(&b.tenant_name.to_lowercase())
        });
        Ok(out)
    }

    /// A user's role in a tenant, if they are a member: the check behind every `TenantCtx`.
    pub async fn role_in(&self, user: UserId, tenant: TenantId) -> Result<Option<Role>, DbErr> {
        Ok(memberships::Entity::find()
            .filter(memberships::Column::UserId.eq(user))
            .filter(memberships::Column::TenantId.eq(tenant))
            .one(&self.db)
            .await?
            .map(|m| m.role))
    }

    /// The scoped tenant's name and time zone.
    pub async fn tenant(&self, ctx: &TenantCtx) -> Result<tenants::Model, DbErr> {
        tenants::Entity::find_by_id(ctx.tenant_id())
            .one(&self.db)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("tenant".into()))
    }

    /// Names of these tenants by id (support pages list runs of many tenants).
    pub async fn tenant_names(
        &self,
        ids: &[TenantId],
    ) -> Result<std::collections::HashMap<TenantId, String>, DbErr> {
        Ok(tenants::Entity::find()
            .filter(tenants::Column::Id.is_in(ids.iter().copied()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|t| (t.id, t.name))
            .collect())
    }

    /// Renames the scoped tenant and sets its time zone.
    pub async fn update_tenant(
        &self,
        ctx: &TenantCtx,
        name: &str,
        time_zone: TimeZone,
    ) -> Result<(), DbErr> {
        tenants::ActiveModel {
            id: Set(ctx.tenant_id()),
            name: Set(name.to_owned()),
            time_zone: Set(time_zone.to_owned()),
            ..Default::default()
        }
        .update(&self.db)
        .await
        .map(|_| ())
    }

    /// Members of the scoped tenant, owners first.
    pub async fn members(&self, ctx: &TenantCtx) -> Result<Vec<MemberRecord>, DbErr> {
        let rows = memberships::Entity::find()
            .filter(memberships::Column::TenantId.eq(ctx.tenant_id()))
            .order_by_asc(memberships::Column::CreatedAt)
            .find_also_related(users::Entity)
            .all(&self.db)
            .await?;
        let mut members: Vec<MemberRecord> = rows
            .into_iter()
            .filter_map(|(m, u)| u.map(|u| member_record(m, u)))
            .collect();
        members.sort_by(|a, b| b.role.cmp(&a.role).then(a.joined_at.cmp(&b.joined_at)));
        Ok(members)
    }

    /// One member of the scoped tenant; `None` for a membership of another tenant.
    pub async fn member(
        &self,
        ctx: &TenantCtx,
        id: MembershipId,
    ) -> Result<Option<MemberRecord>, DbErr> {
        Ok(memberships::Entity::find_by_id(id)
            .filter(memberships::Column::TenantId.eq(ctx.tenant_id()))
            .find_also_related(users::Entity)
            .one(&self.db)
            .await?
            .and_then(|(m, u)| u.map(|u| member_record(m, u))))
    }

    /// Number of owners of the scoped tenant (the last one may not leave).
    pub async fn count_owners(&self, ctx: &TenantCtx) -> Result<u64, DbErr> {
        memberships::Entity::find()
            .filter(memberships::Column::TenantId.eq(ctx.tenant_id()))
            .filter(memberships::Column::Role.eq(Role::Owner))
            .count(&self.db)
            .await
    }

    /// Changes a member's role within the scoped tenant.
    pub async fn set_member_role(
        &self,
        ctx: &TenantCtx,
        id: MembershipId,
        role: Role,
    ) -> Result<bool, DbErr> {
        let result = memberships::Entity::update_many()
            .col_expr(memberships::Column::Role, Expr::value(role.as_str()))
            .filter(memberships::Column::Id.eq(id))
            .filter(memberships::Column::TenantId.eq(ctx.tenant_id()))
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Removes a member from the scoped tenant and revokes the API tokens they created
    /// there, in one transaction: a token must not outlive the access of the person who
    /// made it, even if they are invited back later.
    pub async fn remove_member(&self, ctx: &TenantCtx, id: MembershipId) -> Result<bool, DbErr> {
        // Writes first: on SQLite a transaction that reads before its first write cannot
        // take the write lock if another connection wrote since its read (busy at once).
        let txn = self.db.begin().await?;
        let member = Query::select()
            .column(memberships::Column::UserId)
            .from(memberships::Entity)
            .and_where(memberships::Column::Id.eq(id))
            .and_where(memberships::Column::TenantId.eq(ctx.tenant_id()))
            .to_owned();
        api_tokens::Entity::update_many()
            .col_expr(api_tokens::Column::RevokedAt, Expr::value(now()))
            .filter(api_tokens::Column::TenantId.eq(ctx.tenant_id()))
            .filter(api_tokens::Column::CreatedBy.in_subquery(member))
            .filter(api_tokens::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        let removed = memberships::Entity::delete_many()
            .filter(memberships::Column::Id.eq(id))
            .filter(memberships::Column::TenantId.eq(ctx.tenant_id()))
            .exec(&txn)
            .await?;
        if removed.rows_affected != 1 {
            return Ok(false);
        }
        txn.commit().await?;
        Ok(true)
    }
}

fn member_record(m: memberships::Model, u: users::Model) -> MemberRecord {
    MemberRecord {
        id: m.id,
        user_id: u.id,
        name: u.name,
        email: u.email,
        role: m.role,
        joined_at: m.created_at,
    }
}

impl Store {
    /// The workspace's logo: its content type and image, if one was uploaded.
    pub async fn tenant_logo(&self, ctx: &TenantCtx) -> Result<Option<(String, Vec<u8>)>, DbErr> {
        Ok(tenant_logos::Entity::find_by_id(ctx.tenant_id())
            .one(&self.db)
            .await?
            .map(|l| (l.content_type, l.image)))
    }

    /// Replaces the workspace's logo.
    pub async fn set_tenant_logo(
        &self,
        ctx: &TenantCtx,
        content_type: &str,
        image: Vec<u8>,
    ) -> Result<(), DbErr> {
        let row = tenant_logos::ActiveModel {
            tenant_id: Set(ctx.tenant_id()),
            content_type: Set(content_type.to_owned()),
            image: Set(image),
            updated_at: Set(now()),
        };
        tenant_logos::Entity::insert(row)
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(tenant_logos::Column::TenantId)
                    .update_columns([
                        tenant_logos::Column::ContentType,
                        tenant_logos::Column::Image,
                        tenant_logos::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Removes the workspace's logo (nothing when it has none).
    pub async fn remove_tenant_logo(&self, ctx: &TenantCtx) -> Result<(), DbErr> {
        tenant_logos::Entity::delete_by_id(ctx.tenant_id())
            .exec(&self.db)
            .await?;
        Ok(())
    }
}
