//! The runtime with fake policies: backpressure, staleness, supervision, shutdown and resume,
//! determinism. Assertions are on counts and orders, never on durations.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use srlm_actors::fake::{checksum, prompts, FakeError, FakeFailure, FakeRewarder, FakeSampler, FakeStore, FakeTrainer, SampleHook};
use srlm_actors::messages::GroupRewards;
use srlm_actors::traits::Rewarder;
use srlm_actors::{FailureCheckpoint, Pipeline, RolloutGroup, RunSummary, RuntimeConfig, RuntimeError, ShutdownHandle};

fn config(generators: usize, batch_groups: usize, max_staleness: u64) -> RuntimeConfig {
    RuntimeConfig {
        group_size: 4,
        batch_groups,
        max_staleness,
        generators,
        scorers: 2,
        rollout_capacity: 2,
        scored_capacity: 2,
        checkpoint_every: 3,
        restart_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_restarts: 3,
        metrics_addr: None,
        ..Default::default()
    }
}

fn pipeline(
    cfg: RuntimeConfig,
    n_prompts: usize,
    hook: Option<SampleHook>,
    trainer: FakeTrainer,
) -> Pipeline<FakeSampler, FakeRewarder, FakeTrainer> {
    Pipeline::new(
        cfg,
        Arc::new(prompts(n_prompts)),
        Arc::new(move |_, seed| FakeSampler::new(seed).with_hook(hook.clone())),
        Arc::new(|_, _| FakeRewarder::default()),
        trainer,
    )
}

/// Every prompt in `0..n` trained exactly once, across all the given stores' trainers.
fn assert_each_trained_once(store: &FakeStore, n: u64) {
    let mut ids: Vec<u64> = store.trained().iter().map(|t| t.prompt).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..n).collect::<Vec<_>>());
}

/// A sample hook that panics the first time it sees prompt `id`, and whether it has.
fn panic_once_on(id: u64) -> (SampleHook, Arc<AtomicBool>) {
    let panicked = Arc::new(AtomicBool::new(false));
    let once = panicked.clone();
    let hook: SampleHook = Arc::new(move |p, _| {
        if p.id == id && !once.swap(true, Ordering::SeqCst) {
            panic!("sampler blew up on prompt {id}");
        }
        Ok(())
    });
    (hook, panicked)
}

/// Polls `cond` for up to 60 s: a guard against hangs, not a timing assertion.
fn wait_until(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_learner_bounds_every_queue_and_makes_generators_wait() {
    let cfg = config(2, 2, 1000);
    // Everything that can hold a sampled group: both queues, one blocked send per generator and
    // per scorer, and the learner's batch.
    let bound = (cfg.rollout_capacity + cfg.scored_capacity + cfg.generators + cfg.scorers + cfg.batch_groups) as u64;
    let sampled = Arc::new(AtomicU64::new(0));
    let counted = sampled.clone();
    let hook: SampleHook = Arc::new(move |_, _| {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    let store = FakeStore::default();
    let mut trainer = FakeTrainer::new(store.clone(), None);
    let in_flight = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (seen, recorded) = (sampled.clone(), in_flight.clone());
    let batch = cfg.batch_groups as u64;
    trainer.hook = Some(Arc::new(move |step, _| {
        if step == 0 {
            // The learner stalls until the pipeline is full, then a while longer: unbounded
            // buffering anywhere would let the generators run past `bound` meanwhile.
            assert!(wait_until(|| seen.load(Ordering::SeqCst) >= bound), "pipeline never filled");
            std::thread::sleep(Duration::from_millis(200));
        }
        recorded.lock().unwrap().push(seen.load(Ordering::SeqCst) - step * batch);
    }));
    let summary = pipeline(cfg.clone(), 40, Some(hook), trainer).run().await.unwrap();
    let in_flight = in_flight.lock().unwrap().clone();
    assert_eq!(in_flight[0], bound, "the stalled learner should see exactly a full pipeline");
    assert!(in_flight.iter().all(|&n| n <= bound), "{in_flight:?} exceeds {bound}");
    for (queue, max, capacity) in &summary.max_queue_depth {
        assert!(max <= capacity, "{queue}: depth {max} > capacity {capacity}");
    }
    let waits = summary.full_waits.iter().find(|(q, _)| *q == "rollouts").unwrap().1;
    assert!(waits > 0, "generators never found the rollout queue full");
    assert_each_trained_once(&store, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_beyond_max_staleness_are_dropped_and_counted() {
    let cfg = RuntimeConfig { batch_groups: 1, ..config(2, 1, 1) };
    let steps = Arc::new(AtomicU64::new(0));
    let seen = steps.clone();
    // Prompt 0's generator is held until the learner is 3 versions ahead: its group must be dropped.
    let hook: SampleHook = Arc::new(move |p, _| {
        if p.id == 0 && !wait_until(|| seen.load(Ordering::SeqCst) >= 3) {
            return Err(FakeError("learner never reached step 3".into()));
        }
        Ok(())
    });
    let store = FakeStore::default();
    let mut trainer = FakeTrainer::new(store.clone(), None);
    let counter = steps.clone();
    trainer.hook = Some(Arc::new(move |step, _| counter.store(step + 1, Ordering::SeqCst)));
    let summary = pipeline(cfg, 12, Some(hook), trainer).run().await.unwrap();
    let trained = store.trained();
    assert!(summary.groups_dropped_stale >= 1);
    assert!(trained.iter().all(|t| t.prompt != 0), "prompt 0's stale group was trained");
    assert!(trained.iter().all(|t| t.staleness <= 1), "{trained:?}");
    assert_eq!(summary.groups_trained + summary.groups_dropped_stale, 12);
    assert_eq!(trained.len() as u64, summary.groups_trained);
    // The trainer hears of each drop and why (GRPO's rollout log records them).
    let dropped = store.dropped();
    assert_eq!(dropped.len() as u64, summary.groups_dropped_stale, "{dropped:?}");
    assert!(
        dropped.contains(&(0, "stale")) && dropped.iter().all(|(id, why)| *why == "stale" && trained.iter().all(|t| t.prompt != *id)),
        "{dropped:?}"
    );
    // The step records carry the drop count so far; prompt 0's drop may come after the last step
    // (the gate lets the other 11 prompts finish first), so the last record may not include it.
    let counts: Vec<u64> = summary.steps.iter().map(|r| r.dropped_stale_so_far).collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]) && counts.last().unwrap() <= &summary.groups_dropped_stale, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_mode_trains_only_current_policy_groups() {
    let store = FakeStore::default();
    let summary = pipeline(config(3, 2, 0), 21, None, FakeTrainer::new(store.clone(), None)).run().await.unwrap();
    assert_eq!(summary.groups_dropped_stale, 0);
    assert!(store.trained().iter().all(|t| t.staleness == 0));
    assert_eq!(summary.state.step, 11, "10 full batches of 2 and the last single group");
    assert_each_trained_once(&store, 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_sampled_together_train_each_prompt_once_within_the_gate() {
    // One generator takes up to 3 groups per call; the gate (max_staleness 0, batches of 2)
    // admits at most 2 before each step, so no call may hold more than 2. A panic inside a
    // multi-group call requeues all of its prompts.
    for (staleness, most) in [(0, 2), (1000, 3)] {
        let batches = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (hook, _) = panic_once_on(9);
        let cfg = RuntimeConfig { groups_in_flight: 3, ..config(1, 2, staleness) };
        let store = FakeStore::default();
        let seen = batches.clone();
        let summary = Pipeline::new(
            cfg,
            Arc::new(prompts(30)),
            Arc::new(move |_, seed| {
                let mut s = FakeSampler::new(seed).with_hook(Some(hook.clone()));
                s.batches = Some(seen.clone());
                s
            }),
            Arc::new(|_, _| FakeRewarder::default()),
            FakeTrainer::new(store.clone(), None),
        )
        .run()
        .await
        .unwrap();
        assert_each_trained_once(&store, 30);
        assert_eq!(summary.restarts, 1);
        let sizes = batches.lock().unwrap().clone();
        assert!(sizes.iter().all(|&n| (1..=most).contains(&n)), "staleness {staleness}: {sizes:?}");
        assert!(sizes.iter().any(|&n| n > 1), "staleness {staleness}: never more than one group at once: {sizes:?}");
        if staleness == 0 {
            assert!(store.trained().iter().all(|t| t.staleness == 0));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_generator_is_restarted_and_every_prompt_trained_once() {
    let (hook, panicked) = panic_once_on(7);
    let store = FakeStore::default();
    let summary = pipeline(config(2, 2, 1000), 30, Some(hook), FakeTrainer::new(store.clone(), None)).run().await.unwrap();
    assert!(panicked.load(Ordering::SeqCst));
    assert_eq!(summary.restarts, 1);
    assert_eq!(summary.groups_dropped_stale, 0);
    assert_each_trained_once(&store, 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generator_that_keeps_failing_stops_the_run_with_a_clear_error() {
    let hook: SampleHook = Arc::new(|p, _| if p.id == 3 { Err(FakeError("no GPU".into())) } else { Ok(()) });
    let store = FakeStore::default();
    let err = pipeline(config(1, 2, 1000), 10, Some(hook), FakeTrainer::new(store.clone(), None)).run().await.unwrap_err();
    assert!(matches!(err, RuntimeError::TooManyRestarts { role: "generator", failures: 4, .. }), "{err}");
    assert!(err.to_string().contains("no GPU"), "{err}");
    let pending = store.last_checkpoint().expect("a checkpoint at the stop").state.pending;
    assert!(pending.contains(&3), "prompt 3 must stay pending: {pending:?}");
}

/// The run stopped at a failed step 4 (0-based) with a checkpoint of the 4 completed steps; resuming
/// from it trains every prompt exactly once overall (the failed batch's prompts are pending).
fn assert_checkpointed_at_step_4_and_resumable(err: &RuntimeError, store: &FakeStore) -> srlm_actors::fake::FakeCheckpoint {
    let RuntimeError::Learner { step: 4, checkpoint: FailureCheckpoint::Written { step: 4, location }, .. } = err else {
        panic!("expected a checkpoint of step 4: {err}");
    };
    let text = err.to_string();
    assert!(text.contains("failed on purpose") && text.contains(location.as_str()), "{text}");
    let last = store.last_checkpoint().unwrap();
    assert_eq!(last.state.step, 4);
    assert_eq!(store.trained().len(), 8, "4 steps of 2 groups before the failure");
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learner_error_or_panic_checkpoints_the_last_step_and_resume_trains_every_prompt_once() {
    for how in [FakeFailure::Error, FakeFailure::Panic] {
        let store = FakeStore::default();
        let mut trainer = FakeTrainer::new(store.clone(), None);
        trainer.fail_at = Some((4, how));
        let err = pipeline(config(2, 2, 1000), 40, None, trainer).run().await.unwrap_err();
        let checkpoint = assert_checkpointed_at_step_4_and_resumable(&err, &store);
        let resumed = FakeTrainer::new(store.clone(), Some(checkpoint));
        let done = pipeline(config(2, 2, 1000), 40, None, resumed).run().await.unwrap();
        assert_eq!(done.steps.first().unwrap().step, 5, "{how:?}: the step count continues");
        assert_each_trained_once(&store, 40);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_applied_step_is_not_checkpointed_and_the_error_names_the_newest_checkpoint() {
    let store = FakeStore::default();
    let mut trainer = FakeTrainer::new(store.clone(), None);
    trainer.fail_at = Some((4, FakeFailure::HalfApplied));
    let err = pipeline(config(2, 2, 1000), 40, None, trainer).run().await.unwrap_err();
    assert!(matches!(&err, RuntimeError::Learner { step: 4, checkpoint: FailureCheckpoint::Earlier { step: 3, .. }, .. }), "{err}");
    assert!(err.to_string().contains("half-way"), "{err}");
    assert_eq!(store.last_checkpoint().unwrap().state.step, 3, "the half-updated weights were saved");
}

#[test]
fn deterministic_harness_checkpoints_after_a_trainer_error_or_panic_and_resumes() {
    for how in [FakeFailure::Error, FakeFailure::Panic] {
        let store = FakeStore::default();
        let mut trainer = FakeTrainer::new(store.clone(), None);
        trainer.fail_at = Some((4, how));
        let err = pipeline(config(2, 2, 1), 40, None, trainer).run_deterministic().unwrap_err();
        let checkpoint = assert_checkpointed_at_step_4_and_resumable(&err, &store);
        let resumed = FakeTrainer::new(store.clone(), Some(checkpoint));
        pipeline(config(2, 2, 1), 40, None, resumed).run_deterministic().unwrap();
        assert_each_trained_once(&store, 40);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_run_checkpoints_and_resume_completes_the_run() {
    let store = FakeStore::default();
    let shutdown = ShutdownHandle::new();
    let mut trainer = FakeTrainer::new(store.clone(), None);
    let requester = shutdown.clone();
    trainer.hook = Some(Arc::new(move |step, _| {
        if step == 5 {
            requester.request();
        }
    }));
    let mut first = pipeline(config(2, 2, 1000), 40, None, trainer);
    first.shutdown = shutdown;
    let interrupted = first.run().await.unwrap();
    assert!(interrupted.interrupted);
    let checkpoint = store.last_checkpoint().unwrap();
    assert_eq!(checkpoint.state, interrupted.state);
    assert_eq!(checkpoint.state.step, 6, "the learner finishes the step it is in");
    assert!(checkpoint.state.cursor < 40 || !checkpoint.state.pending.is_empty());

    let resumed = FakeTrainer::new(store.clone(), Some(checkpoint.clone()));
    let done = pipeline(config(2, 2, 1000), 40, None, resumed).run().await.unwrap();
    assert!(!done.interrupted);
    assert!(done.steps.first().unwrap().step > checkpoint.state.step, "step count continues");
    assert_eq!(done.state.cursor, 40);
    assert!(done.state.pending.is_empty());
    assert_each_trained_once(&store, 40);
}

fn deterministic(seed: u64, generators: usize, max_staleness: u64) -> (RunSummary, u64) {
    let cfg = RuntimeConfig { seed, scorers: 3, ..config(generators, 3, max_staleness) };
    let store = FakeStore::default();
    let summary = pipeline(cfg, 31, None, FakeTrainer::new(store.clone(), None)).run_deterministic().unwrap();
    (summary, checksum(&store.last_checkpoint().unwrap().weights))
}

#[test]
fn deterministic_harness_repeats_metric_series_and_weights_for_one_seed() {
    let (a, wa) = deterministic(7, 2, 1);
    let (b, wb) = deterministic(7, 2, 1);
    assert_eq!(a.steps, b.steps);
    assert_eq!(wa, wb);
    assert_eq!(a.steps.len(), 11);
    let (c, wc) = deterministic(8, 2, 1);
    assert_ne!(a.steps, c.steps, "the seed must matter");
    assert_ne!(wa, wc);
}

#[test]
fn deterministic_resume_from_a_periodic_checkpoint_is_exact_at_any_staleness() {
    for max_staleness in [0, 1, 2] {
        // One scorer for two generators: groups queue up, so without the gate's barrier some would be
        // in flight at a checkpoint.
        let cfg = RuntimeConfig { seed: 5, scorers: 1, ..config(2, 3, max_staleness) };
        let store = FakeStore::default();
        let full = pipeline(cfg.clone(), 31, None, FakeTrainer::new(store.clone(), None)).run_deterministic().unwrap();
        let at_6 = store.checkpoints.lock().unwrap().iter().find(|c| c.state.step == 6).cloned().unwrap();
        assert!(at_6.state.pending.is_empty(), "s{max_staleness}: groups in flight at a periodic checkpoint: {:?}", at_6.state);
        let again = FakeStore::default();
        let tail = pipeline(cfg, 31, None, FakeTrainer::new(again.clone(), Some(at_6))).run_deterministic().unwrap();
        assert_eq!(tail.steps, full.steps[6..], "s{max_staleness}: resumed steps differ from the uninterrupted run's");
        let weights = |s: &FakeStore| checksum(&s.last_checkpoint().unwrap().weights);
        assert_eq!(weights(&again), weights(&store), "s{max_staleness}: final weights differ");
        let asynchronous = store.trained().iter().any(|t| t.staleness > 0);
        assert_eq!(asynchronous, max_staleness > 0, "s{max_staleness}: groups should lag exactly when allowed to");
    }
}

#[test]
fn deterministic_synchronous_mode_is_on_policy_and_learns() {
    let (s, _) = deterministic(3, 3, 0);
    assert_eq!(s.groups_dropped_stale, 0);
    assert_eq!(s.groups_trained, 31);
    let acc: Vec<f64> = s.steps.iter().map(|r| r.accuracy.unwrap()).collect();
    let (early, late) = (acc[..3].iter().sum::<f64>(), acc[acc.len() - 3..].iter().sum::<f64>());
    assert!(late > early, "fake policy gradient should raise accuracy: {acc:?}");
}

#[test]
fn worker_thread_is_pinned_to_the_requested_core() {
    // The last core this process may use, so a restricted cpuset (containers) still works.
    let core = *srlm_actors::worker::current_affinity().last().unwrap();
    let w = srlm_actors::worker::Worker::spawn("pin-test", Some(core), ()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let cores = rt.block_on(w.call(|_| srlm_actors::worker::current_affinity())).unwrap();
    assert_eq!(cores, vec![core]);
}

/// Pays every completion 1.0 on prompts whose id is a multiple of 3 (no advantage), and
/// alternately 0 and 1 on the others (mean 0.5).
struct EqualOnThirds;

impl Rewarder for EqualOnThirds {
    type Error = FakeError;

    fn reward_names(&self) -> Vec<String> {
        vec!["accuracy".into()]
    }

    fn score(&mut self, group: &RolloutGroup) -> Result<GroupRewards, FakeError> {
        let equal = group.prompt.id.is_multiple_of(3);
        let total: Vec<f32> = (0..group.completions.len()).map(|i| if equal { 1.0 } else { (i % 2) as f32 }).collect();
        Ok(GroupRewards { per_function: vec![("accuracy".into(), total.clone())], total, correct: None })
    }
}

fn dynamic_sampling_pipeline(cfg: RuntimeConfig, n: usize, store: &FakeStore) -> Pipeline<FakeSampler, EqualOnThirds, FakeTrainer> {
    let cfg = RuntimeConfig { dynamic_sampling: true, ..cfg };
    Pipeline::new(
        cfg,
        Arc::new(prompts(n)),
        Arc::new(|_, seed| FakeSampler::new(seed)),
        Arc::new(|_, _| EqualOnThirds),
        FakeTrainer::new(store.clone(), None),
    )
}

#[test]
fn dynamic_sampling_drops_groups_with_equal_rewards_and_reports_the_sampled_mean() {
    let store = FakeStore::default();
    let cfg = RuntimeConfig { seed: 1, ..config(1, 1, 0) };
    let s = dynamic_sampling_pipeline(cfg, 30, &store).run_deterministic().unwrap();
    assert_eq!(s.groups_dropped_uniform, 10);
    assert_eq!(s.groups_trained, 20);
    let mut trained: Vec<u64> = store.trained().iter().map(|t| t.prompt).collect();
    trained.sort_unstable();
    assert_eq!(trained, (0u64..30).filter(|i| !i.is_multiple_of(3)).collect::<Vec<_>>());
    let dropped = store.dropped();
    assert_eq!(dropped, (0u64..30).filter(|i| i.is_multiple_of(3)).map(|i| (i, "uniform")).collect::<Vec<_>>());
    // One group per step: the batch's mean is 0.5; the sampled mean also counts the k equal
    // groups (1.0 each) dropped since the step before, (k + 0.5) / (k + 1).
    let mut before = 0;
    for r in &s.steps {
        let k = (r.dropped_uniform_so_far - before) as f64;
        before = r.dropped_uniform_so_far;
        assert_eq!(r.reward_means.last().unwrap().1, 0.5);
        assert!((r.sampled_reward_mean - (k + 0.5) / (k + 1.0)).abs() < 1e-12, "step {}: k {k}, {}", r.step, r.sampled_reward_mean);
    }
    assert_eq!(before, 10, "prompt 0 comes first, so every drop precedes some step");
    assert!(store.last_checkpoint().unwrap().state.pending.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_sampling_in_the_threaded_runtime_trains_each_prompt_with_a_signal_once() {
    let store = FakeStore::default();
    // A bound no group can reach: how late a group arrives depends on the machine's load, and
    // a stale drop is not what this test is about.
    let s = dynamic_sampling_pipeline(config(2, 2, 1_000), 24, &store).run().await.unwrap();
    assert_eq!((s.groups_trained, s.groups_dropped_uniform, s.groups_dropped_stale), (16, 8, 0));
    let mut trained: Vec<u64> = store.trained().iter().map(|t| t.prompt).collect();
    trained.sort_unstable();
    assert_eq!(trained, (0u64..24).filter(|i| !i.is_multiple_of(3)).collect::<Vec<_>>());
    assert_eq!(s.steps.len(), 8);
}

/// A full disk at the end costs only the final checkpoint: a run that trained every prompt
/// returns its summary with the failure in it (the caller still exports its weights), threaded
/// and in the harness; a stopped run that cannot checkpoint is an error, since nothing could
/// resume it.
#[test]
fn a_final_checkpoint_that_fails_keeps_a_finished_run_but_not_a_stopped_one() {
    // A staleness bound no group reaches: under load the threaded run would drop a late group,
    // and a stale drop is not what this test is about.
    let cfg = RuntimeConfig { checkpoint_every: 0, ..config(1, 2, 1_000) };
    let full_disk = |store: &FakeStore| {
        let mut trainer = FakeTrainer::new(store.clone(), None);
        trainer.disk_full = true;
        trainer
    };
    for deterministic in [true, false] {
        let store = FakeStore::default();
        let run = pipeline(cfg.clone(), 8, None, full_disk(&store));
        let summary = if deterministic {
            run.run_deterministic()
        } else {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(run.run())
        };
        let summary = summary.unwrap_or_else(|e| panic!("deterministic {deterministic}: {e}"));
        assert!(summary.final_checkpoint_error.as_deref().is_some_and(|e| e.contains("no space")), "{:?}", summary.final_checkpoint_error);
        assert_eq!((summary.state.step, summary.interrupted), (4, false));
        assert_each_trained_once(&store, 8);
    }
    let stopped = ShutdownHandle::new();
    stopped.request();
    let mut run = pipeline(cfg, 8, None, full_disk(&FakeStore::default()));
    run.shutdown = stopped;
    let err = run.run_deterministic().unwrap_err().to_string();
    assert!(err.contains("final checkpoint") && err.contains("no space"), "{err}");
}

/// A periodic checkpoint that cannot be written (a disk full for a while) does not stop the
/// run: it is listed in the summary, the next due one is written, and every prompt trains once,
/// threaded and in the harness.
#[test]
fn a_failed_periodic_checkpoint_is_reported_and_training_goes_on() {
    let cfg = config(1, 2, 1_000);
    for deterministic in [true, false] {
        let store = FakeStore::default();
        let mut trainer = FakeTrainer::new(store.clone(), None);
        trainer.failing_checkpoints = 1;
        let run = pipeline(cfg.clone(), 24, None, trainer);
        let summary = if deterministic {
            run.run_deterministic()
        } else {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap().block_on(run.run())
        };
        let summary = summary.unwrap_or_else(|e| panic!("deterministic {deterministic}: {e}"));
        assert_eq!((summary.state.step, summary.interrupted), (12, false), "deterministic {deterministic}");
        let failed: Vec<_> = summary.failed_checkpoints.iter().map(|(step, why)| (*step, why.contains("no space"))).collect();
        assert_eq!(failed, vec![(3, true)], "deterministic {deterministic}: {:?}", summary.failed_checkpoints);
        let written: Vec<u64> = store.checkpoints.lock().unwrap().iter().map(|c| c.state.step).collect();
        assert_eq!(written, vec![6, 9, 12, 12], "deterministic {deterministic}: periodic ones, then the end's");
        assert_eq!(summary.final_checkpoint_error, None);
        assert_each_trained_once(&store, 24);
    }
}

/// `end_checkpoint = false`: a finished run writes no checkpoint at its end (a 0.5B model's is
/// 7 GB), but a stopped one still does, since it is how the run resumes.
#[test]
fn without_an_end_checkpoint_only_a_stop_writes_one() {
    let cfg = RuntimeConfig { checkpoint_every: 0, end_checkpoint: false, ..config(1, 2, 1) };
    let store = FakeStore::default();
    let summary = pipeline(cfg.clone(), 8, None, FakeTrainer::new(store.clone(), None)).run_deterministic().unwrap();
    assert_eq!((summary.state.step, summary.final_checkpoint_error.clone()), (4, None));
    assert!(store.last_checkpoint().is_none(), "a finished run wrote a checkpoint");
    let stopped = ShutdownHandle::new();
    stopped.request();
    let mut run = pipeline(cfg, 8, None, FakeTrainer::new(store.clone(), None));
    run.shutdown = stopped;
    assert!(run.run_deterministic().unwrap().interrupted);
    assert!(store.last_checkpoint().is_some(), "a stopped run wrote no checkpoint");
}
