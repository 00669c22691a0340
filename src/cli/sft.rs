//! `srlm sft --config FILE.toml`: supervised fine-tuning, full or LoRA, written as an HF dir or a PEFT adapter.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use srlm::algo::optimizer::{adamw, AdamWSettings};
use srlm::algo::sft::{fit_length, train_sft, SftConfig};
use srlm::algo::sft_data::{read_conversations, tokenize_conversation, DataFormat, REASONING_SYSTEM_PROMPT};
use srlm::algo::sft_recipe::{SaveAs, SftRecipe};
use srlm::model::export::export_hf;
use srlm::model::load::{parse_device, parse_dtype};
use srlm::model::{LoadedModel, LoraAdapters, Qwen2};

#[derive(Args)]
pub struct SftArgs {
    /// TOML recipe (see configs/ for examples); unknown keys are errors.
    #[arg(long)]
    config: PathBuf,
    /// Replace an existing output directory.
    #[arg(long)]
    force: bool,
}

pub fn run(args: SftArgs) -> Result<()> {
    let recipe = SftRecipe::from_file(&args.config)?;
    let device = parse_device(&recipe.device).map_err(anyhow::Error::msg)?;
    let dtype = parse_dtype(&recipe.dtype).map_err(anyhow::Error::msg)?;
    let mut loaded = LoadedModel::load(&recipe.model, &device, dtype).with_context(|| format!("loading model '{}'", recipe.model))?;

    let system = match (&recipe.system_prompt, recipe.format) {
        (Some(s), _) => Some(s.as_str()),
        (None, DataFormat::Gsm8k) => Some(REASONING_SYSTEM_PROMPT),
        (None, DataFormat::Chat) => None,
    };
    let mut conversations = read_conversations(&recipe.data, recipe.format, system)?;
    conversations.truncate(recipe.limit.unwrap_or(usize::MAX));
    let template = loaded.tokenizer.chat_template()?;
    let examples = conversations
        .iter()
        .enumerate()
        .map(|(i, c)| tokenize_conversation(c, &template, &loaded.tokenizer).with_context(|| format!("{}: row {}", recipe.data.display(), i + 1)))
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

    let cfg = SftConfig {
        epochs: recipe.epochs,
        max_len: recipe.max_length,
        overlong: recipe.overlong,
        token_budget: recipe.token_budget,
        grad_accum: recipe.grad_accum,
        max_grad_norm: recipe.max_grad_norm,
        seed: recipe.seed,
        pad_id: loaded.tokenizer.pad_token_id().or(loaded.tokenizer.eos_token_id()).unwrap_or(0),
        chunk_rows: srlm::model::logprobs::DEFAULT_CHUNK_ROWS,
    };
    let settings = AdamWSettings { lr: recipe.lr, weight_decay: recipe.weight_decay, ..Default::default() };
    let log = |s: &srlm::algo::sft::SftStepStats| {
        eprintln!(
            "epoch {} step {}: loss {:.4} tokens {} grad_norm {:.3}{}",
            s.epoch, s.step, s.loss, s.tokens, s.grad_norm, if s.skipped { " (skipped: not finite)" } else { "" }
        )
    };

    match recipe.lora_config() {
        Some(lora) => {
            let adapters = LoraAdapters::init(&lora, &loaded.weights, &loaded.config)?;
            let vars: Vec<_> = adapters.vars().into_iter().map(|(_, v)| v).collect();
            let model = Qwen2::with_lora(&loaded.config, &loaded.weights, &adapters, true)?;
            let mut opt = adamw(vars.clone(), &settings)?;
            let report = train_sft(&model, &vars, opt.as_mut(), &fitted.examples, &cfg, log)?;
            eprintln!("{} steps, {} skipped", report.steps, report.skipped_steps);
            if recipe.save_as() == SaveAs::Adapter {
                adapters.save_peft(&recipe.output, &recipe.model, args.force)?;
            } else {
                loaded.weights = adapters.merged(&loaded.weights)?;
                export_hf(&loaded, &recipe.output, dtype, args.force)?;
            }
        }
        None => {
            let (weights, named) = loaded.weights.to_vars()?;
            let vars: Vec<_> = named.into_iter().map(|(_, v)| v).collect();
            let model = Qwen2::new(&loaded.config, &weights)?;
            let mut opt = adamw(vars.clone(), &settings)?;
            let report = train_sft(&model, &vars, opt.as_mut(), &fitted.examples, &cfg, log)?;
            eprintln!("{} steps, {} skipped", report.steps, report.skipped_steps);
            loaded.weights = weights;
            export_hf(&loaded, &recipe.output, dtype, args.force)?;
        }
    }
    eprintln!("wrote {}", recipe.output.display());
    Ok(())
}
