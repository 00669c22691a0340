//! configs/seed: every recipe loads with the parser `srlm` uses, carries the seed's settings,
//! starts from what its row says, every command's arguments are accepted by `srlm` itself, and
//! the README's tables are the ones index.toml gives.

mod estimate;
mod index;
mod readme;

use std::collections::{BTreeMap, BTreeSet};

use index::{repo, Command, Index, Recipe, GSM8K_TRAIN};
use srlm::data::PromptFormat;
use srlm::learner::sft_data::DataFormat;
use srlm::reward::Benchmark;
use srlm::train::config::Stage;

const SEED_METHODS: [&str; 9] = ["KD", "KD LoRA", "SFT", "SFT LoRA", "RL (GRPO)", "KD → RL", "KD LoRA → RL", "SFT → RL", "SFT LoRA → RL"];
const EVERY_LINEAR_LAYER: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

#[test]
fn both_models_have_every_row_of_the_seeds_tables_and_a_baseline() {
    let index = Index::load();
    for model in ["base", "instruct"] {
        let methods: Vec<&str> = index.row.iter().filter(|r| r.model.as_deref() == Some(model)).map(|r| r.method.as_str()).collect();
        let expected: BTreeSet<&str> = SEED_METHODS.iter().copied().chain(["untrained"]).collect();
        assert_eq!(methods.iter().copied().collect::<BTreeSet<_>>(), expected, "{model}");
        assert_eq!(methods.len(), expected.len(), "{model}: a row appears twice");
    }
    let ids: BTreeSet<&str> = index.row.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), index.row.len(), "row ids repeat");
}

/// Each recipe file is named by exactly one command, and loads with that command's parser.
#[test]
fn every_recipe_in_configs_seed_is_used_and_valid() {
    let index = Index::load();
    let mut named = BTreeMap::new();
    for (row, cmd) in index.commands() {
        if let Some(path) = cmd.config_path() {
            assert!(path.is_file(), "row {}: {} does not exist", row.id, path.display());
            cmd.recipe();
            assert!(named.insert(path.clone(), row.id.clone()).is_none(), "{} is named twice", path.display());
        }
    }
    for entry in std::fs::read_dir(repo().join("configs/seed")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") && !path.ends_with("index.toml") {
            assert!(named.contains_key(&path), "{} is in no row of index.toml", path.display());
        }
    }
    assert_eq!(named.len(), 18, "two models × nine training rows");
}

#[test]
fn recipes_carry_the_seeds_hyperparameters() {
    let index = Index::load();
    for (row, cmd) in index.commands() {
        match cmd.recipe() {
            Some(Recipe::Train(c)) => {
                let id = &row.id;
                assert_eq!(c.stages, [Stage::Grpo], "{id}");
                assert_eq!(c.grpo.lr, 1e-6, "{id}");
                assert_eq!(c.runtime.pipeline.group_size, 16, "{id}");
                assert_eq!(c.grpo.max_new_tokens(), 2048, "{id}");
                assert_eq!(c.data.format, PromptFormat::R1, "{id}");
                assert_eq!((c.data.task.as_str(), c.data.train.as_deref()), ("gsm8k", Some(std::path::Path::new(GSM8K_TRAIN))), "{id}");
                assert_eq!(c.reward_spec(), [("accuracy".to_string(), 1.0), ("format".to_string(), 1.0)], "{id}");
                // bf16 weights would round AdamW's 1e-6 steps away.
                assert_eq!(c.model.dtype, "f32", "{id}");
            }
            Some(Recipe::Sft(r)) => {
                let id = &row.id;
                assert_eq!((r.epochs, r.max_length), (4, 8192), "{id}");
                assert_eq!(r.dtype, "f32", "{id}");
                match &r.lora {
                    Some(lora) => {
                        assert!(row.method.contains("LoRA"), "{id}");
                        assert_eq!((r.lr, lora.r, lora.alpha), (1e-4, 16, 32.0), "{id}");
                        assert_eq!(lora.target_modules, EVERY_LINEAR_LAYER, "{id}");
                    }
                    None => assert_eq!(r.lr, 4e-5, "{id}"),
                }
                // GSM8K rows are asked in the r1 format; trace rows carry the prompt the teacher was asked.
                match r.format {
                    DataFormat::Gsm8k => assert_eq!(r.system(), PromptFormat::R1.system_prompt(), "{id}"),
                    DataFormat::Chat => assert_eq!(row.data_from.as_deref(), Some("teacher-traces"), "{id}"),
                }
            }
            None => {
                assert_eq!(cmd.subcommand(), "distill", "{}", row.id);
                assert_eq!(cmd.flag("--format"), Some("r1"), "{}", row.id);
            }
        }
    }
}

/// A row trains on what its predecessor wrote: the chain of commands is whole.
#[test]
fn each_row_starts_from_the_output_it_names() {
    let index = Index::load();
    for row in index.row.iter().filter(|r| r.model.is_some() && !r.commands.is_empty()) {
        let (weights, data) = Command::parse(&row.commands[0]).inputs();
        let expected_weights = match &row.weights_from {
            Some(from) => index.output(index.row(from)),
            None => index.hub_id(row).to_string(),
        };
        let expected_data = row.data_from.as_ref().map_or(GSM8K_TRAIN.to_string(), |from| index.output(index.row(from)));
        assert_eq!((weights, data), (expected_weights, expected_data), "row {}", row.id);
    }
    let outputs: Vec<String> = index.row.iter().filter(|r| !r.commands.is_empty()).map(|r| index.output(r)).collect();
    assert_eq!(outputs.iter().collect::<BTreeSet<_>>().len(), outputs.len(), "two rows write one place");
}

#[test]
fn evaluations_use_the_seeds_settings() {
    let index = Index::load();
    let name = |b: &str| b.parse::<Benchmark>().unwrap_or_else(|e| panic!("{e}")).name();
    let every: BTreeSet<&str> = ["gsm8k", "math500", "minerva", "olympiadbench", "amc23"].into_iter().map(name).collect();
    let evals: Vec<Command> = index.row.iter().filter_map(|r| index.eval_command(r)).map(|c| Command::parse(&c)).collect();
    assert_eq!(evals.len(), 20, "18 trained rows and 2 untrained checkpoints");
    for eval in evals {
        let benchmarks: BTreeSet<&str> = eval.required("--benchmarks").split(',').map(name).collect();
        assert_eq!(benchmarks, every);
        assert_eq!(eval.required("--format").parse::<PromptFormat>().unwrap(), PromptFormat::R1);
        assert_eq!(eval.required("--temperature").parse::<f32>().unwrap(), 0.6);
        assert_eq!(eval.required("--top-p").parse::<f32>().unwrap(), 0.95);
    }
}

/// Every command, evaluations included, run by the real binary in an empty folder (`configs`
/// linked in, no data, no models, an empty HF cache): clap accepts the arguments (a usage error
/// exits 2), the run fails on the missing files (exit 1) and writes nothing.
#[test]
fn srlm_accepts_every_command_of_the_index() {
    let index = Index::load();
    let evals = index.row.iter().filter_map(|r| index.eval_command(r)).map(|c| Command::parse(&c));
    for cmd in index.commands().map(|(_, c)| c).chain(evals) {
        let (dir, hf_home) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::os::unix::fs::symlink(repo().join("configs"), dir.path().join("configs")).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_srlm"))
            .args(cmd.args())
            .current_dir(dir.path())
            .env("HF_HOME", hf_home.path())
            .env_remove("HF_HUB_CACHE")
            .env_remove("SRLM_DATA")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}\n{stderr}", cmd.line());
        assert!(stderr.starts_with("error: ") && !stderr.contains("Usage:"), "{}\n{stderr}", cmd.line());
        if matches!(cmd.subcommand(), "eval" | "distill") {
            assert!(stderr.contains(GSM8K_TRAIN) || stderr.contains("data file"), "{}: failed before its data\n{stderr}", cmd.line());
        }
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["configs"], "{} wrote into its folder", cmd.line());
    }
}

#[test]
fn the_readme_tables_are_the_ones_the_index_gives() {
    let index = Index::load();
    let path = repo().join("configs/seed/README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let expected = readme::with_generated(&readme, &readme::render(&index));
    if std::env::var_os("SRLM_BLESS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    } else {
        assert!(readme == expected, "{} is out of date with index.toml: rerun with SRLM_BLESS=1", path.display());
    }
}

#[test]
fn a_grpo_run_costs_its_generated_and_trained_tokens() {
    let index = Index::load();
    let e = &index.estimate;
    let cmd = Command::parse("srlm train --config configs/seed/base-rl.toml");
    let completions = 500.0 * 4.0 * 16.0;
    let expected = completions * e.gsm8k_completion_tokens / e.generation_tokens_per_s
        + completions * (e.prompt_tokens + e.gsm8k_completion_tokens) / e.learner_tokens_per_s;
    assert!((e.hours(&cmd, &index) - expected / 3600.0).abs() < 1e-9);
}

/// Every recipe at the top of configs/ loads with the parser of the command its header names
/// (a `stages` list makes a `srlm train` recipe, anything else is a `srlm sft` one).
#[test]
fn every_recipe_in_configs_loads() {
    let mut loaded = 0;
    for entry in std::fs::read_dir(repo().join("configs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if text.lines().any(|l| l.trim_start().starts_with("stages")) {
            srlm::train::config::TrainConfig::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        } else {
            srlm::learner::sft_recipe::SftRecipe::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        loaded += 1;
    }
    assert!(loaded >= 10, "only {loaded} recipes in configs/");
}
