//! The integration suite, as one test binary (one link of actix, sea-orm and apalis
//! instead of one per file): each module specifies one capability against a real
//! Sluice (see `tests/common`). The browser tests stay a binary of their own, run by
//! `.ci/run` once Chromium is installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;

mod accounts;
mod alerts;
mod api;
mod connections;
mod dashboard;
mod database_pool;
mod disk_full;
mod end_customer_pages;
mod expressions;
mod external_oauth;
mod failure_triage;
mod flow_documents;
mod flow_editor;
mod flow_reliability;
mod flows;
mod invitations;
mod jobs;
mod key_rotation;
mod layering;
mod lists;
mod markup;
mod openapi_client;
mod ops;
mod providers;
mod sandbox;
mod secrets;
mod support;
mod tenancy;
mod token_health;
