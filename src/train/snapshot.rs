//! Immutable copies of trainable weights: what the learner publishes as a policy version.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Result, Var};

use crate::model::Weights;

/// A copy of the current values of `vars` (named as the checkpoint names them). The learner
/// updates its `Var`s in place, so generators must never hold them directly: each version is
/// copied once and then shared by every generator on the device.
pub fn snapshot(vars: &[(String, Var)]) -> Result<Weights> {
    let mut tensors = BTreeMap::new();
    for (name, var) in vars {
        tensors.insert(name.clone(), var.as_tensor().copy()?);
    }
    Ok(Weights::new(tensors, Path::new("<policy snapshot>")))
}

/// A copy that shares no storage with `w` (a frozen reference must not move with the policy).
pub fn deep_copy(w: &Weights) -> Result<Weights> {
    let mut tensors = BTreeMap::new();
    for (name, t) in w.iter() {
        tensors.insert(name.to_string(), t.copy()?);
    }
    Ok(Weights::new(tensors, Path::new("<reference policy>")))
}
