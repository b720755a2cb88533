//! Sluice: a self-hosted, multi-tenant integration platform. The binary (`main.rs`) and the
//! tests drive the application through these modules.

pub mod alerts;
pub mod auth;
pub mod config;
pub mod connectors;
pub mod crypto;
pub mod domain;
pub mod error;
pub mod jobs;
pub mod sandbox;
pub mod services;
pub mod startup;
pub mod store;
pub mod sync;
pub mod telemetry;
pub mod web;
