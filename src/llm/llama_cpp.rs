//! The embedded runtime: a GGUF model run in process by llama.cpp (`llama-cpp-2`) on a thread
//! of its own, and the chat-template rendering the fine-tuning export shares with it.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{mpsc, OnceLock};
use std::time::Instant;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::vocab::LlamaVocab;
use llama_cpp_2::{LlamaStateSeqFlags, SeqState};

use super::{draft, ChatPrompt, Generation, GenerationParams, Llm, LlmError};
use crate::warehouse::Cancel;

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

/// A GGUF model run in process by llama.cpp, on a thread of its own that keeps one context
/// between generations: the key/value cache of the last prompt is kept, and the next prompt
/// prefills only what follows the prefix they share (a repair round, a sampled candidate and
/// every question's fixed system prompt start the same way). Earlier prompts are kept aside in
/// memory (`LlamaSettings::prompt_cache_mb`), so a question over the same tables as one asked a few
/// questions ago restores their keys and values instead of prefilling them again. One
/// generation at a time: the machine's cores are shared by all of them anyway.
pub struct LlamaCppLlm {
    model_id: String,
    /// The LoRA adapter applied on top of the model, by file name.
    adapter: Option<String>,
    requests: Option<mpsc::Sender<Request>>,
    worker: Option<std::thread::JoinHandle<()>>,
}

/// Generations asked of the model's thread: one per entry of `params`, decoded together.
struct Request {
    prompt: ChatPrompt,
    params: Vec<GenerationParams>,
    /// Send the first generation's text as it grows (`Reply::Partial`).
    stream_first: bool,
    /// Raised when the question is cancelled: the engine stops at its next decode.
    cancel: Cancel,
    reply: mpsc::Sender<Reply>,
}

/// What the model's thread sends back: pieces of the first generation, then the result.
enum Reply {
    Partial(String),
    Done(Result<Vec<Generation>, LlmError>),
}

impl LlamaCppLlm {
    /// Loads a GGUF file, with a GGUF LoRA adapter on top when given (`quarry finetune`
    /// makes them).
    pub fn load(path: &Path, adapter: Option<&Path>, settings: &LlamaSettings) -> Result<Self, LlmError> {
        if !path.is_file() {
            return Err(LlmError::MissingModel(path.to_path_buf()));
        }
        if let Some(adapter) = adapter.filter(|a| !a.is_file()) {
            return Err(LlmError::MissingAdapter(adapter.to_path_buf()));
        }
        let adapter_path = adapter.map(Path::to_path_buf);
        let adapter = adapter.and_then(|a| a.file_stem()).map(|s| s.to_string_lossy().into_owned());
        let backend = backend()?;
        let model_id =
            path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "gguf".to_string());
        let (requests, inbox) = mpsc::channel::<Request>();
        let (loaded, load_result) = mpsc::channel::<Result<(), LlmError>>();
        let path = path.to_path_buf();
        let threads = settings.threads.max(1) as i32;
        let context_tokens = settings.context_tokens.max(512);
        let saved_budget = settings.prompt_cache_mb.saturating_mul(1 << 20);
        let draft_tokens = settings.draft_tokens;
        let worker = std::thread::Builder::new()
            .name("llama.cpp".into())
            .spawn(move || {
                let mut model = match LlamaModel::load_from_file(backend, &path, &model_params())
                {
                    Ok(model) => model,
                    Err(e) => {
                        let _ = loaded.send(Err(LlmError::Load { path, message: e.to_string() }));
                        return;
                    }
                };
                // The adapter is read before any context exists, as llama.cpp requires.
                let mut lora = match adapter_path.as_ref().map(|a| model.lora_adapter_init(a)).transpose() {
                    Ok(lora) => lora,
                    Err(e) => {
                        let path = adapter_path.unwrap_or_default();
                        let message = format!(
                            "{e}; an adapter fits only the model it was trained on (`quarry finetune` writes them): fix [llm] adapter, or QUARRY_ADAPTER=none for no adapter"
                        );
                        let _ = loaded.send(Err(LlmError::Load { path, message }));
                        return;
                    }
                };
                // Several sequences share one unified cache: the candidates of a batch read the
                // prompt's cells, copied by reference, and each has the whole window.
                let params = LlamaContextParams::default()
                    .with_n_ctx(NonZeroU32::new(context_tokens))
                    .with_n_seq_max(MAX_STREAMS as u32)
                    .with_kv_unified(true)
                    .with_n_batch(BATCH as u32)
                    .with_n_threads(threads)
                    .with_n_threads_batch(threads);
                let mut ctx = match model.new_context(backend, params) {
                    Ok(ctx) => ctx,
                    Err(e) => {
                        let _ = loaded.send(Err(LlmError::Load { path, message: e.to_string() }));
                        return;
                    }
                };
                if let Some(lora) = lora.as_mut() {
                    if let Err(e) = ctx.lora_adapter_set(lora, 1.0) {
                        let path = adapter_path.unwrap_or_default();
                        let _ = loaded.send(Err(LlmError::Load { path, message: e.to_string() }));
                        return;
                    }
                }
                let _ = loaded.send(Ok(()));
                let mut engine = Engine {
                    model: &model,
                    ctx,
                    cached: Vec::new(),
                    prompt_len: 0,
                    saved: Vec::new(),
                    saved_budget,
                    clock: 0,
                    context_tokens,
                    draft_tokens,
                };
                for request in inbox {
                    let reply = request.reply.clone();
                    let partial = move |piece: &str| {
                        let _ = reply.send(Reply::Partial(piece.to_string()));
                    };
                    let partial = request.stream_first.then_some(&partial as &dyn Fn(&str));
                    let result = engine.generate(&request.prompt, &request.params, partial, &request.cancel);
                    let _ = request.reply.send(Reply::Done(result));
                }
            })
            .map_err(|e| LlmError::Inference(format!("cannot start the model's thread: {e}")))?;
        load_result.recv().unwrap_or_else(|_| {
            Err(LlmError::Inference("the model's thread stopped while loading".into()))
        })?;
        Ok(LlamaCppLlm { model_id, adapter, requests: Some(requests), worker: Some(worker) })
    }
}

/// How the embedded model runs: `[llm] threads`, `context_tokens`, `prompt_cache_mb` and
/// `draft_tokens`.
#[derive(Debug, Clone, Copy)]
pub struct LlamaSettings {
    /// CPU threads for prefill and decode.
    pub threads: usize,
    /// The window: prompt plus every answer decoded beside it.
    pub context_tokens: u32,
    /// Memory for earlier prompts' keys and values, MiB (0: only the last prompt is kept).
    pub prompt_cache_mb: usize,
    /// Tokens guessed from the text so far and checked in one batch beside each decoded token
    /// of a lone greedy answer (`draft.rs`; 0: one token per step).
    pub draft_tokens: usize,
}

impl Drop for LlamaCppLlm {
    fn drop(&mut self) {
        // Closing the channel ends the thread, which frees the context and the model.
        self.requests.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl Llm for LlamaCppLlm {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn adapter(&self) -> Option<&str> {
        self.adapter.as_deref()
    }

    fn generate(&self, prompt: &ChatPrompt, params: &GenerationParams) -> Result<Generation, LlmError> {
        let mut generations = self.generate_batch(prompt, std::slice::from_ref(params))?;
        generations.pop().ok_or_else(|| LlmError::Inference("the model returned no generation".into()))
    }

    fn generate_batch(
        &self,
        prompt: &ChatPrompt,
        params: &[GenerationParams],
    ) -> Result<Vec<Generation>, LlmError> {
        self.batch(prompt, params, None, &Cancel::new())
    }

    fn generate_batch_streaming(
        &self,
        prompt: &ChatPrompt,
        params: &[GenerationParams],
        partial: &dyn Fn(&str),
        cancel: &Cancel,
    ) -> Result<Vec<Generation>, LlmError> {
        self.batch(prompt, params, Some(partial), cancel)
    }
}

impl LlamaCppLlm {
    fn batch(
        &self,
        prompt: &ChatPrompt,
        params: &[GenerationParams],
        partial: Option<&dyn Fn(&str)>,
        cancel: &Cancel,
    ) -> Result<Vec<Generation>, LlmError> {
        let stopped = || LlmError::Inference("the model's thread has stopped".into());
        let mut generations = Vec::with_capacity(params.len());
        // More candidates than sequences: in groups, each over the cached prompt.
        for (index, group) in params.chunks(MAX_STREAMS).enumerate() {
            let (reply, answer) = mpsc::channel();
            let stream_first = index == 0 && partial.is_some();
            let request = Request {
                prompt: prompt.clone(),
                params: group.to_vec(),
                stream_first,
                cancel: cancel.clone(),
                reply,
            };
            self.requests.as_ref().ok_or_else(stopped)?.send(request).map_err(|_| stopped())?;
            loop {
                match answer.recv().map_err(|_| stopped())? {
                    Reply::Partial(piece) => {
                        if let Some(partial) = partial {
                            partial(&piece);
                        }
                    }
                    Reply::Done(result) => {
                        generations.extend(result?);
                        break;
                    }
                }
            }
        }
        Ok(generations)
    }
}

/// How the weights are loaded: read into memory rather than mapped. On the CPU, llama.cpp
/// repacks the weights into its own buffers anyway; a mapping kept the file's pages resident
/// beside that copy (measured: 2.17 GB resident at start for the 1.5B model, mapped).
fn model_params() -> LlamaModelParams {
    LlamaModelParams::default().with_use_mmap(false)
}

/// Tokens decoded per batch.
const BATCH: usize = 512;

/// Generations decoded together at most (llama.cpp sequences of the one context).
pub const MAX_STREAMS: usize = 8;

/// The model's thread: the model, its one context, the tokens whose keys and values sequence 0
/// holds (in position order), and earlier prompts kept aside.
struct Engine<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    cached: Vec<LlamaToken>,
    /// How many of `cached` are the last prompt (the rest is the answer decoded after it).
    prompt_len: usize,
    saved: Vec<SavedPrompt>,
    /// Bytes the saved prompts may hold together; the least recently used go first.
    saved_budget: usize,
    /// Counts restores and saves: which saved prompt served last.
    clock: u64,
    context_tokens: u32,
    /// Draft tokens checked beside each decoded token of a lone greedy answer.
    draft_tokens: usize,
}

/// An earlier prompt's keys and values, copied out of the context when a later prompt took its
/// place on sequence 0.
struct SavedPrompt {
    tokens: Vec<LlamaToken>,
    state: SeqState,
    used: u64,
}

/// A saved prompt is restored when it shares at least this many more tokens with the new prompt
/// than sequence 0 does (restoring copies its keys and values back: milliseconds, where
/// prefilling this many tokens takes a fraction of a second on a CPU).
const RESTORE_GAIN: usize = 32;

/// Prompts whose part after what the next prompt shares is shorter than this are not saved.
const SAVE_AT_LEAST: usize = 64;

/// How many tokens two sequences share from their start.
fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Engine<'_> {
    /// `partial`, when given, receives the first generation's text as it is decoded; a raised
    /// `cancel` stops the work at the next prefill batch or decode step.
    fn generate(
        &mut self,
        prompt: &ChatPrompt,
        params: &[GenerationParams],
        partial: Option<&dyn Fn(&str)>,
        cancel: &Cancel,
    ) -> Result<Vec<Generation>, LlmError> {
        let text = render(self.model, prompt)?;
        let tokens = self.model.vocab().tokenize(text.as_bytes(), false, true);
        let limit = self.context_tokens as usize;
        // The streams share the prompt's cells and each needs room for its answer: as many
        // decode together as the window holds, the rest in later groups over the same prompt.
        let mut generations = Vec::with_capacity(params.len());
        let mut rest = params;
        while !rest.is_empty() {
            let mut room = tokens.len();
            let fit = rest.iter().take_while(|p| {
                room += p.max_tokens;
                room <= limit
            });
            let group = fit.count();
            if group == 0 {
                return Err(LlmError::PromptTooLong { tokens: tokens.len() + rest[0].max_tokens, limit });
            }
            let first_group = rest.len() == params.len();
            let result = self.run(&tokens, &rest[..group], partial.filter(|_| first_group), cancel);
            if result.is_err() {
                // Whatever the cache holds now is unknown: start clean next time (the saved
                // prompts are copies in memory and stay good).
                self.ctx.clear_kv_cache();
                self.cached.clear();
                self.prompt_len = 0;
            }
            generations.extend(result?);
            rest = &rest[group..];
        }
        Ok(generations)
    }

    /// Before sequence 0 loses the end of the last prompt (the next one shares only `shared`
    /// tokens of it), copies that prompt's keys and values aside, unless a saved prompt already
    /// holds it; then drops the least recently used saved prompts beyond the budget.
    fn save_last_prompt(&mut self, shared: usize) -> Result<(), LlmError> {
        let infer = |e: &dyn std::fmt::Display| LlmError::Inference(e.to_string());
        let len = self.prompt_len.min(self.cached.len());
        if self.saved_budget == 0 || len < shared + SAVE_AT_LEAST {
            return Ok(());
        }
        let prompt = &self.cached[..len];
        if self.saved.iter().any(|s| s.tokens.starts_with(prompt)) {
            return Ok(());
        }
        // The answer decoded after the prompt is not kept: the next question's differs.
        if !self.ctx.clear_kv_cache_seq(Some(0), Some(len as u32), None).map_err(|e| infer(&e))? {
            return Ok(());
        }
        self.cached.truncate(len);
        // A prompt larger than the whole budget would be dropped as soon as it was copied.
        if self.ctx.state_seq_get_size_ext(0, LlamaStateSeqFlags::empty()) > self.saved_budget {
            return Ok(());
        }
        let state = self.ctx.state_seq_get(0, LlamaStateSeqFlags::empty()).map_err(|e| infer(&e))?;
        let tokens = self.cached.clone();
        // A saved prompt this one extends serves nothing the new one does not.
        self.saved.retain(|s| !tokens.starts_with(&s.tokens));
        self.clock += 1;
        self.saved.push(SavedPrompt { tokens, state, used: self.clock });
        while self.saved.iter().map(|s| s.state.byte_len()).sum::<usize>() > self.saved_budget {
            let oldest = self.saved.iter().enumerate().min_by_key(|(_, s)| s.used).map(|(i, _)| i);
            self.saved.remove(oldest.unwrap_or(0));
        }
        Ok(())
    }

    /// When a saved prompt shares clearly more of `tokens` than sequence 0's `shared`, puts its
    /// keys and values back on sequence 0 and returns how many tokens it shares.
    fn restore_closest(&mut self, tokens: &[LlamaToken], shared: usize) -> Result<Option<usize>, LlmError> {
        let infer = |e: &dyn std::fmt::Display| LlmError::Inference(e.to_string());
        let closest = self
            .saved
            .iter_mut()
            .map(|saved| (common_prefix(&saved.tokens, tokens), saved))
            .max_by_key(|(n, _)| *n)
            .filter(|(n, _)| *n >= shared + RESTORE_GAIN);
        let Some((n, saved)) = closest else { return Ok(None) };
        self.clock += 1;
        saved.used = self.clock;
        self.ctx.clear_kv_cache_seq(Some(0), None, None).map_err(|e| infer(&e))?;
        self.ctx.state_seq_set(&saved.state, 0).map_err(|e| infer(&e))?;
        // The caller cuts this back to the `n` tokens the new prompt shares: nothing of the
        // saved prompt beyond them (another question's, another role's) reaches the model.
        self.cached = saved.tokens.clone();
        Ok(Some(n))
    }

    /// Prefills what of `tokens` the cache lacks on sequence 0, then decodes one stream per
    /// entry of `params` together: stream 0 continues sequence 0, stream i a copy of it on
    /// sequence i (removed afterwards). Sequence 0 keeps the prompt and stream 0's answer.
    fn run(
        &mut self,
        tokens: &[LlamaToken],
        params: &[GenerationParams],
        partial: Option<&dyn Fn(&str)>,
        cancel: &Cancel,
    ) -> Result<Vec<Generation>, LlmError> {
        let infer = |e: &dyn std::fmt::Display| LlmError::Inference(e.to_string());
        // Keep the cached prefix this prompt shares (or a saved prompt's, when that shares
        // more), leaving at least one token to decode (its logits start the answer); drop the
        // rest from the cache.
        let shared = common_prefix(&self.cached, tokens);
        self.save_last_prompt(shared)?;
        let shared = self.restore_closest(tokens, shared)?.unwrap_or(shared);
        let mut keep = shared.min(tokens.len().saturating_sub(1));
        if !self.ctx.clear_kv_cache_seq(Some(0), Some(keep as u32), None).map_err(|e| infer(&e))? {
            self.ctx.clear_kv_cache();
            keep = 0;
        }
        self.cached.truncate(keep);

        let started = Instant::now();
        let streams = params.len().min(MAX_STREAMS);
        let mut batch = LlamaBatch::new(BATCH.max(streams), streams as i32);
        let fresh = &tokens[keep..];
        for (chunk_index, chunk) in fresh.chunks(BATCH).enumerate() {
            if cancel.is_cancelled() {
                return Err(LlmError::Cancelled);
            }
            batch.clear();
            for (i, token) in chunk.iter().enumerate() {
                let pos = keep + chunk_index * BATCH + i;
                batch.add(*token, pos as i32, &[0], pos + 1 == tokens.len()).map_err(|e| infer(&e))?;
            }
            self.ctx.decode(&mut batch).map_err(|e| infer(&e))?;
            self.cached.extend_from_slice(chunk);
        }
        let prefill_ms = started.elapsed().as_millis() as u64;
        self.prompt_len = tokens.len();
        for seq in 1..streams {
            self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None).map_err(|e| infer(&e))?;
            self.ctx.copy_kv_cache_seq(0, seq as i32, None, None).map_err(|e| infer(&e))?;
        }

        if streams == 1 && params[0].temperature <= 0.0 && self.draft_tokens > 0 {
            let generation = self.decode_drafted(tokens, &params[0], batch, partial, cancel)?;
            return Ok(vec![Generation { cached_tokens: keep, prefill_ms, ..generation }]);
        }

        let decode_started = Instant::now();
        let mut states: Vec<Stream> = params[..streams].iter().map(Stream::new).collect();
        // Where each live stream's logits are in the last decoded batch.
        let mut logits_at: Vec<Option<i32>> = vec![Some(batch.n_tokens() - 1); streams];
        let vocab = self.model.vocab();
        let mut position = tokens.len();
        // Bytes of stream 0's text handed to `partial` so far.
        let mut sent = 0;
        loop {
            batch.clear();
            for (seq, state) in states.iter_mut().enumerate() {
                let Some(index) = logits_at[seq].take() else { continue };
                if let Some(token) = state.step(&self.ctx, index, &vocab) {
                    batch.add(token, position as i32, &[seq as i32], true).map_err(|e| infer(&e))?;
                    logits_at[seq] = Some(batch.n_tokens() - 1);
                    if seq == 0 {
                        self.cached.push(token);
                        if let Some(partial) = partial {
                            sent += state.hand_over(sent, partial);
                        }
                    }
                } else {
                    state.decode_ms = decode_started.elapsed().as_millis() as u64;
                }
            }
            if batch.n_tokens() == 0 {
                break;
            }
            if cancel.is_cancelled() {
                return Err(LlmError::Cancelled);
            }
            self.ctx.decode(&mut batch).map_err(|e| infer(&e))?;
            position += 1;
        }
        for seq in 1..streams {
            self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None).map_err(|e| infer(&e))?;
        }
        let generations: Vec<Generation> = states
            .into_iter()
            .enumerate()
            .map(|(seq, state)| Generation {
                decode_ms: state.decode_ms,
                completion_tokens: state.completion_tokens,
                text: state.text(),
                prompt_tokens: tokens.len(),
                // The candidates beside the first read the prompt prefilled for it.
                cached_tokens: if seq == 0 { keep } else { tokens.len() },
                drafted_tokens: 0,
                prefill_ms: if seq == 0 { prefill_ms } else { 0 },
            })
            .collect();
        if let Some(first) = generations.first() {
            hand_over_rest(partial, &first.text, sent);
        }
        Ok(generations)
    }
}

impl Engine<'_> {
    /// Decodes one greedy answer after its prompt was prefilled (`batch` holds the prompt's last
    /// tokens, the last with logits). Each step decodes the token chosen last together with up
    /// to `draft_tokens` guessed from the text so far; the guesses are kept as far as the
    /// model's own choice at each position agrees, and the rest leave the cache. The answer is
    /// the one token-by-token decoding gives, up to rounding in a batch's sums.
    fn decode_drafted(
        &mut self,
        tokens: &[LlamaToken],
        params: &GenerationParams,
        mut batch: LlamaBatch,
        partial: Option<&dyn Fn(&str)>,
        cancel: &Cancel,
    ) -> Result<Generation, LlmError> {
        let infer = |e: &dyn std::fmt::Display| LlmError::Inference(e.to_string());
        let decode_started = Instant::now();
        let vocab = self.model.vocab();
        let mut state = Stream::new(params);
        let mut sent = 0;
        // The last decoded batch: where its first logits are, and the drafts after its first token.
        let mut first_logits = batch.n_tokens() - 1;
        let mut drafts: Vec<LlamaToken> = Vec::new();
        let mut drafted_tokens = 0;
        loop {
            // The model's choice after the first token, then after each draft it agreed with.
            let mut accepted = 0;
            let mut next = None;
            for offset in 0..=drafts.len() {
                let Some(token) = state.step(&self.ctx, first_logits + offset as i32, &vocab) else {
                    break;
                };
                if drafts.get(offset) == Some(&token) {
                    accepted += 1;
                    drafted_tokens += 1;
                    self.cached.push(token);
                    if let Some(partial) = partial {
                        sent += state.hand_over(sent, partial);
                    }
                } else {
                    next = Some(token);
                    break;
                }
            }
            // The drafts after the last agreed one leave the cache.
            if accepted < drafts.len() {
                let from = self.cached.len() as u32;
                self.ctx.clear_kv_cache_seq(Some(0), Some(from), None).map_err(|e| infer(&e))?;
            }
            let Some(token) = next else { break };
            if let Some(partial) = partial {
                sent += state.hand_over(sent, partial);
            }
            if cancel.is_cancelled() {
                return Err(LlmError::Cancelled);
            }
            // `cached` is the prompt and the answer so far: the drafts are looked up there. The
            // token goes in before its decode (a failed decode clears the whole cache anyway);
            // the drafts only once the model agrees with them.
            let position = self.cached.len();
            self.cached.push(token);
            let room = (self.context_tokens as usize).saturating_sub(position + 1);
            drafts = draft::lookup(&self.cached, self.draft_tokens.min(room));
            batch.clear();
            batch.add(token, position as i32, &[0], true).map_err(|e| infer(&e))?;
            for (i, draft) in drafts.iter().enumerate() {
                batch.add(*draft, (position + 1 + i) as i32, &[0], true).map_err(|e| infer(&e))?;
            }
            self.ctx.decode(&mut batch).map_err(|e| infer(&e))?;
            first_logits = 0;
        }
        let decode_ms = decode_started.elapsed().as_millis() as u64;
        let completion_tokens = state.completion_tokens;
        let text = state.text();
        hand_over_rest(partial, &text, sent);
        Ok(Generation {
            text,
            prompt_tokens: tokens.len(),
            completion_tokens,
            drafted_tokens,
            decode_ms,
            ..Generation::default()
        })
    }
}

/// Hands `partial` what of a streamed answer's final text (up to its stop string) was held back
/// after the `sent` bytes it already has.
fn hand_over_rest(partial: Option<&dyn Fn(&str)>, text: &str, sent: usize) {
    if let (Some(partial), Some(rest)) = (partial, text.get(sent..)) {
        if !rest.is_empty() {
            partial(rest);
        }
    }
}

/// One answer being decoded: its sampler, the bytes so far, and whether it has ended.
struct Stream<'p> {
    params: &'p GenerationParams,
    sampler: LlamaSampler,
    output: Vec<u8>,
    completion_tokens: usize,
    /// The text up to the stop string, once one appeared.
    stopped: Option<String>,
    done: bool,
    decode_ms: u64,
}

impl<'p> Stream<'p> {
    fn new(params: &'p GenerationParams) -> Self {
        let sampler = if params.temperature > 0.0 {
            LlamaSampler::chain_simple([
                LlamaSampler::top_p(0.95, 1),
                LlamaSampler::temp(params.temperature),
                LlamaSampler::dist(params.seed),
            ])
        } else {
            LlamaSampler::greedy()
        };
        Stream {
            params,
            sampler,
            output: Vec::new(),
            completion_tokens: 0,
            stopped: None,
            done: false,
            decode_ms: 0,
        }
    }

    /// Samples the next token from the logits at `index`; None when the stream has ended
    /// (end of turn, a stop string, or its token budget).
    fn step(&mut self, ctx: &LlamaContext, index: i32, vocab: &LlamaVocab) -> Option<LlamaToken> {
        if self.done || self.completion_tokens >= self.params.max_tokens {
            self.done = true;
            return None;
        }
        // `sample` also accepts the token into the sampler; never call `accept` again.
        let token = self.sampler.sample(ctx, index);
        if vocab.is_eog(token) {
            self.done = true;
            return None;
        }
        self.completion_tokens += 1;
        self.output.extend(vocab.token_to_piece(token, false, None));
        let so_far = String::from_utf8_lossy(&self.output);
        if let Some(stop_at) = self.params.stop.iter().filter_map(|s| so_far.find(s.as_str())).min() {
            self.stopped = Some(so_far[..stop_at].to_string());
            self.done = true;
            return None;
        }
        Some(token)
    }

    /// Hands `partial` the text decoded since byte `sent`, whole characters only and short of
    /// the last bytes that could begin a stop string; returns how many bytes it handed over.
    fn hand_over(&self, sent: usize, partial: &dyn Fn(&str)) -> usize {
        let valid = match std::str::from_utf8(&self.output) {
            Ok(text) => text.len(),
            Err(e) => e.valid_up_to(),
        };
        let hold = self.params.stop.iter().map(String::len).max().unwrap_or(0);
        let mut until = valid.saturating_sub(hold);
        while until > sent && std::str::from_utf8(&self.output[sent..until]).is_err() {
            until -= 1;
        }
        if until <= sent || self.stopped.is_some() {
            return 0;
        }
        match std::str::from_utf8(&self.output[sent..until]) {
            Ok(piece) => {
                partial(piece);
                until - sent
            }
            Err(_) => 0,
        }
    }

    fn text(self) -> String {
        self.stopped.unwrap_or_else(|| String::from_utf8_lossy(&self.output).into_owned())
    }
}

/// Renders prompts in a model's own chat template exactly as `LlamaCppLlm` does; the
/// fine-tuning export writes its training prompts with it.
pub struct PromptRenderer {
    model: LlamaModel,
}

impl PromptRenderer {
    /// Reads the vocabulary and template of a GGUF file (not its weights).
    pub fn load(path: &Path) -> Result<PromptRenderer, LlmError> {
        if !path.is_file() {
            return Err(LlmError::MissingModel(path.to_path_buf()));
        }
        let params = LlamaModelParams::default().with_vocab_only(true);
        let model = LlamaModel::load_from_file(backend()?, path, &params)
            .map_err(|e| LlmError::Load { path: path.to_path_buf(), message: e.to_string() })?;
        Ok(PromptRenderer { model })
    }

    /// The text the model is given for `prompt`, ending with the answer's beginning.
    pub fn render(&self, prompt: &ChatPrompt) -> Result<String, LlmError> {
        render(&self.model, prompt)
    }
}

/// The prompt text in the model's chat format (ChatML for Qwen).
fn render(model: &LlamaModel, prompt: &ChatPrompt) -> Result<String, LlmError> {
    let message = |role: &str, content: &str| {
        LlamaChatMessage::new(role.to_string(), content.to_string())
            .map_err(|e| LlmError::Inference(format!("prompt contains a NUL byte: {e}")))
    };
    let mut chat = vec![message("system", &prompt.system)?, message("user", &prompt.user)?];
    for turn in &prompt.turns {
        chat.push(message("assistant", &turn.assistant)?);
        chat.push(message("user", &turn.user)?);
    }
    let rendered = match model.chat_template(None) {
        Ok(template) => model.apply_chat_template(&template, &chat, true).ok(),
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
