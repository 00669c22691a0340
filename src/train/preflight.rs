//! Checks of a `srlm train` run that need the machine or the files, made once before the first
//! stage: a busy port, a bad data row, a missing teacher or device fails in seconds, and never
//! reaches the actor runtime, where any failure reads as a learner failure with a resume hint.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use candle_core::{DType, Device};

use crate::generate::memory::{check_fits, TooLarge};
use crate::learner::sft_data::{read_conversations, DataError};
use crate::model::load::{parse_device, ModelSource};
use crate::model::ModelConfig;
use crate::train::config::{Stage, TrainConfig};
use crate::train::placement::Placement;
use crate::train::problems::gsm8k_rows;

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error("runtime.metrics_addr = \"{addr}\": cannot listen there ({error}); free the port, pick another, or set it to \"\" for no metrics endpoint")]
    MetricsAddr { addr: String, error: std::io::Error },
    /// `key` is the config key naming the file (`data.train`, `sft.data`).
    #[error("{key}: {error}")]
    Data { key: &'static str, error: DataError },
    #[error("kd.teacher '{spec}': {reason}")]
    Teacher { spec: String, reason: String },
    #[error("kd.skip = {skip} leaves none of the {rows} problems of {}", path.display())]
    KdSkip { skip: usize, rows: usize, path: PathBuf },
    #[error("{0}")]
    Device(String),
    #[error("{keys}: {error}; lower them")]
    TooLarge { keys: &'static str, error: TooLarge },
}

/// Everything `run_training` would otherwise find only when a stage reaches it. `deterministic`
/// runs serve no metrics endpoint, so its address is not bound then.
pub fn preflight(cfg: &TrainConfig, deterministic: bool) -> Result<(), PreflightError> {
    check_devices(cfg)?;
    check_data_files(cfg)?;
    if let (Some(kd), true) = (&cfg.kd, cfg.stages.contains(&Stage::Kd)) {
        ModelSource::resolve(&kd.teacher).map_err(|e| PreflightError::Teacher { spec: kd.teacher.clone(), reason: e.to_string() })?;
    }
    let serves_metrics = !deterministic && !cfg.runtime.metrics_addr.is_empty();
    // An earlier run in this process may serve it already; that endpoint is the one to use.
    let served_here = srlm_actors::metrics::serving().is_some_and(|a| a.to_string() == cfg.runtime.metrics_addr);
    if serves_metrics && !served_here {
        check_metrics_addr(&cfg.runtime.metrics_addr)?;
    }
    Ok(())
}

/// The learner's device, and the generators' when a GRPO stage places them.
fn check_devices(cfg: &TrainConfig) -> Result<(), PreflightError> {
    parse_device(&cfg.model.device).map_err(|e| PreflightError::Device(format!("model.device: {e}")))?;
    if cfg.stages.contains(&Stage::Grpo) {
        let r = &cfg.runtime;
        Placement::new(&cfg.model.device, &r.generator_devices, r.pipeline.generators, r.generator_dtype.as_deref())
            .map_err(PreflightError::Device)?;
    }
    Ok(())
}

/// Every row of the data files, golds parsed, so a bad row names its line now rather than
/// restarting the scorer mid-run.
fn check_data_files(cfg: &TrainConfig) -> Result<(), PreflightError> {
    let kd_data = cfg.kd.as_ref().filter(|_| cfg.stages.contains(&Stage::Kd)).and_then(|kd| kd.data.as_ref());
    let files: [(&'static str, Option<&PathBuf>); 3] =
        [("data.train", cfg.data.train.as_ref()), ("data.heldout", cfg.data.heldout.as_ref()), ("kd.data", kd_data)];
    for (key, path) in files {
        if let Some(path) = path {
            let rows = gsm8k_rows(path, cfg.data.gold).map_err(|error| PreflightError::Data { key, error })?;
            let skip = cfg.kd.as_ref().map_or(0, |kd| kd.skip);
            if key == "kd.data" && skip >= rows.len() {
                return Err(PreflightError::KdSkip { skip, rows: rows.len(), path: path.clone() });
            }
        }
    }
    if let (Some(path), true) = (&cfg.sft.data, cfg.stages.contains(&Stage::Sft)) {
        read_conversations(path, cfg.sft.data_format, cfg.data.format).map_err(|error| PreflightError::Data { key: "sft.data", error })?;
    }
    Ok(())
}

/// Binds the address and lets it go: the runtime binds it again when GRPO starts, so a port
/// taken in between still fails there, but a busy or malformed one is found before any stage.
fn check_metrics_addr(addr: &str) -> Result<(), PreflightError> {
    let fail = |error| PreflightError::MetricsAddr { addr: addr.to_string(), error };
    let parsed: SocketAddr = addr.parse().map_err(|e| fail(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    TcpListener::bind(parsed).map(drop).map_err(fail)
}

/// Once the model and problems are loaded, before any stage: the rows each sampler decodes at
/// once fit in memory. A prompt's bytes bound its tokens, so no prompt is tokenized for this.
pub fn check_generation_memory(
    cfg: &TrainConfig,
    model: &ModelConfig,
    device: &Device,
    dtype: DType,
    prompts: &[&str],
) -> Result<(), PreflightError> {
    let longest = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
    let positions = |max_new: usize| (longest + max_new).min(model.max_position_embeddings);
    let fits = |keys, rows, max_new| {
        check_fits(model, device, dtype, rows, positions(max_new)).map_err(|error| PreflightError::TooLarge { keys, error })
    };
    fits("eval.samples, eval.max_new_tokens", cfg.eval.samples, cfg.eval.max_new_tokens)?;
    if cfg.stages.contains(&Stage::Grpo) {
        let r = &cfg.runtime;
        // Generators without a device of their own share the learner's memory.
        let rows = r.pipeline.group_size.saturating_mul(r.pipeline.groups_in_flight).saturating_mul(r.pipeline.generators);
        fits("runtime.group_size × groups_in_flight × generators, grpo.max_new_tokens", rows, cfg.grpo.max_new_tokens())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::config::TrainConfig;
    use std::path::Path;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    const GSM8K: &str = "stages = [\"grpo\"]\nout_dir = \"x\"\n[model]\nsource = \"m\"\n[data]\ntask = \"gsm8k\"\n";

    fn config(extra: &str) -> TrainConfig {
        TrainConfig::from_toml(&format!("{GSM8K}{extra}"), "x.toml").unwrap()
    }

    #[test]
    fn a_busy_metrics_port_is_named_unless_the_run_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let train = write(dir.path(), "t.jsonl", "{\"question\": \"q\", \"answer\": \"#### 1\"}\n");
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let cfg = config(&format!("train = {:?}\n[runtime]\nmetrics_addr = \"{addr}\"\n", train));
        let err = preflight(&cfg, false).unwrap_err().to_string();
        assert!(err.starts_with(&format!("runtime.metrics_addr = \"{addr}\": cannot listen there")), "{err}");
        preflight(&cfg, true).unwrap();
        drop(taken);
        preflight(&cfg, false).unwrap();
    }

    #[test]
    fn a_bad_gold_in_the_heldout_file_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let train = write(dir.path(), "t.jsonl", "{\"question\": \"q\", \"answer\": \"#### 1\"}\n");
        let heldout =
            write(dir.path(), "h.jsonl", "{\"question\": \"q\", \"answer\": \"#### 1\"}\n{\"question\": \"q\", \"answer\": \"one\"}\n");
        let cfg = config(&format!("train = {train:?}\nheldout = {heldout:?}\n[runtime]\nmetrics_addr = \"\"\n"));
        let err = preflight(&cfg, false).unwrap_err().to_string();
        assert!(err.starts_with("data.heldout: ") && err.contains("h.jsonl:2: 'answer'"), "{err}");
    }

    #[test]
    fn a_bad_row_of_the_sft_data_names_its_key_and_line() {
        // No metrics endpoint: the default port may be taken by a run on this machine.
        let dir = tempfile::tempdir().unwrap();
        let good = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]}\n";
        let data = write(dir.path(), "chat.jsonl", &format!("{good}{{\"messages\": []}}\n"));
        let text =
            format!("stages = [\"sft\"]\nout_dir = \"x\"\n[model]\nsource = \"m\"\n[sft]\ndata = {data:?}\ndata_format = \"chat\"\n[runtime]\nmetrics_addr = \"\"\n");
        let cfg = TrainConfig::from_toml(&text, "x.toml").unwrap();
        let err = preflight(&cfg, false).unwrap_err().to_string();
        assert!(err.starts_with("sft.data: ") && err.contains("chat.jsonl:2:"), "{err}");
        write(dir.path(), "chat.jsonl", good);
        preflight(&cfg, false).unwrap();
    }

    #[test]
    fn a_bad_row_of_the_kd_problems_names_its_key_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let train = write(dir.path(), "t.jsonl", "{\"question\": \"q\", \"answer\": \"#### 1\"}\n");
        let data = write(dir.path(), "kd.jsonl", "{\"question\": \"q\", \"answer\": \"#### 2\"}\n{\"question\": \"q\"}\n");
        let text = format!(
            "stages = [\"kd\"]\nout_dir = \"x\"\n[model]\nsource = \"m\"\n[data]\ntask = \"gsm8k\"\ntrain = {train:?}\n\
             [kd]\nteacher = \"t\"\ndata = {data:?}\n[runtime]\nmetrics_addr = \"\"\n"
        );
        let cfg = TrainConfig::from_toml(&text, "x.toml").unwrap();
        let err = preflight(&cfg, false).unwrap_err().to_string();
        assert!(err.starts_with("kd.data: ") && err.contains("kd.jsonl:2: missing string field 'answer'"), "{err}");
        write(dir.path(), "kd.jsonl", "{\"question\": \"q\", \"answer\": \"#### 2\"}\n");
        // Skipping every row of the file leaves nothing to sample: said before the teacher loads.
        let skipping = TrainConfig::from_toml(&text.replace("[kd]\n", "[kd]\nskip = 1\n"), "x.toml").unwrap();
        let err = preflight(&skipping, true).unwrap_err().to_string();
        assert!(err.starts_with("kd.skip = 1 leaves none of the 1 problems of") && err.contains("kd.jsonl"), "{err}");
        // Mended, the rows pass and the next check speaks: the teacher "t" is no checkpoint.
        let err = preflight(&cfg, false).unwrap_err().to_string();
        assert!(!err.contains("kd.data") && err.contains("'t'"), "{err}");
    }

    #[test]
    fn groups_too_large_for_memory_name_the_keys() {
        use crate::synthetic::{char_vocab_size, tiny_qwen2_config};
        let model = tiny_qwen2_config(char_vocab_size());
        let text = crate::train::config::EMBEDDED_DEFAULT;
        let cfg = TrainConfig::from_toml(text, "d.toml").unwrap();
        check_generation_memory(&cfg, &model, &Device::Cpu, DType::F32, &["1+1"]).unwrap();
        let cfg = TrainConfig::from_toml(&text.replace("group_size = 16", "group_size = 1000000000000"), "d.toml").unwrap();
        let err = check_generation_memory(&cfg, &model, &Device::Cpu, DType::F32, &["1+1"]).unwrap_err().to_string();
        assert!(err.starts_with("runtime.group_size × groups_in_flight × generators, grpo.max_new_tokens: 1000000000000 rows of up to 27 tokens need about "), "{err}");
        assert!(err.ends_with("; lower them"), "{err}");
    }

    #[test]
    fn a_missing_teacher_or_device_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let train = write(dir.path(), "t.jsonl", "{\"question\": \"q\", \"answer\": \"#### 1\"}\n");
        let kd = format!("train = {train:?}\n[kd]\nteacher = \"/nonexistent/teacher\"\n");
        let cfg = TrainConfig::from_toml(&format!("{}{kd}", GSM8K.replace("\"grpo\"", "\"kd\"")), "x.toml").unwrap();
        let err = preflight(&cfg, true).unwrap_err().to_string();
        assert!(err.starts_with("kd.teacher '/nonexistent/teacher': "), "{err}");
        let cfg = config(&format!("train = {train:?}\n[runtime]\ngenerator_devices = [\"gpu7\"]\n"));
        let err = preflight(&cfg, true).unwrap_err().to_string();
        assert!(err.contains("runtime.generator_devices: bad device 'gpu7'"), "{err}");
    }
}
