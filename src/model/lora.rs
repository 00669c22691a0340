//! LoRA adapters: y = x Wᵀ + (α/r)·dropout(x) Aᵀ Bᵀ on chosen projections, W frozen; merge, PEFT save/load.
//!
//! Only A (r, in) and B (out, r) are `Var`s. The base weights stay the tensors the model was
//! loaded with: no copy per step and no gradient is ever computed for them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::{ModelConfig, ModelError, Weights};

/// Whether a PEFT config value turns on a feature this loader refuses.
type IsSet = fn(&Value) -> bool;

/// Projections LoRA can wrap, with the block they live in (`self_attn` or `mlp`).
pub const LORA_MODULES: [(&str, &str); 7] = [
    ("self_attn", "q_proj"),
    ("self_attn", "k_proj"),
    ("self_attn", "v_proj"),
    ("self_attn", "o_proj"),
    ("mlp", "gate_proj"),
    ("mlp", "up_proj"),
    ("mlp", "down_proj"),
];

pub const ADAPTER_CONFIG: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// PEFT prefixes every tensor of a causal LM with this (PeftModel → LoraModel → the HF model).
const PEFT_PREFIX: &str = "base_model.model.";

#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    #[error("LoRA target module '{name}' does not exist in this architecture (available: {})", available.join(", "))]
    UnknownModule { name: String, available: Vec<String> },
    #[error("LoRA needs at least one target module")]
    NoTargets,
    #[error("LoRA rank must be at least 1 and dropout in [0, 1), got r = {r}, dropout = {dropout}")]
    BadHyper { r: usize, dropout: f64 },
    #[error("{path}: {reason}")]
    BadAdapter { path: PathBuf, reason: String },
    #[error("LoRA dropout RNG poisoned by a panic in another thread")]
    Poisoned,
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f64,
    pub dropout: f64,
    /// Short names such as `q_proj`; every layer's module of that name is wrapped.
    pub target_modules: Vec<String>,
    /// Seeds A's initialisation and the dropout masks.
    pub seed: u64,
}

impl LoraConfig {
    pub fn scale(&self) -> f64 {
        self.alpha / self.r as f64
    }
}

/// One wrapped projection: its two trainable factors.
struct Pair {
    a: Var,
    b: Var,
}

/// The adapters of every wrapped projection, keyed by module path (`model.layers.0.self_attn.q_proj`).
pub struct LoraAdapters {
    cfg: LoraConfig,
    modules: BTreeMap<String, Pair>,
    /// Shared by every branch so masks follow one seeded stream in forward order.
    dropout_rng: Arc<Mutex<ChaCha8Rng>>,
}

/// The low-rank branch a `Linear` adds to its output.
#[derive(Clone)]
pub(crate) struct LoraBranch {
    a: Tensor,
    b: Tensor,
    scale: f64,
    /// Drop probability and mask stream; None in evaluation or when p = 0.
    dropout: Option<(f64, Arc<Mutex<ChaCha8Rng>>)>,
}

impl LoraBranch {
    /// (A, B, scale) when the whole LoRA linear can run as one fused op: no dropout, CPU floats.
    pub(crate) fn fusable_factors(&self, x: &Tensor) -> Option<(&Tensor, &Tensor, f64)> {
        (self.dropout.is_none() && super::train_kernels::fusable(x)).then_some((&self.a, &self.b, self.scale))
    }

    /// (α/r)·dropout(x) Aᵀ Bᵀ for x (rows, in).
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = match &self.dropout {
            Some((p, rng)) => dropout(x, *p, rng)?,
            None => x.clone(),
        };
        // Scaling the (rows, r) product rather than the output keeps one fewer (rows, out)
        // activation alive for backward.
        let low = (x.matmul(&self.a.t()?)? * self.scale)?;
        low.matmul(&self.b.t()?)
    }
}

/// Inverted dropout with a mask drawn on the host from the seeded stream (candle's own RNG
/// cannot be seeded per run on CPU).
fn dropout(x: &Tensor, p: f64, rng: &Mutex<ChaCha8Rng>) -> candle_core::Result<Tensor> {
    let keep = 1.0 - p;
    let mask: Vec<f32> = {
        let mut rng = rng.lock().map_err(|_| candle_core::Error::Msg("LoRA dropout RNG poisoned".into()))?;
        (0..x.elem_count()).map(|_| if rng.gen::<f64>() < keep { (1.0 / keep) as f32 } else { 0.0 }).collect()
    };
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    x * mask
}

/// Which adapters a model being built attaches, and whether dropout is on.
#[derive(Clone, Copy)]
pub struct LoraAttach<'a> {
    pub adapters: &'a LoraAdapters,
    pub training: bool,
}

impl LoraAttach<'_> {
    pub(crate) fn branch(&self, module: &str) -> Option<LoraBranch> {
        let pair = self.adapters.modules.get(module)?;
        let p = self.adapters.cfg.dropout;
        Some(LoraBranch {
            a: pair.a.as_tensor().clone(),
            b: pair.b.as_tensor().clone(),
            scale: self.adapters.cfg.scale(),
            dropout: (self.training && p > 0.0).then(|| (p, self.adapters.dropout_rng.clone())),
        })
    }
}

/// Short module names this checkpoint has projections for, in canonical order.
pub fn available_modules(base: &Weights) -> Vec<String> {
    LORA_MODULES
        .iter()
        .filter(|(block, name)| base.contains(&format!("model.layers.0.{block}.{name}.weight")))
        .map(|(_, name)| name.to_string())
        .collect()
}

/// Module paths (`model.layers.N.block.name`) wrapped for `targets`, checked against `base`.
fn target_paths(targets: &[String], base: &Weights, num_layers: usize) -> Result<Vec<String>, LoraError> {
    if targets.is_empty() {
        return Err(LoraError::NoTargets);
    }
    let available = available_modules(base);
    let mut paths = Vec::new();
    for name in targets {
        let Some((block, _)) = LORA_MODULES.iter().find(|(_, m)| m == name).filter(|_| available.contains(name)) else {
            return Err(LoraError::UnknownModule { name: name.clone(), available });
        };
        paths.extend((0..num_layers).map(|i| format!("model.layers.{i}.{block}.{name}")));
    }
    Ok(paths)
}

/// (out, in) of the base projection at `path`.
fn base_shape(base: &Weights, path: &str) -> Result<(usize, usize), LoraError> {
    let name = format!("{path}.weight");
    let w = base
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| t)
        .ok_or_else(|| ModelError::MissingTensor { path: base.source().to_path_buf(), name: name.clone() })?;
    Ok(w.dims2()?)
}

impl LoraAdapters {
    /// Fresh adapters as PEFT initialises them: A kaiming-uniform with a = √5, i.e. U(±1/√in),
    /// and B zero, so the wrapped model starts equal to the base model.
    pub fn init(cfg: &LoraConfig, base: &Weights, model: &ModelConfig) -> Result<Self, LoraError> {
        if cfg.r == 0 || !(0.0..1.0).contains(&cfg.dropout) {
            return Err(LoraError::BadHyper { r: cfg.r, dropout: cfg.dropout });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut modules = BTreeMap::new();
        for path in target_paths(&cfg.target_modules, base, model.num_layers)? {
            let (out, inp) = base_shape(base, &path)?;
            let (device, dtype) = base_device_dtype(base);
            let bound = 1.0 / (inp as f64).sqrt();
            let a: Vec<f32> = (0..cfg.r * inp).map(|_| rng.gen_range(-bound..bound) as f32).collect();
            let a = Tensor::from_vec(a, (cfg.r, inp), &device)?.to_dtype(dtype)?;
            let b = Tensor::zeros((out, cfg.r), dtype, &device)?;
            modules.insert(path, Pair { a: Var::from_tensor(&a)?, b: Var::from_tensor(&b)? });
        }
        Ok(Self::assemble(cfg.clone(), modules))
    }

    fn assemble(cfg: LoraConfig, modules: BTreeMap<String, Pair>) -> Self {
        // A distinct stream from A's initialisation, so changing r does not shift the masks' seed.
        let dropout_rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x6c6f_7261_6472_6f70);
        LoraAdapters { cfg, modules, dropout_rng: Arc::new(Mutex::new(dropout_rng)) }
    }

    pub fn config(&self) -> &LoraConfig {
        &self.cfg
    }

    /// The trainable tensors, A and B of every module, named as in the PEFT file.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.modules
            .iter()
            .flat_map(|(path, p)| [(peft_name(path, "lora_A"), p.a.clone()), (peft_name(path, "lora_B"), p.b.clone())])
            .collect()
    }

    /// The dropout mask stream where it stands (a checkpoint saves it for exact resume).
    pub fn dropout_rng(&self) -> Result<ChaCha8Rng, LoraError> {
        Ok(self.dropout_rng.lock().map_err(|_| LoraError::Poisoned)?.clone())
    }

    /// Moves the dropout mask stream to `rng`, for every model built on these adapters.
    pub fn set_dropout_rng(&self, rng: ChaCha8Rng) -> Result<(), LoraError> {
        *self.dropout_rng.lock().map_err(|_| LoraError::Poisoned)? = rng;
        Ok(())
    }

    /// Module paths wrapped, sorted.
    pub fn module_paths(&self) -> impl Iterator<Item = &str> {
        self.modules.keys().map(String::as_str)
    }

    /// (A, B) of one module path.
    pub fn factors(&self, path: &str) -> Option<(&Tensor, &Tensor)> {
        self.modules.get(path).map(|p| (p.a.as_tensor(), p.b.as_tensor()))
    }

    /// Base weights with every wrapped projection replaced by W + (α/r)·B·A (computed in f32).
    /// The result records no gradient graph: one over the adapters would keep B·A and its scaled
    /// copy (together twice the wrapped matrices) alive as long as the merged weights live.
    pub fn merged(&self, base: &Weights) -> Result<Weights, LoraError> {
        let mut out = base.clone();
        for (path, pair) in &self.modules {
            let name = format!("{path}.weight");
            let (out_dim, inp) = base_shape(base, path)?;
            let w = base.get(&name, &[out_dim, inp])?.detach();
            let (a, b) = (pair.a.as_tensor().detach(), pair.b.as_tensor().detach());
            let delta = b.to_dtype(DType::F32)?.matmul(&a.to_dtype(DType::F32)?)?;
            let merged = (w.to_dtype(DType::F32)? + (delta * self.cfg.scale())?)?.to_dtype(w.dtype())?;
            out.insert(name, merged);
        }
        Ok(out)
    }

    /// Writes a PEFT adapter directory (adapter_config.json + adapter_model.safetensors)
    /// atomically; `base_model` goes into `base_model_name_or_path`.
    pub fn save_peft(&self, dir: &Path, base_model: &str, overwrite: bool) -> Result<(), LoraError> {
        if dir.exists() && !overwrite {
            return Err(ModelError::NotFound(format!("{}: already exists", dir.display())).into());
        }
        let tmp = super::export::temporary_sibling(dir)?;
        let result = self.write_peft(&tmp, base_model).and_then(|()| Ok(super::export::replace_dir(&tmp, dir)?));
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    fn write_peft(&self, dir: &Path, base_model: &str) -> Result<(), LoraError> {
        super::export::write_json(&dir.join(ADAPTER_CONFIG), &self.peft_config(base_model))?;
        let path = dir.join(ADAPTER_WEIGHTS);
        candle_core::safetensors::save(&self.peft_tensors()?, &path)
            .map_err(|e| ModelError::weights(&path, format!("cannot write: {e}")))?;
        Ok(super::export::sync_dir_files(dir)?)
    }

    /// The contents of adapter_config.json; `base_model` goes into `base_model_name_or_path`.
    pub fn peft_config(&self, base_model: &str) -> Value {
        let mut targets: Vec<&str> =
            LORA_MODULES.iter().map(|(_, m)| *m).filter(|m| self.cfg.target_modules.iter().any(|t| t == m)).collect();
        targets.dedup();
        // PEFT fills every key it does not find with its default; these are the ones that
        // decide how the adapter is applied.
        json!({
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "base_model_name_or_path": base_model,
            "r": self.cfg.r,
            "lora_alpha": self.cfg.alpha,
            "lora_dropout": self.cfg.dropout,
            "target_modules": targets,
            "bias": "none",
            "fan_in_fan_out": false,
            "use_rslora": false,
            "use_dora": false,
            "modules_to_save": null,
            "layers_to_transform": null,
            "layers_pattern": null,
            "rank_pattern": {},
            "alpha_pattern": {},
            "init_lora_weights": true,
            "inference_mode": true,
            "revision": null,
        })
    }

    /// The contents of adapter_model.safetensors, on the CPU.
    pub fn peft_tensors(&self) -> Result<std::collections::HashMap<String, Tensor>, LoraError> {
        let mut tensors = std::collections::HashMap::new();
        for (name, var) in self.vars() {
            tensors.insert(name, var.as_tensor().to_device(&Device::Cpu)?);
        }
        Ok(tensors)
    }

    /// Reads a PEFT adapter directory for the model whose weights are `base`. Features this
    /// crate does not apply (DoRA, rsLoRA, per-module ranks, bias training, fan-in-fan-out,
    /// modules_to_save) are refused rather than silently ignored.
    pub fn load_peft(dir: &Path, base: &Weights, model: &ModelConfig) -> Result<Self, LoraError> {
        let config_path = dir.join(ADAPTER_CONFIG);
        let bad = |path: &Path, reason: String| LoraError::BadAdapter { path: path.to_path_buf(), reason };
        let text = std::fs::read_to_string(&config_path).map_err(|e| ModelError::io(&config_path, e))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| bad(&config_path, format!("not valid JSON: {e}")))?;
        let cfg = peft_config(&json).map_err(|reason| bad(&config_path, reason))?;
        let weights_path = dir.join(ADAPTER_WEIGHTS);
        let mut tensors = candle_core::safetensors::load(&weights_path, &Device::Cpu)
            .map_err(|e| bad(&weights_path, format!("not a readable safetensors file: {e}")))?;
        let (device, dtype) = base_device_dtype(base);
        let mut modules = BTreeMap::new();
        for path in target_paths(&cfg.target_modules, base, model.num_layers)? {
            let (out, inp) = base_shape(base, &path)?;
            let mut take = |part: &str, shape: (usize, usize)| -> Result<Var, LoraError> {
                let name = peft_name(&path, part);
                let t = tensors.remove(&name).ok_or_else(|| bad(&weights_path, format!("missing tensor '{name}'")))?;
                if t.dims2().ok() != Some(shape) {
                    return Err(bad(&weights_path, format!("tensor '{name}' has shape {:?}, expected {shape:?}", t.dims())));
                }
                Ok(Var::from_tensor(&t.to_dtype(dtype)?.to_device(&device)?)?)
            };
            let a = take("lora_A", (cfg.r, inp))?;
            let b = take("lora_B", (out, cfg.r))?;
            modules.insert(path, Pair { a, b });
        }
        if let Some(extra) = tensors.keys().next() {
            return Err(bad(&weights_path, format!("tensor '{extra}' belongs to no target module of adapter_config.json")));
        }
        Ok(Self::assemble(cfg, modules))
    }
}

fn peft_name(path: &str, part: &str) -> String {
    format!("{PEFT_PREFIX}{path}.{part}.weight")
}

fn base_device_dtype(base: &Weights) -> (Device, DType) {
    base.iter().next().map_or((Device::Cpu, DType::F32), |(_, t)| (t.device().clone(), t.dtype()))
}

/// The LoRA settings of a PEFT adapter_config.json.
fn peft_config(json: &Value) -> Result<LoraConfig, String> {
    let field = |key: &str| json.get(key).filter(|v| !v.is_null());
    if let Some(kind) = field("peft_type").and_then(Value::as_str) {
        if kind != "LORA" {
            return Err(format!("peft_type is '{kind}', only LORA is supported"));
        }
    }
    let r = field("r").and_then(Value::as_u64).ok_or("missing integer field 'r'")? as usize;
    let alpha = field("lora_alpha").and_then(Value::as_f64).ok_or("missing number field 'lora_alpha'")?;
    let dropout = field("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0);
    let target_modules = match field("target_modules") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string).ok_or("target_modules must hold strings".to_string()))
            .collect::<Result<Vec<_>, _>>()?,
        Some(Value::String(s)) => return Err(format!("target_modules is the pattern '{s}'; only a list of names is supported")),
        _ => return Err("missing list field 'target_modules'".into()),
    };
    let unsupported: [(&str, IsSet); 6] = [
        ("use_dora", |v| v.as_bool() == Some(true)),
        ("use_rslora", |v| v.as_bool() == Some(true)),
        ("fan_in_fan_out", |v| v.as_bool() == Some(true)),
        ("bias", |v| v.as_str().is_some_and(|b| b != "none")),
        ("rank_pattern", |v| v.as_object().is_some_and(|m| !m.is_empty())),
        ("alpha_pattern", |v| v.as_object().is_some_and(|m| !m.is_empty())),
    ];
    for (key, used) in unsupported {
        if field(key).is_some_and(used) {
            return Err(format!("'{key}' = {} is not supported", json[key]));
        }
    }
    for key in ["modules_to_save", "layers_to_transform"] {
        if field(key).is_some_and(|v| v.as_array().is_none_or(|a| !a.is_empty())) {
            return Err(format!("'{key}' = {} is not supported", json[key]));
        }
    }
    if r == 0 || !(0.0..1.0).contains(&dropout) {
        return Err(format!("r = {r}, lora_dropout = {dropout} out of range"));
    }
    Ok(LoraConfig { r, alpha, dropout, target_modules, seed: 0 })
}
