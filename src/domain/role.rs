//! Roles: what a member may do inside one tenant, and platform-wide roles.

use super::named::UnknownName;
use sea_orm::DeriveValueType;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A member's role in a tenant. Ordered: each role can do what the ones below it can.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    DeriveValueType,
)]
#[serde(rename_all = "lowercase")]
#[sea_orm(value_type = "String")]
pub enum Role {
    /// Reads everything in the tenant, changes nothing.
    Viewer,
    /// Manages connections, flows, members (except owners) and API tokens.
    Admin,
    /// Everything an admin can, plus managing owners.
    Owner,
}

impl Role {
    /// All roles, lowest first, for forms.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Admin, Role::Owner];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    /// A short description for the invitation and member forms.
    pub fn describe(self) -> &'static str {
        match self {
            Role::Viewer => "Can see dashboards, runs and configuration",
            Role::Admin => "Can change connections, flows, members and API tokens",
            Role::Owner => "Full control, including other owners",
        }
    }

    /// Whether this role may change tenant configuration.
    pub fn can_write(self) -> bool {
        self >= Role::Admin
    }

    /// Whether this role may grant `target` to someone, or change someone who has it.
    pub fn can_manage(self, target: Role) -> bool {
        match self {
            Role::Owner => true,
            Role::Admin => target <= Role::Admin,
            Role::Viewer => false,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "admin" => Ok(Role::Admin),
            "owner" => Ok(Role::Owner),
            other => Err(UnknownName::new("role", other)),
        }
    }
}

/// Roles that span all tenants, granted only from the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, DeriveValueType)]
#[sea_orm(value_type = "String")]
pub enum PlatformRole {
    /// Read-only, audited access to failed runs across tenants.
    Support,
}

impl PlatformRole {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        "support"
    }
}

impl fmt::Display for PlatformRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PlatformRole {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "support" => Ok(PlatformRole::Support),
            other => Err(UnknownName::new("platform role", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_cannot_touch_owners() {
        assert!(Role::Owner.can_manage(Role::Owner));
        assert!(Role::Admin.can_manage(Role::Viewer));
        assert!(Role::Admin.can_manage(Role::Admin));
        assert!(!Role::Admin.can_manage(Role::Owner));
        assert!(!Role::Viewer.can_manage(Role::Viewer));
    }

    #[test]
    fn roles_round_trip_through_text() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
