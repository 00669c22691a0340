//! Whether an optimizer step can move a weight at all in the dtype the weights are kept in.
//! The learner keeps its master weights in the model's dtype, so in bf16 (8 significant bits) an
//! AdamW step of about `lr` is rounded away on a weight whose half-ulp exceeds it.

/// Magnitude of a typical trained weight of the models this tool trains (embeddings and
/// projections of 0.5B-class transformers are initialised and stay near 0.02).
const TYPICAL_WEIGHT: f64 = 0.02;

/// Refuses `lr` when its steps (AdamW's normalised step is about `lr`) are below half an ulp of
/// a typical weight in `dtype`, naming `key` and the fix.
pub fn check_steps_survive_rounding(key: &str, lr: f64, dtype: &str) -> Result<(), String> {
    let significand_bits = match dtype {
        "bf16" => 8,
        "f16" => 11,
        _ => return Ok(()),
    };
    let half_ulp = TYPICAL_WEIGHT * 2f64.powi(-significand_bits);
    if lr < half_ulp {
        return Err(format!(
            "{key} = {lr:e} with {dtype} weights: a step that small is below half a {dtype} ulp of a typical \
             weight ({half_ulp:.1e}) and rounds away, so the weights would not move; train in f32 (the \
             generators can still sample in {dtype} with runtime.generator_dtype)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_below_half_an_ulp_really_rounds_away_and_is_refused() {
        // The premise, in real bf16: 0.02 + 1e-6 is 0.02 again; + 1e-4 moves it.
        use candle_core::{DType, Device, Tensor};
        let in_bf16 = |x: f64| {
            Tensor::new(&[x], &Device::Cpu).unwrap().to_dtype(DType::BF16).unwrap().to_dtype(DType::F64).unwrap().to_vec1::<f64>().unwrap()
                [0]
        };
        let w = in_bf16(TYPICAL_WEIGHT);
        assert_eq!(in_bf16(w + 1e-6), w);
        assert_ne!(in_bf16(w + 1e-4), w);
        let err = check_steps_survive_rounding("grpo.lr", 1e-6, "bf16").unwrap_err();
        assert!(err.starts_with("grpo.lr = 1e-6 with bf16 weights") && err.contains("runtime.generator_dtype"), "{err}");
        check_steps_survive_rounding("grpo.lr", 1e-4, "bf16").unwrap();
        check_steps_survive_rounding("grpo.lr", 1e-6, "f32").unwrap();
        assert!(check_steps_survive_rounding("sft.lr", 5e-6, "f16").is_err());
        check_steps_survive_rounding("sft.lr", 2e-5, "f16").unwrap();
    }
}
