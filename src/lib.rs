//! Quarry: a governed text-to-SQL agent.
//!
//! The pipeline runs one way: retrieve -> generate -> validate -> execute -> answer.
//! `ARCHITECTURE.md` at the repository root maps the modules and their invariants.

pub mod catalog;
pub mod demo;
