//! The language model: the `Llm` trait, its embedded default (llama.cpp in process through
//! `llama-cpp-2`, a Qwen2.5-Coder GGUF), and `ScriptedLlm`, a deterministic stand-in for fast
//! tests.
//!
//! It owns turning a chat prompt into text. What the prompt says is `prompt`'s business, and
//! what the text is worth is the validator's: everything a model writes is untrusted.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use serde::Serialize;

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
}

/// What the model wrote, with its cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generation {
    pub text: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub prefill_ms: u64,
    pub decode_ms: u64,
}

/// Errors from the language model.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The model file is missing.
    #[error("model file {0} is missing: run `make assets` (scripts/fetch-assets.sh) to fetch it")]
    MissingModel(PathBuf),
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
    /// The scripted model has no answer for this prompt (tests only).
    #[error("the scripted model has no answer for this prompt")]
    NoScriptedAnswer,
}

/// Writes text for a chat prompt.
pub trait Llm: Send + Sync {
    /// A stable name of the model in use (shown in answers and audit records).
    fn model_id(&self) -> &str;
    fn generate(&self, prompt: &ChatPrompt, params: &GenerationParams) -> Result<Generation, LlmError>;
}

/// llama.cpp's backend may be initialised once per process.
fn backend() -> Result<&'static LlamaBackend, LlmError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let mut backend = LlamaBackend::init().map_err(|e| e.to_string())?;
            backend.void_logs();
            Ok(backend)
        })
        .as_ref()
        .map_err(|e| LlmError::Inference(format!("llama.cpp backend: {e}")))
}

/// A GGUF model run in process by llama.cpp.
pub struct LlamaCppLlm {
    model: LlamaModel,
    model_id: String,
    threads: i32,
    context_tokens: u32,
    /// One generation at a time: the machine's cores are shared by all of them anyway.
    busy: Mutex<()>,
}

impl LlamaCppLlm {
    /// Loads a GGUF file. `context_tokens` bounds prompt + answer.
    pub fn load(path: &Path, threads: usize, context_tokens: u32) -> Result<Self, LlmError> {
        if !path.is_file() {
            return Err(LlmError::MissingModel(path.to_path_buf()));
        }
        let backend = backend()?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| LlmError::Load { path: path.to_path_buf(), message: e.to_string() })?;
        let model_id =
            path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "gguf".to_string());
        Ok(LlamaCppLlm {
            model,
            model_id,
            threads: threads.max(1) as i32,
            context_tokens: context_tokens.max(512),
            busy: Mutex::new(()),
        })
    }

    /// The prompt text in the model's chat format (ChatML for Qwen).
    fn render(&self, prompt: &ChatPrompt) -> Result<String, LlmError> {
        let message = |role: &str, content: &str| {
            LlamaChatMessage::new(role.to_string(), content.to_string())
                .map_err(|e| LlmError::Inference(format!("prompt contains a NUL byte: {e}")))
        };
        let mut chat = vec![message("system", &prompt.system)?, message("user", &prompt.user)?];
        for turn in &prompt.turns {
            chat.push(message("assistant", &turn.assistant)?);
            chat.push(message("user", &turn.user)?);
        }
        let rendered = match self.model.chat_template(None) {
            Ok(template) => self.model.apply_chat_template(&template, &chat, true).ok(),
            Err(_) => None,
        };
        let mut text = rendered.unwrap_or_else(|| {
            let mut text = format!("<|im_start|>system\n{}<|im_end|>\n", prompt.system);
            text.push_str(&format!("<|im_start|>user\n{}<|im_end|>\n", prompt.user));
            for turn in &prompt.turns {
                text.push_str(&format!("<|im_start|>assistant\n{}<|im_end|>\n", turn.assistant));
                text.push_str(&format!("<|im_start|>user\n{}<|im_end|>\n", turn.user));
            }
            text.push_str("<|im_start|>assistant\n");
            text
        });
        text.push_str(&prompt.assistant_prefix);
        Ok(text)
    }
}

impl Llm for LlamaCppLlm {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn generate(&self, prompt: &ChatPrompt, params: &GenerationParams) -> Result<Generation, LlmError> {
        let _turn = self.busy.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let infer = |e: &dyn std::fmt::Display| LlmError::Inference(e.to_string());
        let text = self.render(prompt)?;
        let tokens = self.model.vocab().tokenize(text.as_bytes(), false, true);
        let limit = self.context_tokens as usize;
        if tokens.len() + params.max_tokens > limit {
            return Err(LlmError::PromptTooLong { tokens: tokens.len() + params.max_tokens, limit });
        }
        let batch_size = 512usize;
        let ctx_params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new((tokens.len() + params.max_tokens + 8) as u32))
            .with_n_batch(batch_size as u32)
            .with_n_threads(self.threads)
            .with_n_threads_batch(self.threads);
        let mut ctx = self.model.new_context(backend()?, ctx_params).map_err(|e| infer(&e))?;

        let started = Instant::now();
        let mut batch = LlamaBatch::new(batch_size, 1);
        for (chunk_index, chunk) in tokens.chunks(batch_size).enumerate() {
            batch.clear();
            let base = chunk_index * batch_size;
            for (i, token) in chunk.iter().enumerate() {
                let pos = base + i;
                batch.add(*token, pos as i32, &[0], pos + 1 == tokens.len()).map_err(|e| infer(&e))?;
            }
            ctx.decode(&mut batch).map_err(|e| infer(&e))?;
        }
        let prefill_ms = started.elapsed().as_millis() as u64;

        let decode_started = Instant::now();
        let mut sampler = LlamaSampler::greedy();
        let mut output = Vec::<u8>::new();
        let mut completion_tokens = 0usize;
        let mut pos = tokens.len();
        let mut logits_index = batch.n_tokens() - 1;
        let vocab = self.model.vocab();
        let stopped_text = loop {
            if completion_tokens >= params.max_tokens {
                break None;
            }
            // `sample` also accepts the token into the sampler; never call `accept` again.
            let token = sampler.sample(&ctx, logits_index);
            if vocab.is_eog(token) {
                break None;
            }
            completion_tokens += 1;
            output.extend(vocab.token_to_piece(token, false, None));
            let so_far = String::from_utf8_lossy(&output);
            if let Some(stop_at) = params.stop.iter().filter_map(|s| so_far.find(s.as_str())).min() {
                break Some(so_far[..stop_at].to_string());
            }
            batch.clear();
            batch.add(token, pos as i32, &[0], true).map_err(|e| infer(&e))?;
            pos += 1;
            ctx.decode(&mut batch).map_err(|e| infer(&e))?;
            logits_index = 0;
        };
        let text = stopped_text.unwrap_or_else(|| String::from_utf8_lossy(&output).into_owned());
        Ok(Generation {
            text,
            prompt_tokens: tokens.len(),
            completion_tokens,
            prefill_ms,
            decode_ms: decode_started.elapsed().as_millis() as u64,
        })
    }
}

/// A deterministic stand-in for a model, for fast tests: answers with the reply of the first
/// rule whose key occurs in the user message, exactly as a model's raw text would come back.
#[derive(Debug, Clone, Default)]
pub struct ScriptedLlm {
    rules: Vec<(String, String)>,
}

impl ScriptedLlm {
    pub fn new(rules: impl IntoIterator<Item = (impl Into<String>, impl Into<String>)>) -> Self {
        ScriptedLlm { rules: rules.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }
}

impl Llm for ScriptedLlm {
    fn model_id(&self) -> &str {
        "scripted"
    }

    fn generate(&self, prompt: &ChatPrompt, _params: &GenerationParams) -> Result<Generation, LlmError> {
        let (_, reply) = self
            .rules
            .iter()
            .find(|(key, _)| prompt.user_texts().any(|text| text.contains(key.as_str())))
            .ok_or(LlmError::NoScriptedAnswer)?;
        Ok(Generation {
            text: reply.clone(),
            prompt_tokens: (prompt.system.len() + prompt.user_texts().map(str::len).sum::<usize>())
                .div_ceil(4),
            completion_tokens: reply.len().div_ceil(4),
            prefill_ms: 0,
            decode_ms: 0,
        })
    }
}
