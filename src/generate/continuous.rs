//! Continuous batching: many groups in flight in one decode batch. Up to `max_rows` rows decode
//! together; when a group's last row finishes, its completions are handed out at once and the
//! next prompt's group (prefilled alone, then expanded to G rows) joins the batch in the freed
//! rows, left-padded to the batch's length. Padding no row needs any more is trimmed away, so
//! the cache stays about as long as the oldest row in flight.
//!
//! Row `s` of prompt `i` draws from RNG stream `first_streams[i] + s`, so a prompt's group gets
//! the tokens `generate_group` gives it alone (up to float rounding).

use candle_core::{Result, Tensor};

use super::{
    completion, key_mask, last_logits, new_rows, sample_step, Completion, Drawer, GenerationConfig, Row, SamplerPlace, TextDecoder,
};
use crate::model::kv_cache::KvCache;
use crate::model::CausalLm;

/// Left padding trimmed once every row has at least this much (copying the cache costs).
const TRIM_AT: usize = 32;

/// Samples a group of `g` completions of each prompt with up to `max_rows` rows decoding at
/// once. `on_group(i, completions)` is called as soon as prompt `i`'s group is complete (groups
/// finish in any order); `on_token(i, s, id)` for every sampled token of row `s` of prompt `i`.
#[allow(clippy::too_many_arguments)]
pub fn generate_groups(
    model: &dyn CausalLm,
    tokenizer: &dyn TextDecoder,
    prompts: &[Vec<u32>],
    first_streams: &[u64],
    g: usize,
    max_rows: usize,
    cfg: &GenerationConfig,
    on_group: impl FnMut(usize, Vec<Completion>) -> Result<()>,
    on_token: impl FnMut(usize, usize, u32),
) -> Result<()> {
    let shape = Shape { g, max_rows, trim_at: TRIM_AT };
    run(model, tokenizer, prompts, first_streams, shape, cfg, on_group, on_token)
}

/// Long sampling jobs that report progress and can stop (teacher traces, held-out checks): a
/// group of `g` completions of every prompt, prompts decoding `max_rows / g` at a time (one at
/// least), row `s` of prompt `i` on RNG stream `stream(i) + s`. Each batch's groups go to
/// `on_group(i, completions)` in prompt order; `go_on(done, total)` is told after each batch how
/// many prompts are finished, and a `false` stops the job before the next batch: `Ok(Some(done))`, `Ok(None)` when
/// every prompt was sampled.
#[allow(clippy::too_many_arguments)]
pub fn groups_in_batches(
    model: &dyn CausalLm,
    tokenizer: &dyn TextDecoder,
    prompts: &[Vec<u32>],
    stream: impl Fn(usize) -> u64,
    g: usize,
    max_rows: usize,
    cfg: &GenerationConfig,
    mut on_group: impl FnMut(usize, Vec<Completion>),
    go_on: &dyn Fn(usize, usize) -> bool,
) -> Result<Option<usize>> {
    let per_batch = (max_rows / g.max(1)).max(1);
    let total = prompts.len();
    if !go_on(0, total) {
        return Ok(Some(0));
    }
    for first in (0..total).step_by(per_batch) {
        let end = (first + per_batch).min(total);
        let streams: Vec<u64> = (first..end).map(&stream).collect();
        let mut groups: Vec<Vec<Completion>> = vec![Vec::new(); end - first];
        let keep = |i: usize, completions: Vec<Completion>| {
            groups[i] = completions;
            Ok(())
        };
        generate_groups(model, tokenizer, &prompts[first..end], &streams, g, per_batch * g, cfg, keep, |_, _, _| {})?;
        for (i, completions) in groups.into_iter().enumerate() {
            on_group(first + i, completions);
        }
        // The batch's prompts finish together: one report for all of them.
        if !go_on(end, total) && end < total {
            return Ok(Some(end));
        }
    }
    Ok(None)
}

/// Group size, rows in flight, and the common left padding worth trimming.
#[derive(Debug, Clone, Copy)]
struct Shape {
    g: usize,
    max_rows: usize,
    trim_at: usize,
}

#[allow(clippy::too_many_arguments)]
fn run(
    model: &dyn CausalLm,
    tokenizer: &dyn TextDecoder,
    prompts: &[Vec<u32>],
    first_streams: &[u64],
    Shape { g, max_rows, trim_at }: Shape,
    cfg: &GenerationConfig,
    mut on_group: impl FnMut(usize, Vec<Completion>) -> Result<()>,
    mut on_token: impl FnMut(usize, usize, u32),
) -> Result<()> {
    if prompts.iter().any(|p| p.is_empty()) {
        candle_core::bail!("cannot generate from an empty prompt");
    }
    if first_streams.len() != prompts.len() {
        candle_core::bail!("{} prompts but {} RNG streams", prompts.len(), first_streams.len());
    }
    if g == 0 || max_rows < g {
        candle_core::bail!("max_rows ({max_rows}) must hold at least one group of {g} (and g ≥ 1)");
    }
    let mut drawer = Drawer::new(SamplerPlace::for_device(model.device()));
    // Every admitted row, in admission order: prompts join in order, g rows each, so row r is
    // sample r % g of prompt r / g.
    let mut rows: Vec<Row> = Vec::new();
    // How many rows of each prompt are still generating.
    let mut left: Vec<usize> = vec![g; prompts.len()];
    let mut batch: Option<Batch> = None;
    let mut next = 0;
    loop {
        while next < prompts.len() && batch.as_ref().map_or(0, |b| b.active.len()) + g <= max_rows {
            let joining = Group::prefill(model, &prompts[next], g)?;
            rows.extend(new_rows((0..g as u64).map(|s| first_streams[next] + s), cfg));
            let slots: Vec<usize> = (next * g..(next + 1) * g).collect();
            batch = Some(match batch.take() {
                Some(b) => b.join(joining, slots)?,
                None => Batch { cache: joining.cache, pads: vec![0; g], active: slots, logits: joining.logits },
            });
            next += 1;
        }
        let Some(mut b) = batch.take() else { break };
        let before: Vec<usize> = b.active.clone();
        let keep = sample_step(&mut rows, &mut b.active, &b.logits, &mut drawer, tokenizer, cfg, &mut |i, id| on_token(i / g, i % g, id))?;
        let finished: Vec<usize> = before.into_iter().filter(|&i| rows[i].done.is_some()).collect();
        for i in finished {
            let p = i / g;
            left[p] -= 1;
            if left[p] == 0 {
                let done = (p * g..(p + 1) * g).map(|r| completion(&mut rows[r], tokenizer)).collect::<Result<Vec<_>>>()?;
                on_group(p, done)?;
            }
        }
        if b.active.is_empty() {
            continue;
        }
        if let Some(keep) = keep {
            b.cache = b.cache.retain(&keep)?;
            b.pads = keep.iter().map(|&slot| b.pads[slot as usize]).collect();
        }
        b.trim(trim_at)?;
        b.logits = b.advance(model, &rows)?;
        batch = Some(b);
    }
    Ok(())
}

/// A prompt prefilled alone and expanded to its group's rows.
struct Group {
    cache: KvCache,
    /// (g, vocab): the prompt's next-token logits, once per row.
    logits: Tensor,
}

impl Group {
    fn prefill(model: &dyn CausalLm, prompt: &[u32], g: usize) -> Result<Self> {
        let mut cache = model.new_cache();
        let ids = Tensor::new(prompt, model.device())?.unsqueeze(0)?;
        let logits = model.decode(&ids, &mut cache)?.repeat((g, 1))?;
        Ok(Self { cache: cache.expand(g)?, logits })
    }
}

/// The rows decoding together: their cache, left padding, row ids and next-token logits.
struct Batch {
    cache: KvCache,
    /// Left padding of each cache row.
    pads: Vec<usize>,
    /// Row ids (indices into the rows) in cache order, ascending.
    active: Vec<usize>,
    logits: Tensor,
}

impl Batch {
    /// The batch with `group`'s rows appended, both padded on the left to the longer length.
    fn join(self, group: Group, slots: Vec<usize>) -> Result<Batch> {
        let (len, joining) = (self.cache.len(), group.cache.len());
        let (cache, mut pads, theirs) = if joining <= len {
            (self.cache, self.pads, group.cache.pad_left(len - joining)?)
        } else {
            let shift = joining - len;
            (self.cache.pad_left(shift)?, self.pads.iter().map(|p| p + shift).collect(), group.cache)
        };
        let width = cache.len();
        pads.extend(std::iter::repeat_n(width - joining, slots.len()));
        let mut active = self.active;
        active.extend(slots);
        Ok(Batch { cache: cache.concat_rows(&theirs)?, pads, active, logits: Tensor::cat(&[&self.logits, &group.logits], 0)? })
    }

    /// Drops the left padding every row has, once it is worth a copy (`at` positions).
    fn trim(&mut self, at: usize) -> Result<()> {
        let common = self.pads.iter().copied().min().unwrap_or(0);
        if common >= at.max(1) {
            self.cache = self.cache.trim_left(common)?;
            self.pads.iter_mut().for_each(|p| *p -= common);
        }
        Ok(())
    }

    /// One decode step: each active row's last token at its own position.
    fn advance(&mut self, model: &dyn CausalLm, rows: &[Row]) -> Result<Tensor> {
        let device = model.device();
        let last: Vec<u32> = self.active.iter().map(|&i| *rows[i].ids.last().unwrap_or(&0)).collect();
        let input = Tensor::new(last, device)?.unsqueeze(1)?;
        let len = self.cache.len();
        let pos: Vec<u32> = self.pads.iter().map(|&pad| (len - pad) as u32).collect();
        let pos = Tensor::from_vec(pos, (self.pads.len(), 1), device)?;
        let mask = key_mask(&self.pads, len + 1, device)?;
        last_logits(model, &input, &pos, &mask, &mut self.cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate_group, FinishReason};
    use crate::model::load::load_hf_weights;
    use crate::model::Qwen2;
    use crate::sampling::{SamplingParams, StopStrings};

    struct Letters;

    impl TextDecoder for Letters {
        fn decode_text(&self, ids: &[u32]) -> std::result::Result<String, String> {
            Ok(ids.iter().map(|&i| char::from(b'!' + (i % 90) as u8)).collect())
        }
    }

    fn tiny() -> Qwen2 {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny/qwen2");
        let (cfg, w) = load_hf_weights(&dir).unwrap();
        Qwen2::for_inference(&cfg, &w).unwrap()
    }

    /// Prompts of different lengths, some longer than the batch they join.
    fn prompts() -> Vec<Vec<u32>> {
        vec![vec![9, 40, 71], vec![17], vec![5, 88, 61, 12, 33, 70, 70, 2, 45], vec![51, 23], vec![8, 8, 30, 64, 19], vec![3; 14]]
    }

    /// Every prompt's group through continuous batching equals the group generated alone.
    fn check(sampling: SamplingParams, shape: Shape) -> Vec<FinishReason> {
        let model = tiny();
        let cfg = GenerationConfig {
            sampling,
            max_new_tokens: 20,
            min_new_tokens: 2,
            eos_ids: vec![2, 3, 4, 5, 6],
            stop: StopStrings::default(),
            seed: 11,
        };
        let prompts = prompts();
        let streams: Vec<u64> = (0..prompts.len() as u64).map(|i| 100 * i).collect();
        let mut groups: Vec<Option<Vec<Completion>>> = vec![None; prompts.len()];
        let mut tokens = vec![0usize; prompts.len()];
        run(
            &model,
            &Letters,
            &prompts,
            &streams,
            shape,
            &cfg,
            |i, done| {
                assert!(groups[i].replace(done).is_none(), "prompt {i} handed out twice");
                Ok(())
            },
            |i, s, _| {
                assert!(s < shape.g);
                tokens[i] += 1;
            },
        )
        .unwrap();
        let mut reasons = Vec::new();
        for (i, p) in prompts.iter().enumerate() {
            let got = groups[i].take().unwrap_or_else(|| panic!("prompt {i} never finished"));
            let alone = generate_group(&model, &Letters, p, shape.g, streams[i], &cfg, |_, _| {}).unwrap();
            assert_eq!(got.len(), shape.g);
            assert_eq!(tokens[i], got.iter().map(|c| c.ids.len()).sum::<usize>());
            for (s, (a, b)) in got.iter().zip(&alone).enumerate() {
                assert_eq!(a.ids, b.ids, "prompt {i} row {s} ({shape:?})");
                assert_eq!((a.finish_reason, &a.text), (b.finish_reason, &b.text));
                for (x, y) in a.logprobs.iter().zip(&b.logprobs) {
                    assert!((x - y).abs() < 1e-4, "prompt {i} row {s}: {x} vs {y}");
                }
                reasons.push(a.finish_reason);
            }
        }
        reasons
    }

    #[test]
    fn groups_in_flight_get_the_tokens_each_gets_alone() {
        let sampled = SamplingParams { temperature: 1.0, top_p: 0.9, top_k: 0, greedy: false };
        for shape in [
            Shape { g: 3, max_rows: 6, trim_at: TRIM_AT },
            Shape { g: 3, max_rows: 7, trim_at: 1 },
            Shape { g: 2, max_rows: 12, trim_at: 1 },
            Shape { g: 4, max_rows: 4, trim_at: 1 },
        ] {
            let reasons = check(sampled, shape);
            // Rows left early and others ran to the limit: the refills happened mid-batch.
            assert!(reasons.contains(&FinishReason::Eos) && reasons.contains(&FinishReason::Length), "{shape:?}: {reasons:?}");
            check(SamplingParams::greedy(), shape);
        }
    }

    #[test]
    fn a_batch_must_hold_one_group() {
        let cfg = GenerationConfig {
            sampling: SamplingParams::greedy(),
            max_new_tokens: 4,
            min_new_tokens: 0,
            eos_ids: vec![],
            stop: StopStrings::default(),
            seed: 0,
        };
        let err = generate_groups(&tiny(), &Letters, &prompts(), &[0; 6], 4, 3, &cfg, |_, _| Ok(()), |_, _, _| {}).unwrap_err();
        assert!(err.to_string().contains("max_rows"), "{err}");
        let err = generate_groups(&tiny(), &Letters, &[vec![1], vec![]], &[0, 1], 2, 4, &cfg, |_, _| Ok(()), |_, _, _| {}).unwrap_err();
        assert!(err.to_string().contains("empty prompt"), "{err}");
    }
}
