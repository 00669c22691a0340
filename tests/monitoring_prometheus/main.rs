//! Monitoring proven on a real server: Prometheus scrapes a short `srlm train` (a learner node
//! with one `srlm worker` generator beside its local actors) every second, and
//! every query of every dashboard panel, evaluated through Prometheus' HTTP API while the run
//! trains, returns a finite value, with every label its legend names; the panels declared empty
//! on a CPU run must stay empty.

mod dashboards;
#[path = "../common/ports.rs"]
#[allow(dead_code)]
mod ports;
mod process;
mod prometheus;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dashboards::{panel_queries, PanelQuery};
use ports::free_loopback_addr;
use process::KillOnDrop;
use prometheus::{Prometheus, Sample};

/// Panels that legitimately show no data on a CPU run: (dashboard file, panel title, why), e.g.
/// a GPU-memory panel. None today. One that returns data fails the test, so an entry cannot
/// outlive its reason.
const EMPTY_ON_CPU: &[(&str, &str, &str)] = &[];

const SCRAPE: Duration = Duration::from_secs(1);
/// How long the run may take to give every panel data (7 s on 2 shared cores, 2026-12).
const PATIENCE: Duration = Duration::from_secs(75);
const JOB: &str = "srlm";

/// The embedded default cut down for monitoring: GRPO alone (the untrained model still earns
/// format rewards and a few right answers), a reference model so KL is computed, a checkpoint
/// every 2 steps, the exporter on `metrics`. The step count is out of reach: the test stops the
/// run with SIGINT once every panel has shown data, so a slow machine just trains longer.
fn train_config(dir: &Path, metrics: SocketAddr) -> PathBuf {
    let default = Command::new(env!("CARGO_BIN_EXE_srlm")).args(["train", "--print-default"]).output().expect("srlm train --print-default");
    let mut text = String::from_utf8(default.stdout).expect("UTF-8 config");
    for (from, to) in [
        ("stages = [\"sft\", \"grpo\"]", "stages = [\"grpo\"]".to_string()),
        ("train_size = 4000", "train_size = 200".into()),
        ("heldout_size = 100", "heldout_size = 4".into()),
        ("samples = 4", "samples = 1".into()),
        ("steps = 150", "steps = 100000\nbeta = 0.01".into()),
        ("checkpoint_every = 20", format!("checkpoint_every = 2\nmetrics_addr = \"{metrics}\"")),
    ] {
        assert!(text.contains(from), "the embedded default no longer has `{from}`:\n{text}");
        text = text.replacen(from, &to, 1);
    }
    let path = dir.join("monitoring.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Whether a query returned something a panel would draw: a finite value.
fn has_data(samples: &[Sample]) -> bool {
    samples.iter().any(|s| s.value.is_finite())
}

fn declared_empty(q: &PanelQuery) -> bool {
    EMPTY_ON_CPU.iter().any(|(d, p, _)| *d == q.dashboard && *p == q.panel)
}

/// Series missing a label the query's legend shows (Grafana would print it empty).
fn legend_gaps(q: &PanelQuery, samples: &[Sample]) -> Vec<String> {
    let labels = q.legend_labels();
    samples
        .iter()
        .flat_map(|s| {
            labels.iter().filter(|l| !s.labels.contains_key(*l)).map(move |l| format!("{}: `{l}` not on {:?}", q.name(), s.labels))
        })
        .collect()
}

/// What polling saw, by query index.
#[derive(Default)]
struct Seen {
    /// When a query first returned data, and its values then.
    data: BTreeMap<usize, String>,
    /// The last error of a query that has not returned data.
    errors: BTreeMap<usize, String>,
    legend_gaps: BTreeSet<String>,
}

/// Runs every query once a scrape interval until each one not declared empty has returned data
/// (declared ones keep being asked), or PATIENCE runs out. Panics if the run ends first.
fn poll(server: &Prometheus, queries: &[PanelQuery], train: &mut KillOnDrop, train_log: &dyn Fn() -> String) -> Seen {
    let mut seen = Seen::default();
    let started = Instant::now();
    loop {
        for (i, q) in queries.iter().enumerate() {
            if seen.data.contains_key(&i) {
                continue;
            }
            match server.query(&q.expr) {
                Ok(samples) if has_data(&samples) => {
                    seen.legend_gaps.extend(legend_gaps(q, &samples));
                    let values: Vec<String> = samples.iter().map(|s| format!("{:.4}", s.value)).collect();
                    seen.data.insert(i, format!("after {:.0}s: {}", started.elapsed().as_secs_f64(), values.join(", ")));
                    seen.errors.remove(&i);
                }
                Ok(_) => {}
                Err(e) => {
                    seen.errors.insert(i, e);
                }
            }
        }
        let waiting = queries.iter().enumerate().any(|(i, q)| !seen.data.contains_key(&i) && !declared_empty(q));
        if !waiting || started.elapsed() > PATIENCE {
            return seen;
        }
        if let Some(status) = train.exited() {
            panic!("srlm train ended ({status}) before every panel had data:\n{}", train_log());
        }
        std::thread::sleep(SCRAPE);
    }
}

#[test]
fn every_dashboard_panel_has_data_from_a_real_prometheus_scraping_srlm_train() {
    if !prometheus::available() {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().expect("temp dir");
    let metrics = free_loopback_addr();
    let known = BTreeMap::from([("job", JOB.to_string()), ("instance", metrics.to_string())]);
    let queries = panel_queries(&Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards"), SCRAPE, &known);
    for (d, p, _) in EMPTY_ON_CPU {
        assert!(queries.iter().any(|q| q.dashboard == *d && q.panel == *p), "declared empty, but no such panel: {d} / {p}");
    }

    let server = Prometheus::start(tmp.path(), JOB, metrics, SCRAPE);
    let listen = free_loopback_addr();
    let log = tmp.path().join("train.log");
    let child = Command::new(env!("CARGO_BIN_EXE_srlm"))
        .args(["train", "--config"])
        .arg(train_config(tmp.path(), metrics))
        .arg("--out")
        .arg(tmp.path().join("run"))
        .arg("--listen")
        .arg(listen.to_string())
        .env("CANDLE_NUM_THREADS", "1")
        .stdout(Stdio::null())
        // A file, not a pipe: nobody reads the progress lines while the run trains.
        .stderr(std::fs::File::create(&log).expect("create train.log"))
        .spawn()
        .expect("start srlm train");
    let mut train = KillOnDrop(child);
    // One generator on another "node" (this machine), so the cluster dashboard has data.
    let worker_log = tmp.path().join("worker.log");
    let _worker = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_srlm"))
            .args(["worker", "--role", "generator", "--connect", &listen.to_string()])
            .env("CANDLE_NUM_THREADS", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&worker_log).expect("create worker.log"))
            .spawn()
            .expect("start srlm worker"),
    );
    // Its last lines: without a terminal srlm prints a progress line per step.
    let train_log = || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };

    let seen = poll(&server, &queries, &mut train, &train_log);
    // Ctrl-C: srlm finishes its step, checkpoints and exits with the documented stop status.
    train.interrupt();
    let status = train.wait_for_exit(Duration::from_secs(60));

    for (i, q) in queries.iter().enumerate() {
        eprintln!("{:<70} {}", q.name(), seen.data.get(&i).map_or("no data", String::as_str));
    }
    let missing: Vec<String> = queries
        .iter()
        .enumerate()
        .filter(|(i, q)| !seen.data.contains_key(i) && !declared_empty(q))
        .map(|(i, q)| format!("{}: `{}` {}", q.name(), q.expr, seen.errors.get(&i).map_or("returned nothing finite", String::as_str)))
        .collect();
    assert!(
        missing.is_empty(),
        "panels without data after {PATIENCE:?} of training:\n{}\n--- srlm train ---\n{}",
        missing.join("\n"),
        train_log()
    );
    let unexpected: Vec<String> =
        queries.iter().enumerate().filter(|(i, q)| seen.data.contains_key(i) && declared_empty(q)).map(|(_, q)| q.name()).collect();
    assert!(unexpected.is_empty(), "declared empty on CPU but returned data (drop them from EMPTY_ON_CPU): {unexpected:?}");
    assert!(
        seen.legend_gaps.is_empty(),
        "legend labels missing from the series:\n{}",
        seen.legend_gaps.into_iter().collect::<Vec<_>>().join("\n")
    );
    assert_eq!(status.and_then(|s| s.code()), Some(75), "srlm train after SIGINT: {status:?}\n{}", train_log());
    assert!(train_log().contains("--resume"), "the stop names the resume command:\n{}", train_log());
    eprintln!("{} panel queries checked in {:.0}s", queries.len(), started.elapsed().as_secs_f64());
}

#[test]
fn a_series_without_a_legend_label_is_a_gap() {
    let q = PanelQuery { dashboard: "d".into(), panel: "p".into(), legend: Some("{{queue}}".into()), expr: "x".into() };
    let with = Sample { labels: BTreeMap::from([("queue".to_string(), "scored".to_string())]), value: 1.0 };
    let without = Sample { labels: BTreeMap::new(), value: 1.0 };
    assert!(legend_gaps(&q, &[with]).is_empty());
    assert_eq!(legend_gaps(&q, &[without]), ["d / p / {{queue}}: `queue` not on {}"]);
}
