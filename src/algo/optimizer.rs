//! The optimiser the KD loop steps, behind one constructor ([`adamw`]): the crate's own
//! AdamW (src/optim.rs, saveable state, no decay on norms and biases) seen through a small trait.

use candle_core::backprop::GradStore;
use candle_core::{Result, Var};

use crate::optim::{AdamW, AdamWConfig, Schedule};

/// One update from accumulated gradients.
pub trait Optimizer {
    fn step(&mut self, grads: &GradStore) -> Result<()>;
    fn set_learning_rate(&mut self, lr: f64);
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWSettings {
    pub lr: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamWSettings {
    fn default() -> Self {
        AdamWSettings { lr: 1e-4, weight_decay: 0.0, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

impl Optimizer for AdamW {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        let mut acc = self.accumulator();
        acc.add(grads).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        AdamW::step(self, acc).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok(())
    }

    fn set_learning_rate(&mut self, lr: f64) {
        self.set_peak_lr(lr);
    }
}

/// AdamW over `vars` at a constant rate; the loops clip gradients themselves.
pub fn adamw(vars: Vec<Var>, s: &AdamWSettings) -> Result<Box<dyn Optimizer>> {
    let named = vars.into_iter().enumerate().map(|(i, v)| (format!("param.{i}"), v)).collect();
    let cfg = AdamWConfig {
        lr: s.lr,
        beta1: s.beta1,
        beta2: s.beta2,
        eps: s.eps,
        weight_decay: s.weight_decay,
        max_grad_norm: None,
        schedule: Schedule::default(),
    };
    Ok(Box::new(AdamW::new(named, cfg).map_err(|e| candle_core::Error::Msg(e.to_string()))?))
}

/// Scales `grads` of `vars` so their global L2 norm is at most `max_norm`; returns the norm
/// before clipping. A non-finite norm is returned as is, for the caller to skip the step.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[Var], max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
        }
    }
    let norm = sq.sqrt();
    if norm.is_finite() && max_norm > 0.0 && norm > max_norm {
        let factor = max_norm / (norm + 1e-6);
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * factor)?);
            }
        }
    }
    Ok(norm)
}
