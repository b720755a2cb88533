//! The sync engine (in progress): record mapping, validation and filtering are here; the
//! run state machine, paging, writing and the ledger follow with the flows issue.

pub mod mapping;
