//! Sampling: one row of logits → next token and its log-prob under the full tempered softmax; stop strings end a completion.
//!
//! The returned log-prob ignores top-k/top-p truncation on purpose: the learner recomputes
//! `log_softmax(logits / T)` over the whole vocabulary, so an unchanged policy gives ratio 1.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

pub mod on_device;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplingError {
    #[error("temperature must be finite and > 0 when not greedy, got {0}")]
    Temperature(f32),
    #[error("top_p must be in (0, 1], got {0}")]
    TopP(f32),
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    pub temperature: f32,
    pub top_p: f32,
    /// 0 disables top-k.
    pub top_k: usize,
    pub greedy: bool,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self { temperature: 1.0, top_p: 1.0, top_k: 0, greedy: false }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self { greedy: true, ..Self::default() }
    }

    pub fn validate(&self) -> Result<(), SamplingError> {
        let positive = self.temperature.is_finite() && self.temperature > 0.0;
        if !self.greedy && !positive {
            return Err(SamplingError::Temperature(self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(SamplingError::TopP(self.top_p));
        }
        Ok(())
    }

    /// Temperature the log-probs are taken at: 1 when greedy.
    pub fn logprob_temperature(&self) -> f32 {
        if self.greedy {
            1.0
        } else {
            self.temperature
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampled {
    pub token: u32,
    /// `log_softmax(logits / T)[token]` over the full vocabulary.
    pub logprob: f32,
}

/// Deterministic per-sequence random stream: the same `(seed, stream)` always yields the same draws,
/// whatever order sequences are generated in.
#[derive(Debug, Clone)]
pub struct SequenceRng(ChaCha8Rng);

impl SequenceRng {
    /// The key comes from splitmix64 over `seed`; `stream` selects a ChaCha stream, so distinct
    /// streams of one seed never overlap (unlike seeding with `seed + stream`).
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut state = seed;
        let mut key = [0u8; 32];
        for chunk in key.chunks_exact_mut(8) {
            chunk.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
        }
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(stream);
        Self(rng)
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    pub fn uniform(&mut self) -> f64 {
        self.0.gen::<f64>()
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.gen::<u64>()
    }
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// NaN → -inf and +inf → f32::MAX, so a bad logit never poisons the row.
fn cleaned(logit: f32) -> f32 {
    if logit.is_nan() {
        f32::NEG_INFINITY
    } else if logit == f32::INFINITY {
        f32::MAX
    } else {
        logit
    }
}

/// `cleaned(logit) / T` in f64.
fn scaled(logit: f32, temperature: f64) -> f64 {
    cleaned(logit) as f64 / temperature
}

/// Max and log-sum-exp of `logits / T`; `None` when every entry is -inf/NaN (or the row is empty).
fn max_and_lse(logits: &[f32], temperature: f64) -> Option<(f64, f64)> {
    let max = logits.iter().map(|&l| scaled(l, temperature)).fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return None;
    }
    let sum: f64 = logits.iter().map(|&l| (scaled(l, temperature) - max).exp()).sum();
    Some((max, max + sum.ln()))
}

/// `log_softmax(logits / temperature)[token]` over the full row, computed in f64.
/// Returns -inf for an out-of-range token or a row with no finite logit.
pub fn logprob_of(logits: &[f32], temperature: f32, token: u32) -> f32 {
    let t = temperature as f64;
    match (max_and_lse(logits, t), logits.get(token as usize)) {
        (Some((_, lse)), Some(&l)) => (scaled(l, t) - lse) as f32,
        _ => f32::NEG_INFINITY,
    }
}

/// Argmax with ties broken towards the lowest id; NaN never wins. `None` when no logit is > -inf.
fn argmax(logits: &[f32]) -> Option<u32> {
    let mut best: Option<(u32, f32)> = None;
    for (i, &l) in logits.iter().enumerate() {
        if l.is_nan() || l == f32::NEG_INFINITY {
            continue;
        }
        if best.is_none_or(|(_, b)| l > b) {
            best = Some((i as u32, l));
        }
    }
    best.map(|(i, _)| i)
}

/// Higher weight first, then lower id, so truncation is deterministic under ties.
fn by_weight_desc(a: &(u32, f64), b: &(u32, f64)) -> Ordering {
    b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal).then(a.0.cmp(&b.0))
}

/// Next token from one row of logits.
///
/// Greedy (or a non-positive/non-finite temperature) takes the argmax, ties to the lowest id.
/// Otherwise: divide by T, keep the top-k, then the smallest prefix of the renormalised top-k
/// distribution whose mass reaches top_p (at least one token), and draw one `rng.uniform()`.
/// NaN logits count as -inf; a row with no finite logit yields token 0 with log-prob -inf.
pub fn sample(logits: &[f32], params: &SamplingParams, rng: &mut SequenceRng) -> Sampled {
    let t = params.temperature;
    if params.greedy || !(t.is_finite() && t > 0.0) {
        return match argmax(logits) {
            Some(token) => Sampled { token, logprob: logprob_of(logits, 1.0, token) },
            None => Sampled { token: 0, logprob: f32::NEG_INFINITY },
        };
    }
    let t64 = t as f64;
    let truncate = (params.top_k > 0 && params.top_k < logits.len()) || params.top_p < 1.0;
    let picked = if truncate {
        max_and_lse(logits, t64).map(|(max, lse)| (sample_truncated(logits, params, t64, max, rng), lse))
    } else {
        sample_full(logits, t, rng)
    };
    match picked {
        Some((token, lse)) => Sampled { token, logprob: (scaled(logits[token as usize], t64) - lse) as f32 },
        None => Sampled { token: 0, logprob: f32::NEG_INFINITY },
    }
}

/// Inverse CDF in id order, and the log-sum-exp of `logits / t`; None when no logit is finite.
///
/// The common top_k = 0, top_p = 1 path, once per row per decoding step over the whole
/// vocabulary: each weight exp((l - max) / t) is computed once, in f32, and summed in f64
/// (f32 rounding of the weights moves the log-prob by ~1e-7, far inside the learner's 1e-4).
fn sample_full(logits: &[f32], t: f32, rng: &mut SequenceRng) -> Option<(u32, f64)> {
    let max = logits.iter().map(|&l| cleaned(l)).fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return None;
    }
    let weights: Vec<f32> = logits.iter().map(|&l| ((cleaned(l) - max) / t).exp()).collect();
    let total: f64 = weights.iter().map(|&w| w as f64).sum();
    let lse = max as f64 / t as f64 + total.ln();
    let target = rng.uniform() * total;
    let mut cum = 0.0;
    let mut last_positive = 0u32;
    for (i, &w) in weights.iter().enumerate() {
        if w > 0.0 {
            cum += w as f64;
            last_positive = i as u32;
            if target < cum {
                return Some((i as u32, lse));
            }
        }
    }
    // Rounding can leave `target` a hair above the summed mass.
    Some((last_positive, lse))
}

fn sample_truncated(logits: &[f32], params: &SamplingParams, t: f64, max: f64, rng: &mut SequenceRng) -> u32 {
    let mut cands: Vec<(u32, f64)> =
        logits.iter().enumerate().map(|(i, &l)| (i as u32, (scaled(l, t) - max).exp())).filter(|&(_, w)| w > 0.0).collect();
    if params.top_k > 0 && params.top_k < cands.len() {
        cands.select_nth_unstable_by(params.top_k - 1, by_weight_desc);
        cands.truncate(params.top_k);
    }
    if params.top_p < 1.0 {
        cands.sort_unstable_by(by_weight_desc);
        let total: f64 = cands.iter().map(|c| c.1).sum();
        // Relative slack so that e.g. 0.6 + 0.3 still reaches top_p = 0.9 despite rounding.
        let threshold = params.top_p as f64 * total * (1.0 - 1e-9);
        let mut cum = 0.0;
        let mut keep = cands.len();
        for (n, c) in cands.iter().enumerate() {
            cum += c.1;
            if cum >= threshold {
                keep = n + 1;
                break;
            }
        }
        cands.truncate(keep.max(1));
    }
    let total: f64 = cands.iter().map(|c| c.1).sum();
    let target = rng.uniform() * total;
    let mut cum = 0.0;
    for &(id, w) in &cands {
        cum += w;
        if target < cum {
            return id;
        }
    }
    cands.last().map_or(0, |c| c.0)
}

/// Where a completion stops: the text is cut at `start` (the stop string itself is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopMatch {
    /// Index into the stop list.
    pub stop: usize,
    /// Byte offset where the stop string begins: keep `&text[..start]`.
    pub start: usize,
    /// Byte offset just past the stop string.
    pub end: usize,
}

/// A set of stop strings checked against decoded text as generation proceeds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopStrings {
    stops: Vec<String>,
    longest: usize,
}

impl StopStrings {
    /// Empty strings are dropped: they would match everywhere.
    pub fn new<I, S>(stops: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let stops: Vec<String> = stops.into_iter().map(Into::into).filter(|s| !s.is_empty()).collect();
        let longest = stops.iter().map(String::len).max().unwrap_or(0);
        Self { stops, longest }
    }

    pub fn is_empty(&self) -> bool {
        self.stops.is_empty()
    }

    pub fn stops(&self) -> &[String] {
        &self.stops
    }

    /// Earliest stop occurrence anywhere in `text`; on equal starts the earlier-listed stop wins.
    pub fn find(&self, text: &str) -> Option<StopMatch> {
        self.find_from(text, 0)
    }

    /// Like `find`, but assumes `text[..checked]` was already searched without a match, so only
    /// occurrences ending after `checked` are looked for (cost proportional to the new suffix).
    /// `checked` is a byte length, e.g. the previous call's `text.len()`; it should cover only a
    /// prefix that decoding will not rewrite (an incomplete UTF-8 sequence can decode differently
    /// once its next token arrives).
    pub fn find_from(&self, text: &str, checked: usize) -> Option<StopMatch> {
        let mut from = checked.min(text.len()).saturating_sub(self.longest.saturating_sub(1));
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        let hay = &text[from..];
        self.stops
            .iter()
            .enumerate()
            .filter_map(|(stop, s)| hay.find(s.as_str()).map(|i| StopMatch { stop, start: from + i, end: from + i + s.len() }))
            .min_by_key(|m| (m.start, m.stop))
    }

    /// `text` cut before the first stop string, and whether one was found.
    pub fn truncate<'a>(&self, text: &'a str) -> (&'a str, bool) {
        match self.find(text) {
            Some(m) => (&text[..m.start], true),
            None => (text, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampled(logits: &[f32], params: SamplingParams, seed: u64, n: usize) -> Vec<u32> {
        let mut rng = SequenceRng::new(seed, 0);
        (0..n).map(|_| sample(logits, &params, &mut rng).token).collect()
    }

    #[test]
    fn greedy_is_argmax_with_lowest_id_on_ties() {
        let mut rng = SequenceRng::new(0, 0);
        let p = SamplingParams::greedy();
        assert_eq!(sample(&[0.1, 3.0, -2.0, 1.0], &p, &mut rng).token, 1);
        assert_eq!(sample(&[1.0, 5.0, 5.0, 5.0], &p, &mut rng).token, 1);
    }

    #[test]
    fn greedy_logprob_is_at_temperature_one() {
        let mut rng = SequenceRng::new(0, 0);
        let p = SamplingParams { temperature: 0.3, ..SamplingParams::greedy() };
        let s = sample(&[1.0, 2.0, 3.0], &p, &mut rng);
        let want = 3.0 - (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
        assert_eq!(s.token, 2);
        assert!((s.logprob as f64 - want).abs() < 1e-6, "{} vs {want}", s.logprob);
    }

    #[test]
    fn logprob_is_full_log_softmax() {
        // logits [1,2,3]: log p(2) = 3 - ln(e + e^2 + e^3) = -0.40760596...
        let lp = logprob_of(&[1.0, 2.0, 3.0], 1.0, 2);
        assert!((lp as f64 + 0.407_605_964_444_380_9).abs() < 1e-6, "{lp}");
        let mut rng = SequenceRng::new(7, 3);
        for _ in 0..50 {
            let s = sample(&[1.0, 2.0, 3.0], &SamplingParams::default(), &mut rng);
            let want = s.token as f64 + 1.0 - (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
            assert!((s.logprob as f64 - want).abs() < 1e-6);
        }
    }

    #[test]
    fn vocabulary_sized_rows_get_the_f64_log_softmax() {
        // The full path sums f32 weights; on 150k logits it must still match the f64 reference.
        let mut rng = SequenceRng::new(5, 0);
        let logits: Vec<f32> = (0..150_000).map(|_| (rng.uniform() * 30.0 - 20.0) as f32).collect();
        for temperature in [1.0, 0.7] {
            let p = SamplingParams { temperature, ..Default::default() };
            for _ in 0..20 {
                let s = sample(&logits, &p, &mut rng);
                let want = logprob_of(&logits, temperature, s.token);
                assert!((s.logprob - want).abs() < 1e-5, "T={temperature}: {} vs {want}", s.logprob);
            }
        }
    }

    #[test]
    fn temperature_scales_logits_before_log_softmax() {
        // T = 0.5: logits become [2,4,6]; log p(1) = 4 - ln(e^2 + e^4 + e^6).
        let want = 4.0 - (2f64.exp() + 4f64.exp() + 6f64.exp()).ln();
        assert!((logprob_of(&[1.0, 2.0, 3.0], 0.5, 1) as f64 - want).abs() < 1e-6);
        let p = SamplingParams { temperature: 0.5, ..Default::default() };
        let mut rng = SequenceRng::new(1, 1);
        for _ in 0..50 {
            let s = sample(&[1.0, 2.0, 3.0], &p, &mut rng);
            let z = [2.0f64, 4.0, 6.0];
            let want = z[s.token as usize] - z.iter().map(|v| v.exp()).sum::<f64>().ln();
            assert!((s.logprob as f64 - want).abs() < 1e-6);
        }
    }

    #[test]
    fn top_k_one_is_argmax() {
        let p = SamplingParams { top_k: 1, temperature: 2.0, ..Default::default() };
        assert!(sampled(&[0.5, 0.4, 0.6, 0.59], p, 11, 500).iter().all(|&t| t == 2));
    }

    #[test]
    fn top_k_excludes_tail() {
        let p = SamplingParams { top_k: 2, ..Default::default() };
        let draws = sampled(&[0.0, 1.0, 0.9, -5.0], p, 5, 2000);
        assert!(draws.iter().all(|&t| t == 1 || t == 2));
        assert!(draws.contains(&1) && draws.contains(&2));
    }

    #[test]
    fn top_p_keeps_smallest_set_reaching_mass() {
        let logits: Vec<f32> = [0.6f32, 0.3, 0.1].iter().map(|p| p.ln()).collect();
        let half = SamplingParams { top_p: 0.5, ..Default::default() };
        let mut rng = SequenceRng::new(3, 0);
        for _ in 0..1000 {
            let s = sample(&logits, &half, &mut rng);
            assert_eq!(s.token, 0);
            // The log-prob is still the untruncated one.
            assert!((s.logprob - 0.6f32.ln()).abs() < 1e-6);
        }
        let p = SamplingParams { top_p: 0.8, ..Default::default() };
        let draws = sampled(&logits, p, 3, 2000);
        assert!(!draws.contains(&2) && draws.contains(&0) && draws.contains(&1));
        // 0.6 + 0.3 reaches 0.9 despite rounding, so token 2 stays out.
        let p = SamplingParams { top_p: 0.9, ..Default::default() };
        assert!(!sampled(&logits, p, 4, 2000).contains(&2));
    }

    #[test]
    fn frequencies_match_softmax() {
        let logits = [0.0f32, 1.0, 2.0, -1.0, 0.5];
        let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
        let n = 20_000;
        let mut counts = [0usize; 5];
        for t in sampled(&logits, SamplingParams::default(), 42, n) {
            counts[t as usize] += 1;
        }
        let chi2: f64 = logits
            .iter()
            .zip(counts)
            .map(|(&l, c)| {
                let expected = n as f64 * (l as f64).exp() / z;
                (c as f64 - expected).powi(2) / expected
            })
            .sum();
        // 99.9th percentile of chi-square with 4 degrees of freedom.
        assert!(chi2 < 18.47, "chi2 = {chi2}, counts = {counts:?}");
    }

    #[test]
    fn truncated_path_frequencies_match_renormalised_softmax() {
        // top_k = 3 over 5 tokens: tokens 2, 1, 4 with probs ∝ e^2, e^1, e^0.5.
        let logits = [0.0f32, 1.0, 2.0, -1.0, 0.5];
        let p = SamplingParams { top_k: 3, ..Default::default() };
        let n = 20_000;
        let mut counts = [0usize; 5];
        for t in sampled(&logits, p, 9, n) {
            counts[t as usize] += 1;
        }
        assert_eq!(counts[0] + counts[3], 0);
        let kept = [2usize, 1, 4];
        let z: f64 = kept.iter().map(|&i| (logits[i] as f64).exp()).sum();
        let chi2: f64 = kept
            .iter()
            .map(|&i| {
                let expected = n as f64 * (logits[i] as f64).exp() / z;
                (counts[i] as f64 - expected).powi(2) / expected
            })
            .sum();
        // 99.9th percentile of chi-square with 2 degrees of freedom.
        assert!(chi2 < 13.82, "chi2 = {chi2}, counts = {counts:?}");
    }

    #[test]
    fn same_seed_and_stream_repeat_and_streams_differ() {
        let draws = |seed, stream| {
            let mut rng = SequenceRng::new(seed, stream);
            (0..8).map(|_| rng.uniform()).collect::<Vec<_>>()
        };
        assert_eq!(draws(1, 0), draws(1, 0));
        assert_ne!(draws(1, 0), draws(1, 1));
        assert_ne!(draws(1, 0), draws(2, 0));
        assert!(draws(5, 5).iter().all(|u| (0.0..1.0).contains(u)));
        let logits = [0.0f32; 64];
        assert_eq!(sampled(&logits, Default::default(), 9, 32), sampled(&logits, Default::default(), 9, 32));
    }

    #[test]
    fn nan_and_infinite_logits_do_not_panic() {
        let mut rng = SequenceRng::new(0, 0);
        let logits = [f32::NAN, 1.0, f32::NEG_INFINITY, 0.0];
        for params in [SamplingParams::default(), SamplingParams::greedy(), SamplingParams { top_p: 0.5, top_k: 2, ..Default::default() }] {
            for _ in 0..100 {
                let s = sample(&logits, &params, &mut rng);
                assert!(s.token == 1 || s.token == 3, "{s:?}");
                assert!(s.logprob.is_finite());
            }
        }
        for row in [&[f32::NAN, f32::NAN][..], &[f32::NEG_INFINITY; 3][..], &[][..]] {
            for params in [SamplingParams::default(), SamplingParams::greedy()] {
                let s = sample(row, &params, &mut rng);
                assert_eq!(s.token, 0);
                assert_eq!(s.logprob, f32::NEG_INFINITY);
            }
        }
        let s = sample(&[f32::INFINITY, 0.0], &SamplingParams::default(), &mut rng);
        assert_eq!(s.token, 0);
        assert_eq!(s.logprob, 0.0);
    }

    #[test]
    fn validation() {
        assert!(SamplingParams::default().validate().is_ok());
        let bad_t = SamplingParams { temperature: 0.0, ..Default::default() };
        assert_eq!(bad_t.validate(), Err(SamplingError::Temperature(0.0)));
        assert!(SamplingParams { temperature: f32::INFINITY, ..Default::default() }.validate().is_err());
        assert!(SamplingParams { temperature: f32::NAN, ..Default::default() }.validate().is_err());
        assert!(SamplingParams { temperature: 0.0, greedy: true, ..Default::default() }.validate().is_ok());
        assert_eq!(SamplingParams { top_p: 0.0, ..Default::default() }.validate(), Err(SamplingError::TopP(0.0)));
        assert!(SamplingParams { top_p: 1.5, ..Default::default() }.validate().is_err());
        assert!(SamplingParams { top_p: f32::NAN, ..Default::default() }.validate().is_err());
    }

    #[test]
    fn stop_strings_cut_at_earliest_occurrence() {
        let stops = StopStrings::new(["</answer>", "\n\n", ""]);
        assert_eq!(stops.stops().len(), 2);
        let text = "<answer>12</answer>\n\nmore";
        let m = stops.find(text).unwrap();
        assert_eq!(m, StopMatch { stop: 0, start: 10, end: 19 });
        assert_eq!(stops.truncate(text), ("<answer>12", true));
        assert_eq!(stops.truncate("no stop here"), ("no stop here", false));
        assert_eq!(StopStrings::new(["b", "ab"]).find("xab").map(|m| (m.stop, m.start)), Some((1, 1)));
        assert!(StopStrings::default().find("anything").is_none());
    }

    #[test]
    fn stop_strings_incremental_catch_straddling_matches() {
        let stops = StopStrings::new(["</answer>"]);
        let mut text = String::new();
        let mut checked = 0;
        let mut found = None;
        for piece in ["é<answer>4", "2</ans", "wer> tail"] {
            text.push_str(piece);
            found = stops.find_from(&text, checked);
            if found.is_some() {
                break;
            }
            checked = text.len();
        }
        let m = found.unwrap();
        assert_eq!(&text[..m.start], "é<answer>42");
        // A multi-byte char just before the window start must not split the slice.
        let s = StopStrings::new(["xyz"]);
        assert!(s.find_from("ééééxyz", 8).is_some());
        assert!(s.find_from("ééé", 5).is_none());
    }
}
