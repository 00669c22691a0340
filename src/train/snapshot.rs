//! Immutable copies of trainable weights: what the learner publishes as a policy version.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Result, Var};

use crate::model::Weights;

/// A copy of the current values of `vars` (named as the checkpoint names them). The learner
/// updates its `Var`s in place, so generators must never hold them directly: each version is
/// copied once and then shared by every generator on the device.
///
/// The copy is detached: a copy that recorded its `Var` as its source would keep the trained
/// variables alive as long as the version lives, and a model built over it would count as
/// trainable and take the training kernels (other rounding than a model over loaded weights).
pub fn snapshot(vars: &[(String, Var)]) -> Result<Weights> {
    let mut tensors = BTreeMap::new();
    for (name, var) in vars {
        tensors.insert(name.clone(), var.as_tensor().detach().copy()?);
    }
    Ok(Weights::new(tensors, Path::new("<policy snapshot>")))
}

/// A copy that shares no storage with `w` (a frozen reference must not move with the policy),
/// detached from any gradient graph `w` is part of (a frozen reference records none).
pub fn deep_copy(w: &Weights) -> Result<Weights> {
    let mut tensors = BTreeMap::new();
    for (name, t) in w.iter() {
        tensors.insert(name.to_string(), t.detach().copy()?);
    }
    Ok(Weights::new(tensors, Path::new("<reference policy>")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn values(w: &Weights) -> Vec<f32> {
        w.get("w", &[3]).unwrap().to_vec1().unwrap()
    }

    /// Published versions and the frozen reference are plain tensors: a copy that recorded the
    /// trained variable as its source would keep it alive and make a model over the copy take
    /// the training kernels.
    #[test]
    fn copies_record_no_gradient_graph_and_keep_their_values() {
        let var = Var::from_tensor(&Tensor::new(&[1f32, 2.0, 3.0], &Device::Cpu).unwrap()).unwrap();
        let published = snapshot(&[("w".to_string(), var.clone())]).unwrap();
        let derived = Weights::new(BTreeMap::from([("w".to_string(), (var.as_tensor() * 2.0).unwrap())]), Path::new("derived"));
        assert!(derived.get("w", &[3]).unwrap().track_op(), "a tensor computed from a Var records its graph");
        let reference = deep_copy(&derived).unwrap();
        var.set(&Tensor::new(&[7f32, 8.0, 9.0], &Device::Cpu).unwrap()).unwrap();
        for (copy, expected) in [(&published, [1.0, 2.0, 3.0]), (&reference, [2.0, 4.0, 6.0])] {
            assert!(!copy.get("w", &[3]).unwrap().track_op());
            assert_eq!(values(copy), expected);
        }
    }
}
