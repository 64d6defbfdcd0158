//! Kubernetes API helpers used by several steward systems. Talking to the API
//! goes through here: errors are classified once (`error`), objects are changed by
//! read-decide-patch with conflict retries (`patch`), evictions and their dry runs
//! (`eviction`), scheduling rules (`scheduling`), paged lists (`list`).

pub mod error;
pub mod eviction;
pub mod list;
pub mod node;
pub mod patch;
pub mod pod;
pub mod quantity;
pub mod scheduling;
