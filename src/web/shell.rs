//! What every signed-in page shows around its content: navigation, workspace switcher,
//! user menu, flashes and the CSRF token.

use super::extract::Member;
use super::flash::Flash;

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
}

impl Member {
    /// The frame for a page in navigation section `nav`.
    pub fn shell(&self, nav: &'static str) -> Shell {
        Shell {
            user_name: self.who.user.name.clone(),
            user_email: self.who.user.email.clone(),
            tenant_name: self.tenant_name(),
            tenant_id: self.ctx.tenant_id().to_string(),
            tenants: self
                .workspaces
                .iter()
                .map(|w| ShellWorkspace {
                    id: w.tenant_id.to_string(),
                    name: w.tenant_name.clone(),
                    role: w.role.as_str(),
                })
                .collect(),
            csrf: self.csrf.clone(),
            flashes: self.flashes.clone(),
            nav,
            is_support: self.who.user.is_support,
            can_write: self.ctx.role().can_write(),
        }
    }
}
