//! A value computed without an autograd graph, attached to two inputs with a hand-written
//! backward: how the model gives an op a cheaper gradient than candle's generic one.
//!
//! candle records an op's backward only through `CustomOp*`, whose forward works on raw
//! storage; here the forward just passes the precomputed value through (one copy of the
//! output), and the backward is an ordinary function of tensors.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

/// Gradients for the two inputs from (input a, input b, gradient of the value).
pub type Backward = dyn Fn(&Tensor, &Tensor, &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> + Send + Sync;

/// `value` (computed from `a` and `b` with detached tensors; any float dtype) as a
/// tensor whose gradient flows to `a` and `b` through `backward`.
pub fn attach_grad(name: &'static str, a: &Tensor, b: &Tensor, value: &Tensor, backward: Box<Backward>) -> Result<Tensor> {
    // A fresh contiguous tensor: its storage is exactly the value (the CUDA forward relies on it).
    let value = value.detach().contiguous()?;
    if !a.track_op() && !b.track_op() {
        return Ok(value);
    }
    a.apply_op3(b, &value, PassThrough { name, backward })
}

struct PassThrough {
    name: &'static str,
    backward: Box<Backward>,
}

impl CustomOp3 for PassThrough {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout, s3: &CpuStorage, l3: &Layout) -> Result<(CpuStorage, Shape)> {
        let storage = match (s3, l3.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) => CpuStorage::F32(v[a..b].to_vec()),
            (CpuStorage::F64(v), Some((a, b))) => CpuStorage::F64(v[a..b].to_vec()),
            (CpuStorage::BF16(v), Some((a, b))) => CpuStorage::BF16(v[a..b].to_vec()),
            (CpuStorage::F16(v), Some((a, b))) => CpuStorage::F16(v[a..b].to_vec()),
            _ => candle_core::bail!("{}: expects a contiguous float value", self.name),
        };
        Ok((storage, l3.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        if !l3.is_contiguous() || l3.start_offset() != 0 {
            candle_core::bail!("{}: expects a contiguous value at offset 0", self.name);
        }
        Ok((s3.try_clone(l3)?, l3.shape().clone()))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _value: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (ga, gb) = (self.backward)(a, b, grad)?;
        // Only inputs that lead to trainable variables receive a gradient.
        Ok((ga.filter(|_| a.track_op()), gb.filter(|_| b.track_op()), None))
    }
}
