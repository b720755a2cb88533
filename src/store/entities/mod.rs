//! Database entities, one module per table.

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
pub mod oauth_apps;
pub mod oauth_states;
pub mod periodic_tasks;
pub mod run_events;
pub mod runs;
pub mod sessions;
pub mod setup_tokens;
pub mod tenants;
pub mod users;
pub mod webhook_events;
