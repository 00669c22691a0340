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
