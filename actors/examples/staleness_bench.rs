//! Fake-policy version of the benchmark 5: the same workload with max_staleness 0, 1 and 2
//! (generator pinned to core 0, learner to core 1, as dedicated devices would be), and synchronous
//! mode with both cores per phase. The fake sampler and trainer burn calibrated CPU time.
//!
//! cargo run --release -p srlm-actors --example staleness_bench -- [steps] [group_ms] [step_ms]
//! Defaults: 30 steps, 50 ms per group, 100 ms per step of 2 groups (generation ≈ learning).

use std::sync::Arc;
use std::time::Duration;

use srlm_actors::fake::{prompts, FakeRewarder, FakeSampler, FakeStore, FakeTrainer};
use srlm_actors::{Pipeline, RuntimeConfig};

struct Mode {
    name: &'static str,
    max_staleness: u64,
    generators: usize,
    pinned: bool,
    /// Learning parallelised over both cores in the synchronous 2-core mode.
    step_cost_divisor: u32,
}

fn arg(i: usize, default: u64) -> u64 {
    std::env::args().nth(i).map_or(default, |a| a.parse().unwrap_or_else(|_| panic!("argument {i}: not a number: {a}")))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (steps, group_ms, step_ms) = (arg(1, 30), arg(2, 50), arg(3, 100));
    let batch = 2usize;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let modes = [
        Mode { name: "async s=0 (sync, 1+1 cores)", max_staleness: 0, generators: 1, pinned: true, step_cost_divisor: 1 },
        Mode { name: "async s=1 (1+1 cores)", max_staleness: 1, generators: 1, pinned: true, step_cost_divisor: 1 },
        Mode { name: "async s=2 (1+1 cores)", max_staleness: 2, generators: 1, pinned: true, step_cost_divisor: 1 },
        Mode { name: "sync, 2 cores per phase", max_staleness: 0, generators: 2, pinned: false, step_cost_divisor: 2 },
    ];
    println!("{steps} steps of {batch} groups; {group_ms} ms per group, {step_ms} ms per step; {cores} cores");
    println!(
        "{:<28} {:>10} {:>14} {:>12} {:>8} {:>14}",
        "mode", "steps/min", "generator busy", "learner busy", "dropped", "final accuracy"
    );
    for mode in modes {
        let pin = mode.pinned && cores >= 2;
        let cfg = RuntimeConfig {
            group_size: 8,
            batch_groups: batch,
            max_staleness: mode.max_staleness,
            generators: mode.generators,
            scorers: 1,
            rollout_capacity: 4,
            scored_capacity: 4,
            checkpoint_every: 0,
            generator_cores: if pin { vec![0] } else { Vec::new() },
            learner_core: pin.then_some(1),
            metrics_addr: None,
            ..Default::default()
        };
        let mut trainer = FakeTrainer::new(FakeStore::default(), None);
        trainer.cost = Duration::from_millis(step_ms) / mode.step_cost_divisor;
        let group_cost = Duration::from_millis(group_ms);
        let pipeline = Pipeline::new(
            cfg,
            Arc::new(prompts(steps as usize * batch)),
            Arc::new(move |_, seed| {
                let mut sampler = FakeSampler::new(seed);
                sampler.cost = group_cost;
                sampler
            }),
            Arc::new(|_, _| FakeRewarder::default()),
            trainer,
        );
        let s = pipeline.run().await.expect("benchmark run");
        let per_min = s.state.step as f64 / s.elapsed.as_secs_f64() * 60.0;
        let gen_busy: Vec<String> = s.generator_busy_fractions().iter().map(|f| format!("{:.0}%", f * 100.0)).collect();
        let acc = s.steps.last().and_then(|r| r.accuracy).unwrap_or(f64::NAN);
        println!(
            "{:<28} {:>10.1} {:>14} {:>11.0}% {:>8} {:>14.2}",
            mode.name,
            per_min,
            gen_busy.join("/"),
            s.learner_busy_fraction() * 100.0,
            s.groups_dropped_stale,
            acc
        );
    }
}
