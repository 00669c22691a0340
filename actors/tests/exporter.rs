//! The real `/metrics` endpoint during a fake-pipeline run: validated by Prometheus's own
//! `promtool check metrics`, and checked to export every metric the dashboards query.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use srlm_actors::fake::{prompts, FakeRewarder, FakeSampler, FakeStore, FakeTrainer, SampleHook};
use srlm_actors::metrics::METRICS;
use srlm_actors::{Pipeline, RuntimeConfig};

fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to /metrics");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // HTTP/1.0: the body ends at close, no chunked encoding to undo.
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1") && head.contains(" 200 "), "{head}");
    body.to_string()
}

/// The exposition text scraped mid-run (at learner step 5) from a pipeline with one generator panic.
fn exposition() -> &'static String {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let cfg = RuntimeConfig {
            group_size: 4,
            batch_groups: 2,
            generators: 2,
            // The second generator has a device of its own, so weight syncs are exported too.
            generator_devices: vec![0, 1],
            checkpoint_every: 2,
            restart_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(5),
            metrics_addr: Some(addr),
            ..Default::default()
        };
        let scraped = Arc::new(Mutex::new(None));
        let store = FakeStore::default();
        let mut trainer = FakeTrainer::new(store, None);
        let slot = scraped.clone();
        trainer.hook = Some(Arc::new(move |step, _| {
            if step == 5 {
                *slot.lock().unwrap() = Some(scrape(addr));
            }
        }));
        let panicked = Arc::new(AtomicBool::new(false));
        let hook: SampleHook = Arc::new(move |p, _| {
            if p.id == 3 && !panicked.swap(true, Ordering::SeqCst) {
                panic!("one restart for the restarts counter");
            }
            Ok(())
        });
        let mut pipeline = Pipeline::new(
            cfg,
            Arc::new(prompts(24)),
            Arc::new(move |_, seed| FakeSampler::new(seed).with_hook(Some(hook.clone()))),
            Arc::new(|_, _| FakeRewarder::default()),
            trainer,
        );
        pipeline.copy_to_device = Some(Box::new(|w: &Vec<f64>, _: usize| w.clone()));
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let summary = rt.block_on(pipeline.run()).unwrap();
        assert_eq!(summary.restarts, 1);
        let text = scraped.lock().unwrap().take().expect("scraped during the run");
        text
    })
}

/// Metric family names in exposition text (histogram series keep their _bucket/_sum/_count).
fn exported_names(text: &str) -> BTreeSet<String> {
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(|l| l.split(['{', ' ']).next().unwrap().to_string()).collect()
}

#[test]
fn promtool_accepts_the_exposition() {
    let text = exposition();
    let child =
        Command::new("promtool").args(["check", "metrics"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: promtool not available ({e}); install the Debian package `prometheus`");
            return;
        }
        Err(e) => panic!("promtool is required under CI: {e}"),
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool check metrics:\n{report}\n--- exposition ---\n{text}");
}

#[test]
fn every_registered_metric_is_exported_with_help() {
    let text = exposition();
    let names = exported_names(text);
    for m in METRICS {
        let family_present =
            names.iter().any(|n| n == m.name || n.strip_prefix(m.name).is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s)));
        assert!(family_present, "{} not in /metrics", m.name);
        assert!(text.contains(&format!("# HELP {} ", m.name)), "{} has no HELP", m.name);
    }
}

const KEYWORDS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset"];
const LABEL_LIST_KEYWORDS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

/// Metric names in a PromQL expression: identifiers that are not function calls, keywords,
/// label lists of `by (…)`-style clauses, label matchers `{…}`, ranges `[…]`, strings or numbers.
fn promql_metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let skip_to = |mut j: usize, close: char| {
        while j < chars.len() && chars[j] != close {
            if chars[j] == '"' {
                j += 1;
                while j < chars.len() && chars[j] != '"' {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
            }
            j += 1;
        }
        j + 1
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            i = skip_to(i + 1, '}');
        } else if c == '[' {
            i = skip_to(i + 1, ']');
        } else if c == '"' || c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != c {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let before_paren = chars.get(next) == Some(&'(');
            // An aggregation written `sum by (…) (…)` is followed by its clause, not a parenthesis.
            let next_word: String = chars[next..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == '_').collect();
            let aggregation = next_word == "by" || next_word == "without";
            if LABEL_LIST_KEYWORDS.contains(&word.as_str()) {
                if before_paren {
                    i = skip_to(next + 1, ')');
                }
            } else if !before_paren && !aggregation && !KEYWORDS.contains(&word.as_str()) {
                names.push(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
}

/// Every `expr` string anywhere in a dashboard.
fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn promql_tokenizer_finds_only_metric_names() {
    let e = r#"histogram_quantile(0.9, sum by (le, generator) (rate(srlm_a_bucket{queue="x{"}[5m]))) / on (queue) srlm_b offset 5m"#;
    assert_eq!(promql_metric_names(e), ["srlm_a_bucket", "srlm_b"]);
    assert_eq!(promql_metric_names("time() - 1e3 * srlm_c"), ["srlm_c"]);
    assert_eq!(promql_metric_names("sum(rate(x[1m])) without (job)"), ["x"]);
}

/// Metrics only a learner node with remote workers exports.
const CLUSTER_ONLY: [&str; 4] = [
    srlm_actors::metrics::REMOTE_WORKERS,
    srlm_actors::metrics::REMOTE_REFUSED,
    srlm_actors::metrics::WEIGHT_TRANSFER_SECONDS,
    srlm_actors::metrics::WEIGHT_TRANSFER_BYTES,
];

#[test]
fn every_dashboard_metric_is_exported() {
    let exported = exported_names(exposition());
    let mut files: Vec<_> = std::fs::read_dir(dashboards_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "training, throughput, health, cluster: {files:?}");
    for file in files {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(json["__inputs"][0]["name"] == "DS_PROMETHEUS", "{}: needs the DS_PROMETHEUS input", file.display());
        let mut all = Vec::new();
        exprs(&json, &mut all);
        assert!(all.len() >= 6, "{}: only {} queries", file.display(), all.len());
        for expr in all {
            let names = promql_metric_names(&expr);
            assert!(!names.is_empty(), "{}: no metric in {expr}", file.display());
            for name in names {
                // The cluster's own metrics exist only on a learner node with `--listen`, which
                // this fake run is not; tests/monitoring_prometheus scrapes them from a real one.
                let cluster_only = file.ends_with("srlm-cluster.json")
                    && CLUSTER_ONLY
                        .iter()
                        .any(|m| name.strip_prefix(m).is_some_and(|rest| ["", "_sum", "_count", "_bucket"].contains(&rest)));
                assert!(
                    exported.contains(&name) || cluster_only,
                    "{}: `{name}` in `{expr}` is not exported; exported: {exported:?}",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn readme_documents_every_metric() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for m in METRICS {
        assert!(readme.contains(&format!("| `{}` |", m.name)), "actors/README.md does not document {}", m.name);
    }
}
