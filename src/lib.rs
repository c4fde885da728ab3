//! Quarry: a governed text-to-SQL agent.
//!
//! The pipeline runs one way: retrieve -> prompt -> generate -> validate -> execute -> answer.
//! `ARCHITECTURE.md` at the repository root maps the modules and their invariants.
//!
//! Without the default `runtime` feature only the validator and what it stands on (catalog,
//! policy, warehouse, configuration) are built: the fuzzer's build (`fuzz/`).

#[cfg(feature = "runtime")]
pub mod admission;
#[cfg(feature = "runtime")]
pub mod amend;
#[cfg(feature = "runtime")]
pub mod bench;
pub mod calendar;
pub mod catalog;
#[cfg(feature = "runtime")]
pub mod check;
pub mod config;
#[cfg(feature = "runtime")]
pub mod demo;
#[cfg(feature = "runtime")]
pub mod embed;
#[cfg(feature = "runtime")]
pub mod eval;
#[cfg(feature = "runtime")]
pub mod finetune;
#[cfg(feature = "runtime")]
pub mod history;
#[cfg(feature = "runtime")]
pub mod http;
#[cfg(feature = "runtime")]
pub mod index;
#[cfg(feature = "runtime")]
pub mod ingest;
#[cfg(feature = "runtime")]
pub mod keys;
#[cfg(feature = "runtime")]
pub mod llm;
#[cfg(feature = "runtime")]
pub mod metadata;
#[cfg(feature = "runtime")]
pub mod pipeline;
pub mod policy;
#[cfg(feature = "runtime")]
pub mod prompt;
#[cfg(feature = "runtime")]
pub mod reading;
#[cfg(feature = "runtime")]
pub mod retrieve;
#[cfg(feature = "runtime")]
pub mod stewardship;
#[cfg(feature = "runtime")]
pub mod template;
pub mod text;
#[cfg(feature = "runtime")]
pub mod timeframe;
pub mod validate;
#[cfg(feature = "runtime")]
pub mod vector_store;
pub mod warehouse;
