//! Quarry: a governed text-to-SQL agent.
//!
//! The pipeline runs one way: retrieve -> prompt -> generate -> validate -> execute -> answer.
//! `ARCHITECTURE.md` at the repository root maps the modules and their invariants.

pub mod bench;
pub mod calendar;
pub mod catalog;
pub mod config;
pub mod demo;
pub mod embed;
pub mod eval;
pub mod execute;
pub mod finetune;
pub mod history;
pub mod http;
pub mod index;
pub mod keys;
pub mod llm;
pub mod metadata;
pub mod pipeline;
pub mod policy;
pub mod prompt;
pub mod retrieve;
pub mod stewardship;
pub mod validate;
pub mod vector_store;
