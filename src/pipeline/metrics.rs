//! What the running server has done, counted for Prometheus (`GET /metrics`): requests by
//! route and status, asks by outcome, time per pipeline stage, the model's tokens, refusals by
//! violation code, the model's line and what is loaded. Counts and durations only: no question,
//! SQL, table name or value ever becomes a label.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::{Answer, AskError, SqlAnswer};
use crate::metadata::Outcome;

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    /// The route as declared (`/api/v1/catalog/tables/{name}`), never the raw path.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    /// `answered`, `refused` or `failed`, as in the audit log.
    outcome: &'static str,
    /// Where an answer came from: `model`, `cache` (the same question answered before) or
    /// `verified` (a verified past query reused); `none` when there was no answer.
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    /// `prefilled` (prompt tokens computed), `cached` (prompt tokens taken from the model's
    /// cache) or `completion`.
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// The server's counters, shared by every request.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<RouteLabels, Histogram>,
    asks: Family<OutcomeLabels, Counter>,
    sql: Family<OutcomeLabels, Counter>,
    stage_seconds: Family<StageLabels, Histogram>,
    tokens: Family<TokenLabels, Counter>,
    refusals: Family<CodeLabels, Counter>,
    repairs: Counter,
    queue_waiting: Gauge,
    generations_running: Gauge,
}

/// What the server has loaded, for `quarry_build_info` and the index gauges.
pub struct Loaded<'a> {
    pub model: &'a str,
    pub adapter: Option<&'a str>,
    pub index_tables: usize,
    pub index_queries: usize,
}

/// Latency buckets from 5 ms to about 164 s.
fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

impl Metrics {
    pub fn new(loaded: &Loaded) -> Metrics {
        let mut registry = Registry::with_prefix("quarry");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests by route and status", requests.clone());
        let request_seconds =
            Family::<RouteLabels, Histogram>::new_with_constructor(seconds_histogram as fn() -> _);
        registry.register_with_unit(
            "http_request_duration",
            "Time to answer an HTTP request (to the first byte of a stream)",
            Unit::Seconds,
            request_seconds.clone(),
        );
        let asks = Family::<OutcomeLabels, Counter>::default();
        registry.register("asks", "Questions asked, by outcome and where the answer came from", asks.clone());
        let sql = Family::<OutcomeLabels, Counter>::default();
        registry.register("sql_requests", "SQL sent to run by users and tools, by outcome", sql.clone());
        let stage_seconds =
            Family::<StageLabels, Histogram>::new_with_constructor(seconds_histogram as fn() -> _);
        registry.register_with_unit(
            "ask_stage_duration",
            "Time an answered question spent in each pipeline stage (total: the whole ask)",
            Unit::Seconds,
            stage_seconds.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register("llm_tokens", "The model's tokens, by kind", tokens.clone());
        let refusals = Family::<CodeLabels, Counter>::default();
        registry.register(
            "refusals",
            "Violations that refused a generated or submitted query, by code",
            refusals.clone(),
        );
        let repairs = Counter::default();
        registry.register("repairs", "Repair rounds in answered questions", repairs.clone());
        let queue_waiting = Gauge::default();
        registry.register("llm_queue_waiting", "Asks waiting for a turn on the model", queue_waiting.clone());
        let generations_running = Gauge::default();
        registry.register(
            "llm_generations_running",
            "Asks holding a turn on the model",
            generations_running.clone(),
        );
        let build = vec![
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("model", loaded.model.to_string()),
            ("adapter", loaded.adapter.unwrap_or("none").to_string()),
        ];
        registry.register("build", "The Quarry version and the model it answers with", Info::new(build));
        let index = Family::<KindLabels, Gauge>::default();
        index.get_or_create(&KindLabels { kind: "tables" }).set(loaded.index_tables as i64);
        index.get_or_create(&KindLabels { kind: "queries" }).set(loaded.index_queries as i64);
        registry.register("index_points", "Points in the vector index, by kind", index);
        Metrics {
            registry,
            requests,
            request_seconds,
            asks,
            sql,
            stage_seconds,
            tokens,
            refusals,
            repairs,
            queue_waiting,
            generations_running,
        }
    }

    /// One HTTP request answered. `route` is the declared route, or `unmatched`.
    pub fn record_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { method: method.into(), route: route.into(), status })
            .inc();
        self.request_seconds
            .get_or_create(&RouteLabels { route: route.into() })
            .observe(elapsed.as_secs_f64());
    }

    /// One question answered, refused or failed (`outcome` as the audit log has it).
    pub fn record_ask(&self, outcome: Outcome, result: &Result<Answer, AskError>) {
        let source = match result {
            Ok(answer) if answer.reused.is_some() => "verified",
            Ok(answer) if answer.timings.answer_cached => "cache",
            Ok(_) => "model",
            Err(_) => "none",
        };
        match result {
            Ok(answer) => self.record_answer(answer),
            Err(e) => self.record_refusal(e),
        }
        self.asks.get_or_create(&OutcomeLabels { outcome: outcome.as_str(), source }).inc();
    }

    /// One submitted query run, refused or failed (`outcome` as the audit log has it).
    pub fn record_sql(&self, outcome: Outcome, result: &Result<SqlAnswer, AskError>) {
        if let Err(e) = result {
            self.record_refusal(e);
        }
        self.sql.get_or_create(&OutcomeLabels { outcome: outcome.as_str(), source: "none" }).inc();
    }

    fn record_answer(&self, answer: &Answer) {
        let t = &answer.timings;
        for (stage, ms) in [
            ("embed", t.embed_ms),
            ("retrieve", t.retrieve_ms),
            ("generate", t.generate_ms),
            ("validate", t.validate_ms),
            ("execute", t.execute_ms),
            ("total", t.total_ms),
        ] {
            self.stage_seconds.get_or_create(&StageLabels { stage }).observe(ms as f64 / 1000.0);
        }
        let prefilled = t.prompt_tokens.saturating_sub(t.cached_tokens);
        for (kind, count) in
            [("prefilled", prefilled), ("cached", t.cached_tokens), ("completion", t.completion_tokens)]
        {
            self.tokens.get_or_create(&TokenLabels { kind }).inc_by(count as u64);
        }
        self.repairs.inc_by(answer.repairs.len() as u64);
    }

    /// Counts the violations of a refused (or unanswerable) query by code.
    fn record_refusal(&self, error: &AskError) {
        if let AskError::Refused { refusal, .. } | AskError::Unanswerable { refusal, .. } = error {
            for violation in &refusal.violations {
                let code = serde_json::to_value(violation.code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "unknown".into());
                self.refusals.get_or_create(&CodeLabels { code }).inc();
            }
        }
    }

    /// The text exposition (OpenMetrics), with the model's line as it is now: `load` is
    /// (asks waiting, generations running).
    pub fn encode(&self, load: (usize, usize)) -> String {
        self.queue_waiting.set(load.0 as i64);
        self.generations_running.set(load.1 as i64);
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
