//! Kubernetes API helpers used by several steward systems. API errors are
//! classified here, once, so that every caller retries by class and never inline.

pub mod eviction;
pub mod list;
pub mod node;
pub mod pod;
pub mod quantity;
