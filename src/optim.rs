//! AdamW over any set of named `Var`s, with state that can be saved and restored exactly,
//! gradient accumulation over micro-batches, global gradient-norm clipping and an LR schedule.
//!
//! The update is torch's `AdamW` (decoupled weight decay, bias-corrected moments); candle-nn's
//! AdamW cannot export its moments, which exact resume needs.

mod fused;
mod grad_sum;
pub mod precision;
mod schedule;

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor, Var};
use serde::{Deserialize, Serialize};

use fused::Coeffs;
pub use schedule::{Decay, Schedule};

#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    #[error("bad optimizer setting '{field}': {reason}")]
    BadConfig { field: String, reason: String },
    #[error("optimizer state: {0}")]
    BadState(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Also the optimizer keys of `srlm train`'s `[grpo]` section, flattened into it: unknown keys
/// are left to that section's check (see `train::config_keys`), so none is denied here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdamWConfig {
    /// Peak learning rate (the seed: 4e-5 full SFT, 1e-4 LoRA, 1e-6 GRPO). Each TOML section
    /// has its own default, so the section holds it and this is never read from a file.
    #[serde(skip)]
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    /// Adam's ε, added to the second moment's root.
    pub eps: f64,
    /// Decoupled weight decay, applied only to matrices (not to norms or biases).
    pub weight_decay: f64,
    /// Global gradient-norm clipping threshold; None disables clipping (0 in a TOML file).
    #[serde(with = "zero_is_off")]
    pub max_grad_norm: Option<f64>,
    #[serde(flatten)]
    pub schedule: Schedule,
}

/// A TOML file has no "none": 0 stands for no clipping.
mod zero_is_off {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(value.unwrap_or(0.0))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        let value = f64::deserialize(d)?;
        Ok((value != 0.0).then_some(value))
    }
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-6,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: Some(1.0),
            schedule: Schedule::default(),
        }
    }
}

impl AdamWConfig {
    pub fn validate(&self) -> Result<(), OptimError> {
        let check = |field: &str, ok: bool, value: f64| {
            if ok {
                Ok(())
            } else {
                Err(OptimError::BadConfig { field: field.into(), reason: format!("{value} is out of range") })
            }
        };
        check("lr", self.lr >= 0.0 && self.lr.is_finite(), self.lr)?;
        check("beta1", (0.0..1.0).contains(&self.beta1), self.beta1)?;
        check("beta2", (0.0..1.0).contains(&self.beta2), self.beta2)?;
        check("eps", self.eps > 0.0 && self.eps.is_finite(), self.eps)?;
        check("weight_decay", self.weight_decay >= 0.0 && self.weight_decay.is_finite(), self.weight_decay)?;
        if let Some(n) = self.max_grad_norm {
            check("max_grad_norm", n > 0.0 && n.is_finite(), n)?;
        }
        if self.schedule.total_steps == 0 {
            return Err(OptimError::BadConfig { field: "schedule.total_steps".into(), reason: "must be positive".into() });
        }
        Ok(())
    }
}

/// Whether weight decay applies to a parameter: matrices only, never norms or biases.
pub fn decays(name: &str, rank: usize) -> bool {
    rank >= 2 && !name.ends_with("bias") && !name.contains("norm")
}

struct Param {
    name: String,
    var: Var,
    decay: bool,
    /// Written in place by the fused step, so `restore` copies what it is given.
    m: Tensor,
    v: Tensor,
}

impl Param {
    /// The update as candle tensor ops: any device and dtype, a new tensor per op.
    fn update(&mut self, g: Tensor, c: &Coeffs) -> Result<(), OptimError> {
        let g = if c.scale < 1.0 { (g * c.scale)? } else { g };
        let mut w = self.var.as_tensor().detach();
        if c.decay != 1.0 {
            w = (w * c.decay)?;
        }
        self.m = ((&self.m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
        self.v = ((&self.v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
        let denom = ((self.v.sqrt()? / c.bc2_sqrt)? + c.eps)?;
        let w = (w - ((&self.m / denom)? * c.step_size)?)?;
        self.var.set(&w)?;
        Ok(())
    }
}

/// What one call to [`AdamW::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StepReport {
    /// False when the gradient was not finite: the weights and moments are untouched.
    pub applied: bool,
    /// Global L2 norm of the accumulated gradient, before clipping.
    pub grad_norm: f64,
    /// The learning rate this step used.
    pub lr: f64,
}

pub struct AdamW {
    cfg: AdamWConfig,
    params: Vec<Param>,
    /// Applied updates so far: the schedule position and Adam's bias-correction step.
    step: u64,
    /// Updates refused for non-finite gradients.
    skipped: u64,
    /// Whether CPU f32/f64 tensors take the fused kernels; false forces the tensor ops (tests).
    fused: bool,
}

impl AdamW {
    /// An optimizer over `params` (name → trainable variable); names key the saved state.
    pub fn new(params: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<Self, OptimError> {
        cfg.validate()?;
        let mut seen = std::collections::HashSet::new();
        let params = params
            .into_iter()
            .map(|(name, var)| {
                if !seen.insert(name.clone()) {
                    return Err(OptimError::BadState(format!("parameter '{name}' is listed twice")));
                }
                let t = var.as_tensor();
                Ok(Param { decay: decays(&name, t.rank()), m: t.zeros_like()?, v: t.zeros_like()?, name, var })
            })
            .collect::<Result<Vec<_>, OptimError>>()?;
        Ok(AdamW { cfg, params, step: 0, skipped: 0, fused: true })
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.cfg
    }

    pub fn params(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.params.iter().map(|p| (p.name.as_str(), &p.var))
    }

    pub fn step_count(&self) -> u64 {
        self.step
    }

    pub fn skipped_count(&self) -> u64 {
        self.skipped
    }

    /// The learning rate the next step will use.
    pub fn lr(&self) -> f64 {
        self.cfg.lr * self.cfg.schedule.factor(self.step)
    }

    /// Changes the peak learning rate (the schedule still scales it).
    pub fn set_peak_lr(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    /// Counts an update that the caller refused (a non-finite loss) without touching anything.
    pub fn skip(&mut self) {
        self.skipped += 1;
    }

    /// An empty gradient sum over this optimizer's parameters.
    pub fn accumulator(&self) -> GradAccumulator {
        GradAccumulator {
            sums: vec![None; self.params.len()],
            owned: vec![false; self.params.len()],
            vars: self.params.iter().map(|p| p.var.clone()).collect(),
        }
    }

    /// Clips and applies the accumulated gradient. A non-finite gradient norm skips the update
    /// (counted in `skipped_count`) and leaves weights, moments and schedule as they were.
    pub fn step(&mut self, grads: GradAccumulator) -> Result<StepReport, OptimError> {
        let lr = self.lr();
        let mut sq = 0.0f64;
        for g in grads.sums.iter().flatten() {
            sq += match self.fused.then(|| fused::sum_sq(g)).flatten() {
                Some(s) => s,
                None => g.to_dtype(DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()?,
            };
        }
        let grad_norm = sq.sqrt();
        if !grad_norm.is_finite() {
            self.skipped += 1;
            return Ok(StepReport { applied: false, grad_norm, lr });
        }
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let coeffs = Coeffs {
            // torch's clip_grad_norm_: scale by max / (norm + 1e-6) when that is below 1.
            scale: self.cfg.max_grad_norm.map_or(1.0, |max| (max / (grad_norm + 1e-6)).min(1.0)),
            decay: 1.0,
            beta1: b1,
            beta2: b2,
            bc2_sqrt: (1.0 - b2.powi(t)).sqrt(),
            eps: self.cfg.eps,
            step_size: lr / (1.0 - b1.powi(t)),
        };
        let decay = 1.0 - lr * self.cfg.weight_decay;
        for (p, g) in self.params.iter_mut().zip(grads.sums) {
            // Like torch, a parameter without a gradient is left alone (no decay, no moment update).
            let Some(g) = g else { continue };
            let c = Coeffs { decay: if p.decay && self.cfg.weight_decay > 0.0 { decay } else { 1.0 }, ..coeffs };
            if !(self.fused && fused::adamw_update(p.var.as_tensor(), &p.m, &p.v, &g, &c)?) {
                p.update(g, &c)?;
            }
        }
        Ok(StepReport { applied: true, grad_norm, lr })
    }

    /// The moments, keyed `m.<name>` and `v.<name>`, for saving. They share the optimizer's
    /// storage, which the next step overwrites in place: save (or copy) them before stepping.
    pub fn moments(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::with_capacity(2 * self.params.len());
        for p in &self.params {
            out.insert(format!("m.{}", p.name), p.m.clone());
            out.insert(format!("v.{}", p.name), p.v.clone());
        }
        out
    }

    /// Restores a saved state: every parameter's moments must be present with its shape.
    pub fn restore(&mut self, step: u64, skipped: u64, moments: &HashMap<String, Tensor>) -> Result<(), OptimError> {
        let expected = 2 * self.params.len();
        if moments.len() != expected {
            return Err(OptimError::BadState(format!(
                "{} moment tensors saved, this optimizer has {expected} (different trainable parameters?)",
                moments.len()
            )));
        }
        let mut restored = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let get = |key: String| -> Result<Tensor, OptimError> {
                let t = moments.get(&key).ok_or_else(|| OptimError::BadState(format!("missing moment '{key}'")))?;
                if t.dims() != p.m.dims() {
                    return Err(OptimError::BadState(format!("moment '{key}' has shape {:?}, parameter has {:?}", t.dims(), p.m.dims())));
                }
                // A storage of our own: the fused step writes the moments in place.
                Ok(t.to_device(p.m.device())?.to_dtype(p.m.dtype())?.force_contiguous()?)
            };
            restored.push((get(format!("m.{}", p.name))?, get(format!("v.{}", p.name))?));
        }
        for (p, (m, v)) in self.params.iter_mut().zip(restored) {
            p.m = m;
            p.v = v;
        }
        self.step = step;
        self.skipped = skipped;
        Ok(())
    }
}

/// The sum of the gradients of several backward passes (micro-batches), per parameter.
pub struct GradAccumulator {
    sums: Vec<Option<Tensor>>,
    /// Whether the sum is a buffer of the accumulator's own, added into in place, rather than
    /// the first micro-batch's gradient.
    owned: Vec<bool>,
    vars: Vec<Var>,
}

impl GradAccumulator {
    /// The sum so far for `var`: None when the optimizer does not hold it or no gradient came.
    pub fn get(&self, var: &Var) -> Option<&Tensor> {
        let i = self.vars.iter().position(|v| v.as_tensor().id() == var.as_tensor().id())?;
        self.sums[i].as_ref()
    }

    /// Adds the gradients `grads` holds for the optimizer's parameters. The second micro-batch's
    /// sum goes into a buffer of the accumulator's own and later ones are added into it in
    /// place, in parallel. (Not into the first micro-batch's own buffers: keeping those alive
    /// across the step changes how the heap is reused and made the step slower; BENCHMARKS.md.)
    pub fn add(&mut self, grads: &GradStore) -> Result<(), OptimError> {
        for ((sum, owned), var) in self.sums.iter_mut().zip(&mut self.owned).zip(&self.vars) {
            let Some(g) = grads.get(var.as_tensor()) else { continue };
            *sum = Some(match sum.take() {
                None => g.detach(),
                Some(s) if *owned && grad_sum::add_assign(&s, g)? => s,
                Some(s) => match grad_sum::sum(&s, g) {
                    Some(fresh) => {
                        *owned = true;
                        fresh
                    }
                    None => (s + g)?.detach(),
                },
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_excludes_norms_and_biases() {
        assert!(decays("model.layers.0.mlp.up_proj.weight", 2));
        assert!(decays("model.embed_tokens.weight", 2));
        assert!(!decays("model.layers.0.self_attn.q_proj.bias", 1));
        assert!(!decays("model.layers.0.input_layernorm.weight", 1));
        assert!(!decays("model.norm.weight", 1));
        assert!(!decays("some.vector", 1));
    }

    #[test]
    fn bad_settings_name_the_field() {
        let cfg = AdamWConfig { beta2: 1.5, ..AdamWConfig::default() };
        let err = AdamW::new(vec![], cfg).err().unwrap().to_string();
        assert!(err.contains("beta2"), "{err}");
    }
}
