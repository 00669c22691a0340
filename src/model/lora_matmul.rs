//! x Wᵀ + s·(x Aᵀ) Bᵀ as one op on the CPU, for LoRA without dropout: backward recomputes the
//! (rows, r) product instead of keeping the frozen product, the LoRA product and their sum alive
//! (three (rows, out) tensors per wrapped projection, most of a LoRA step's activation memory).

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

use super::matmul::matmul;

/// x (rows, in) · Wᵀ + scale · (x Aᵀ) Bᵀ for frozen W (out, in), A (r, in), B (out, r).
pub fn lora_matmul(x: &Tensor, w: &Tensor, a: &Tensor, b: &Tensor, scale: f64) -> Result<Tensor> {
    let x = x.contiguous()?;
    x.apply_op3(a, b, LoraMatmul { w: w.detach(), scale })
}

struct LoraMatmul {
    w: Tensor,
    scale: f64,
}

impl LoraMatmul {
    fn value(&self, x: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let low = (matmul(x, &a.t()?)? * self.scale)?;
        matmul(x, &self.w.t()?)? + matmul(&low, &b.t()?)?
    }
}

/// The tensor a CPU storage + layout describe (a copy: candle builds tensors only from data).
fn tensor_of(s: &CpuStorage, l: &Layout) -> Result<Tensor> {
    let dims = l.shape().dims();
    let t = match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((lo, hi))) => Tensor::from_slice(&v[lo..hi], dims, &candle_core::Device::Cpu)?,
        (CpuStorage::F64(v), Some((lo, hi))) => Tensor::from_slice(&v[lo..hi], dims, &candle_core::Device::Cpu)?,
        _ => candle_core::bail!("lora-matmul: expects contiguous f32 or f64 operands"),
    };
    Ok(t)
}

impl CustomOp3 for LoraMatmul {
    fn name(&self) -> &'static str {
        "lora-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = self.value(&tensor_of(s1, l1)?, &tensor_of(s2, l2)?.contiguous()?, &tensor_of(s3, l3)?)?;
        let shape = y.shape().clone();
        let storage = match y.dtype() {
            DType::F32 => CpuStorage::F32(y.flatten_all()?.to_vec1()?),
            DType::F64 => CpuStorage::F64(y.flatten_all()?.to_vec1()?),
            other => candle_core::bail!("lora-matmul: unsupported dtype {other:?}"),
        };
        Ok((storage, shape))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (x, a, b, g) = (x.detach(), a.detach(), b.detach(), grad.detach());
        let low = (matmul(&x, &a.t()?)? * self.scale)?; // (rows, r)
        let db = matmul(&g.t()?, &low)?; // (out, r)
        let dlow = matmul(&g, &b)?; // (rows, r)
        let da = (matmul(&dlow.t()?, &x)? * self.scale)?; // (r, in)
        let dx = (matmul(&g, &self.w)? + (matmul(&dlow, &a)? * self.scale)?)?;
        Ok((Some(dx), Some(da), Some(db)))
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var};

    use super::*;

    #[test]
    fn value_and_gradients_match_the_unfused_graph() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&Tensor::randn(0f64, 1.0, (5, 4), &dev)?)?;
        let w = Tensor::randn(0f64, 1.0, (3, 4), &dev)?;
        let a = Var::from_tensor(&Tensor::randn(0f64, 1.0, (2, 4), &dev)?)?;
        let b = Var::from_tensor(&Tensor::randn(0f64, 1.0, (3, 2), &dev)?)?;
        let coeffs = Tensor::randn(0f64, 1.0, (5, 3), &dev)?;
        let scale = 1.5;

        let ours = lora_matmul(x.as_tensor(), &w, a.as_tensor(), b.as_tensor(), scale)?;
        let low = (x.as_tensor().matmul(&a.as_tensor().t()?)? * scale)?;
        let theirs = (x.as_tensor().matmul(&w.t()?)? + low.matmul(&b.as_tensor().t()?)?)?;
        let diff = |p: &Tensor, q: &Tensor| -> Result<f64> { (p - q)?.abs()?.max_all()?.to_scalar::<f64>() };
        assert!(diff(&ours, &theirs)? < 1e-12);

        let g_ours = (&ours * &coeffs)?.sum_all()?.backward()?;
        let g_theirs = (&theirs * &coeffs)?.sum_all()?.backward()?;
        for var in [&x, &a, &b] {
            let (p, q) = (g_ours.get(var).expect("grad"), g_theirs.get(var).expect("grad"));
            assert!(diff(p, q)? < 1e-12, "gradient differs by {}", diff(p, q)?);
        }
        assert!(g_ours.get(&w).is_none());
        Ok(())
    }
}
