//! x Wᵀ as one autograd node whose backward computes only the gradients that are needed.
//!
//! candle's `x.matmul(&w.t())` is two nodes (the transposed view and the product). Its backward
//! computes the gradient of both operands, keeps the one of an untracked operand in the gradient
//! store to the end (with LoRA: a full copy of the base model's weight gradients), and adds the
//! weight gradient into W through a strided, transposed copy. Here dW = gᵀ x lands in W's layout.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

use super::custom_grad::attach_grad;
use super::matmul::matmul;
use super::train_kernels::{fusable, slice, Real};

/// x (rows, in) · Wᵀ for W (out, in); dx = g W when x is tracked, dW = gᵀ x when W is.
pub fn xwt_matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if !x.track_op() && !w.track_op() {
        return matmul(x, &w.t()?);
    }
    if fusable(x) && !cfg!(feature = "blas") {
        // The product runs inside the op, so the graph holds no second copy of it.
        return x.contiguous()?.apply_op2(&w.contiguous()?, XwtMatmul);
    }
    let y = matmul(&x.detach(), &w.detach().t()?)?;
    attach_grad("xwt-matmul", x, w, &y, Box::new(|x: &Tensor, w: &Tensor, grad: &Tensor| backward(x, w, grad)))
}

fn backward(x: &Tensor, w: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let g = grad.to_dtype(x.dtype())?;
    let dx = if x.track_op() { Some(matmul(&g, &w.detach())?) } else { None };
    let dw = if w.track_op() { Some(matmul(&g.t()?, &x.detach())?) } else { None };
    Ok((dx, dw))
}

struct XwtMatmul;

/// y (rows, out) = x (rows, in) · Wᵀ with W (out, in), all row-major, through gemm.
fn xwt<T: Real>(x: &[T], w: &[T], inp: usize) -> Vec<T> {
    let (rows, out) = (x.len() / inp.max(1), w.len() / inp.max(1));
    let mut y = vec![T::zero(); rows * out];
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the pointers cover rows·in, out·in and rows·out elements, and the strides below
    // (in elements: row stride, column stride) stay inside them: x is (rows, in) row-major,
    // Wᵀ (in, out) is W read with row stride 1 and column stride in, y is (rows, out).
    unsafe {
        gemm::gemm(
            rows,
            out,
            inp,
            y.as_mut_ptr(),
            1,
            out as isize,
            false,
            x.as_ptr(),
            1,
            inp as isize,
            w.as_ptr(),
            inp as isize,
            1,
            T::zero(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
    y
}

impl CustomOp2 for XwtMatmul {
    fn name(&self) -> &'static str {
        "xwt-matmul"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let ((rows, inp), (out, w_inp)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        if inp != w_inp {
            candle_core::bail!("xwt-matmul: x is (rows, {inp}) but W is ({out}, {w_inp})");
        }
        let storage = match s1.dtype() {
            DType::F32 => CpuStorage::F32(xwt::<f32>(slice(s1, l1)?, slice(s2, l2)?, inp)),
            DType::F64 => CpuStorage::F64(xwt::<f64>(slice(s1, l1)?, slice(s2, l2)?, inp)),
            other => candle_core::bail!("xwt-matmul: unsupported dtype {other:?}"),
        };
        Ok((storage, (rows, out).into()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        backward(x, w, grad)
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn the_raw_product_equals_candles_matmul_on_uneven_shapes() -> Result<()> {
        let dev = Device::Cpu;
        for dtype in [DType::F32, DType::F64] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (37, 19), &dev)?.to_dtype(dtype)?)?;
            let w = Tensor::randn(0f32, 1.0, (23, 19), &dev)?.to_dtype(dtype)?;
            let ours = xwt_matmul(x.as_tensor(), &w)?;
            assert_eq!(ours.dims(), &[37, 23]);
            let theirs = x.as_tensor().detach().matmul(&w.t()?)?;
            let d = (ours - theirs)?.abs()?.flatten_all()?.max(0)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            assert!(d < 1e-4, "{dtype:?}: {d}");
        }
        Ok(())
    }

    #[test]
    fn gradients_match_matmul_and_a_frozen_weight_gets_none() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (5, 4), &dev)?)?;
        let coeffs = Tensor::randn(0f32, 1.0, (5, 3), &dev)?;
        let max_diff = |a: &Tensor, b: &Tensor| -> Result<f32> { (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>() };
        for trainable in [false, true] {
            let w0 = Tensor::randn(0f32, 1.0, (3, 4), &dev)?.to_dtype(DType::F32)?;
            let w = if trainable { Var::from_tensor(&w0)?.as_tensor().clone() } else { w0 };
            let ours = xwt_matmul(x.as_tensor(), &w)?;
            let wt = w.t()?;
            let theirs = x.as_tensor().matmul(&wt)?;
            assert!(max_diff(&ours, &theirs)? < 1e-6, "values differ");

            let g_ours = (&ours * &coeffs)?.sum_all()?.backward()?;
            let g_theirs = (&theirs * &coeffs)?.sum_all()?.backward()?;
            let dx = |g: &candle_core::backprop::GradStore| g.get(x.as_tensor()).cloned().expect("dx");
            assert!(max_diff(&dx(&g_ours), &dx(&g_theirs))? < 1e-6);
            if trainable {
                let (a, b) = (g_ours.get(&w).expect("dW"), g_theirs.get(&w).expect("dW"));
                assert!(max_diff(a, b)? < 1e-5);
            } else {
                // candle's own matmul keeps a gradient for the frozen operand (its transposed
                // view); ours keeps none at all.
                assert!(g_theirs.get(&wt).is_some());
                assert!(g_ours.get(&w).is_none());
            }
        }
        Ok(())
    }
}
