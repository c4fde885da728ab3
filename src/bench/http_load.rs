//! A bounded load generator for a running `quarry serve` on this machine: N clients, each a
//! thread with its own keep-alive agent, posting until the time is up (and never more than
//! `MAX_REQUESTS_PER_CONNECTION` each) — SQL to `/api/v1/sql` (`quarry bench sql`), or
//! questions to `/api/v1/ask` (`quarry bench ask-load`), where a client told 429 waits out the
//! `Retry-After` it was given, as a well-behaved client does. Loopback only: it is a
//! measurement, never traffic towards another host.

use std::net::{IpAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::{peak_rss_mib_of, percentile, BenchError};

/// Requests one connection sends at most, whatever the duration.
const MAX_REQUESTS_PER_CONNECTION: usize = 1_000_000;

/// What the clients send.
#[derive(Debug, Clone)]
pub enum Target {
    /// SQL statements to `/api/v1/sql`, in turn.
    Sql(Vec<String>),
    /// Questions to `/api/v1/ask`, in turn.
    Ask(Vec<String>),
}

impl Target {
    fn path(&self) -> &'static str {
        match self {
            Target::Sql(_) => "/api/v1/sql",
            Target::Ask(_) => "/api/v1/ask",
        }
    }

    fn bodies(&self) -> Vec<serde_json::Value> {
        match self {
            Target::Sql(statements) => statements.iter().map(|sql| json!({ "sql": sql })).collect(),
            Target::Ask(questions) => questions.iter().map(|q| json!({ "question": q })).collect(),
        }
    }
}

/// What to send, where, how hard and for how long.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The server's base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// An API key of a role that may run SQL (and ask).
    pub key: String,
    pub connections: usize,
    pub duration: Duration,
    pub target: Target,
    /// How long one request may take before the client gives up on it (and goes away).
    pub request_timeout: Duration,
    /// The server's process, to read its peak resident set at the end.
    pub server_pid: Option<u32>,
}

/// What the server did under the load.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub url: String,
    pub endpoint: String,
    pub connections: usize,
    pub seconds: f64,
    pub requests: usize,
    pub ok: usize,
    /// Answers that were not 200, by status (0: no answer at all, or the client gave up);
    /// 429s are the server turning work away on purpose.
    pub errors: Vec<(u16, usize)>,
    pub requests_per_second: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    /// Latency of the answered (200) requests alone.
    pub ok_latency_ms_p50: f64,
    pub ok_latency_ms_p99: f64,
    pub server_peak_rss_mib: Option<u64>,
}

/// Whether `url`'s host is this machine (127.0.0.0/8, ::1 or a name resolving only there).
fn is_loopback(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let authority = rest.split('/').next().unwrap_or_default();
    let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    match with_port.to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
            !addrs.is_empty() && addrs.iter().all(IpAddr::is_loopback)
        }
        Err(_) => false,
    }
}

/// Runs the load and reports it.
pub fn load(options: &LoadOptions) -> Result<LoadReport, BenchError> {
    if !is_loopback(&options.url) {
        return Err(BenchError::Invalid(format!(
            "{} is not on this machine: the load generator only targets loopback (http://127.0.0.1:PORT)",
            options.url
        )));
    }
    let bodies = options.target.bodies();
    if bodies.is_empty() || options.connections == 0 {
        return Err(BenchError::Invalid("give at least one statement or question and one connection".into()));
    }
    let endpoint = format!("{}{}", options.url.trim_end_matches('/'), options.target.path());
    let started = Instant::now();
    let deadline = started + options.duration;
    let workers: Vec<std::thread::JoinHandle<Vec<(u16, f64)>>> = (0..options.connections)
        .map(|worker| {
            let (endpoint, key, bodies) = (endpoint.clone(), options.key.clone(), bodies.clone());
            let timeout = options.request_timeout;
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(timeout))
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut samples = Vec::new();
                for i in 0..MAX_REQUESTS_PER_CONNECTION {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let body = &bodies[(worker + i) % bodies.len()];
                    let sent = Instant::now();
                    let (status, retry_after) = agent
                        .post(&endpoint)
                        .header("Authorization", &format!("Bearer {key}"))
                        .send_json(body)
                        .map(|mut response| {
                            let retry_after = response
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| v.parse::<u64>().ok());
                            let _ = response.body_mut().read_to_vec();
                            (response.status().as_u16(), retry_after)
                        })
                        .unwrap_or((0, None));
                    samples.push((status, sent.elapsed().as_secs_f64() * 1000.0));
                    // Told to come back later: wait as asked (never past the end of the run).
                    if let Some(seconds) = retry_after.filter(|_| status == 429) {
                        let left = deadline.saturating_duration_since(Instant::now());
                        std::thread::sleep(Duration::from_secs(seconds.max(1)).min(left));
                    }
                }
                samples
            })
        })
        .collect();
    let samples: Vec<(u16, f64)> = workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect();
    let seconds = started.elapsed().as_secs_f64();
    let sorted = |ok_only: bool| {
        let mut latencies: Vec<f64> =
            samples.iter().filter(|(s, _)| !ok_only || *s == 200).map(|(_, ms)| *ms).collect();
        latencies.sort_by(f64::total_cmp);
        latencies
    };
    let (latencies, ok_latencies) = (sorted(false), sorted(true));
    let mut errors: std::collections::BTreeMap<u16, usize> = Default::default();
    for (status, _) in samples.iter().filter(|(s, _)| *s != 200) {
        *errors.entry(*status).or_default() += 1;
    }
    Ok(LoadReport {
        url: options.url.clone(),
        endpoint: options.target.path().to_string(),
        connections: options.connections,
        seconds,
        requests: samples.len(),
        ok: ok_latencies.len(),
        errors: errors.into_iter().collect(),
        requests_per_second: samples.len() as f64 / seconds.max(1e-9),
        latency_ms_p50: percentile(&latencies, 50.0),
        latency_ms_p99: percentile(&latencies, 99.0),
        latency_ms_max: latencies.last().copied().unwrap_or_default(),
        ok_latency_ms_p50: percentile(&ok_latencies, 50.0),
        ok_latency_ms_p99: percentile(&ok_latencies, 99.0),
        server_peak_rss_mib: options.server_pid.and_then(|pid| peak_rss_mib_of(&pid.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_is_a_target() {
        assert!(is_loopback("http://127.0.0.1:8080"));
        assert!(is_loopback("http://127.0.0.2:9/"));
        assert!(is_loopback("http://[::1]:8080"));
        assert!(!is_loopback("http://10.0.0.1:8080"));
        assert!(!is_loopback("http://192.168.1.5"));
        assert!(!is_loopback("https://127.0.0.1:8080"), "plain http to loopback only");
        let options = LoadOptions {
            url: "http://10.1.2.3:8080".into(),
            key: "k".into(),
            connections: 1,
            duration: Duration::from_millis(10),
            target: Target::Sql(vec!["SELECT 1".into()]),
            request_timeout: Duration::from_secs(1),
            server_pid: None,
        };
        let refused = load(&options).expect_err("not loopback");
        assert!(refused.to_string().contains("only targets loopback"), "{refused}");
    }
}
