//! Sampling a batch of rows where the logits are (a GPU): the softmax weights, the top-k/top-p
//! cut and the log-sum-exp are tensor ops; only per-block sums and one block of weights per row
//! cross to the host, never the (rows, vocab) logits.
//!
//! The draw is the host sampler's inverse CDF in id order with the same one uniform per row from
//! the row's `SequenceRng`, found in two steps: the block holding the target (block sums), then
//! the token inside it (that block's weights). Without top-k/top-p this picks the host sampler's
//! token up to float rounding of the running sums. With them, the kept set is every token whose
//! weight reaches a threshold found by bisection (ties at the cut are all kept, where the host
//! keeps the lowest ids), and the draw is in id order (the host draws in weight order): the same
//! distribution, not the same tokens. The log-prob is always the untruncated
//! `log_softmax(logits / T)[token]`, as the learner computes it.

use candle_core::{DType, Device, Result, Tensor, D};

use super::{Sampled, SamplingParams, SequenceRng};

/// Bisection steps for a top-k/top-p threshold over log-weights in [-LOG_RANGE, 0]: the cut is
/// placed within LOG_RANGE / 2^24 ≈ 5e-6 of the exact one (relative weight).
const BISECTION_STEPS: usize = 24;
/// Log-weights below this are zero in f32 anyway (exp(-88) underflows).
const LOG_RANGE: f64 = 88.0;

/// One token per row of `logits` (rows, vocab), any float dtype, on any device; row `i` draws
/// from `rngs[i]` (one uniform unless greedy, as the host sampler does). Rows without a finite
/// logit give token 0 with log-prob -inf.
pub fn sample_rows(logits: &Tensor, params: &SamplingParams, rngs: &mut [&mut SequenceRng]) -> Result<Vec<Sampled>> {
    let (rows, vocab) = logits.dims2()?;
    if rngs.len() != rows {
        candle_core::bail!("{rows} rows of logits but {} RNG streams", rngs.len());
    }
    if rows == 0 || vocab == 0 {
        return Ok(vec![dead(); rows]);
    }
    let x = cleaned(&logits.to_dtype(DType::F32)?)?;
    let t = params.temperature;
    if params.greedy || !(t.is_finite() && t > 0.0) {
        return greedy(&x);
    }
    let z = (&x / t as f64)?;
    let max = z.max_keepdim(D::Minus1)?;
    let log_w = z.broadcast_sub(&max)?;
    let w = log_w.exp()?;
    let truncate = (params.top_k > 0 && params.top_k < vocab) || params.top_p < 1.0;
    let (kept, full_sums) = if truncate {
        let keep = keep_mask(&log_w, &w, params)?;
        (w.mul(&keep)?, Some(w.sum_keepdim(D::Minus1)?.flatten_all()?.to_vec1::<f32>()?))
    } else {
        (w, None)
    };
    draw(&kept, full_sums, rngs)
}

/// NaN → -inf and +inf → f32::MAX, as the host sampler's `cleaned`.
fn cleaned(x: &Tensor) -> Result<Tensor> {
    let nan = x.ne(x)?;
    let x = nan.where_cond(&Tensor::full(f32::NEG_INFINITY, x.shape(), x.device())?, x)?;
    x.minimum(f32::MAX)
}

fn dead() -> Sampled {
    Sampled { token: 0, logprob: f32::NEG_INFINITY }
}

/// Argmax with its log-prob at temperature 1.
fn greedy(x: &Tensor) -> Result<Vec<Sampled>> {
    let tokens = x.argmax_keepdim(D::Minus1)?;
    let max = x.max_keepdim(D::Minus1)?;
    let lse = (x.broadcast_sub(&max)?.exp()?.sum_keepdim(D::Minus1)?.log()? + &max)?;
    let logprob = (x.gather(&tokens, D::Minus1)? - lse)?;
    let tokens = tokens.flatten_all()?.to_vec1::<u32>()?;
    let logprob = logprob.flatten_all()?.to_vec1::<f32>()?;
    let max = max.flatten_all()?.to_vec1::<f32>()?;
    Ok(tokens
        .into_iter()
        .zip(logprob)
        .zip(max)
        .map(|((token, logprob), max)| if max == f32::NEG_INFINITY { dead() } else { Sampled { token, logprob } })
        .collect())
}

/// 1.0 where a token survives top-k then top-p, else 0.0: (rows, vocab).
fn keep_mask(log_w: &Tensor, w: &Tensor, params: &SamplingParams) -> Result<Tensor> {
    let (rows, vocab) = log_w.dims2()?;
    let device = log_w.device();
    let mut cut = Tensor::full(-LOG_RANGE as f32, (rows, 1), device)?;
    if params.top_k > 0 && params.top_k < vocab {
        let k = params.top_k as f32;
        // Highest threshold that still keeps at least k tokens.
        cut = bisect(cut, device, rows, |mid| log_w.broadcast_ge(mid)?.to_dtype(DType::F32)?.sum_keepdim(D::Minus1)?.ge(k))?;
    }
    let mask = log_w.broadcast_ge(&cut)?.to_dtype(DType::F32)?;
    if params.top_p >= 1.0 {
        return Ok(mask);
    }
    // Highest threshold whose kept mass still reaches top_p of the top-k mass; the relative slack
    // matches the host sampler's, so 0.6 + 0.3 reaches 0.9.
    let need = (w.mul(&mask)?.sum_keepdim(D::Minus1)? * (params.top_p as f64 * (1.0 - 1e-9)))?;
    let cut = bisect(cut, device, rows, |mid| {
        let mass = w.mul(&log_w.broadcast_ge(mid)?.to_dtype(DType::F32)?)?.sum_keepdim(D::Minus1)?;
        mass.ge(&need)
    })?;
    log_w.broadcast_ge(&cut)?.to_dtype(DType::F32)
}

/// Per row, the largest threshold in [lo, ~0] for which `holds(threshold)` (u8, (rows, 1)) is
/// true, given that it holds at `lo` and fails just above 0.
fn bisect(lo: Tensor, device: &Device, rows: usize, holds: impl Fn(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let mut lo = lo;
    let mut hi = Tensor::full(1e-3f32, (rows, 1), device)?;
    for _ in 0..BISECTION_STEPS {
        let mid = ((&lo + &hi)? * 0.5)?;
        let ok = holds(&mid)?;
        lo = ok.where_cond(&mid, &lo)?;
        hi = ok.where_cond(&hi, &mid)?;
    }
    Ok(lo)
}

/// Inverse-CDF draw over the (rows, vocab) weights `w` in id order. `full_sums` are the
/// untruncated row sums when `w` was cut (for the log-prob); without them `w`'s own sums serve.
fn draw(w: &Tensor, full_sums: Option<Vec<f32>>, rngs: &mut [&mut SequenceRng]) -> Result<Vec<Sampled>> {
    let (rows, vocab) = w.dims2()?;
    let block = block_size(vocab);
    let blocks = vocab.div_ceil(block);
    let padded = if blocks * block == vocab {
        w.clone()
    } else {
        Tensor::cat(&[w, &Tensor::zeros((rows, blocks * block - vocab), DType::F32, w.device())?], 1)?
    };
    let by_block = padded.reshape((rows * blocks, block))?;
    let sums = by_block.sum_keepdim(D::Minus1)?.flatten_all()?.to_vec1::<f32>()?;
    // Which block holds each row's target, and how far into it the target lies.
    let mut picks = Vec::with_capacity(rows);
    for (i, rng) in rngs.iter_mut().enumerate() {
        let row = &sums[i * blocks..(i + 1) * blocks];
        let total: f64 = row.iter().map(|&s| s as f64).sum();
        let target = rng.uniform() * total;
        picks.push((total > 0.0).then(|| find(row, target)));
    }
    let chosen: Vec<u32> = picks.iter().enumerate().map(|(i, p)| (i * blocks + p.map_or(0, |(b, _)| b)) as u32).collect();
    let index = Tensor::from_vec(chosen, rows, w.device())?;
    let inside = by_block.index_select(&index, 0)?.flatten_all()?.to_vec1::<f32>()?;
    let mut out = Vec::with_capacity(rows);
    for (i, pick) in picks.into_iter().enumerate() {
        let Some((b, rest)) = pick else {
            out.push(dead());
            continue;
        };
        let weights = &inside[i * block..(i + 1) * block];
        let (j, _) = find(weights, rest);
        let token = b * block + j;
        let total = match &full_sums {
            Some(full) => full[i] as f64,
            None => sums[i * blocks..(i + 1) * blocks].iter().map(|&s| s as f64).sum(),
        };
        // w = exp(z - max), so log_softmax(z)[token] = ln w[token] - ln Σ w.
        let logprob = ((weights[j] as f64).ln() - total.ln()) as f32;
        out.push(Sampled { token: token as u32, logprob });
    }
    Ok(out)
}

/// Index of the first positive weight whose running sum passes `target`, and how far past the
/// sums before it the target lies. A target past the end (rounding) lands at the very end of the
/// last positive weight.
fn find(weights: &[f32], target: f64) -> (usize, f64) {
    let mut cum = 0.0f64;
    let mut last = (0, 0.0);
    for (i, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            let next = cum + w as f64;
            if target < next {
                return (i, target - cum);
            }
            last = (i, w as f64 * (1.0 - f64::EPSILON));
            cum = next;
        }
    }
    last
}

/// About √vocab, a power of two, so both host transfers (block sums, one block) stay small.
fn block_size(vocab: usize) -> usize {
    ((vocab as f64).sqrt() as usize).next_power_of_two().clamp(1, 4096)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::{logprob_of, sample};

    fn random_logits(rows: usize, vocab: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = SequenceRng::new(seed, 99);
        (0..rows).map(|_| (0..vocab).map(|_| (rng.uniform() * 12.0 - 8.0) as f32).collect()).collect()
    }

    fn on_device(logits: &[Vec<f32>], params: &SamplingParams, rngs: &mut [SequenceRng]) -> Vec<Sampled> {
        let flat: Vec<f32> = logits.concat();
        let t = Tensor::from_vec(flat, (logits.len(), logits[0].len()), &Device::Cpu).unwrap();
        let mut refs: Vec<&mut SequenceRng> = rngs.iter_mut().collect();
        sample_rows(&t, params, &mut refs).unwrap()
    }

    #[test]
    fn untruncated_draws_pick_the_host_samplers_tokens() {
        // Same uniforms, same inverse CDF in id order: only summation rounding can differ.
        let (rows, vocab) = (64, 3000);
        for temperature in [1.0, 0.6] {
            let params = SamplingParams { temperature, ..Default::default() };
            let mut host: Vec<SequenceRng> = (0..rows as u64).map(|i| SequenceRng::new(7, i)).collect();
            let mut dev = host.clone();
            let (mut same, mut total) = (0, 0);
            for step in 0..5 {
                let logits = random_logits(rows, vocab, step);
                let got = on_device(&logits, &params, &mut dev);
                for (i, g) in got.iter().enumerate() {
                    let want = sample(&logits[i], &params, &mut host[i]);
                    same += usize::from(want.token == g.token);
                    total += 1;
                    let exact = logprob_of(&logits[i], temperature, g.token);
                    assert!((g.logprob - exact).abs() < 1e-5, "T={temperature}: {} vs {exact}", g.logprob);
                }
            }
            assert!(same * 100 >= total * 99, "T={temperature}: {same}/{total} tokens agree");
        }
    }

    #[test]
    fn greedy_takes_the_argmax_with_its_temperature_one_logprob() {
        let logits = vec![vec![0.1, 3.0, -2.0, 1.0], vec![f32::NAN, 1.0, 2.0, f32::NEG_INFINITY]];
        let params = SamplingParams { temperature: 0.3, ..SamplingParams::greedy() };
        let mut rngs = vec![SequenceRng::new(0, 0), SequenceRng::new(0, 1)];
        let got = on_device(&logits, &params, &mut rngs);
        assert_eq!((got[0].token, got[1].token), (1, 2));
        for (row, g) in logits.iter().zip(&got) {
            assert!((g.logprob - logprob_of(row, 1.0, g.token)).abs() < 1e-6, "{g:?}");
        }
    }

    fn chi_square(counts: &[usize], probs: &[f64]) -> f64 {
        let n: usize = counts.iter().sum();
        counts.iter().zip(probs).filter(|(_, &p)| p > 0.0).map(|(&c, &p)| (c as f64 - n as f64 * p).powi(2) / (n as f64 * p)).sum()
    }

    /// Draws `n` tokens from one row, many rows at a time (each its own stream).
    fn frequencies(row: &[f32], params: &SamplingParams, n: usize) -> Vec<usize> {
        let rows = 500;
        let logits = vec![row.to_vec(); rows];
        let mut rngs: Vec<SequenceRng> = (0..rows as u64).map(|i| SequenceRng::new(42, i)).collect();
        let mut counts = vec![0; row.len()];
        for _ in 0..n / rows {
            for s in on_device(&logits, params, &mut rngs) {
                counts[s.token as usize] += 1;
                assert!((s.logprob - logprob_of(row, params.temperature, s.token)).abs() < 1e-5);
            }
        }
        counts
    }

    fn renormalised(row: &[f32], kept: &[usize]) -> Vec<f64> {
        let z: f64 = kept.iter().map(|&i| (row[i] as f64).exp()).sum();
        (0..row.len()).map(|i| if kept.contains(&i) { (row[i] as f64).exp() / z } else { 0.0 }).collect()
    }

    #[test]
    fn frequencies_match_the_softmax_and_its_top_k_top_p_cuts() {
        let row = [0.0f32, 1.0, 2.0, -1.0, 0.5];
        // Untruncated: all five tokens (chi-square, 4 degrees of freedom, 99.9th percentile 18.47).
        let counts = frequencies(&row, &SamplingParams::default(), 20_000);
        assert!(chi_square(&counts, &renormalised(&row, &[0, 1, 2, 3, 4])) < 18.47, "{counts:?}");
        // top_k = 3 keeps tokens 2, 1, 4 (2 degrees of freedom: 13.82).
        let counts = frequencies(&row, &SamplingParams { top_k: 3, ..Default::default() }, 20_000);
        assert_eq!(counts[0] + counts[3], 0, "{counts:?}");
        assert!(chi_square(&counts, &renormalised(&row, &[2, 1, 4])) < 13.82, "{counts:?}");
        // p = [.076, .207, .563, .028, .126]; top_p = 0.8 keeps 2, 1, 4 (.563 + .207 + .126 = .896).
        let counts = frequencies(&row, &SamplingParams { top_p: 0.8, ..Default::default() }, 20_000);
        assert_eq!(counts[0] + counts[3], 0, "{counts:?}");
        assert!(chi_square(&counts, &renormalised(&row, &[2, 1, 4])) < 13.82, "{counts:?}");
        // top_k = 4 drops token 3 (mass left .972); top_p = 0.7 of that is .680: 2 alone is .563,
        // with 1 it is .770, so 2 and 1 (1 degree of freedom: 10.83).
        let params = SamplingParams { top_k: 4, top_p: 0.7, temperature: 1.0, greedy: false };
        let counts = frequencies(&row, &params, 20_000);
        assert_eq!(counts[0] + counts[3] + counts[4], 0, "{counts:?}");
        assert!(chi_square(&counts, &renormalised(&row, &[2, 1])) < 10.83, "{counts:?}");
    }

    #[test]
    fn top_p_reaches_its_mass_despite_rounding_and_keeps_one_token() {
        let row: Vec<f32> = [0.6f32, 0.3, 0.1].iter().map(|p| p.ln()).collect();
        let counts = frequencies(&row, &SamplingParams { top_p: 0.9, ..Default::default() }, 5_000);
        assert_eq!(counts[2], 0, "{counts:?}");
        assert!(counts[0] > 0 && counts[1] > 0);
        let counts = frequencies(&row, &SamplingParams { top_p: 0.5, ..Default::default() }, 2_000);
        assert_eq!(counts, vec![2_000, 0, 0]);
        let counts = frequencies(&row, &SamplingParams { top_k: 1, temperature: 3.0, ..Default::default() }, 2_000);
        assert_eq!(counts, vec![2_000, 0, 0]);
    }

    #[test]
    fn vocabulary_sized_rows_with_padding_get_the_exact_logprob() {
        // 151,936 = Qwen2's vocabulary: not a multiple of the block size, so the last block is padded.
        let logits = random_logits(4, 151_936, 3);
        let mut rngs: Vec<SequenceRng> = (0..4).map(|i| SequenceRng::new(1, i)).collect();
        for params in [SamplingParams { temperature: 0.7, ..Default::default() }, SamplingParams { top_p: 0.95, ..Default::default() }] {
            for _ in 0..3 {
                for (row, s) in logits.iter().zip(on_device(&logits, &params, &mut rngs)) {
                    assert!((s.token as usize) < 151_936);
                    let exact = logprob_of(row, params.temperature, s.token);
                    assert!((s.logprob - exact).abs() < 1e-5, "{} vs {exact}", s.logprob);
                }
            }
        }
    }

    #[test]
    fn rows_without_a_finite_logit_give_token_zero_and_bad_logits_are_cleaned() {
        let logits = vec![vec![f32::NAN, f32::NAN, f32::NAN], vec![f32::NEG_INFINITY; 3], vec![f32::INFINITY, 0.0, f32::NAN]];
        for params in [SamplingParams::default(), SamplingParams::greedy(), SamplingParams { top_p: 0.5, top_k: 2, ..Default::default() }] {
            let mut rngs: Vec<SequenceRng> = (0..3).map(|i| SequenceRng::new(0, i)).collect();
            let got = on_device(&logits, &params, &mut rngs);
            assert_eq!((got[0].token, got[0].logprob), (0, f32::NEG_INFINITY), "{params:?}");
            assert_eq!((got[1].token, got[1].logprob), (0, f32::NEG_INFINITY), "{params:?}");
            assert_eq!(got[2].token, 0, "{params:?}");
            assert_eq!(got[2].logprob, 0.0, "{params:?}");
        }
    }
}
