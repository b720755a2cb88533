//! Database entities, one module per table.

pub mod alert_occurrences;
pub mod alert_rules;
pub mod alerts;
pub mod api_tokens;
pub mod audit_events;
pub mod connect_links;
pub mod connection_events;
pub mod connections;
pub mod dead_letters;
pub mod failed_jobs;
pub mod flow_versions;
pub mod flows;
pub mod invitations;
pub mod leases;
pub mod login_throttle;
pub mod memberships;
pub mod notification_channels;
pub mod notification_deliveries;
pub mod oauth_apps;
pub mod oauth_states;
pub mod periodic_tasks;
pub mod run_events;
pub mod runs;
pub mod sessions;
pub mod setup_tokens;
pub mod tenant_logos;
pub mod tenants;
pub mod users;
pub mod webhook_events;

/// Rows to insert start from `fresh`: a new time-ordered id, the tenant of the scope (for
/// tenant rows), and the insert time in each timestamp the row is born with. The caller
/// sets the rest, and sets `id` itself only when it must know it before the insert (to
/// bind a sealed secret to it, or to hand it back).
macro_rules! fresh_rows {
    ($($scope:ident $entity:ident: $id:ident { $($stamp:ident),* }),+ $(,)?) => {$(
        fresh_rows!(@one $scope $entity $id { $($stamp),* });
    )+};
    (@one tenant $entity:ident $id:ident { $($stamp:ident),* }) => {
        impl $entity::ActiveModel {
            /// A row of the scoped tenant to insert.
            pub fn fresh(ctx: &crate::domain::TenantCtx) -> Self {
                Self::fresh_in(ctx.tenant_id())
            }

            /// A row of `tenant` to insert, where no scope is at hand yet (sign-up,
            /// accepting an invitation, a signed webhook).
            pub fn fresh_in(tenant: crate::domain::TenantId) -> Self {
                let at = crate::store::now();
                Self {
                    id: sea_orm::Set(crate::domain::$id::new()),
                    tenant_id: sea_orm::Set(tenant),
                    $($stamp: sea_orm::Set(at),)*
                    ..<Self as sea_orm::ActiveModelTrait>::default()
                }
            }
        }
    };
    (@one global $entity:ident $id:ident { $($stamp:ident),* }) => {
        impl $entity::ActiveModel {
            /// A row to insert.
            pub fn fresh() -> Self {
                let at = crate::store::now();
                Self {
                    id: sea_orm::Set(crate::domain::$id::new()),
                    $($stamp: sea_orm::Set(at),)*
                    ..<Self as sea_orm::ActiveModelTrait>::default()
                }
            }
        }
    };
}

fresh_rows! {
    tenant alert_occurrences: AlertOccurrenceId { seen_at },
    tenant alert_rules: AlertRuleId { created_at, updated_at },
    tenant alerts: AlertId { opened_at, last_seen_at },
    tenant api_tokens: ApiTokenId { created_at },
    tenant audit_events: AuditEventId { created_at },
    tenant connect_links: ConnectLinkId { created_at },
    tenant connection_events: ConnectionEventId { created_at },
    tenant connections: ConnectionId { created_at, updated_at },
    tenant dead_letters: DeadLetterId { created_at, updated_at },
    tenant flow_versions: FlowVersionId { created_at },
    tenant flows: FlowId { created_at, updated_at },
    tenant invitations: InvitationId { created_at },
    tenant memberships: MembershipId { created_at },
    tenant notification_channels: ChannelId { created_at, updated_at },
    tenant notification_deliveries: DeliveryId { created_at },
    tenant oauth_apps: OAuthAppId { created_at, updated_at },
    tenant run_events: RunEventId { at },
    tenant runs: RunId { created_at },
    tenant webhook_events: WebhookEventId { received_at },
    global tenants: TenantId { created_at },
    global users: UserId { created_at, password_changed_at },
}
