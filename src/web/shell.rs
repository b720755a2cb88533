//! What every signed-in page shows around its content: navigation, workspace switcher,
//! user menu, flashes and the CSRF token.

use super::extract::{Member, SignedInUser, SupportUser, current_workspace};
use super::flash::Flash;
use crate::domain::{Role, TenantId, TimeZone};
use crate::services::records::TenantMembership;

/// A workspace in the switcher.
pub struct ShellWorkspace {
    /// Tenant id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The user's role there.
    pub role: &'static str,
}

/// The page frame's data.
pub struct Shell {
    /// Signed-in user's name.
    pub user_name: String,
    /// Their e-mail.
    pub user_email: String,
    /// Current workspace name.
    pub tenant_name: String,
    /// Current workspace id.
    pub tenant_id: String,
    /// Whether there is a current workspace (a support user may belong to none).
    pub has_workspace: bool,
    /// All their workspaces.
    pub tenants: Vec<ShellWorkspace>,
    /// CSRF token for forms.
    pub csrf: String,
    /// Flash messages.
    pub flashes: Vec<Flash>,
    /// Active navigation entry.
    pub nav: &'static str,
    /// Whether the platform support role is held.
    pub is_support: bool,
    /// Whether the member may change configuration (hides write controls otherwise).
    pub can_write: bool,
    /// The zone the page shows times in: the current workspace's (UTC without one).
    pub tz: TimeZone,
}

impl Shell {
    /// The frame for `who`, in workspace `current` (none: a support user who belongs to
    /// no workspace), on a page in navigation section `nav`.
    fn new(
        who: &SignedInUser,
        workspaces: &[TenantMembership],
        current: Option<(TenantId, Role)>,
        csrf: &str,
        flashes: &[Flash],
        nav: &'static str,
    ) -> Shell {
        let tenant = current.and_then(|(id, _)| workspaces.iter().find(|w| w.tenant_id == id));
        Shell {
            user_name: who.user.name.clone(),
            user_email: who.user.email.clone(),
            tenant_name: tenant.map(|w| w.tenant_name.clone()).unwrap_or_default(),
            tenant_id: tenant.map(|w| w.tenant_id.to_string()).unwrap_or_default(),
            has_workspace: tenant.is_some(),
            tenants: workspaces
                .iter()
                .map(|w| ShellWorkspace {
                    id: w.tenant_id.to_string(),
                    name: w.tenant_name.clone(),
                    role: w.role.as_str(),
                })
                .collect(),
            csrf: csrf.to_owned(),
            flashes: flashes.to_vec(),
            nav,
            is_support: who.user.is_support,
            can_write: current.is_some_and(|(_, role)| role.can_write()),
            tz: tenant.map_or(TimeZone::UTC, |w| w.time_zone),
        }
    }
}

impl Member {
    /// The frame for a page in navigation section `nav`.
    pub fn shell(&self, nav: &'static str) -> Shell {
        Shell::new(
            &self.who,
            &self.workspaces,
            Some((self.ctx.tenant_id(), self.ctx.role())),
            &self.csrf,
            &self.flashes,
            nav,
        )
    }
}

impl SupportUser {
    /// The frame for a support page: their current workspace, if they have one.
    pub fn shell(&self, nav: &'static str) -> Shell {
        let current = current_workspace(&self.who, &self.workspaces).map(|w| (w.tenant_id, w.role));
        Shell::new(
            &self.who,
            &self.workspaces,
            current,
            &self.csrf,
            &self.flashes,
            nav,
        )
    }
}
