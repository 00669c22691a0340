//! One question in one format is one prompt, byte for byte, whichever command renders it:
//! `srlm train` (its problems, also the sft and kd stages' prompts), `srlm sft` (GSM8K rows),
//! `srlm distill` (its problem file) and `srlm eval` (the benchmark's format).

mod common;

use common::fixtures;
use srlm::chat::ChatTemplate;
use srlm::data::PromptFormat;
use srlm::learner::sft_data::read_conversations;
use srlm::learner::sft_recipe::SftRecipe;
use srlm::learner::traces::read_problems;
use srlm::reward::Benchmark;
use srlm::train::config::TrainConfig;
use srlm::train::problems::load_problems;
use srlm::train::sft_recipe_map::map_recipe;

/// Qwen2.5's ChatML template, the part these messages use.
const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

#[test]
fn train_sft_distill_and_eval_render_the_same_prompt_for_each_format() {
    let template = ChatTemplate::new(CHATML, None, None).unwrap();
    let data = fixtures().join("data/gsm8k_head.jsonl");
    let first_question = "Janet’s ducks lay 16 eggs per day.";
    for format in [PromptFormat::Plain, PromptFormat::R1, PromptFormat::Boxed] {
        let train_cfg = TrainConfig::from_toml(
            &format!(
                "stages = [\"grpo\"]\nout_dir = \"x\"\n[model]\nsource = \"m\"\n[data]\ntask = \"gsm8k\"\ntrain = \"{}\"\nheldout = \"{}\"\nformat = \"{}\"\n",
                data.display(),
                data.display(),
                format.name()
            ),
            "train.toml",
        )
        .unwrap();
        let (_, heldout) = load_problems(&train_cfg, &template).unwrap();
        let train = heldout.iter().find(|p| p.prompt.contains(first_question)).expect("the first question").prompt.clone();

        // `srlm sft` maps its recipe onto a train config; the sft stage asks GSM8K rows in `[data] format`.
        let dir = tempfile::tempdir().unwrap();
        let recipe = dir.path().join("sft.toml");
        std::fs::write(
            &recipe,
            format!(
                "model = \"m\"\ndata = \"{}\"\nformat = \"gsm8k\"\noutput = \"out\"\nprompt_format = \"{}\"\n",
                data.display(),
                format.name()
            ),
        )
        .unwrap();
        let sft_cfg = map_recipe(&recipe).unwrap().config;
        let conversation = read_conversations(&data, sft_cfg.sft.data_format, sft_cfg.data.format).unwrap().remove(0);
        let sft = template.render(&conversation[..conversation.len() - 1], true).unwrap();

        let distill_problem = read_problems(&data, Benchmark::Gsm8k, format.system_prompt()).unwrap().remove(0);
        let distill = template.render(&distill_problem.messages, true).unwrap();

        let question = serde_json::from_str::<serde_json::Value>(std::fs::read_to_string(&data).unwrap().lines().next().unwrap()).unwrap();
        let eval = format.render(&template, question["question"].as_str().unwrap()).unwrap();

        assert!(eval.contains(first_question), "{eval}");
        assert_eq!(train, eval, "{format}: train and eval differ");
        assert_eq!(sft, eval, "{format}: sft and eval differ");
        assert_eq!(distill, eval, "{format}: distill and eval differ");
    }
}

#[test]
fn sft_recipes_default_to_r1_and_refuse_two_prompt_sources() {
    let base = "model = \"m\"\ndata = \"d.jsonl\"\nformat = \"gsm8k\"\noutput = \"out\"\n";
    assert_eq!(SftRecipe::parse(base).unwrap().system(), PromptFormat::R1.system_prompt());
    let custom = SftRecipe::parse(&format!("{base}system_prompt = \"Be brief.\"\n")).unwrap();
    assert_eq!(custom.system(), Some("Be brief."));
    let err = SftRecipe::parse(&format!("{base}system_prompt = \"x\"\nprompt_format = \"boxed\"\n")).unwrap_err();
    assert!(err.contains("prompt_format") && err.contains("system_prompt"), "{err}");
    let chat = base.replace("\"gsm8k\"", "\"chat\"");
    let err = SftRecipe::parse(&format!("{chat}prompt_format = \"r1\"\n")).unwrap_err();
    assert!(err.contains("chat"), "{err}");
}
