//! Accounts and tenancy: tenants, users, memberships, sessions, invitations, API tokens,
//! the audit log, and the bookkeeping tables for setup links, login throttling, scheduler
//! leases and jobs that ran out of attempts.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Tenants::Table)
                .if_not_exists()
                .col(pk_uuid(Tenants::Id))
                .col(string(Tenants::Name))
                .col(string_uniq(Tenants::Slug))
                .col(string(Tenants::TimeZone))
                .col(timestamp_with_time_zone(Tenants::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Users::Table)
                .if_not_exists()
                .col(pk_uuid(Users::Id))
                .col(string_uniq(Users::Email))
                .col(string(Users::Name))
                .col(string(Users::PasswordHash))
                .col(string_null(Users::PlatformRole))
                .col(timestamp_with_time_zone(Users::PasswordChangedAt))
                .col(timestamp_with_time_zone(Users::CreatedAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Memberships::Table)
                .if_not_exists()
                .col(pk_uuid(Memberships::Id))
                .col(uuid(Memberships::TenantId))
                .col(uuid(Memberships::UserId))
                .col(string(Memberships::Role))
                .col(timestamp_with_time_zone(Memberships::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_memberships_tenant")
                        .from(Memberships::Table, Memberships::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_memberships_user")
                        .from(Memberships::Table, Memberships::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_memberships_tenant_user",
            Memberships::Table,
            &[Memberships::TenantId, Memberships::UserId],
            true,
        )
        .await?;
        index(
            m,
            "ix_memberships_user",
            Memberships::Table,
            &[Memberships::UserId],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Sessions::Table)
                .if_not_exists()
                .col(string(Sessions::Id).primary_key())
                .col(uuid(Sessions::UserId))
                .col(uuid_null(Sessions::TenantId))
                .col(timestamp_with_time_zone(Sessions::CreatedAt))
                .col(timestamp_with_time_zone(Sessions::LastSeenAt))
                .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                .col(string_null(Sessions::Ip))
                .col(string_null(Sessions::UserAgent))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_sessions_user")
                        .from(Sessions::Table, Sessions::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_sessions_user",
            Sessions::Table,
            &[Sessions::UserId],
            false,
        )
        .await?;
        index(
            m,
            "ix_sessions_expires",
            Sessions::Table,
            &[Sessions::ExpiresAt],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Invitations::Table)
                .if_not_exists()
                .col(pk_uuid(Invitations::Id))
                .col(uuid(Invitations::TenantId))
                .col(string(Invitations::Email))
                .col(string(Invitations::Role))
                .col(string_uniq(Invitations::TokenDigest))
                .col(uuid_null(Invitations::InvitedBy))
                .col(timestamp_with_time_zone(Invitations::CreatedAt))
                .col(timestamp_with_time_zone(Invitations::ExpiresAt))
                .col(timestamp_with_time_zone_null(Invitations::AcceptedAt))
                .col(timestamp_with_time_zone_null(Invitations::RevokedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_invitations_tenant")
                        .from(Invitations::Table, Invitations::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_invitations_tenant_created",
            Invitations::Table,
            &[Invitations::TenantId, Invitations::CreatedAt],
            false,
        )
        .await?;
        index(
            m,
            "ix_invitations_expires",
            Invitations::Table,
            &[Invitations::ExpiresAt],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(ApiTokens::Table)
                .if_not_exists()
                .col(pk_uuid(ApiTokens::Id))
                .col(uuid(ApiTokens::TenantId))
                .col(string(ApiTokens::Name))
                .col(string(ApiTokens::Prefix))
                .col(string_uniq(ApiTokens::TokenDigest))
                .col(string(ApiTokens::Role))
                .col(uuid_null(ApiTokens::CreatedBy))
                .col(timestamp_with_time_zone(ApiTokens::CreatedAt))
                .col(timestamp_with_time_zone_null(ApiTokens::LastUsedAt))
                .col(timestamp_with_time_zone_null(ApiTokens::ExpiresAt))
                .col(timestamp_with_time_zone_null(ApiTokens::RevokedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_api_tokens_tenant")
                        .from(ApiTokens::Table, ApiTokens::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_api_tokens_tenant_created",
            ApiTokens::Table,
            &[ApiTokens::TenantId, ApiTokens::CreatedAt],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(AuditEvents::Table)
                .if_not_exists()
                .col(pk_uuid(AuditEvents::Id))
                .col(uuid(AuditEvents::TenantId))
                .col(string(AuditEvents::Actor))
                .col(uuid_null(AuditEvents::ActorUserId))
                .col(string(AuditEvents::Action))
                .col(string_null(AuditEvents::Target))
                .col(text_null(AuditEvents::Detail))
                .col(string_null(AuditEvents::Ip))
                .col(timestamp_with_time_zone(AuditEvents::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_audit_events_tenant")
                        .from(AuditEvents::Table, AuditEvents::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_audit_events_tenant_created",
            AuditEvents::Table,
            &[AuditEvents::TenantId, AuditEvents::CreatedAt],
            false,
        )
        .await?;

        m.create_table(
            Table::create()
                .table(SetupTokens::Table)
                .if_not_exists()
                .col(string(SetupTokens::TokenDigest).primary_key())
                .col(timestamp_with_time_zone(SetupTokens::CreatedAt))
                .col(timestamp_with_time_zone(SetupTokens::ExpiresAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(LoginThrottle::Table)
                .if_not_exists()
                .col(string(LoginThrottle::Key).primary_key())
                .col(integer(LoginThrottle::Failures))
                .col(timestamp_with_time_zone(LoginThrottle::WindowStartedAt))
                .col(timestamp_with_time_zone_null(LoginThrottle::BlockedUntil))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(Leases::Table)
                .if_not_exists()
                .col(string(Leases::Name).primary_key())
                .col(string(Leases::Holder))
                .col(timestamp_with_time_zone(Leases::ExpiresAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(PeriodicTasks::Table)
                .if_not_exists()
                .col(string(PeriodicTasks::Name).primary_key())
                .col(timestamp_with_time_zone(PeriodicTasks::NextRunAt))
                .col(timestamp_with_time_zone_null(PeriodicTasks::LastRunAt))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(FailedJobs::Table)
                .if_not_exists()
                .col(pk_uuid(FailedJobs::Id))
                .col(string(FailedJobs::Queue))
                .col(text(FailedJobs::Payload))
                .col(integer(FailedJobs::Attempts))
                .col(text(FailedJobs::LastError))
                .col(timestamp_with_time_zone(FailedJobs::FailedAt))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_failed_jobs_failed_at",
            FailedJobs::Table,
            &[FailedJobs::FailedAt],
            false,
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            FailedJobs::Table.into_iden(),
            PeriodicTasks::Table.into_iden(),
            Leases::Table.into_iden(),
            LoginThrottle::Table.into_iden(),
            SetupTokens::Table.into_iden(),
            AuditEvents::Table.into_iden(),
            ApiTokens::Table.into_iden(),
            Invitations::Table.into_iden(),
            Sessions::Table.into_iden(),
            Memberships::Table.into_iden(),
            Users::Table.into_iden(),
            Tenants::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Creates an index; tenant-owned tables always lead with `tenant_id`.
async fn index<T: IntoIden + Copy + 'static, C: IntoIden + Copy + 'static>(
    m: &SchemaManager<'_>,
    name: &str,
    table: T,
    cols: &[C],
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

#[derive(DeriveIden, Clone, Copy)]
enum Tenants {
    Table,
    Id,
    Name,
    Slug,
    TimeZone,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    PasswordHash,
    PlatformRole,
    PasswordChangedAt,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Memberships {
    Table,
    Id,
    TenantId,
    UserId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Sessions {
    Table,
    Id,
    UserId,
    TenantId,
    CreatedAt,
    LastSeenAt,
    ExpiresAt,
    Ip,
    UserAgent,
}

#[derive(DeriveIden, Clone, Copy)]
enum Invitations {
    Table,
    Id,
    TenantId,
    Email,
    Role,
    TokenDigest,
    InvitedBy,
    CreatedAt,
    ExpiresAt,
    AcceptedAt,
    RevokedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum ApiTokens {
    Table,
    Id,
    TenantId,
    Name,
    Prefix,
    TokenDigest,
    Role,
    CreatedBy,
    CreatedAt,
    LastUsedAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum AuditEvents {
    Table,
    Id,
    TenantId,
    Actor,
    ActorUserId,
    Action,
    Target,
    Detail,
    Ip,
    CreatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum SetupTokens {
    Table,
    TokenDigest,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum LoginThrottle {
    Table,
    Key,
    Failures,
    WindowStartedAt,
    BlockedUntil,
}

#[derive(DeriveIden, Clone, Copy)]
enum Leases {
    Table,
    Name,
    Holder,
    ExpiresAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum FailedJobs {
    Table,
    Id,
    Queue,
    Payload,
    Attempts,
    LastError,
    FailedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum PeriodicTasks {
    Table,
    Name,
    NextRunAt,
    LastRunAt,
}
