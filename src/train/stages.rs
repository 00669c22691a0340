//! The stage pipeline of `srlm train`: set up the model and data, then run SFT, KD and GRPO
//! in the configured order, each starting from the previous stage's weights, with held-out
//! accuracy before and after each stage and a checkpoint hand-off at the end of each.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use srlm_actors::poison::lock;
use srlm_actors::{Factory, Pipeline, Prompt, RunSummary, RuntimeConfig, ShutdownHandle, StepRecord};

use crate::atomic_file::write_atomic;
use crate::chat::ChatTemplate;
use crate::generate::policy_sampler::PolicySampler;
use crate::generate::GenerationConfig;
use crate::learner::checkpoint_place::CheckpointPlace;
use crate::learner::grpo::GrpoConfig;
use crate::learner::grpo_trainer::{GrpoTrainer, StepProgress};
use crate::model::init::init_weights;
use crate::model::load::{parse_device, parse_dtype};
use crate::model::{LoadedModel, ModelConfig, Qwen2, Weights};
use crate::rewarder::GoldRewarder;
use crate::sampling::{SamplingParams, StopStrings};
use crate::synthetic::{char_vocab_size, tiny_qwen2_config, write_char_tokenizer};
use crate::tokenizer::Tokenizer;
use crate::train::config::{KdMode, KdSection, Stage, TrainConfig};
use crate::train::heldout::{heldout_accuracy, HeldoutScore, TrainingProblem};
use crate::train::placement::Placement;
use crate::train::problems::{gsm8k_file, load_problems};
use crate::train::progress::{GrpoProgress, Pace};
use crate::train::recipe::Recipe;
use crate::train::resume::Interrupted;
use crate::train::resume_point::{ResumeAt, ResumePoint, StageStamp, STAGE_STAMP};
use crate::train::run_dir::{Claim, RunDir};
use crate::train::snapshot::deep_copy;

mod kd_logits;
mod sft;

use sft::{sft_on, sft_stage};

/// How this invocation runs, beside what the config says.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Step every actor on this thread in a fixed order (identical runs for one seed).
    pub deterministic: bool,
    /// Continue from a checkpoint of a stage, or after a finished stage's export.
    pub resume: Option<PathBuf>,
    /// Replace another run's outputs in `out_dir` instead of refusing.
    pub force: bool,
    /// Print progress lines (a bar when stderr is a terminal).
    pub progress: bool,
    /// Asked (by SIGINT/SIGTERM) to stop: each stage checkpoints at its next step boundary.
    pub shutdown: ShutdownHandle,
    /// Accept generator and scorer workers from other nodes in the GRPO stage.
    pub listen: Option<crate::train::cluster::Listen>,
}

#[derive(Debug, Clone)]
pub struct StageReport {
    pub stage: Stage,
    /// Held-out scores; none for a run without problems (`data.task = "none"`).
    pub before: Option<HeldoutScore>,
    pub after: Option<HeldoutScore>,
    pub seconds: f64,
    /// Optimizer steps of the stage, those before a resume included.
    pub steps: u64,
}

/// The model being trained between stages.
struct State {
    config: ModelConfig,
    weights: Weights,
    tokenizer: Arc<Tokenizer>,
    device: Device,
}

/// One stage of this run: where its checkpoints go, what they carry, where it resumes.
struct StageRun<'a> {
    index: usize,
    name: String,
    checkpoints: PathBuf,
    stamp: StageStamp,
    /// The checkpoint this stage continues from.
    resume: Option<&'a Path>,
    /// What the run could resume from when this stage began (a stop before its first step).
    before: Option<PathBuf>,
}

impl StageRun<'_> {
    /// Runs the stage's `pipeline` with its per-step series kept in `steps-stage-N.json`:
    /// rewritten after every step (a stopped run has it too) and once whole at the end; a stage
    /// resumed at `start_step` keeps the earlier run's steps before it.
    fn run_recorded<S, R, T>(
        &self,
        cfg: &TrainConfig,
        opts: &RunOptions,
        mut pipeline: Pipeline<S, R, T>,
        start_step: u64,
        to_json: StepJson,
    ) -> Result<RunSummary>
    where
        S: srlm_actors::Sampler,
        R: srlm_actors::Rewarder,
        T: srlm_actors::Trainer<Weights = S::Weights>,
    {
        // Read before the run: the step hook rewrites the file, which may be the one read.
        let earlier = self.earlier_steps(opts, start_step);
        let path = cfg.out_dir.join(format!("steps-stage-{}.json", self.index));
        pipeline.on_step_recorded = Some(keep_steps_file(path.clone(), earlier.clone(), to_json));
        let summary = run_pipeline(pipeline, opts)?;
        write_atomic(&path, steps_json(earlier, &summary, to_json)?.as_bytes())?;
        Ok(summary)
    }

    /// A resumed stage's series up to its checkpoint's step `through`, or none for a fresh stage;
    /// a series that cannot be read is said, and the file starts again at the resume point.
    fn earlier_steps(&self, opts: &RunOptions, through: u64) -> Vec<serde_json::Value> {
        match self.resume.map(|dir| steps_before_checkpoint(dir, self.index, through)) {
            Some(Err(e)) => {
                say(opts, &format!("{}: {e}; steps-stage-{}.json starts at the resume point", self.name, self.index));
                Vec::new()
            }
            Some(Ok(steps)) => steps,
            None => Vec::new(),
        }
    }

    /// Where this stage's learner saves: the stage's directory, the run's retention, the model's
    /// config and tokenizer, and the stage stamp in every checkpoint.
    fn checkpoint_place(&self, cfg: &TrainConfig, state: &State) -> Result<CheckpointPlace> {
        Ok(CheckpointPlace {
            root: self.checkpoints.clone(),
            keep: cfg.runtime.keep_checkpoints,
            config: state.config.clone(),
            tokenizer: Some(Arc::clone(&state.tokenizer)),
            run_id: self.stamp.run_id.clone(),
            stamp: vec![(STAGE_STAMP.into(), serde_json::to_value(&self.stamp)?)],
        })
    }

    fn stopped(&self, checkpoint: PathBuf) -> anyhow::Error {
        Interrupted { during: format!("stage {} ({})", self.index, self.name), resume_from: Some(checkpoint), command: None }.into()
    }

    /// After the runtime ended: an [`Interrupted`] error naming the learner's newest checkpoint
    /// if a signal stopped it; else a warning if the finished stage's end checkpoint could not
    /// be written (its weights are still exported).
    fn runtime_ended(&self, opts: &RunOptions, summary: &RunSummary, last_checkpoint: &Mutex<Option<PathBuf>>) -> Result<()> {
        if let Some((step, e)) = summary.failed_checkpoints.first() {
            let n = summary.failed_checkpoints.len();
            say(opts, &format!("warning: {n} periodic checkpoint(s) of {} could not be written, the first at step {step} ({e}); training went on from each", self.name));
        }
        if !summary.interrupted {
            if let Some(e) = &summary.final_checkpoint_error {
                say(opts, &format!("warning: {} finished, but its end checkpoint could not be written ({e}); the stage's weights are exported, only a resume from its end is lost", self.name));
            }
            return Ok(());
        }
        let saved = lock(last_checkpoint).clone();
        let saved = saved.context("stopped by a signal, and the learner wrote no checkpoint (see the log above)")?;
        Err(self.stopped(saved))
    }

    fn stopped_before_any_step(&self) -> anyhow::Error {
        Interrupted { during: format!("stage {} ({})", self.index, self.name), resume_from: self.before.clone(), command: None }.into()
    }
}

/// Runs the configured stages. A stop (`opts.shutdown`) ends with an [`Interrupted`] error
/// naming what to resume from; an interrupted stage is never exported as finished.
pub fn run_training(cfg: &TrainConfig, opts: &RunOptions) -> Result<Vec<StageReport>> {
    crate::train::run_dir::refuse_if_in_use(&cfg.out_dir)?;
    crate::train::preflight::preflight(cfg, opts.deterministic)?;
    let recipe = Recipe::of(cfg);
    let resume = opts.resume.as_deref().map(|dir| ResumePoint::open(dir, cfg, &recipe)).transpose()?;
    let claim = match &resume {
        Some(point) => Claim::Resume { run_id: &point.run_id },
        None => Claim::Fresh,
    };
    let run = RunDir::claim(&cfg.out_dir, claim, &recipe.hash(), opts.force)?;
    // Every stage's updates go to /metrics; the GRPO stage's runtime serves the same endpoint.
    if !cfg.runtime.metrics_addr.is_empty() && !opts.deterministic {
        srlm_actors::metrics::serve(cfg.runtime.metrics_addr.parse().context("runtime.metrics_addr")?)?;
    }
    let mut state = load_model(cfg)?;
    // Logits are compared token by token; traces travel as text and need no shared tokenizer.
    if let (Some(kd), true) = (&cfg.kd, cfg.stages.contains(&Stage::Kd)) {
        if kd.mode != KdMode::Traces {
            kd_logits::check_teacher_tokenizer(&kd.teacher, &state.tokenizer)?;
        }
    }
    let template = state.tokenizer.chat_template()?;
    let (train, heldout) = load_problems(cfg, &template)?;
    if cfg.data.has_problems() && (train.is_empty() || heldout.is_empty()) {
        bail!("no training or held-out problems (check [data])");
    }
    let prompts: Vec<&str> = train.iter().chain(&heldout).map(|p| p.prompt.as_str()).collect();
    crate::train::preflight::check_generation_memory(cfg, &state.config, &state.device, state.weights_dtype(), &prompts)?;
    if let Some(point) = &resume {
        state.weights = resumed_weights(point, cfg, &state)?;
        say(opts, &format!("resuming from {}: {}", point.dir().display(), stages_left(cfg, point.first_stage())));
    }
    // What a stop during an evaluation leaves to resume from.
    let mut resume_from = resume.as_ref().map(|p| p.dir().to_path_buf());
    let eval_gen = generation(cfg, &state.tokenizer, cfg.eval.temperature, 1.0, cfg.eval.max_new_tokens);
    let evaluate = |s: &State, resume_from: &Option<PathBuf>| -> Result<Option<HeldoutScore>> {
        if heldout.is_empty() {
            return Ok(None);
        }
        // A real model takes minutes here: a line every tenth of the way.
        let pace = Pace::start();
        let go_on = |done: usize, total: usize| progress_or_stop(opts, &pace, "held-out", done, total);
        let score = heldout_accuracy(
            &Qwen2::for_inference(&s.config, &s.weights)?,
            &s.tokenizer,
            &heldout,
            &cfg.data,
            cfg.eval.samples,
            &eval_gen,
            &go_on,
        )?
        .ok_or_else(|| Interrupted {
            during: "the held-out evaluation".into(),
            resume_from: resume_from.clone(),
            command: None,
        })?;
        Ok(Some(score))
    };
    let mut reports = Vec::new();
    let mut score = evaluate(&state, &resume_from)?;
    let when = if resume.is_some() { "at the resume point" } else { "before training" };
    match &score {
        Some(s) => say(
            opts,
            &format!("held-out {when}: accuracy {:.1}% (format {:.1}%, {} samples)", 100.0 * s.accuracy, 100.0 * s.format, s.samples),
        ),
        None => say(opts, "no held-out problems (data.task = \"none\"): no accuracy check"),
    }
    let first = resume.as_ref().map_or(0, ResumePoint::first_stage);
    for (index, &stage) in cfg.stages.iter().enumerate().skip(first) {
        let start = Instant::now();
        let stage_run = StageRun {
            index,
            checkpoints: cfg.out_dir.join(format!("checkpoints-stage-{index}")),
            stamp: StageStamp::new(&run.run_id, index, &recipe),
            resume: resume.as_ref().and_then(|p| p.checkpoint_for(index)),
            before: resume_from.clone(),
            name: stage_name(stage),
        };
        let steps = match stage {
            Stage::Sft => sft_stage(cfg, &mut state, &train, opts, &stage_run)?,
            Stage::Kd => kd_stage(cfg, &mut state, &train, opts, &stage_run)?,
            Stage::Grpo if cfg.grpo.steps == 0 => 0,
            Stage::Grpo => grpo_stage(cfg, &mut state, &train, opts, &stage_run)?,
        };
        let dir = stage_export_dir(cfg, index);
        crate::model::export::export_weights(&state.config, &state.weights, Some(&state.tokenizer), &dir, DType::F32, true)?;
        stage_run.stamp.write_into(&dir)?;
        resume_from = Some(dir);
        let after = evaluate(&state, &resume_from)?;
        if let (Some(after), Some(score)) = (&after, &score) {
            say(
                opts,
                &format!(
                    "held-out after {}: accuracy {:.1}% (was {:.1}%), format {:.1}%",
                    stage_run.name,
                    100.0 * after.accuracy,
                    100.0 * score.accuracy,
                    100.0 * after.format
                ),
            );
        }
        reports.push(StageReport { stage, before: score, after, seconds: start.elapsed().as_secs_f64(), steps });
        score = after;
    }
    Ok(reports)
}

/// The weights at the resume point: the checkpoint's (checked against this model) or the
/// finished stage's export. A LoRA checkpoint holds only adapters: the weights are those its
/// stage started from, which the adapters never changed.
fn resumed_weights(point: &ResumePoint, cfg: &TrainConfig, state: &State) -> Result<Weights> {
    let weights = match &point.at {
        ResumeAt::Inside { dir, stage } => match crate::checkpoint::load(dir, &state.config)?.weights {
            None if cfg.stage_trains_adapters(*stage) && dir.join(crate::model::lora::ADAPTER_WEIGHTS).is_file() => {
                Some(stage_start_weights(cfg, state, *stage, dir)?)
            }
            weights => weights,
        },
        ResumeAt::After { dir, .. } => {
            Some(crate::model::load::load_hf_weights(dir).with_context(|| format!("--resume {}", dir.display()))?.1)
        }
    };
    let weights = weights.with_context(|| format!("--resume {}: holds no full weights", point.dir().display()))?;
    Ok(weights.to(state.weights_dtype(), &state.device)?)
}

/// Between the items of long work: a progress line every tenth of the way, and whether to go on
/// (no stop asked).
fn progress_or_stop(opts: &RunOptions, pace: &Pace, what: &str, done: usize, total: usize) -> bool {
    if pace.passed_a_mark(done, total) {
        say(opts, &format!("{what} {done}/{total} problems ({})", pace.note(done, total)));
    }
    !opts.shutdown.is_requested()
}

fn say(opts: &RunOptions, line: &str) {
    if opts.progress {
        eprintln!("{line}");
    }
    tracing::info!("{line}");
}

fn load_model(cfg: &TrainConfig) -> Result<State> {
    let device = parse_device(&cfg.model.device).map_err(anyhow::Error::msg)?;
    let dtype = parse_dtype(&cfg.model.dtype).map_err(anyhow::Error::msg)?;
    if cfg.model.source == "tiny" {
        let dir = cfg.out_dir.join("tokenizer");
        std::fs::create_dir_all(&dir)?;
        write_char_tokenizer(&dir)?;
        let tokenizer = Tokenizer::from_hf_dir(&dir)?;
        let config = tiny_qwen2_config(char_vocab_size());
        let weights = init_weights(&config, 0.02, cfg.seed, &device)?.to(dtype, &device)?;
        return Ok(State { config, weights, tokenizer: Arc::new(tokenizer), device });
    }
    let m = LoadedModel::load(&cfg.model.source, &device, dtype).with_context(|| format!("model.source '{}'", cfg.model.source))?;
    Ok(State { config: m.config.clone(), weights: m.weights.clone(), tokenizer: Arc::new(m.tokenizer.clone()), device })
}

fn generation(cfg: &TrainConfig, tok: &Tokenizer, temperature: f64, top_p: f64, max_new_tokens: usize) -> GenerationConfig {
    GenerationConfig {
        sampling: SamplingParams { temperature: temperature as f32, top_p: top_p as f32, ..SamplingParams::default() },
        max_new_tokens,
        min_new_tokens: 0,
        eos_ids: tok.eos_token_ids().to_vec(),
        stop: StopStrings::default(),
        seed: cfg.seed,
    }
}

fn kd_stage(cfg: &TrainConfig, state: &mut State, train: &[TrainingProblem], opts: &RunOptions, stage: &StageRun) -> Result<u64> {
    match cfg.kd.as_ref().map(|kd| kd.mode) {
        Some(KdMode::Traces) => trace_kd_stage(cfg, state, train, opts, stage),
        _ => kd_logits::logit_kd_stage(cfg, state, train, opts, stage),
    }
}

/// Trace distillation: the teacher's correct solutions become the SFT data. A resumed stage
/// reuses the traces this run already wrote.
fn trace_kd_stage(cfg: &TrainConfig, state: &mut State, train: &[TrainingProblem], opts: &RunOptions, stage: &StageRun) -> Result<u64> {
    let kd = cfg.kd.as_ref().expect("validated: kd stage has a [kd] section");
    let out = cfg.out_dir.join("traces.jsonl");
    let template = state.tokenizer.chat_template()?;
    if stage.resume.is_some() && out.is_file() {
        say(opts, &format!("kd: reusing this run's traces in {}", out.display()));
    } else {
        let teacher =
            LoadedModel::load(&kd.teacher, &state.device, state.weights_dtype()).with_context(|| format!("kd.teacher '{}'", kd.teacher))?;
        let model = teacher.inference_model()?;
        let problems = trace_problems(cfg, kd, train, &template)?;
        let (temperature, max_new_tokens) = kd.sampling(&cfg.grpo);
        let gen = generation(cfg, &state.tokenizer, temperature, cfg.grpo.top_p, max_new_tokens);
        let pace = Pace::start();
        let go_on = |done: usize, total: usize| progress_or_stop(opts, &pace, "kd: teacher sampled", done, total);
        let teacher_template = teacher.tokenizer.chat_template()?;
        let stats = match crate::learner::traces::distill_traces(
            &model,
            &teacher.tokenizer,
            &teacher_template,
            &problems,
            kd.samples,
            &gen,
            crate::reward::Benchmark::Gsm8k,
            cfg.data.format,
            kd.layout,
            &out,
            &go_on,
        ) {
            Err(crate::learner::traces::TraceError::Stopped { .. }) => return Err(stage.stopped_before_any_step()),
            other => other?,
        };
        say(
            opts,
            &format!(
                "kd: teacher kept {} of {} samples ({}; {} of {} problems solved) → {}",
                stats.kept,
                stats.samples,
                stats.layout_note(kd.layout),
                stats.solved,
                stats.problems,
                out.display()
            ),
        );
    }
    let conversations = crate::learner::sft_data::read_conversations(&out, crate::learner::sft_data::DataFormat::Chat, cfg.data.format)?;
    let examples = conversations
        .iter()
        .map(|c| crate::learner::sft_data::tokenize_conversation(c, &template, &state.tokenizer))
        .collect::<Result<Vec<_>, _>>()?;
    sft_on(cfg, state, examples, opts, stage)
}

/// The problems the teacher is sampled on: `kd.prompts` of `[kd] data` after its first `kd.skip`
/// (in file order, asked in `[data] format` as the training problems are), or of the training
/// problems.
fn trace_problems(
    cfg: &TrainConfig,
    kd: &KdSection,
    train: &[TrainingProblem],
    template: &ChatTemplate,
) -> Result<Vec<crate::learner::traces::Problem>> {
    let own;
    let source = match &kd.data {
        Some(path) => {
            own = gsm8k_file(path, template, cfg.data.format, cfg.data.gold).context("kd.data")?;
            &own[..]
        }
        None => train,
    };
    if kd.skip >= source.len() {
        let of = kd.data.as_ref().map_or("the training problems".to_string(), |p| p.display().to_string());
        bail!("kd.skip = {} leaves none of the {} problems of {of}", kd.skip, source.len());
    }
    source
        .iter()
        .skip(kd.skip)
        .take(kd.prompts)
        .map(|p| {
            Ok(crate::learner::traces::Problem {
                messages: p.messages.clone(),
                gold: cfg.data.gold.parse(&p.gold).map_err(anyhow::Error::msg)?,
            })
        })
        .collect()
}

impl State {
    fn weights_dtype(&self) -> DType {
        self.weights.iter().next().map_or(DType::F32, |(_, t)| t.dtype())
    }
}

fn grpo_stage(cfg: &TrainConfig, state: &mut State, train: &[TrainingProblem], opts: &RunOptions, stage: &StageRun) -> Result<u64> {
    let index = stage.index;
    let g = &cfg.grpo;
    let r = &cfg.runtime;
    let grpo = GrpoConfig { pad_id: state.tokenizer.pad_token_id().unwrap_or(0), ..g.algo.clone() };
    let optimizer = g.adamw();
    let place = stage.checkpoint_place(cfg, state)?;
    let mut trainer = match g.lora_config(cfg.seed) {
        None => {
            let reference = match (g.algo.loss.beta > 0.0, stage.resume) {
                (false, _) => None,
                (true, None) => Some(Qwen2::new(&state.config, &deep_copy(&state.weights)?)?),
                (true, Some(dir)) => Some(Qwen2::new(&state.config, &stage_start_weights(cfg, state, index, dir)?)?),
            };
            GrpoTrainer::new(&state.weights, reference, optimizer, grpo, place)?
        }
        Some(lora) => {
            // The frozen base is where the stage started (also on resume: a LoRA checkpoint
            // holds only adapters), so it is the KL reference as it is, without a copy.
            let reference = (g.algo.loss.beta > 0.0).then(|| Qwen2::new(&state.config, &state.weights)).transpose()?;
            let base_model = stage_base_name(cfg, index, stage.resume);
            GrpoTrainer::with_lora(state.weights.clone(), &lora, base_model, reference, optimizer, grpo, place)?
        }
    };
    let adapters = trainer.adapters();
    // The trainer holds its own copy (full) or the frozen base (LoRA); the stage's starting
    // weights would be 2 GB of a 0.5B model kept idle through the run. The run's last published
    // weights replace them.
    let source = state.weights.source().to_path_buf();
    state.weights = Weights::new(Default::default(), &source);
    let last_checkpoint = trainer.last_checkpoint();
    if let Some(dir) = stage.resume {
        trainer.resume_from(dir)?;
        let exactness = if opts.deterministic {
            "exactly, if it is a periodic checkpoint"
        } else {
            "every remaining prompt trains once, but not bit-identically to an uninterrupted run (--deterministic resumes exactly)"
        };
        say(opts, &format!("grpo: resumed from {}: {exactness}", dir.display()));
    }
    let start_step = trainer.start_step();
    if r.log_rollouts_every > 0 {
        let path = cfg.out_dir.join("rollouts.jsonl");
        let removed =
            trainer.log_rollouts(path.clone(), r.log_rollouts_every, index).with_context(|| format!("rollout log {}", path.display()))?;
        if removed > 0 {
            say(opts, &format!("grpo: {removed} groups after the checkpoint left {} (they are sampled again)", path.display()));
        }
    }
    let total = g.steps;
    let progress = Arc::new(GrpoProgress::new(total, total * r.pipeline.batch_groups as u64, trainer.problems_done(), opts.progress));
    let bar = Arc::clone(&progress);
    trainer.on_step = Some(Box::new(move |p: &StepProgress| bar.step(p)));
    let latest = trainer.latest_weights();
    let first = cfg.grpo_first_prompt() as u64;
    let prompts: Vec<Prompt> = (0..total * r.pipeline.batch_groups as u64)
        .map(|i| {
            let p = &train[((first + i) % train.len() as u64) as usize];
            Prompt { id: i, text: p.prompt.clone(), reference: p.gold.clone() }
        })
        .collect();
    let placement = Placement::new(&cfg.model.device, &r.generator_devices, r.pipeline.generators, r.generator_dtype.as_deref())
        .map_err(anyhow::Error::msg)?;
    let runtime = RuntimeConfig { generator_devices: placement.generator_slots.clone(), ..runtime_base(cfg, opts)? };
    let (model_cfg, tok) = (state.config.clone(), Arc::clone(&state.tokenizer));
    let gen = generation(cfg, &state.tokenizer, g.algo.temperature, g.top_p, g.max_new_tokens());
    let samplers: Factory<PolicySampler> = Arc::new(move |_, _| PolicySampler::new(model_cfg.clone(), Arc::clone(&tok), gen.clone()));
    let recipe = cfg.clone();
    let rewarders: Factory<GoldRewarder> = Arc::new(move |_, _| GoldRewarder::for_recipe(&recipe).expect("validated with the config"));
    let mut pipeline = Pipeline::new(runtime, Arc::new(prompts), samplers, rewarders, trainer);
    if let Some(listen) = &opts.listen {
        crate::train::cluster::attach(&mut pipeline, listen, cfg)?;
    }
    if placement.has_foreign_generators() {
        pipeline.copy_to_device = Some(placement.copy_hook());
    }
    let summary = stage.run_recorded(cfg, opts, pipeline, start_step, step_json)?;
    progress.finish();
    say(
        opts,
        &format!(
            "grpo: {} steps in this run, {} groups trained, {} dropped as stale, {} with equal rewards, {} generated tokens in {:.1}s (learner busy {:.0}%)",
            summary.steps.len(),
            summary.groups_trained,
            summary.groups_dropped_stale,
            summary.groups_dropped_uniform,
            summary.tokens_generated,
            summary.elapsed.as_secs_f64(),
            100.0 * summary.learner_busy_fraction()
        ),
    );
    if let (Some(adapters), true) = (&adapters, g.save_adapter) {
        let dir = cfg.out_dir.join(format!("stage-{index}-grpo-adapter"));
        adapters.save_peft(&dir, &stage_base_name(cfg, index, stage.resume), true)?;
        say(opts, &format!("grpo: adapters written to {}", dir.display()));
    }
    let published = lock(&latest).take();
    state.weights = match published {
        Some(w) => Arc::try_unwrap(w).unwrap_or_else(|w| (*w).clone()),
        None => anyhow::bail!("grpo: the learner published no weights"),
    };
    write_atomic(&cfg.out_dir.join(format!("run-stage-{index}.json")), run_json(&summary, r, &placement)?.as_bytes())?;
    stage.runtime_ended(opts, &summary, &last_checkpoint)?;
    // The learner's count continues from the checkpoint's, so this is the stage's whole count.
    Ok(summary.state.step)
}

/// What every stage's runtime shares: `[runtime]`'s pipeline keys, the run's seed, and the
/// metrics address (none under `--deterministic`, whose harness serves no endpoint).
fn runtime_base(cfg: &TrainConfig, opts: &RunOptions) -> Result<RuntimeConfig> {
    let r = &cfg.runtime;
    let metrics_addr =
        if r.metrics_addr.is_empty() || opts.deterministic { None } else { Some(r.metrics_addr.parse().context("runtime.metrics_addr")?) };
    Ok(RuntimeConfig { seed: cfg.seed, metrics_addr, ..r.pipeline.clone() })
}

/// Runs `pipeline` to its end, stopping early at the run's shutdown request: on the
/// deterministic harness (`--deterministic`), or on a tokio runtime.
fn run_pipeline<S, R, T>(mut pipeline: Pipeline<S, R, T>, opts: &RunOptions) -> Result<RunSummary>
where
    S: srlm_actors::Sampler,
    R: srlm_actors::Rewarder,
    T: srlm_actors::Trainer<Weights = S::Weights>,
{
    pipeline.shutdown = opts.shutdown.clone();
    if opts.deterministic {
        return Ok(pipeline.run_deterministic()?);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    Ok(rt.block_on(pipeline.run())?)
}

/// Where stage `index`'s finished weights go: `out_dir/stage-<index>-<name>`.
fn stage_export_dir(cfg: &TrainConfig, index: usize) -> PathBuf {
    cfg.out_dir.join(format!("stage-{index}-{}", stage_name(cfg.stages[index])))
}

/// Where stage `index` (> 0) starts from: the previous stage's export in the run folder that
/// holds `checkpoint` when resuming (a stage resumed into another `--out` starts from the
/// interrupted run's export), else in this run's folder.
fn stage_start_dir(cfg: &TrainConfig, index: usize, checkpoint: Option<&Path>) -> PathBuf {
    let export = stage_export_dir(cfg, index - 1);
    let name = export.file_name().expect("a stage folder name").to_owned();
    checkpoint.and_then(|c| c.parent()?.parent()).map(|run| run.join(&name)).filter(|d| d.is_dir()).unwrap_or(export)
}

/// What stage `index` starts from, as a PEFT config names an adapter's base: the model's source
/// for the first stage, else the previous stage's export.
fn stage_base_name(cfg: &TrainConfig, index: usize, checkpoint: Option<&Path>) -> String {
    match index {
        0 => cfg.model.source.clone(),
        _ => stage_start_dir(cfg, index, checkpoint).display().to_string(),
    }
}

fn stage_name(stage: Stage) -> String {
    format!("{stage:?}").to_lowercase()
}

/// What a resumed run still has to do, from stage `first` on (past the last: nothing to train).
fn stages_left(cfg: &TrainConfig, first: usize) -> String {
    match cfg.stages.get(first..).filter(|rest| !rest.is_empty()) {
        Some(rest) => format!("stage {first} ({}) onwards", rest.iter().map(|&s| stage_name(s)).collect::<Vec<_>>().join(" → ")),
        None => "every stage has finished; nothing left to train".to_string(),
    }
}

/// The weights stage `index` started from, for a stage resumed from `checkpoint` (its KL
/// reference, or the frozen base of its adapters): the model's own for the first stage, else the
/// previous stage's export.
fn stage_start_weights(cfg: &TrainConfig, state: &State, index: usize, checkpoint: &Path) -> Result<Weights> {
    if index == 0 {
        return Ok(load_model(cfg)?.weights);
    }
    let dir = stage_start_dir(cfg, index, Some(checkpoint));
    let (_, weights) = crate::model::load::load_hf_weights(&dir)
        .with_context(|| format!("resuming stage {index} from {}: the weights it started from, {}", checkpoint.display(), dir.display()))?;
    Ok(weights.to(state.weights_dtype(), &state.device)?)
}

/// Throughput of the run as a whole (`srlm bench staleness` reads it): wall time, the time each
/// role spent computing, and what was generated, trained and dropped.
fn run_json(summary: &RunSummary, r: &crate::train::config::RuntimeSection, placement: &Placement) -> Result<String> {
    let seconds = |d: std::time::Duration| d.as_secs_f64();
    Ok(serde_json::to_string_pretty(&serde_json::json!({
        "steps": summary.steps.len(), "elapsed_s": seconds(summary.elapsed),
        "learner_busy_s": seconds(summary.learner_busy),
        "generator_busy_s": summary.generator_busy.iter().map(|d| seconds(*d)).collect::<Vec<_>>(),
        "groups_generated": summary.groups_generated, "groups_trained": summary.groups_trained,
        "groups_dropped_stale": summary.groups_dropped_stale, "groups_dropped_uniform": summary.groups_dropped_uniform,
        "dynamic_sampling": r.pipeline.dynamic_sampling, "tokens_generated": summary.tokens_generated,
        "max_staleness": r.pipeline.max_staleness, "batch_groups": r.pipeline.batch_groups, "group_size": r.pipeline.group_size,
        "generator_cores": r.pipeline.generator_cores, "learner_core": r.pipeline.learner_core,
        "interrupted": summary.interrupted, "final_checkpoint_error": summary.final_checkpoint_error,
        "failed_checkpoints": summary.failed_checkpoints.iter().map(|(step, why)| serde_json::json!({"step": step, "error": why})).collect::<Vec<_>>(),
        "devices": placement.names, "generator_slots": placement.generator_slots,
        "weight_syncs": summary.weight_syncs.copies, "weight_sync_s": seconds(summary.weight_syncs.seconds),
        "groups_requeued": summary.groups_requeued, "remote": crate::train::cluster::remote_json(&summary.remote),
    }))?)
}

/// What a remote generator builds from the recipe: the model's shape, tokenizer and device, and
/// the GRPO stage's sampling settings.
/// Only the shape and tokenizer are read: the weights come from the learner node.
pub fn sampler_parts(cfg: &TrainConfig) -> Result<(ModelConfig, Arc<Tokenizer>, Device, GenerationConfig)> {
    let (config, tokenizer, device) = if cfg.model.source == "tiny" {
        let state = load_model(cfg)?;
        (state.config, state.tokenizer, state.device)
    } else {
        let device = parse_device(&cfg.model.device).map_err(anyhow::Error::msg)?;
        let (config, tokenizer) =
            crate::model::load::shape_and_tokenizer(&cfg.model.source).with_context(|| format!("model.source '{}'", cfg.model.source))?;
        (config, Arc::new(tokenizer), device)
    };
    let g = &cfg.grpo;
    let gen = generation(cfg, &tokenizer, g.algo.temperature, g.top_p, g.max_new_tokens());
    Ok((config, tokenizer, device, gen))
}

/// A resumed stage's steps up to its checkpoint's (`through`), from the step series of the run
/// that wrote the checkpoint (`RUN/checkpoints-stage-N/checkpoint-S` → `RUN/steps-stage-N.json`,
/// kept current step by step, so a run that died has it too), so the resumed stage's series is
/// the whole stage's. The error names the file when it cannot be read (a checkpoint copied
/// elsewhere, a damaged file).
fn steps_before_checkpoint(checkpoint: &Path, index: usize, through: u64) -> Result<Vec<serde_json::Value>, String> {
    let run = checkpoint.parent().and_then(Path::parent).unwrap_or(Path::new("."));
    let path = run.join(format!("steps-stage-{index}.json"));
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let steps: Vec<serde_json::Value> = serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(steps.into_iter().filter(|s| s["step"].as_u64().is_some_and(|n| n <= through)).collect())
}

/// One step of a stage's series, as its stage records it.
type StepJson = fn(&StepRecord) -> serde_json::Value;

/// Rewrites `path` (atomically) with `earlier` and every step recorded so far, after each step:
/// the series on disk is never more than one step behind, whatever ends the run.
fn keep_steps_file(path: PathBuf, earlier: Vec<serde_json::Value>, to_json: StepJson) -> srlm_actors::OnStepRecorded {
    let mut series = earlier;
    Box::new(move |record| {
        series.push(to_json(record));
        let written = serde_json::to_string_pretty(&series).map_err(std::io::Error::other).and_then(|t| write_atomic(&path, t.as_bytes()));
        if let Err(e) = written {
            tracing::warn!("{}: {e}", path.display());
        }
    })
}

/// The per-step metric series (what two deterministic runs must agree on).
fn steps_json(earlier: Vec<serde_json::Value>, summary: &RunSummary, to_json: StepJson) -> Result<String> {
    let steps: Vec<_> = earlier.into_iter().chain(summary.steps.iter().map(to_json)).collect();
    Ok(serde_json::to_string_pretty(&steps)?)
}

/// A step of an SFT or KD stage: no rewards, sampling or staleness to record (`loss` is the KD
/// stages' KL); `tokens` are the step's completion (target) tokens over `completions` rows.
fn sft_step_json(s: &StepRecord) -> serde_json::Value {
    serde_json::json!({
        "step": s.step, "loss": s.stats.loss, "grad_norm": s.stats.grad_norm, "lr": s.stats.learning_rate,
        "completions": s.completions, "tokens": s.tokens,
    })
}

fn step_json(s: &StepRecord) -> serde_json::Value {
    serde_json::json!({
        "step": s.step, "version": s.version, "loss": s.stats.loss, "kl": s.stats.kl,
        "clip_fraction": s.stats.clip_fraction, "grad_norm": s.stats.grad_norm,
        "lr": s.stats.learning_rate, "rewards": s.reward_means, "accuracy": s.accuracy,
        "prompts": s.prompts, "completions": s.completions, "tokens": s.tokens,
        "max_staleness": s.max_staleness, "sampled_reward": s.sampled_reward_mean,
        "dropped_uniform_so_far": s.dropped_uniform_so_far,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::PromptFormat;

    #[test]
    fn a_resume_names_the_stages_left_by_name() {
        let mut cfg = TrainConfig::from_toml(crate::train::config::EMBEDDED_DEFAULT, "default").unwrap();
        cfg.stages = vec![Stage::Sft, Stage::Kd, Stage::Grpo];
        assert_eq!(stages_left(&cfg, 0), "stage 0 (sft → kd → grpo) onwards");
        assert_eq!(stages_left(&cfg, 2), "stage 2 (grpo) onwards");
        assert_eq!(stages_left(&cfg, 3), "every stage has finished; nothing left to train");
    }

    #[test]
    fn trace_kd_samples_at_its_own_temperature_and_length_or_grpo_s() {
        let kd = |extra: &str| {
            let text = format!(
                "stages = [\"kd\"]\nout_dir = \"x\"\n[model]\nsource = \"tiny\"\n[data]\ntask = \"arithmetic\"\ngold = \"number\"\n\
                 [grpo]\ntemperature = 0.9\nmax_new_tokens = 384\n[kd]\nteacher = \"t\"\n{extra}"
            );
            TrainConfig::from_toml(&text, "kd.toml").map_err(|e| e.to_string())
        };
        let sampling = |cfg: TrainConfig| cfg.kd.as_ref().unwrap().sampling(&cfg.grpo);
        assert_eq!(sampling(kd("").unwrap()), (0.9, 384));
        assert_eq!(sampling(kd("sample_temperature = 0.7\nmax_new_tokens = 256").unwrap()), (0.7, 256));
        let err = kd("sample_temperature = 0.0").unwrap_err();
        assert!(err.contains("kd.sample_temperature"), "{err}");
    }

    /// `[kd] data` replaces the training problems as the teacher's prompts: its first
    /// `kd.prompts` rows in file order, asked in the run's format, golds parsed.
    #[test]
    fn trace_kd_samples_the_teacher_on_its_own_problem_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("kd.jsonl");
        let rows: Vec<String> = (1..=3)
            .map(|i| serde_json::json!({"question": format!("What is {i} + {i}?"), "answer": format!("{}", 2 * i)}).to_string())
            .collect();
        std::fs::write(&data, rows.join("\n") + "\n").unwrap();
        let kd = |extra: &str| {
            let text = format!(
                "stages = [\"kd\"]\nout_dir = \"x\"\n[model]\nsource = \"tiny\"\n[data]\ntask = \"arithmetic\"\nformat = \"boxed\"\ngold = \"number\"\n[kd]\nteacher = \"t\"\nprompts = 2\n{extra}"
            );
            TrainConfig::from_toml(&text, "kd.toml").unwrap()
        };
        let trace_problems_of = |cfg: &TrainConfig, train: &[TrainingProblem], template: &ChatTemplate| {
            trace_problems(cfg, cfg.kd.as_ref().unwrap(), train, template)
        };
        let template = ChatTemplate::new("{% for m in messages %}{{ m.content }}{% endfor %}", None, None).unwrap();
        let train = vec![
            TrainingProblem {
                messages: PromptFormat::Boxed.messages("7 - 7?"),
                prompt: String::new(),
                gold: "0".into(),
                solution: None
            };
            4
        ];
        let own = trace_problems_of(&kd(&format!("data = {:?}", data.to_str().unwrap())), &train, &template).unwrap();
        assert_eq!(own.len(), 2);
        assert_eq!(own[1].messages, PromptFormat::Boxed.messages("What is 2 + 2?"));
        assert_eq!(own[1].gold, crate::rewarder::GoldFormat::Number.parse("4").unwrap());
        let from_train = trace_problems_of(&kd(""), &train, &template).unwrap();
        assert_eq!((from_train.len(), &from_train[0].messages), (2, &train[0].messages));
        // `skip` passes over the file's first rows: a slice disjoint from an earlier run's.
        let skipped = trace_problems_of(&kd(&format!("data = {:?}\nskip = 2", data.to_str().unwrap())), &train, &template).unwrap();
        assert_eq!(skipped.len(), 1, "two prompts asked, one row left after the skip");
        assert_eq!(skipped[0].messages, PromptFormat::Boxed.messages("What is 3 + 3?"));
        let err = trace_problems_of(&kd("skip = 4"), &train, &template).unwrap_err().to_string();
        assert!(err.contains("kd.skip = 4") && err.contains("none of the 4 problems"), "{err}");
        // A bad row names the key, the file and its line.
        std::fs::write(&data, "{\"question\": \"1 + 1?\"}\n").unwrap();
        let err = format!("{:#}", trace_problems_of(&kd(&format!("data = {:?}", data.to_str().unwrap())), &train, &template).unwrap_err());
        assert!(err.contains("kd.data") && err.contains("kd.jsonl:1") && err.contains("answer"), "{err}");
    }
}
