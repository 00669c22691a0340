//! Immutable copies of trainable weights: what the learner publishes as a policy version.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Result, Var};

use crate::model::Weights;

/// A copy of the current values of `vars` (named as the checkpoint names them). The learner
/// updates its `Var`s in place, so generators must never hold them directly: each version is
/// copied once and then shared by every generator on the device.
pub fn snapshot(vars: &[(String, Var)], frozen: &Weights) -> Result<Weights> {
    let mut tensors = BTreeMap::new();
    for (name, t) in frozen.iter() {
        tensors.insert(name.to_string(), t.clone());
    }
    for (name, var) in vars {
        tensors.insert(name.clone(), var.as_tensor().copy()?);
    }
    Ok(Weights::new(tensors, Path::new("<policy snapshot>")))
}
