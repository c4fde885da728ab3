//! The language model: the `Llm` trait, its embedded default (llama.cpp in process through
//! `llama-cpp-2`, a Qwen2.5-Coder GGUF), `OpenAiLlm` for a model behind an OpenAI-compatible
//! server, and `ScriptedLlm`, a deterministic stand-in for fast tests.
//!
//! `llama_cpp.rs` holds the embedded runtime, `openai.rs` the server client; the trait, the
//! types they share and the scripted stand-in are here.
//!
//! It owns turning a chat prompt into text. What the prompt says is `prompt`'s business, and
//! what the text is worth is the validator's: everything a model writes is untrusted.

use std::path::PathBuf;

use serde::Serialize;

use crate::warehouse::Cancel;

mod draft;
mod llama_cpp;
mod openai;

pub use llama_cpp::{LlamaCppLlm, LlamaSettings, PromptRenderer, MAX_STREAMS};
pub use openai::OpenAiLlm;

/// A chat prompt: a system message, a user message, earlier exchanges (e.g. a refused answer
/// and the error it got), and the beginning of the assistant's answer to continue from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatPrompt {
    pub system: String,
    pub user: String,
    pub turns: Vec<Turn>,
    pub assistant_prefix: String,
}

/// One earlier exchange: what the assistant said, and the user's reply to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    pub assistant: String,
    pub user: String,
}

impl ChatPrompt {
    /// Every user-side text of the conversation, in order.
    pub fn user_texts(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.user.as_str()).chain(self.turns.iter().map(|t| t.user.as_str()))
    }
}

/// How to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationParams {
    pub max_tokens: usize,
    /// Generation stops when the text contains one of these; the stop string is not returned.
    pub stop: Vec<String>,
    /// 0: greedy (the most likely token each step, deterministic). Above 0: sampled, for
    /// several different candidates (`[llm] samples`).
    pub temperature: f32,
    /// Seed of a sampled generation: the same seed and prompt give the same text.
    pub seed: u32,
}

impl GenerationParams {
    /// Greedy decoding up to `max_tokens`, stopping at `stop`.
    pub fn greedy(max_tokens: usize, stop: &str) -> Self {
        GenerationParams { max_tokens, stop: vec![stop.to_string()], temperature: 0.0, seed: 0 }
    }

    /// The same, sampled at `temperature` with `seed`.
    pub fn sampled(&self, temperature: f32, seed: u32) -> Self {
        GenerationParams { temperature, seed, ..self.clone() }
    }
}

/// What the model wrote, with its cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Generation {
    pub text: String,
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values came from the cache (not prefilled again).
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    /// Completion tokens that were guessed ahead and confirmed in a batch rather than decoded
    /// in a step of their own (the embedded model's `[llm] draft_tokens`).
    pub drafted_tokens: usize,
    pub prefill_ms: u64,
    pub decode_ms: u64,
}

/// Errors from the language model.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The model file is missing.
    #[error("model file {0} is missing: run `make assets` (scripts/fetch-assets.sh) to fetch it")]
    MissingModel(PathBuf),
    /// The adapter file is missing.
    #[error("adapter file {0} is missing: fix [llm] adapter (or QUARRY_ADAPTER; `none` for no adapter)")]
    MissingAdapter(PathBuf),
    /// llama.cpp could not load the model.
    #[error("cannot load the model {path}: {message}")]
    Load { path: PathBuf, message: String },
    /// The prompt does not fit the model's context window.
    #[error("the prompt has {tokens} tokens, more than the context window of {limit}; ask a shorter question or lower the retrieval budget")]
    PromptTooLong { tokens: usize, limit: usize },
    /// Inference failed.
    #[error("the model failed while generating: {0}")]
    Inference(String),
    /// The workspace was opened without a model (for SQL only).
    #[error("no language model is loaded; start Quarry with its model to ask questions")]
    NotLoaded,
    /// The OpenAI-compatible server could not be reached or answered with an error.
    #[error("the LLM server at {url} failed: {message}; check that it runs and serves [llm] server_model, or remove [llm] url to use the embedded model")]
    Server { url: String, message: String },
    /// The scripted model has no answer for this prompt (tests only).
    #[error("the generation was stopped: its question was cancelled (the client went away)")]
    Cancelled,
    #[error("the scripted model has no answer for this prompt")]
    NoScriptedAnswer,
}

/// Writes text for a chat prompt.
pub trait Llm: Send + Sync {
    /// A stable name of the model in use (shown in answers and audit records).
    fn model_id(&self) -> &str;
    /// The fine-tuned adapter applied on top of the model, if any.
    fn adapter(&self) -> Option<&str> {
        None
    }
    fn generate(&self, prompt: &ChatPrompt, params: &GenerationParams) -> Result<Generation, LlmError>;

    /// One generation per entry of `params`, all continuing the same prompt (a greedy answer
    /// and sampled candidates). The embedded runtime decodes them together in one batch over
    /// the prompt's keys and values, computed once; this default asks one after another.
    fn generate_batch(
        &self,
        prompt: &ChatPrompt,
        params: &[GenerationParams],
    ) -> Result<Vec<Generation>, LlmError> {
        params.iter().map(|p| self.generate(prompt, p)).collect()
    }

    /// `generate_batch`, handing the first generation's text to `partial` piece by piece as it
    /// is decoded (the page shows the SQL being written), and stopping with
    /// `LlmError::Cancelled` once `cancel` is raised (the question's client went away). This
    /// default hands the text over whole, once it is done, and looks at `cancel` only before
    /// starting; the embedded runtime streams token by token and stops within a decode step
    /// (or a prefill batch), `OpenAiLlm` streams the server's events and closes the first
    /// candidate's connection.
    fn generate_batch_streaming(
        &self,
        prompt: &ChatPrompt,
        params: &[GenerationParams],
        partial: &dyn Fn(&str),
        cancel: &Cancel,
    ) -> Result<Vec<Generation>, LlmError> {
        if cancel.is_cancelled() {
            return Err(LlmError::Cancelled);
        }
        let generations = self.generate_batch(prompt, params)?;
        if let Some(first) = generations.first().filter(|g| !g.text.is_empty()) {
            partial(&first.text);
        }
        Ok(generations)
    }
}

/// A deterministic stand-in for a model, for fast tests: answers with the reply of the first
/// rule whose key occurs in the user message, exactly as a model's raw text would come back.
/// A rule may hold several replies: greedy generation gets the first, a sampled one the reply
/// its seed picks (seed modulo their number), as sampled candidates would differ.
#[derive(Debug, Clone, Default)]
pub struct ScriptedLlm {
    rules: Vec<(String, Vec<String>)>,
}

impl ScriptedLlm {
    pub fn new(rules: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>) -> Self {
        ScriptedLlm { rules: rules.into_iter().map(|(k, v)| (k.into(), vec![v.into()])).collect() }
    }

    /// Adds a rule with several replies (see the type's documentation).
    pub fn with_samples(mut self, key: &str, replies: &[&str]) -> Self {
        self.rules.push((key.to_string(), replies.iter().map(|r| r.to_string()).collect()));
        self
    }
}

impl Llm for ScriptedLlm {
    fn model_id(&self) -> &str {
        "scripted"
    }

    fn generate(&self, prompt: &ChatPrompt, params: &GenerationParams) -> Result<Generation, LlmError> {
        let (_, replies) = self
            .rules
            .iter()
            .find(|(key, _)| prompt.user_texts().any(|text| text.contains(key.as_str())))
            .ok_or(LlmError::NoScriptedAnswer)?;
        let pick = if params.temperature > 0.0 { params.seed as usize % replies.len().max(1) } else { 0 };
        let reply = &replies[pick];
        Ok(Generation {
            text: reply.clone(),
            prompt_tokens: (prompt.system.len() + prompt.user_texts().map(str::len).sum::<usize>())
                .div_ceil(4),
            cached_tokens: 0,
            completion_tokens: reply.len().div_ceil(4),
            ..Generation::default()
        })
    }
}
