//! `srlm sft --config FILE.toml [--resume CKPT]`: supervised fine-tuning, full or LoRA, with
//! periodic checkpoints, written as an HF dir or a PEFT adapter.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use srlm::algo::sft::{fit_length, total_steps, train_sft, SftConfig, SftCursor, SftStepStats};
use srlm::algo::sft_checkpoint::{plan_fingerprint, SftCheckpoints, SftParams};
use srlm::algo::sft_data::{read_conversations, tokenize_conversation};
use srlm::algo::sft_recipe::{SaveAs, SftRecipe};
use srlm::model::export::export_hf;
use srlm::model::load::{parse_device, parse_dtype};
use srlm::model::{LoadedModel, LoraAdapters, Qwen2};
use srlm::optim::AdamW;

#[derive(Args)]
pub struct SftArgs {
    /// TOML recipe (see configs/ for examples); unknown keys are errors.
    #[arg(long)]
    config: PathBuf,
    /// Replace an existing output directory.
    #[arg(long)]
    force: bool,
    /// Continue from this checkpoint directory (`<checkpoint_dir>/checkpoint-N`) of the same recipe.
    #[arg(long)]
    resume: Option<PathBuf>,
}

pub fn run(args: SftArgs) -> Result<()> {
    let recipe = SftRecipe::from_file(&args.config)?;
    let device = parse_device(&recipe.device).map_err(anyhow::Error::msg)?;
    let dtype = parse_dtype(&recipe.dtype).map_err(anyhow::Error::msg)?;
    let mut loaded = LoadedModel::load(&recipe.model, &device, dtype).with_context(|| format!("loading model '{}'", recipe.model))?;

    let mut conversations = read_conversations(&recipe.data, recipe.format, recipe.system())?;
    conversations.truncate(recipe.limit.unwrap_or(usize::MAX));
    let template = loaded.tokenizer.chat_template()?;
    let examples = conversations
        .iter()
        .enumerate()
        .map(|(i, c)| {
            tokenize_conversation(c, &template, &loaded.tokenizer).with_context(|| format!("{}: row {}", recipe.data.display(), i + 1))
        })
        .collect::<Result<Vec<_>>>()?;
    let fitted = fit_length(examples, recipe.max_length, recipe.overlong);
    eprintln!(
        "{} examples ({} truncated, {} dropped at max_length {})",
        fitted.examples.len(),
        fitted.truncated,
        fitted.dropped,
        recipe.max_length
    );
    anyhow::ensure!(!fitted.examples.is_empty(), "no training example left");

    anyhow::ensure!(args.force || !recipe.output.exists(), "{}: already exists (--force replaces it)", recipe.output.display());

    let cfg = SftConfig {
        epochs: recipe.epochs,
        max_len: recipe.max_length,
        overlong: recipe.overlong,
        token_budget: recipe.token_budget,
        grad_accum: recipe.grad_accum,
        seed: recipe.seed,
        pad_id: loaded.tokenizer.pad_token_id().or(loaded.tokenizer.eos_token_id()).unwrap_or(0),
        chunk_rows: srlm::model::logprobs::DEFAULT_CHUNK_ROWS,
        lanes: recipe.lanes,
    };
    let steps = total_steps(&fitted.examples, &cfg);
    let opt_cfg = recipe.adamw(steps);
    eprintln!("{steps} optimizer steps: lr {} ({:?}, {} warmup steps)", recipe.lr, opt_cfg.schedule.decay, opt_cfg.schedule.warmup_steps);
    let plan = plan_fingerprint(&fitted.examples, &cfg);
    let checkpoints = |params| SftCheckpoints {
        root: recipe.checkpoint_root(),
        every: recipe.checkpoint_every,
        keep: recipe.keep_checkpoints,
        config: &loaded.config,
        tokenizer: Some(&loaded.tokenizer),
        params,
        plan: plan.clone(),
        run_id: String::new(),
        extra_json: Vec::new(),
    };
    let run = |model: &Qwen2, opt: &mut AdamW, ckpt: &SftCheckpoints| -> Result<()> {
        let start = match &args.resume {
            Some(dir) => {
                let at = ckpt.resume(dir, opt)?;
                eprintln!("resumed from {} at step {}, epoch {} micro-batch {}", dir.display(), opt.step_count(), at.epoch, at.batch);
                at
            }
            None => SftCursor::default(),
        };
        let report = train_sft(model, opt, &fitted.examples, &cfg, start, |s: &SftStepStats, opt: &AdamW| -> Result<()> {
            let skipped = if s.skipped { " (skipped: not finite)" } else { "" };
            eprintln!(
                "epoch {} step {}: loss {:.4} tokens {} grad_norm {:.3} lr {:.3e}{skipped}",
                s.epoch, s.step, s.loss, s.tokens, s.grad_norm, s.lr
            );
            if let Some(dir) = ckpt.after_step(s, opt)? {
                eprintln!("checkpoint {}", dir.display());
            }
            Ok(())
        })?;
        eprintln!("{} steps, {} skipped", report.steps, report.skipped_steps);
        Ok(())
    };

    match recipe.lora_config() {
        Some(lora) => {
            let adapters = LoraAdapters::init(&lora, &loaded.weights, &loaded.config)?;
            let model = Qwen2::with_lora(&loaded.config, &loaded.weights, &adapters, true)?;
            let mut opt = AdamW::new(adapters.vars(), opt_cfg)?;
            run(&model, &mut opt, &checkpoints(SftParams::Lora { adapters: &adapters, base_model: &recipe.model }))?;
            if recipe.save_as() == SaveAs::Adapter {
                adapters.save_peft(&recipe.output, &recipe.model, args.force)?;
            } else {
                loaded.weights = adapters.merged(&loaded.weights)?;
                export_hf(&loaded, &recipe.output, dtype, args.force)?;
            }
        }
        None => {
            let (weights, named) = loaded.weights.to_vars()?;
            let model = Qwen2::new(&loaded.config, &weights)?;
            let mut opt = AdamW::new(named.clone(), opt_cfg)?;
            run(&model, &mut opt, &checkpoints(SftParams::Full(&named)))?;
            loaded.weights = weights;
            export_hf(&loaded, &recipe.output, dtype, args.force)?;
        }
    }
    eprintln!("wrote {}", recipe.output.display());
    Ok(())
}
