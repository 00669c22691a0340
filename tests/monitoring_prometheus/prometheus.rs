//! A throwaway Prometheus server (the Debian `prometheus` package): one scrape job, its TSDB in
//! the test's temporary folder, its web API on a free loopback port, and instant queries through
//! that API.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_loopback_addr;
use crate::process::KillOnDrop;

/// Whether `prometheus` is on PATH. Missing is a failure under CI (`.ci/run` installs the
/// package); elsewhere the caller skips and says how to install it.
pub fn available() -> bool {
    match Command::new("prometheus").arg("--version").output() {
        Ok(o) if o.status.success() => true,
        result if std::env::var_os("CI").is_some() => panic!("the prometheus server is required under CI: {result:?}"),
        _ => {
            eprintln!("SKIPPED: prometheus not available; install the Debian package `prometheus`");
            false
        }
    }
}

/// One series of an instant query's answer.
#[derive(Debug)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

pub struct Prometheus {
    process: KillOnDrop,
    addr: SocketAddr,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every `every` as job `job`, and returns once it is
    /// ready to answer queries.
    pub fn start(dir: &Path, job: &str, target: SocketAddr, every: Duration) -> Self {
        let secs = every.as_secs().max(1);
        let config = format!(
            "global:\n  scrape_interval: {secs}s\n  evaluation_interval: {secs}s\nscrape_configs:\n  - job_name: {job}\n    scrape_timeout: {secs}s\n    static_configs:\n      - targets: ['{target}']\n"
        );
        let config_file = dir.join("prometheus.yml");
        std::fs::write(&config_file, config).expect("write prometheus.yml");
        let log = dir.join("prometheus.log");
        let addr = free_loopback_addr();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create prometheus.log"))
            .spawn()
            .expect("start prometheus");
        let mut server = Self { process: KillOnDrop(child), addr };
        server.wait_ready(Duration::from_secs(30), &log);
        server
    }

    fn wait_ready(&mut self, limit: Duration, log: &Path) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.process.exited() {
                panic!("prometheus exited ({status}) before it was ready:\n{}", std::fs::read_to_string(log).unwrap_or_default());
            }
            if matches!(http_get(self.addr, "/-/ready"), Ok((200, _))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready after {limit:?}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Evaluates `expr` now through `/api/v1/query`; Err carries Prometheus' own error message.
    pub fn query(&self, expr: &str) -> Result<Vec<Sample>, String> {
        let (status, body) = http_get(self.addr, &format!("/api/v1/query?query={}", percent_encode(expr)))?;
        let answer: serde_json::Value = serde_json::from_str(&body).map_err(|e| format!("HTTP {status}, not JSON ({e}): {body}"))?;
        if answer["status"] != "success" {
            return Err(format!("HTTP {status}: {} {}", answer["errorType"], answer["error"]));
        }
        let data = &answer["data"];
        let value =
            |pair: &serde_json::Value| pair[1].as_str().and_then(|v| v.parse::<f64>().ok()).ok_or(format!("unreadable value in {body}"));
        match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .ok_or(format!("no result list in {body}"))?
                .iter()
                .map(|s| {
                    let labels = s["metric"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect();
                    Ok(Sample { labels, value: value(&s["value"])? })
                })
                .collect(),
            Some("scalar") => Ok(vec![Sample { labels: BTreeMap::new(), value: value(&data["result"])? }]),
            other => Err(format!("unexpected result type {other:?}: {body}")),
        }
    }
}

/// Status and body of a GET over HTTP/1.0, whose body ends when the server closes (no chunks).
fn http_get(addr: SocketAddr, target: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    write!(stream, "GET {target} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| format!("read from {addr}: {e}"))?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or(format!("not an HTTP response: {response}"))?;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or(format!("no status in {head}"))?;
    Ok((status, body.to_string()))
}

/// Query-string encoding: PromQL is full of `{`, `"`, `[`, `+` and spaces.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
