//! Held-out accuracy: pass@1 averaged over k samples per problem, with the training sampler's
//! settings, printed before and after each stage.

use crate::data::PromptFormat;
use crate::generate::continuous::groups_in_batches;
use crate::generate::{Completion, GenerationConfig};
use crate::model::CausalLm;
use crate::tokenizer::Tokenizer;
use crate::train::config::DataSection;

/// A prompt ready for the model (chat template applied) and its gold answer.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingProblem {
    /// The prompt turns (system, user) and their rendering through the chat template.
    pub messages: Vec<crate::chat::Message>,
    pub prompt: String,
    pub gold: String,
    /// The reference solution in the training format, for SFT (absent for RL-only data).
    pub solution: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeldoutScore {
    pub accuracy: f64,
    /// Fraction of completions in the prompt format's layout ([`layout_kept`]).
    pub format: f64,
    pub samples: usize,
}

/// Rows decoding together during the evaluation: problems are sampled a batch at a time.
const EVAL_ROWS: usize = 32;

/// Samples `k` completions of every problem (streams disjoint from training's) and grades them
/// by `data`'s gold format and prompt format.
/// Problems decode together, `EVAL_ROWS / k` at a time; `go_on(done, total)` is told of every
/// finished problem and may stop the evaluation (None) before the next batch.
pub fn heldout_accuracy(
    model: &dyn CausalLm,
    tokenizer: &Tokenizer,
    problems: &[TrainingProblem],
    data: &DataSection,
    k: usize,
    generation: &GenerationConfig,
    go_on: &dyn Fn(usize, usize) -> bool,
) -> anyhow::Result<Option<HeldoutScore>> {
    let extract = crate::reward::ExtractConfig::default();
    let (mut correct, mut formatted, mut n) = (0usize, 0usize, 0usize);
    let prompts = problems.iter().map(|p| tokenizer.encode(&p.prompt, false)).collect::<Result<Vec<_>, _>>()?;
    let golds = problems.iter().map(|p| data.gold.parse(&p.gold).map_err(anyhow::Error::msg)).collect::<anyhow::Result<Vec<_>>>()?;
    // Streams above 2^40 never meet the training prompts' streams (prompt id × G).
    let stream = |i: usize| (1u64 << 40) + (i * k) as u64;
    let grade = |i: usize, completions: Vec<Completion>| {
        for c in completions {
            correct += crate::reward::grade_with(&extract, &c.text, &golds[i]).correct as usize;
            formatted += layout_kept(data.format, &c.text) as usize;
            n += 1;
        }
    };
    if groups_in_batches(model, tokenizer, &prompts, stream, k, EVAL_ROWS, generation, grade, go_on)?.is_some() {
        return Ok(None);
    }
    let frac = |x: usize| if n == 0 { 0.0 } else { x as f64 / n as f64 };
    Ok(Some(HeldoutScore { accuracy: frac(correct), format: frac(formatted), samples: n }))
}

/// Whether `completion` keeps `format`'s layout: r1's think/answer tags, boxed's `\boxed{}`;
/// `plain` asks for none, so there it is the tags the `format` reward trains (the embedded
/// default asks plainly and rewards the tags).
pub fn layout_kept(format: PromptFormat, completion: &str) -> bool {
    format.followed_by(completion).unwrap_or_else(|| crate::reward::format_score(completion, crate::reward::FormatMode::Lenient) >= 1.0)
}
