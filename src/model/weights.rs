//! Named tensors in HF naming (`model.layers.0.self_attn.q_proj.weight`), with their source file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};

use super::ModelError;

/// The weights of one checkpoint, keyed by HF tensor name.
#[derive(Clone)]
pub struct Weights {
    tensors: BTreeMap<String, Tensor>,
    /// Where they came from, for error messages.
    source: PathBuf,
}

impl Weights {
    pub fn new(tensors: BTreeMap<String, Tensor>, source: &Path) -> Self {
        Weights { tensors, source: source.to_path_buf() }
    }

    pub fn source(&self) -> &Path {
        &self.source
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn insert(&mut self, name: String, tensor: Tensor) {
        self.tensors.insert(name, tensor);
    }

    /// The tensor `name`, checked against the shape the model expects.
    pub fn get(&self, name: &str, expected: &[usize]) -> Result<Tensor, ModelError> {
        let t = self.tensors.get(name).ok_or_else(|| ModelError::MissingTensor { path: self.source.clone(), name: name.to_string() })?;
        if t.dims() != expected {
            return Err(ModelError::WrongShape {
                path: self.source.clone(),
                name: name.to_string(),
                expected: expected.to_vec(),
                found: t.dims().to_vec(),
            });
        }
        Ok(t.clone())
    }

    /// The same weights converted to `dtype` on `device`.
    pub fn to(&self, dtype: DType, device: &Device) -> Result<Weights, ModelError> {
        let mut tensors = BTreeMap::new();
        for (name, t) in &self.tensors {
            tensors.insert(name.clone(), t.to_device(device)?.to_dtype(dtype)?);
        }
        Ok(Weights { tensors, source: self.source.clone() })
    }

    /// Trainable copies: each tensor becomes a `Var`, so a model built from the returned
    /// weights records gradients for them.
    pub fn to_vars(&self) -> Result<(Weights, Vec<(String, Var)>), ModelError> {
        let mut tensors = BTreeMap::new();
        let mut vars = Vec::with_capacity(self.tensors.len());
        for (name, t) in &self.tensors {
            let var = Var::from_tensor(t)?;
            tensors.insert(name.clone(), var.as_tensor().clone());
            vars.push((name.clone(), var));
        }
        Ok((Weights { tensors, source: self.source.clone() }, vars))
    }

    /// Total number of scalars.
    pub fn numel(&self) -> usize {
        self.tensors.values().map(Tensor::elem_count).sum()
    }
}
