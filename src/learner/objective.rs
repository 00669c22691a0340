//! What every update shares: each micro-batch's loss is differentiated and the gradients summed
//! in micro-batch order, then one AdamW step, or a counted skip when a loss or the gradient is
//! not finite. An objective (GRPO's loss types, SFT's NLL, KD's KL) says only how one
//! micro-batch's loss is computed, so a new loss is one `Objective` implementation.

use candle_core::{DType, Tensor};

use super::lanes::Lanes;
use super::AlgoError;
use crate::model::CausalLm;
use crate::optim::AdamW;

/// A training loss over micro-batches of its own kind.
pub trait Objective: Sync {
    /// One micro-batch, already on the model's device.
    type MicroBatch: Sync;
    /// What the loss reports besides its gradient.
    type Stats: Send;

    /// The micro-batch's share of the step's loss (the step's loss is the sum of the shares),
    /// differentiable with respect to `model`'s trainable parameters, with its stats.
    fn loss(&self, model: &dyn CausalLm, batch: &Self::MicroBatch) -> Result<(Tensor, Self::Stats), AlgoError>;
}

/// One optimizer step's outcome.
pub struct Update<S> {
    /// Each micro-batch's stats, in order; fewer than the micro-batches when a non-finite loss
    /// stopped the step early.
    pub parts: Vec<S>,
    /// Global gradient norm before clipping; NaN when no gradient was taken.
    pub grad_norm: f64,
    /// The learning rate the step used (or would have).
    pub lr: f64,
    /// False when the step was skipped: a loss or the gradient norm was not finite.
    pub applied: bool,
}

/// Sums the gradients of `objective`'s loss over `micro` (`lanes` micro-batches at a time,
/// accumulated in order, so the result does not depend on the lane count), then takes one
/// AdamW step. The first non-finite loss stops the step: nothing is applied, and `opt` counts
/// a skipped update.
pub fn optimizer_step<O: Objective>(
    objective: &O,
    model: &dyn CausalLm,
    opt: &mut AdamW,
    micro: &[O::MicroBatch],
    lanes: &Lanes,
) -> Result<Update<O::Stats>, AlgoError> {
    let mut grads = opt.accumulator();
    let mut parts = Vec::with_capacity(micro.len());
    let mut finite = true;
    let work = |_: usize, mb: &O::MicroBatch| -> Result<_, AlgoError> {
        let (loss, stats) = objective.loss(model, mb)?;
        let value = loss.detach().to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let grads = if value.is_finite() { Some(loss.backward()?) } else { None };
        Ok((stats, grads))
    };
    lanes.fold_in_order(micro, work, |(stats, store)| {
        parts.push(stats);
        let Some(store) = store else {
            finite = false;
            return Ok(false);
        };
        grads.add(&store)?;
        Ok(true)
    })?;
    if !finite {
        let lr = opt.lr();
        opt.skip();
        return Ok(Update { parts, grad_norm: f64::NAN, lr, applied: false });
    }
    let report = opt.step(grads)?;
    Ok(Update { parts, grad_norm: report.grad_norm, lr: report.lr, applied: report.applied })
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;
    use crate::model::init::init_weights;
    use crate::model::Qwen2;
    use crate::optim::AdamWConfig;
    use crate::synthetic::tiny_qwen2_config;

    /// c · (a · x) for a micro-batch (c, a): a linear loss in the variable x, whose gradient
    /// c · a is known by hand. The model is not used.
    struct Linear {
        x: Var,
    }

    impl Objective for Linear {
        type MicroBatch = (f64, [f32; 3]);
        type Stats = f64;

        fn loss(&self, _: &dyn CausalLm, (c, a): &Self::MicroBatch) -> Result<(Tensor, f64), AlgoError> {
            let a = Tensor::new(a, &Device::Cpu)?;
            let loss = ((self.x.as_tensor() * a)?.sum_all()? * *c)?;
            Ok((loss, *c))
        }
    }

    fn run(micro: &[(f64, [f32; 3])], lanes: usize) -> (Vec<f32>, Update<f64>, AdamW) {
        let cfg = tiny_qwen2_config(16);
        let model = Qwen2::new(&cfg, &init_weights(&cfg, 0.02, 0, &Device::Cpu).unwrap()).unwrap();
        let x = Var::new(&[1f32, -2.0, 0.5], &Device::Cpu).unwrap();
        let adamw = AdamWConfig { lr: 0.1, max_grad_norm: None, ..AdamWConfig::default() };
        let mut opt = AdamW::new(vec![("x".into(), x.clone())], adamw).unwrap();
        let update = optimizer_step(&Linear { x: x.clone() }, &model, &mut opt, micro, &Lanes::new(lanes).unwrap()).unwrap();
        (x.as_tensor().to_vec1().unwrap(), update, opt)
    }

    #[test]
    fn micro_batch_gradients_add_up_before_one_step() {
        // g = 1·(1, 0, 2) + 2·(0, 1, −1) + 0.5·(3, −1, 0) = (2.5, 1.5, 0). Adam's first step moves
        // each coordinate by lr · g / (|g| + ε): −0.1, −0.1 and, where the parts cancel, 0.
        let micro = [(1.0, [1f32, 0.0, 2.0]), (2.0, [0.0, 1.0, -1.0]), (0.5, [3.0, -1.0, 0.0])];
        let (x, update, opt) = run(&micro, 1);
        for (got, want) in x.iter().zip([0.9f32, -2.1, 0.5]) {
            assert!((got - want).abs() < 1e-6, "{x:?}");
        }
        assert!(update.applied && (update.grad_norm - (2.5f64.powi(2) + 1.5f64.powi(2)).sqrt()).abs() < 1e-6);
        assert_eq!((update.parts, opt.step_count(), opt.skipped_count()), (vec![1.0, 2.0, 0.5], 1, 0));
        // Side by side on two lanes: the same sum in the same order, so the same bits.
        assert_eq!(run(&micro, 2).0, x);
    }

    #[test]
    fn a_non_finite_loss_skips_the_step_and_stops_the_work() {
        let micro = [(1.0, [1f32, 0.0, 2.0]), (f64::NAN, [0.0, 1.0, -1.0]), (0.5, [3.0, -1.0, 0.0])];
        let (x, update, opt) = run(&micro, 1);
        assert_eq!(x, [1.0, -2.0, 0.5], "nothing applied");
        assert!(!update.applied && update.grad_norm.is_nan());
        assert_eq!((update.parts.len(), opt.step_count(), opt.skipped_count()), (2, 0, 1));
    }
}
