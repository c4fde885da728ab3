//! A bounded load generator for a running `quarry serve` on this machine (`quarry bench sql`):
//! N connections, each a thread with its own keep-alive agent, posting SQL to `/api/v1/sql`
//! until the time is up (and never more than `MAX_REQUESTS_PER_CONNECTION` each). Loopback
//! only: it is a measurement, never traffic towards another host.

use std::net::{IpAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use super::{peak_rss_mib_of, percentile, BenchError};

/// Requests one connection sends at most, whatever the duration.
const MAX_REQUESTS_PER_CONNECTION: usize = 1_000_000;

/// What to send, where, how hard and for how long.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The server's base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// An API key of a role that may run SQL.
    pub key: String,
    pub connections: usize,
    pub duration: Duration,
    /// The statements, sent in turn.
    pub statements: Vec<String>,
    /// The server's process, to read its peak resident set at the end.
    pub server_pid: Option<u32>,
}

/// What the server did under the load.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub url: String,
    pub connections: usize,
    pub seconds: f64,
    pub requests: usize,
    pub ok: usize,
    /// Answers that were not 200, by status (0: no answer at all).
    pub errors: Vec<(u16, usize)>,
    pub requests_per_second: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
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
pub fn sql_load(options: &LoadOptions) -> Result<LoadReport, BenchError> {
    if !is_loopback(&options.url) {
        return Err(BenchError::Invalid(format!(
            "{} is not on this machine: the load generator only targets loopback (http://127.0.0.1:PORT)",
            options.url
        )));
    }
    if options.statements.is_empty() || options.connections == 0 {
        return Err(BenchError::Invalid("give at least one statement and one connection".into()));
    }
    let endpoint = format!("{}/api/v1/sql", options.url.trim_end_matches('/'));
    let started = Instant::now();
    let deadline = started + options.duration;
    let workers: Vec<std::thread::JoinHandle<Vec<(u16, f64)>>> = (0..options.connections)
        .map(|worker| {
            let endpoint = endpoint.clone();
            let key = options.key.clone();
            let statements = options.statements.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(60)))
                    .http_status_as_error(false)
                    .build()
                    .into();
                let mut samples = Vec::new();
                for i in 0..MAX_REQUESTS_PER_CONNECTION {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let sql = &statements[(worker + i) % statements.len()];
                    let sent = Instant::now();
                    let status = agent
                        .post(&endpoint)
                        .header("Authorization", &format!("Bearer {key}"))
                        .send_json(json!({ "sql": sql }))
                        .map(|mut response| {
                            let _ = response.body_mut().read_to_vec();
                            response.status().as_u16()
                        })
                        .unwrap_or(0);
                    samples.push((status, sent.elapsed().as_secs_f64() * 1000.0));
                }
                samples
            })
        })
        .collect();
    let samples: Vec<(u16, f64)> = workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect();
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies: Vec<f64> = samples.iter().map(|(_, ms)| *ms).collect();
    latencies.sort_by(f64::total_cmp);
    let mut errors: std::collections::BTreeMap<u16, usize> = Default::default();
    for (status, _) in samples.iter().filter(|(s, _)| *s != 200) {
        *errors.entry(*status).or_default() += 1;
    }
    Ok(LoadReport {
        url: options.url.clone(),
        connections: options.connections,
        seconds,
        requests: samples.len(),
        ok: samples.iter().filter(|(s, _)| *s == 200).count(),
        errors: errors.into_iter().collect(),
        requests_per_second: samples.len() as f64 / seconds.max(1e-9),
        latency_ms_p50: percentile(&latencies, 50.0),
        latency_ms_p99: percentile(&latencies, 99.0),
        latency_ms_max: latencies.last().copied().unwrap_or_default(),
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
            statements: vec!["SELECT 1".into()],
            server_pid: None,
        };
        let refused = sql_load(&options).expect_err("not loopback");
        assert!(refused.to_string().contains("only targets loopback"), "{refused}");
    }
}
