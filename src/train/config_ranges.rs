//! The range of every numeric setting of `srlm train`, checked when the config loads: a value
//! that cannot run is refused with its key before any model loads, never found steps later.

use crate::model::load::parse_dtype;
use crate::optim::AdamWConfig;
use crate::ranges::{at_least, below_one, fraction, non_negative, positive, within};
use crate::rewarder::GoldFormat;
use crate::train::config::{DataSection, EvalSection, GrpoSection, RuntimeSection, SftSection, Stage, TrainConfig};

/// Operands stay far enough below i64::MAX that sums and differences never overflow.
const MAX_OPERAND: i64 = 1_000_000_000;

impl TrainConfig {
    /// Every section's numbers in range; the first bad key is the error.
    pub(super) fn check_ranges(&self) -> Result<(), String> {
        if self.out_dir.as_os_str().is_empty() {
            return Err("out_dir is empty: name the folder for checkpoints and reports".into());
        }
        parse_dtype(&self.model.dtype).map_err(|e| format!("model.dtype: {e}"))?;
        check_data(&self.data)?;
        for (name, weight) in &self.rewards {
            if !weight.is_finite() {
                return Err(format!("rewards.{name} = {weight}: must be a finite number"));
            }
        }
        check_eval(&self.eval)?;
        check_sft(&self.sft)?;
        // The kd stage samples with GRPO's sampling settings too.
        if self.stages.contains(&Stage::Grpo) || self.stages.contains(&Stage::Kd) {
            check_sampling(&self.grpo)?;
        }
        if self.stages.contains(&Stage::Grpo) {
            check_grpo(&self.grpo)?;
        }
        check_runtime(&self.runtime)
    }
}

fn check_data(d: &DataSection) -> Result<(), String> {
    at_least("data.train_size", d.train_size, 1)?;
    at_least("data.heldout_size", d.heldout_size, 1)?;
    if d.task != "arithmetic" {
        return Ok(());
    }
    within("data.max_operand", d.max_operand, 1, MAX_OPERAND)?;
    if d.gold == GoldFormat::Gsm8k {
        return Err("data.gold = \"gsm8k\": the arithmetic task's answers are plain numbers; use gold = \"number\"".into());
    }
    match (&d.train, &d.heldout) {
        (None, None) => Ok(()),
        _ => Err("data.train and data.heldout are files of task \"gsm8k\"; the arithmetic task generates its problems".into()),
    }
}

fn check_eval(e: &EvalSection) -> Result<(), String> {
    at_least("eval.samples", e.samples, 1)?;
    // 0 samples greedily.
    non_negative("eval.temperature", e.temperature)?;
    at_least("eval.max_new_tokens", e.max_new_tokens, 1)
}

fn check_sft(s: &SftSection) -> Result<(), String> {
    positive("sft.lr", s.lr)?;
    check_optimizer("sft", &s.optimizer)?;
    at_least("sft.epochs", s.epochs, 1)?;
    // A prompt token and a completion token: anything shorter drops every example.
    at_least("sft.max_len", s.max_len, 2)?;
    at_least("sft.token_budget", s.token_budget, 1)?;
    at_least("sft.grad_accum", s.grad_accum, 1)?;
    at_least("sft.lanes", s.lanes, 1)
}

/// AdamW's keys of a section (`[grpo]`, `[sft]`) beside its learning rate.
fn check_optimizer(section: &str, o: &AdamWConfig) -> Result<(), String> {
    below_one(&format!("{section}.beta1"), o.beta1)?;
    below_one(&format!("{section}.beta2"), o.beta2)?;
    positive(&format!("{section}.eps"), o.eps)?;
    non_negative(&format!("{section}.weight_decay"), o.weight_decay)?;
    // 0 turns clipping off (read as no threshold).
    match o.max_grad_norm {
        Some(norm) => positive(&format!("{section}.max_grad_norm"), norm),
        None => Ok(()),
    }
}

fn check_grpo(g: &GrpoSection) -> Result<(), String> {
    let (a, loss, o) = (&g.algo, &g.algo.loss, &g.optimizer);
    positive("grpo.lr", g.lr)?;
    check_optimizer("grpo", o)?;
    at_least("grpo.steps", g.steps, 1)?;
    non_negative("grpo.epsilon_low", loss.epsilon_low)?;
    // The ratio's lower clip is 1 - epsilon_low, which must stay above 0.
    if loss.epsilon_low >= 1.0 {
        return Err(format!("grpo.epsilon_low = {}: must be below 1", loss.epsilon_low));
    }
    non_negative("grpo.epsilon_high", loss.epsilon_high)?;
    if let Some(cap) = loss.ratio_cap {
        // Below the upper clip the cap would cut ratios the clip lets through.
        if !(cap.is_finite() && cap > 1.0 + loss.epsilon_high) {
            return Err(format!(
                "grpo.ratio_cap = {cap}: must be a finite number above 1 + grpo.epsilon_high ({})",
                1.0 + loss.epsilon_high
            ));
        }
    }
    non_negative("grpo.beta", loss.beta)?;
    at_least("grpo.iterations", a.iterations, 1)?;
    at_least("grpo.micro_batch_size", a.micro_batch_size, 1)?;
    at_least("grpo.lanes", a.lanes, 1)?;
    at_least("grpo.chunk_rows", a.chunk_rows, 1)?;
    if o.schedule.warmup_steps as u64 > g.steps {
        return Err(format!("grpo.warmup_steps = {}: must be at most grpo.steps ({})", o.schedule.warmup_steps, g.steps));
    }
    Ok(())
}

fn check_sampling(g: &GrpoSection) -> Result<(), String> {
    positive("grpo.temperature", g.algo.temperature)?;
    fraction("grpo.top_p", g.top_p)?;
    at_least("grpo.max_new_tokens", g.max_new_tokens(), 1)
}

fn check_runtime(r: &RuntimeSection) -> Result<(), String> {
    let counts = [
        ("runtime.group_size", r.pipeline.group_size),
        ("runtime.batch_groups", r.pipeline.batch_groups),
        ("runtime.generators", r.pipeline.generators),
        ("runtime.groups_in_flight", r.pipeline.groups_in_flight),
        ("runtime.scorers", r.pipeline.scorers),
        ("runtime.rollout_capacity", r.pipeline.rollout_capacity),
        ("runtime.scored_capacity", r.pipeline.scored_capacity),
    ];
    for (key, value) in counts {
        at_least(key, value, 1)?;
    }
    if !r.metrics_addr.is_empty() {
        r.metrics_addr.parse::<std::net::SocketAddr>().map_err(|e| {
            format!("runtime.metrics_addr = {:?}: {e} (expected HOST:PORT such as 127.0.0.1:9464, or \"\" for none)", r.metrics_addr)
        })?;
    }
    if let Some(dtype) = &r.generator_dtype {
        parse_dtype(dtype).map_err(|e| format!("runtime.generator_dtype: {e}"))?;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(core) = r.pipeline.generator_cores.iter().chain(&r.pipeline.learner_core).find(|&&c| c >= cores) {
        return Err(format!("runtime.generator_cores/learner_core: core {core} does not exist (this machine has {cores})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::train::config::TrainConfig;

    const BASE: &str =
        "stages = [\"sft\", \"grpo\"]\nout_dir = \"x\"\n[model]\nsource = \"tiny\"\n[data]\ntask = \"arithmetic\"\ngold = \"number\"\n";

    /// The error of BASE with `line` added to `[section]`.
    fn error_of(section: &str, line: &str) -> String {
        let header = format!("[{section}]\n");
        let text = match BASE.contains(&header) {
            true => BASE.replace(&header, &format!("{header}{line}\n")),
            false => format!("{BASE}{header}{line}\n"),
        };
        match TrainConfig::from_toml(&text, "x.toml") {
            Ok(_) => panic!("[{section}] {line}: accepted"),
            Err(e) => e.to_string(),
        }
    }

    /// Each value the issue found accepted, or found only at step 0, is refused by key.
    #[test]
    fn values_that_cannot_run_are_refused_with_their_key() {
        let cases = [
            ("grpo", "temperature = 0.0", "x.toml: grpo.temperature = 0: must be a finite number > 0"),
            ("grpo", "temperature = -1.0", "grpo.temperature = -1"),
            ("grpo", "temperature = nan", "grpo.temperature = NaN: must be a finite number > 0"),
            ("grpo", "micro_batch_size = 0", "grpo.micro_batch_size = 0: must be at least 1"),
            ("grpo", "iterations = 0", "grpo.iterations = 0"),
            ("grpo", "epsilon_low = -1.0", "grpo.epsilon_low = -1"),
            ("grpo", "epsilon_low = 1.0", "grpo.epsilon_low = 1: must be below 1"),
            ("grpo", "lr = nan", "grpo.lr = NaN"),
            ("grpo", "lr = inf", "grpo.lr = inf"),
            ("grpo", "steps = 0", "grpo.steps = 0"),
            ("grpo", "top_p = 0.0", "grpo.top_p = 0: must be in (0, 1]"),
            ("grpo", "top_p = 2.0", "grpo.top_p = 2"),
            ("grpo", "max_new_tokens = 0", "grpo.max_new_tokens = 0"),
            ("grpo", "max_grad_norm = -1.0", "grpo.max_grad_norm = -1"),
            ("grpo", "ratio_cap = 1.1", "grpo.ratio_cap = 1.1: must be a finite number above 1 + grpo.epsilon_high (1.28)"),
            ("grpo", "beta2 = 1.0", "grpo.beta2 = 1: must be below 1"),
            ("grpo", "eps = 0.0", "grpo.eps = 0"),
            ("grpo", "warmup_steps = 500", "grpo.warmup_steps = 500: must be at most grpo.steps (100)"),
            ("sft", "epochs = 0", "sft.epochs = 0"),
            ("sft", "max_len = 0", "sft.max_len = 0: must be at least 2"),
            ("sft", "token_budget = 0", "sft.token_budget = 0"),
            ("sft", "lr = -1.0", "sft.lr = -1"),
            ("sft", "weight_decay = -0.1", "sft.weight_decay = -0.1"),
            ("runtime", "scorers = 0", "runtime.scorers = 0"),
            ("runtime", "metrics_addr = \"localhost\"", "runtime.metrics_addr = \"localhost\""),
            ("runtime", "generator_dtype = \"f8\"", "runtime.generator_dtype: bad dtype 'f8'"),
            ("runtime", "learner_core = 100000", "core 100000 does not exist"),
            ("eval", "samples = 0", "eval.samples = 0"),
            ("eval", "temperature = nan", "eval.temperature = NaN: must be a finite number >= 0"),
            ("eval", "max_new_tokens = 0", "eval.max_new_tokens = 0"),
            ("model", "dtype = \"f64\"", "model.dtype: bad dtype 'f64'"),
            ("data", "max_operand = 0", "data.max_operand = 0: must be in 1..=1000000000"),
            ("data", "train_size = 0", "data.train_size = 0"),
            ("rewards", "accuracy = nan", "rewards.accuracy = NaN"),
        ];
        for (section, line, expected) in cases {
            let err = error_of(section, line);
            assert!(err.starts_with("x.toml: ") && err.contains(expected), "[{section}] {line}: {err}");
        }
    }

    #[test]
    fn grpo_settings_are_free_when_no_stage_uses_them() {
        let sft_only = BASE.replace("\"sft\", \"grpo\"", "\"sft\"");
        TrainConfig::from_toml(&format!("{sft_only}[grpo]\nsteps = 0\n"), "x.toml").unwrap();
        TrainConfig::from_toml(&format!("{BASE}[eval]\ntemperature = 0.0\n"), "x.toml").unwrap();
    }

    #[test]
    fn the_arithmetic_task_needs_number_golds_and_no_files() {
        let gsm8k_gold = BASE.replace("gold = \"number\"\n", "");
        assert!(TrainConfig::from_toml(&gsm8k_gold, "x.toml").unwrap_err().to_string().contains("data.gold = \"gsm8k\""));
        let err = TrainConfig::from_toml(&format!("{BASE}train = \"t.jsonl\"\n"), "x.toml").unwrap_err().to_string();
        assert!(err.contains("data.train and data.heldout"), "{err}");
    }
}
