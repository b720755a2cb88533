//! The tenant a request or job acts for. Holding one is the proof that the caller was
//! authorised for that tenant: only the web extractors and job loaders can build it.

use super::ids::{ApiTokenId, ConnectLinkId, TenantId, UserId};
use super::role::Role;

/// Who acts inside a tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in member.
    User(UserId),
    /// A JSON API client using a tenant API token.
    ApiToken(ApiTokenId),
    /// An end customer completing a connect link (no account).
    ConnectLink(ConnectLinkId),
    /// A background job acting for the tenant.
    System,
    /// Platform support staff inspecting or replaying (read-only otherwise, audited).
    Support(UserId),
}

/// An authorised tenant scope. Every store function for tenant-owned data takes one.
#[derive(Clone, Debug)]
pub struct TenantCtx {
    tenant_id: TenantId,
    role: Role,
    actor: Actor,
}

impl TenantCtx {
    /// Built by the session/token extractors after checking membership, and by jobs after
    /// reloading the tenant. Crate-private so no caller outside can forge a scope.
    pub(crate) fn new(tenant_id: TenantId, role: Role, actor: Actor) -> Self {
        Self {
            tenant_id,
            role,
            actor,
        }
    }

    /// The tenant every query is filtered by.
    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    /// The caller's role in the tenant.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Who is acting.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The acting user, when a person is acting.
    pub fn user_id(&self) -> Option<UserId> {
        match self.actor {
            Actor::User(id) => Some(id),
            _ => None,
        }
    }
}
