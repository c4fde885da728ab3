//! Quarry's integration tests: one binary, one module per feature.
//!
//! Fast tests use the real embedder, Qdrant Edge (and a Qdrant server when `QDRANT_URL` is set)
//! and SQLite with a scripted LLM. Tests with the real model run when `QUARRY_E2E=1` (`make test`
//! and CI set it).

mod admission;
mod adversarial;
mod agent;
mod catalog;
mod choices;
mod cli;
mod demo;
mod e2e;
mod eval;
mod finetune;
mod grounding;
mod history;
mod holes;
mod http;
mod llm_server;
mod metadata_store;
mod operators;
mod policy;
mod postgres;
mod rewrites;
mod support;
mod surfaces;
mod threads;
mod vectors;
mod web;
