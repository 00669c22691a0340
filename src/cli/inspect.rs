//! `srlm inspect`: what a checkpoint is.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::ModelArgs;

#[derive(Args)]
pub struct InspectArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let m = args.model.load()?;
    let c = &m.config;
    let tok = &m.tokenizer;
    let dtype = m.weights.iter().next().map(|(_, t)| format!("{:?}", t.dtype())).unwrap_or_default();
    let facts = json!({
        "source": m.source.path().display().to_string(),
        "arch": c.arch.model_type(),
        "parameters": m.weights.numel(),
        "dtype": dtype.to_lowercase(),
        "layers": c.num_layers,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "heads": c.num_heads,
        "kv_heads": c.num_kv_heads,
        "head_dim": c.head_dim,
        "vocab_size": c.vocab_size,
        "rope_theta": c.rope_theta,
        "max_position_embeddings": c.max_position_embeddings,
        "tie_word_embeddings": c.tie_word_embeddings,
        "qkv_bias": c.qkv_bias,
        "qk_norm": c.qk_norm,
        "tokenizer": {
            "vocab_size": tok.vocab_size(),
            "bos_token": tok.bos_token(),
            "eos_token": tok.eos_token(),
            "eos_token_ids": tok.eos_token_ids(),
            "pad_token": tok.pad_token(),
            "chat_template": tok.chat_template_source().is_some(),
        },
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&facts)?);
        return Ok(());
    }
    print_facts("", &facts);
    Ok(())
}

/// One `key: value` line per fact, strings unquoted, nested facts as `outer.inner`.
fn print_facts(prefix: &str, facts: &serde_json::Value) {
    let serde_json::Value::Object(map) = facts else { return };
    for (k, v) in map {
        let key = format!("{prefix}{k}");
        match v {
            serde_json::Value::Object(_) => print_facts(&format!("{key}."), v),
            serde_json::Value::String(s) => println!("{key:>24}: {s}"),
            serde_json::Value::Null => println!("{key:>24}: -"),
            other => println!("{key:>24}: {other}"),
        }
    }
}
