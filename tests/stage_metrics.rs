//! Every mode counts its updates in one place, the learner actor's. Alone in its binary: the
//! metrics recorder is one per process, and other tests' runs would add to its counters.

mod common;

use common::tiny_kd::{tiny_config, tiny_teacher};
use srlm::train::stages::{run_training, RunOptions};

/// `srlm_learner_steps_total` on the `/metrics` at `addr`.
fn learner_steps_on_metrics(addr: std::net::SocketAddr) -> f64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to /metrics");
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let line =
        response.lines().find(|l| l.starts_with("srlm_learner_steps_total ")).unwrap_or_else(|| panic!("no steps counter: {response}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Every mode (both logit KD modes, sft and GRPO) counts its updates in the learner actor: each
/// run adds its steps to `srlm_learner_steps_total` on the run's `/metrics`.
#[test]
fn kd_modes_sft_and_grpo_count_their_updates_on_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_teacher(tmp.path(), None);
    let teacher = tmp.path().join("teacher");
    let addr = common::ports::free_loopback_addr();
    let mut counted = 0.0;
    let runs = [
        (
            "kd",
            format!(
                "teacher = {:?}\nmode = \"on_policy\"\nsteps = 3\nprompts_per_step = 2\nsamples = 2\nlr = 1e-3",
                teacher.to_str().unwrap()
            ),
        ),
        ("kd", format!("teacher = {:?}\nmode = \"logits\"\nsteps = 2\nprompts_per_step = 2\nlr = 1e-3", teacher.to_str().unwrap())),
        ("sft", format!("teacher = {:?}", teacher.to_str().unwrap())),
        ("grpo", format!("teacher = {:?}", teacher.to_str().unwrap())),
    ];
    for (i, (stage, kd)) in runs.iter().enumerate() {
        let mut cfg = tiny_config(&tmp.path().join(format!("run-{i}")), kd).unwrap();
        use srlm::train::config::Stage;
        cfg.stages = vec![match *stage {
            "kd" => Stage::Kd,
            "sft" => Stage::Sft,
            _ => Stage::Grpo,
        }];
        (cfg.grpo.steps, cfg.runtime.pipeline.batch_groups, cfg.runtime.pipeline.group_size) = (2, 2, 4);
        cfg.runtime.metrics_addr = addr.to_string();
        cfg.sft.examples = 8;
        let reports = run_training(&cfg, &RunOptions::default()).unwrap();
        assert!(reports[0].steps > 0, "{stage}: {kd}");
        let now = learner_steps_on_metrics(addr);
        assert_eq!(now - counted, reports[0].steps as f64, "{stage}: {kd}");
        counted = now;
    }
}
