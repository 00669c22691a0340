//! Rotary position embeddings in HF's half-rotation layout (`rotate_half`), as cos/sin tables.

use candle_core::{DType, Device, Result, Tensor, D};

use super::config::ModelConfig;
use super::kernels::Kernels;

/// cos/sin of position × inverse frequency, (max_positions, head_dim / 2), f32.
#[derive(Clone)]
pub struct RotaryTables {
    cos: Tensor,
    sin: Tensor,
}

/// The cos/sin rows for one forward's positions, broadcastable over (b, h, t, hd / 2).
pub struct RopeSlice {
    cos: Tensor,
    sin: Tensor,
}

impl RotaryTables {
    pub fn new(cfg: &ModelConfig, device: &Device) -> Result<Self> {
        let half = cfg.head_dim / 2;
        let theta = cfg.rope_theta as f32;
        // Computed in f32 as HF does, so positions far into the context round the same way.
        let inv_freq: Vec<f32> = (0..half).map(|i| 1.0 / theta.powf((2 * i) as f32 / cfg.head_dim as f32)).collect();
        let n = cfg.max_position_embeddings;
        let mut cos = Vec::with_capacity(n * half);
        let mut sin = Vec::with_capacity(n * half);
        for p in 0..n {
            for f in &inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Ok(RotaryTables { cos: Tensor::from_vec(cos, (n, half), device)?, sin: Tensor::from_vec(sin, (n, half), device)? })
    }

    pub fn max_positions(&self) -> usize {
        self.cos.dims()[0]
    }

    /// Positions `offset..offset + t`, shared by every row: (t, hd / 2).
    pub fn contiguous_positions(&self, offset: usize, t: usize, dtype: DType) -> Result<RopeSlice> {
        self.check(offset + t)?;
        Ok(RopeSlice { cos: self.cos.narrow(0, offset, t)?.to_dtype(dtype)?, sin: self.sin.narrow(0, offset, t)?.to_dtype(dtype)? })
    }

    /// Explicit positions per row, (b, t) u32: (b, t, hd / 2).
    pub fn gathered_positions(&self, positions: &Tensor, dtype: DType) -> Result<RopeSlice> {
        let (b, t) = positions.dims2()?;
        let max = positions.max_all()?.to_dtype(DType::U32)?.to_scalar::<u32>()? as usize;
        self.check(max + 1)?;
        let flat = positions.flatten_all()?;
        let half = self.cos.dims()[1];
        let gather = |table: &Tensor| -> Result<Tensor> { table.index_select(&flat, 0)?.reshape((b, t, half))?.to_dtype(dtype) };
        Ok(RopeSlice { cos: gather(&self.cos)?, sin: gather(&self.sin)? })
    }

    fn check(&self, needed: usize) -> Result<()> {
        if needed > self.max_positions() {
            candle_core::bail!(
                "sequence needs {needed} positions but the model supports {} (max_position_embeddings)",
                self.max_positions()
            );
        }
        Ok(())
    }
}

impl RopeSlice {
    /// The tables for the fused training kernel.
    pub(crate) fn rotation(&self) -> super::train_kernels::Rotation<'_> {
        super::train_kernels::Rotation { cos: &self.cos, sin: &self.sin }
    }

    /// Rotates `xs` (b, h, t, hd).
    pub(crate) fn apply(&self, xs: &Tensor, kernels: Kernels) -> Result<Tensor> {
        if kernels == Kernels::Inference {
            return candle_nn::rotary_emb::rope(&xs.contiguous()?, &self.cos, &self.sin);
        }
        let hd = xs.dim(D::Minus1)?;
        let half = hd / 2;
        // (t, half) → (1, 1, t, half); (b, t, half) → (b, 1, t, half).
        let (cos, sin) = match self.cos.rank() {
            2 => (self.cos.unsqueeze(0)?.unsqueeze(0)?, self.sin.unsqueeze(0)?.unsqueeze(0)?),
            _ => (self.cos.unsqueeze(1)?, self.sin.unsqueeze(1)?),
        };
        let x1 = xs.narrow(D::Minus1, 0, half)?;
        let x2 = xs.narrow(D::Minus1, half, half)?;
        let rotated_1 = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
        let rotated_2 = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
        Tensor::cat(&[rotated_1, rotated_2], D::Minus1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::config::Arch;

    fn cfg() -> ModelConfig {
        ModelConfig {
            arch: Arch::Qwen2,
            vocab_size: 4,
            hidden_size: 4,
            intermediate_size: 4,
            num_layers: 1,
            num_heads: 1,
            num_kv_heads: 1,
            head_dim: 4,
            rms_norm_eps: 1e-6,
            rope_theta: 100.0,
            max_position_embeddings: 8,
            tie_word_embeddings: true,
            qkv_bias: false,
            qk_norm: false,
            bos_token_id: None,
            eos_token_ids: vec![],
        }
    }

    #[test]
    fn rotates_pairs_by_position_times_frequency() {
        let dev = Device::Cpu;
        let tables = RotaryTables::new(&cfg(), &dev).unwrap();
        // Position 3, head_dim 4: frequencies 1 and 1/sqrt(100)=0.1 → angles 3 and 0.3.
        let x = Tensor::new(&[1f32, 2.0, 3.0, 4.0], &dev).unwrap().reshape((1, 1, 1, 4)).unwrap();
        let (a0, a1) = (3f32, 0.3f32);
        let expected = [
            1.0 * a0.cos() - 3.0 * a0.sin(),
            2.0 * a1.cos() - 4.0 * a1.sin(),
            3.0 * a0.cos() + 1.0 * a0.sin(),
            4.0 * a1.cos() + 2.0 * a1.sin(),
        ];
        let slice = tables.contiguous_positions(3, 1, DType::F32).unwrap();
        let pos = Tensor::new(&[[3u32]], &dev).unwrap();
        let gathered = tables.gathered_positions(&pos, DType::F32).unwrap();
        for s in [&slice, &gathered] {
            for kernels in [Kernels::Training, Kernels::Inference] {
                let got: Vec<f32> = s.apply(&x, kernels).unwrap().flatten_all().unwrap().to_vec1().unwrap();
                for (g, e) in got.iter().zip(expected) {
                    assert!((g - e).abs() < 1e-5, "{kernels:?}: {got:?} vs {expected:?}");
                }
            }
        }
    }

    #[test]
    fn positions_beyond_the_table_are_an_error() {
        let tables = RotaryTables::new(&cfg(), &Device::Cpu).unwrap();
        assert!(tables.contiguous_positions(6, 3, DType::F32).is_err());
    }
}
