//! `srlm generate`: sample completions, streamed to the terminal or printed as JSON.

use std::io::Write;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use serde_json::json;
use srlm::chat::Message;
use srlm::generate::memory::check_fits;
use srlm::generate::{generate_group, GenerationConfig};
use srlm::model::CausalLm;
use srlm::sampling::{SamplingParams, StopStrings};
use srlm::tokenizer::Tokenizer;

use super::ModelArgs;

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A user message, rendered through the checkpoint's chat template.
    #[arg(long, conflicts_with = "prompt", required_unless_present = "prompt")]
    message: Option<String>,
    /// An optional system message (with --message).
    #[arg(long, requires = "message")]
    system: Option<String>,
    /// Raw prompt text, used verbatim.
    #[arg(long)]
    prompt: Option<String>,
    /// Always take the most likely token.
    #[arg(long, conflicts_with_all = ["temperature", "top_p", "top_k"])]
    greedy: bool,
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    #[arg(long = "top-p", default_value_t = 1.0)]
    top_p: f32,
    /// 0 disables top-k.
    #[arg(long = "top-k", default_value_t = 0)]
    top_k: usize,
    #[arg(long = "max-new-tokens", default_value_t = 256)]
    max_new_tokens: usize,
    /// Text that ends a completion (repeatable); it is not included in the output.
    #[arg(long)]
    stop: Vec<String>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Completions of the prompt, sampled as one group.
    #[arg(long, default_value_t = 1)]
    n: usize,
    /// Print {"prompt_ids", "completions": [{"ids", "text", "finish_reason", "logprobs"}]}.
    #[arg(long)]
    json: bool,
}

pub fn run(args: GenerateArgs) -> Result<()> {
    if args.n == 0 || args.max_new_tokens == 0 {
        bail!("--n and --max-new-tokens must be at least 1");
    }
    let sampling = SamplingParams { temperature: args.temperature, top_p: args.top_p, top_k: args.top_k, greedy: args.greedy };
    sampling.validate()?;
    let m = args.model.load()?;
    let model = m.inference_model()?;
    let prompt = prompt_text(&args, &m.tokenizer)?;
    let prompt_ids = m.tokenizer.encode(&prompt, false)?;
    let positions = (prompt_ids.len() + args.max_new_tokens).min(m.config.max_position_embeddings);
    check_fits(&m.config, model.device(), model.dtype(), args.n, positions)
        .map_err(|e| anyhow!("--n {}: {e}; lower --n or --max-new-tokens", args.n))?;
    let cfg = GenerationConfig {
        sampling,
        max_new_tokens: args.max_new_tokens,
        min_new_tokens: 0,
        eos_ids: m.tokenizer.eos_token_ids().to_vec(),
        stop: StopStrings::new(args.stop.clone()),
        seed: args.seed,
    };
    let stream = !args.json && args.n == 1;
    let mut printer = StreamPrinter::default();
    let completions = generate_group(&model, &m.tokenizer, &prompt_ids, args.n, 0, &cfg, |_, id| {
        if stream {
            printer.push(&m.tokenizer, id);
        }
    })?;
    if args.json {
        println!("{}", json!({ "prompt_ids": prompt_ids, "completions": completions }));
    } else if stream {
        // The final text may be shorter (a stop string) than what was streamed; end the line.
        println!();
    } else {
        for (i, c) in completions.iter().enumerate() {
            println!("--- completion {i} ({:?}, {} tokens)\n{}", c.finish_reason, c.ids.len(), c.text);
        }
    }
    Ok(())
}

fn prompt_text(args: &GenerateArgs, tokenizer: &Tokenizer) -> Result<String> {
    if let Some(raw) = &args.prompt {
        return Ok(raw.clone());
    }
    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(Message::new("system", system.clone()));
    }
    messages.push(Message::new("user", args.message.clone().unwrap_or_default()));
    Ok(tokenizer.chat_template()?.render(&messages, true)?)
}

/// Prints decoded text as tokens arrive, holding back incomplete UTF-8 sequences.
#[derive(Default)]
struct StreamPrinter {
    ids: Vec<u32>,
    printed: usize,
}

impl StreamPrinter {
    fn push(&mut self, tokenizer: &Tokenizer, id: u32) {
        self.ids.push(id);
        let Ok(text) = tokenizer.decode(&self.ids, true) else { return };
        if text.ends_with('\u{FFFD}') || text.len() <= self.printed || !text.is_char_boundary(self.printed) {
            return;
        }
        print!("{}", &text[self.printed..]);
        let _ = std::io::stdout().flush();
        self.printed = text.len();
    }
}
