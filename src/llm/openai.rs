//! A model behind an OpenAI-compatible server (`[llm] url`): the chat as messages, the first
//! candidate streamed as server-sent events, the others as concurrent requests.

use std::time::Instant;

use super::{ChatPrompt, Generation, GenerationParams, Llm, LlmError};
use crate::warehouse::Cancel;

/// A model served by an OpenAI-compatible server (`POST {url}/chat/completions`): llama.cpp's
/// `llama-server`, vLLM, or a hosted endpoint. For when one machine's CPU is not enough; the
/// prompt, validation and governance stay in Quarry.
pub struct OpenAiLlm {
    agent: ureq::Agent,
    /// The API's base URL, e.g. `http://127.0.0.1:8081/v1`.
    url: String,
    /// The model name sent with each request.
    model: String,
    api_key: Option<String>,
}

impl OpenAiLlm {
    /// A client for the server at `url` serving `model`; `api_key`, when given, is sent as a
    /// bearer token. Nothing is sent until the first generation.
    pub fn new(url: &str, model: &str, api_key: Option<String>, timeout: std::time::Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        OpenAiLlm { agent, url: url.trim_end_matches('/').to_string(), model: model.to_string(), api_key }
    }

    fn failed(&self, message: impl std::fmt::Display) -> LlmError {
        LlmError::Server { url: self.url.clone(), message: message.to_string() }
    }

    /// The request body: the chat as messages; the assistant prefix as a last assistant
    /// message, which the server continues.
    fn body(&self, prompt: &ChatPrompt, params: &GenerationParams) -> serde_json::Value {
        let mut messages = vec![
            serde_json::json!({"role": "system", "content": prompt.system}),
            serde_json::json!({"role": "user", "content": prompt.user}),
        ];
        for turn in &prompt.turns {
            messages.push(serde_json::json!({"role": "assistant", "content": turn.assistant}));
            messages.push(serde_json::json!({"role": "user", "content": turn.user}));
        }
        if !prompt.assistant_prefix.is_empty() {
            messages.push(serde_json::json!({"role": "assistant", "content": prompt.assistant_prefix}));
        }
        serde_json::json!({
            "model": self.model,
            "messages": messages,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "seed": params.seed,
            "stop": params.stop,
        })
    }
}

impl Llm for OpenAiLlm {
    fn model_id(&self) -> &str {
        &self.model
    }

    fn generate(&self, prompt: &ChatPrompt, params: &GenerationParams) -> Result<Generation, LlmError> {
        let started = Instant::now();
        let mut response = self.post(self.body(prompt, params))?;
        let status = response.status();
        let reply: serde_json::Value = response
            .body_mut()
            .read_json()
            .map_err(|e| self.failed(format!("HTTP {status}, not a JSON reply ({e})")))?;
        if !status.is_success() {
            let message = reply["error"]["message"].as_str().map(str::to_string).unwrap_or(reply.to_string());
            return Err(self.failed(format!("HTTP {status}: {message}")));
        }
        self.generation_from(&reply, prompt, params, started)
    }

    /// The candidates as concurrent requests: the server batches them and reuses the
    /// prompt's cache across its slots.
    fn generate_batch(
        &self,
        prompt: &ChatPrompt,
        params: &[GenerationParams],
    ) -> Result<Vec<Generation>, LlmError> {
        self.generate_batch_streaming(prompt, params, &|_| {}, &Cancel::new())
    }

    /// The first candidate streamed (`"stream": true`), the others as plain concurrent requests.
    /// A raised `cancel` closes the first candidate's stream (the server stops that generation);
    /// the others, not streamed, run to their end.
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
        let Some((first, rest)) = params.split_first() else { return Ok(Vec::new()) };
        std::thread::scope(|scope| {
            let handles: Vec<_> =
                rest.iter().map(|p| scope.spawn(move || self.generate(prompt, p))).collect();
            let mut generations = vec![self.generate_streamed(prompt, first, partial, cancel)];
            generations.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err(self.failed("a request thread panicked")))),
            );
            generations.into_iter().collect()
        })
    }
}

impl OpenAiLlm {
    /// A whole (not streamed) chat completion read as a generation.
    fn generation_from(
        &self,
        reply: &serde_json::Value,
        prompt: &ChatPrompt,
        params: &GenerationParams,
        started: Instant,
    ) -> Result<Generation, LlmError> {
        let content = reply["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| self.failed(format!("the reply has no choices[0].message.content: {reply}")))?;
        // Servers that echo the continued assistant message back: keep only what is new.
        let mut text = content.strip_prefix(prompt.assistant_prefix.as_str()).unwrap_or(content).to_string();
        if let Some(stop_at) = params.stop.iter().filter_map(|s| text.find(s.as_str())).min() {
            text.truncate(stop_at);
        }
        let count = |field: &str| reply["usage"][field].as_u64().unwrap_or(0) as usize;
        let elapsed = started.elapsed().as_millis() as u64;
        let prefill_ms = reply["timings"]["prompt_ms"].as_f64().map(|ms| ms as u64).unwrap_or(0);
        Ok(Generation {
            text,
            prompt_tokens: count("prompt_tokens"),
            cached_tokens: reply["usage"]["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0)
                as usize,
            completion_tokens: count("completion_tokens"),
            drafted_tokens: 0,
            prefill_ms,
            decode_ms: elapsed.saturating_sub(prefill_ms),
        })
    }

    fn post(&self, body: serde_json::Value) -> Result<ureq::http::Response<ureq::Body>, LlmError> {
        let mut request = self.agent.post(format!("{}/chat/completions", self.url));
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        request.send_json(body).map_err(|e| self.failed(e))
    }

    /// One generation read as server-sent events as the server writes it: each piece of text
    /// handed to `partial` on arrival, short of what could begin a stop string; the usage
    /// (and llama-server's timings) from the chunks that carry them.
    fn generate_streamed(
        &self,
        prompt: &ChatPrompt,
        params: &GenerationParams,
        partial: &dyn Fn(&str),
        cancel: &Cancel,
    ) -> Result<Generation, LlmError> {
        use std::io::BufRead;
        let started = Instant::now();
        let mut body = self.body(prompt, params);
        body["stream"] = true.into();
        body["stream_options"] = serde_json::json!({ "include_usage": true });
        let mut response = self.post(body)?;
        let status = response.status();
        if !status.is_success() {
            let reply: serde_json::Value = response.body_mut().read_json().unwrap_or_default();
            let message = reply["error"]["message"].as_str().map(str::to_string).unwrap_or(reply.to_string());
            return Err(self.failed(format!("HTTP {status}: {message}")));
        }
        let hold = params.stop.iter().map(String::len).max().unwrap_or(0);
        let prefix = prompt.assistant_prefix.as_str();
        let (mut text, mut sent, mut start) = (String::new(), 0, 0);
        let (mut usage, mut timings) = (serde_json::Value::Null, serde_json::Value::Null);
        // A server that ignores "stream" sends one JSON reply: kept to be read whole.
        let (mut streamed, mut whole, mut stopped) = (false, String::new(), false);
        let reader = std::io::BufReader::new(response.body_mut().as_reader());
        for line in reader.lines() {
            let line = line.map_err(|e| self.failed(format!("reading the streamed reply: {e}")))?;
            // Returning drops the response: the connection closes and the server stops.
            if cancel.is_cancelled() {
                return Err(LlmError::Cancelled);
            }
            let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                if !streamed {
                    whole.push_str(&line);
                    whole.push('\n');
                }
                continue;
            };
            streamed = true;
            if data == "[DONE]" {
                break;
            }
            let chunk: serde_json::Value = serde_json::from_str(data)
                .map_err(|e| self.failed(format!("a streamed chunk is not JSON ({e}): {data}")))?;
            if let Some(message) = chunk["error"]["message"].as_str() {
                return Err(self.failed(message));
            }
            if chunk["usage"].is_object() {
                usage = chunk["usage"].clone();
            }
            if chunk["timings"].is_object() {
                timings = chunk["timings"].clone();
            }
            // After the stop string the server may still send text; only its usage is read.
            if stopped {
                continue;
            }
            text.push_str(chunk["choices"][0]["delta"]["content"].as_str().unwrap_or_default());
            // A server that echoes the continued assistant message: skip it once it is whole.
            if start == 0 && !prefix.is_empty() && text.starts_with(prefix) && text.len() >= prefix.len() {
                start = prefix.len();
                sent = sent.max(start);
            }
            // Still possibly the echo's beginning (which may hold the stop string): wait.
            let may_be_echo = !prefix.is_empty() && start == 0 && prefix.starts_with(text.as_str());
            if may_be_echo {
                continue;
            }
            if let Some(stop_at) = params.stop.iter().filter_map(|s| text[start..].find(s.as_str())).min() {
                text.truncate(start + stop_at);
                stopped = true;
                continue;
            }
            let mut until = text.len().saturating_sub(hold);
            while !text.is_char_boundary(until) {
                until -= 1;
            }
            if until > sent {
                partial(&text[sent..until]);
                sent = until;
            }
        }
        if !streamed {
            let reply: serde_json::Value = serde_json::from_str(&whole)
                .map_err(|e| self.failed(format!("HTTP {status}, neither events nor a JSON reply ({e})")))?;
            let generation = self.generation_from(&reply, prompt, params, started)?;
            partial(&generation.text);
            return Ok(generation);
        }
        if let Some(rest) = text.get(sent.max(start)..).filter(|rest| !rest.is_empty()) {
            partial(rest);
        }
        let count = |field: &str| usage[field].as_u64().unwrap_or(0) as usize;
        let elapsed = started.elapsed().as_millis() as u64;
        let prefill_ms = timings["prompt_ms"].as_f64().map(|ms| ms as u64).unwrap_or(0);
        Ok(Generation {
            text: text[start..].to_string(),
            prompt_tokens: count("prompt_tokens"),
            cached_tokens: usage["prompt_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0) as usize,
            completion_tokens: count("completion_tokens"),
            drafted_tokens: 0,
            prefill_ms,
            decode_ms: elapsed.saturating_sub(prefill_ms),
        })
    }
}
