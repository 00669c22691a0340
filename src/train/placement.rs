//! Where each role of a GRPO run computes: the learner on `[model] device`, each generator on its
//! entry of `[runtime] generator_devices` (all on the learner's device when the list is empty).
//! Equal names are one device slot and share one copy of each policy version; `cpu:N` is the CPU
//! as a slot of its own, so a CPU-only machine exercises the copy path.

use std::time::Instant;

use candle_core::{DType, Device};
use srlm_actors::CopyToDevice;

use crate::model::load::{parse_device, parse_dtype};
use crate::model::Weights;
use crate::train::snapshot::deep_copy;

pub struct Placement {
    /// Device name of each slot; slot 0 is the learner's.
    pub names: Vec<String>,
    devices: Vec<Device>,
    /// Slot of each generator, by generator index.
    pub generator_slots: Vec<usize>,
    /// The dtype generators compute in (the learner's unless `[runtime] generator_dtype`).
    generator_dtype: Option<DType>,
}

impl Placement {
    /// `generators` devices named by `generator_devices` (empty: all on `learner`).
    pub fn new(learner: &str, generator_devices: &[String], generators: usize, generator_dtype: Option<&str>) -> Result<Self, String> {
        check_count(generator_devices, generators)?;
        let generator_dtype = generator_dtype.map(|d| parse_dtype(d).map_err(|e| format!("runtime.generator_dtype: {e}"))).transpose()?;
        // Generators in a dtype of their own never share the learner's tensors, even on its device.
        let own_copy = usize::from(generator_dtype.is_some());
        let listed = match generator_devices {
            [] => vec![learner.to_string(); generators],
            some => some.to_vec(),
        };
        let mut names = vec![learner.to_string()];
        let mut devices = vec![parse_device(learner).map_err(|e| format!("model.device: {e}"))?];
        let mut generator_slots = Vec::with_capacity(generators);
        for name in listed {
            let slot = match names.iter().skip(own_copy).position(|n| *n == name) {
                Some(found) => found + own_copy,
                None => {
                    devices.push(parse_device(&name).map_err(|e| format!("runtime.generator_devices: {e}"))?);
                    names.push(name);
                    names.len() - 1
                }
            };
            generator_slots.push(slot);
        }
        Ok(Self { names, devices, generator_slots, generator_dtype })
    }

    /// Whether some generator computes elsewhere than the learner (a copy per version).
    pub fn has_foreign_generators(&self) -> bool {
        self.generator_slots.iter().any(|&s| s != 0)
    }

    /// The hook the runtime calls once per (version, foreign slot). A failed copy (out of device
    /// memory) panics the generator, which the supervisor restarts and reports.
    pub fn copy_hook(&self) -> CopyToDevice<Weights> {
        let (devices, names, dtype) = (self.devices.clone(), self.names.clone(), self.generator_dtype);
        Box::new(move |w: &Weights, slot: usize| {
            let started = Instant::now();
            let copied = copy_weights(w, &devices[slot], dtype);
            let copied = copied.unwrap_or_else(|e| panic!("copying the policy to {}: {e}", names[slot]));
            tracing::debug!("policy copied to {} in {:.3}s", names[slot], started.elapsed().as_secs_f64());
            copied
        })
    }
}

/// One device per generator, or none listed (all on the learner's).
pub fn check_count(generator_devices: &[String], generators: usize) -> Result<(), String> {
    if generator_devices.is_empty() || generator_devices.len() == generators {
        return Ok(());
    }
    Err(format!(
        "runtime.generator_devices names {} devices but runtime.generators is {generators}: name one device per generator",
        generator_devices.len()
    ))
}

/// `w` on `device` in `dtype` (its own when None), sharing no storage with `w`. Moves to the
/// device first, so a CPU → GPU copy converts on the GPU.
pub fn copy_weights(w: &Weights, device: &Device, dtype: Option<DType>) -> candle_core::Result<Weights> {
    let first = w.iter().next().map(|(_, t)| t.clone());
    let dtype = dtype.or(first.as_ref().map(|t| t.dtype())).unwrap_or(DType::F32);
    let same_place = first.is_some_and(|t| t.device().same_device(device) && t.dtype() == dtype);
    if same_place {
        return deep_copy(w);
    }
    w.to(dtype, device).map_err(|e| candle_core::Error::Msg(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::Path;

    use candle_core::Tensor;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn equal_names_share_a_slot_and_the_learner_is_slot_zero() {
        let p = Placement::new("cpu", &names(&["cpu:1", "cpu", "cpu:1", "cpu:2"]), 4, None).unwrap();
        assert_eq!(p.names, names(&["cpu", "cpu:1", "cpu:2"]));
        assert_eq!(p.generator_slots, vec![1, 0, 1, 2]);
        assert!(p.has_foreign_generators());
        let home = Placement::new("cpu", &[], 3, None).unwrap();
        assert_eq!(home.generator_slots, vec![0, 0, 0]);
        assert!(!home.has_foreign_generators());
        // A generator dtype of their own gives home generators a copy of their own.
        let bf16 = Placement::new("cpu", &[], 2, Some("bf16")).unwrap();
        assert_eq!((bf16.names.len(), bf16.generator_slots.clone()), (2, vec![1, 1]));
    }

    #[test]
    fn bad_placements_name_the_key() {
        let err = Placement::new("cpu", &names(&["cpu:1"]), 2, None).err().unwrap();
        assert!(err.contains("runtime.generator_devices") && err.contains("runtime.generators is 2"), "{err}");
        let err = Placement::new("cpu", &names(&["gpu"]), 1, None).err().unwrap();
        assert!(err.contains("runtime.generator_devices") && err.contains("gpu"), "{err}");
        let err = Placement::new("cpu", &[], 1, Some("f8")).err().unwrap();
        assert!(err.contains("runtime.generator_dtype"), "{err}");
    }

    #[test]
    fn a_copy_shares_no_storage_and_takes_the_generator_dtype() {
        let t = Tensor::new(&[1.5f32, -2.0, 3.25], &Device::Cpu).unwrap();
        let w = Weights::new(BTreeMap::from([("a".to_string(), t)]), Path::new("test"));
        let p = Placement::new("cpu", &names(&["cpu:1"]), 1, Some("bf16")).unwrap();
        let copied = (p.copy_hook())(&w, 1);
        let (_, c) = copied.iter().next().unwrap();
        assert_eq!(c.dtype(), DType::BF16);
        assert_eq!(c.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap(), vec![1.5, -2.0, 3.25]);
        let same = copy_weights(&w, &Device::Cpu, None).unwrap();
        let (_, s) = same.iter().next().unwrap();
        let (_, orig) = w.iter().next().unwrap();
        assert_eq!(s.to_vec1::<f32>().unwrap(), orig.to_vec1::<f32>().unwrap());
    }
}
