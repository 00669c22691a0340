//! The optimiser the SFT and KD loops step, behind one constructor ([`adamw`]).
//!
//! Until the crate's own AdamW (src/optim.rs, with saveable state) lands, this wraps
//! candle-nn's; the loops see only the [`Optimizer`] trait, so the swap is inside `adamw`.

use candle_core::backprop::GradStore;
use candle_core::{Result, Var};
use candle_nn::{AdamW, Optimizer as _, ParamsAdamW};

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

/// AdamW with weight decay on matrices only: norms and biases (1-D tensors) are not decayed.
struct GroupedAdamW {
    decayed: Option<AdamW>,
    plain: Option<AdamW>,
}

impl Optimizer for GroupedAdamW {
    fn step(&mut self, grads: &GradStore) -> Result<()> {
        for opt in [&mut self.decayed, &mut self.plain].into_iter().flatten() {
            opt.step(grads)?;
        }
        Ok(())
    }

    fn set_learning_rate(&mut self, lr: f64) {
        for opt in [&mut self.decayed, &mut self.plain].into_iter().flatten() {
            opt.set_learning_rate(lr);
        }
    }
}

/// The optimiser for `vars`. Swap point for `crate::optim::AdamW`.
pub fn adamw(vars: Vec<Var>, s: &AdamWSettings) -> Result<Box<dyn Optimizer>> {
    let params = |weight_decay| ParamsAdamW { lr: s.lr, beta1: s.beta1, beta2: s.beta2, eps: s.eps, weight_decay };
    let (matrices, vectors): (Vec<Var>, Vec<Var>) = vars.into_iter().partition(|v| v.rank() >= 2);
    let group = |vars: Vec<Var>, wd| -> Result<Option<AdamW>> {
        if vars.is_empty() { Ok(None) } else { Ok(Some(AdamW::new(vars, params(wd))?)) }
    };
    Ok(Box::new(GroupedAdamW { decayed: group(matrices, s.weight_decay)?, plain: group(vectors, 0.0)? }))
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
