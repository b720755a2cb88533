//! Sluice: a self-hosted, multi-tenant integration platform. The binary (`main.rs`) and the
//! tests drive the application through these modules.

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod jobs;
pub mod queue;
pub mod services;
pub mod startup;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod web;

/// jemalloc rather than glibc's allocator. A sync allocates and frees many small objects
/// on one thread and large page bodies on others; glibc spent about a quarter of the
/// sync's CPU on that (consolidating free lists, taking arena locks), jemalloc's
/// per-thread caches make the sync about 25 % faster. Its options are built in from
/// `.cargo/config.toml`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
