//! Learning-rate schedules: linear warmup, then constant, linear or cosine decay.
//!
//! Same definitions as transformers' `get_*_schedule_with_warmup` under torch's `LambdaLR`: the
//! optimizer step with index k (0-based) uses `lr · factor(k)`, so with warmup the first step
//! has lr 0.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Decay {
    #[default]
    Constant,
    /// To 0 at `total_steps`.
    Linear,
    /// Half a cosine period, to 0 at `total_steps`.
    Cosine,
}

/// As TOML keys (flattened into a section): `lr_schedule` and `warmup_steps`; the length is the
/// stage's own step count, never a key of its own.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Schedule {
    /// The decay after warm-up.
    #[serde(rename = "lr_schedule")]
    pub decay: Decay,
    pub warmup_steps: usize,
    #[serde(skip)]
    pub total_steps: usize,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule { decay: Decay::Constant, warmup_steps: 0, total_steps: 1 }
    }
}

impl Schedule {
    /// Warmup over `ratio` of the steps, rounded up (as transformers' `warmup_ratio`).
    pub fn with_warmup_ratio(decay: Decay, ratio: f64, total_steps: usize) -> Self {
        let warmup_steps = (ratio.clamp(0.0, 1.0) * total_steps as f64).ceil() as usize;
        Schedule { decay, warmup_steps, total_steps }
    }

    /// The multiplier of the base learning rate at optimizer step `step` (0-based).
    pub fn factor(&self, step: u64) -> f64 {
        let step = step as f64;
        let warmup = self.warmup_steps as f64;
        if step < warmup {
            return step / warmup.max(1.0);
        }
        let total = self.total_steps as f64;
        let progress = (step - warmup) / (total - warmup).max(1.0);
        match self.decay {
            Decay::Constant => 1.0,
            Decay::Linear => ((total - step) / (total - warmup).max(1.0)).max(0.0),
            Decay::Cosine => (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_by_hand() {
        let s = Schedule { decay: Decay::Cosine, warmup_steps: 2, total_steps: 6 };
        // Warmup 0, 1/2; then progress 0, 1/4, 2/4, 3/4 → (1 + cos(πp))/2.
        let want = [0.0, 0.5, 1.0, 0.853_553_390_593_273_8, 0.5, 0.146_446_609_406_726_3, 0.0];
        for (k, w) in want.iter().enumerate() {
            assert!((s.factor(k as u64) - w).abs() < 1e-12, "step {k}: {} vs {w}", s.factor(k as u64));
        }
    }

    #[test]
    fn linear_and_constant_by_hand() {
        let lin = Schedule { decay: Decay::Linear, warmup_steps: 1, total_steps: 5 };
        let got: Vec<f64> = (0..7).map(|k| lin.factor(k)).collect();
        assert_eq!(got, vec![0.0, 1.0, 0.75, 0.5, 0.25, 0.0, 0.0]);
        let c = Schedule { decay: Decay::Constant, warmup_steps: 4, total_steps: 10 };
        assert_eq!(c.factor(1), 0.25);
        assert_eq!(c.factor(9), 1.0);
    }

    #[test]
    fn warmup_ratio_rounds_up() {
        assert_eq!(Schedule::with_warmup_ratio(Decay::Cosine, 0.1, 25).warmup_steps, 3);
        assert_eq!(Schedule::with_warmup_ratio(Decay::Cosine, 0.0, 25).warmup_steps, 0);
    }
}
