//! x Wᵀ for a frozen W (LoRA's base weights): the backward computes only dx.
//!
//! candle's matmul backward always computes the gradient of both operands and keeps the one of
//! an untracked weight in the gradient store to the end: with LoRA that is a full copy of the
//! base model's weight gradients, in memory and in compute.

use candle_core::{Result, Tensor};

use super::custom_grad::attach_grad;
use super::matmul::matmul;

/// x (rows, in) · Wᵀ for W (out, in) that takes no gradient.
pub fn frozen_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let y = matmul(&x.detach(), &w.t()?)?;
    attach_grad(
        "frozen-matmul",
        x,
        w,
        &y,
        Box::new(|x: &Tensor, w: &Tensor, grad: &Tensor| {
            let dx = matmul(&grad.to_dtype(x.dtype())?, &w.detach())?;
            Ok((Some(dx), None))
        }),
    )
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn the_input_gradient_matches_matmul_and_the_weight_gets_none() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (5, 4), &dev)?)?;
        let w = Tensor::randn(0f32, 1.0, (3, 4), &dev)?;
        let coeffs = Tensor::randn(0f32, 1.0, (5, 3), &dev)?;

        let ours = frozen_matmul(x.as_tensor(), &w)?;
        let wt = w.t()?;
        let theirs = x.as_tensor().matmul(&wt)?;
        let diff = (&ours - &theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-6, "values differ by {diff}");

        let g_ours = (&ours * &coeffs)?.sum_all()?.backward()?;
        let g_theirs = (&theirs * &coeffs)?.sum_all()?.backward()?;
        let (a, b) = (g_ours.get(x.as_tensor()).expect("dx"), g_theirs.get(x.as_tensor()).expect("dx"));
        assert!((a - b)?.abs()?.max_all()?.to_scalar::<f32>()? < 1e-6);
        // candle's own matmul keeps a gradient for the frozen operand (its transposed view); ours
        // keeps none at all.
        assert!(g_theirs.get(&wt).is_some());
        assert!(g_ours.get(&w).is_none());
        Ok(())
    }
}
