//! A run's recipe as flat `section.key → value` pairs: what its checkpoints record, so a resumed
//! run can be refused when the recipe changed, naming the keys that differ.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::train::config::{EvalSection, GrpoSection, RuntimeSection, SftSection, TrainConfig};

/// Keys a resumed run may change: how long it runs, how often it saves, where it reports and
/// on which devices it computes. Every other key changes what is trained.
pub const MAY_CHANGE_ON_RESUME: &[&str] = &[
    "out_dir",
    "grpo.steps",
    "runtime.checkpoint_every",
    "runtime.keep_checkpoints",
    "runtime.log_rollouts_every",
    "runtime.metrics_addr",
    "model.device",
    "runtime.generator_devices",
    "runtime.generator_cores",
    "runtime.learner_core",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    /// Dotted key → the value as JSON text; every field, defaults included.
    entries: BTreeMap<String, String>,
}

impl Recipe {
    pub fn of(cfg: &TrainConfig) -> Self {
        let value = serde_json::to_value(cfg).expect("a parsed config serializes");
        let mut entries = BTreeMap::new();
        flatten("", &value, &mut entries);
        Recipe { entries }
    }

    /// Hash of the keys that must not change on resume.
    pub fn hash(&self) -> String {
        let mut h = crc32fast::Hasher::new();
        for (key, value) in self.fixed() {
            h.update(key.as_bytes());
            h.update(b"=");
            h.update(value.as_bytes());
            h.update(b"\n");
        }
        format!("{:08x}", h.finalize())
    }

    /// The keys that differ from `saved` and may not change on resume, as `key: saved → now`.
    /// A key `saved` lacks was added to srlm after that run began; at its default it trains as
    /// the code did before the key existed, so only another value counts as a change.
    pub fn changes_since(&self, saved: &Recipe) -> Vec<String> {
        let defaults = section_defaults();
        let absent = "(absent)".to_string();
        let mut keys: Vec<&String> = self.fixed().chain(saved.fixed()).map(|(k, _)| k).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter_map(|k| {
                let newer_key_at_default = !saved.entries.contains_key(k) && self.entries.get(k) == defaults.get(k);
                let (before, now) = (saved.entries.get(k).unwrap_or(&absent), self.entries.get(k).unwrap_or(&absent));
                (before != now && !newer_key_at_default).then(|| format!("{k}: {before} → {now}"))
            })
            .collect()
    }

    pub fn to_json(&self) -> Value {
        Value::Object(self.entries.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect())
    }

    pub fn from_json(value: &Value) -> Option<Self> {
        let entries = value.as_object()?.iter().map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect::<Option<_>>()?;
        Some(Recipe { entries })
    }

    fn fixed(&self) -> impl Iterator<Item = (&String, &String)> {
        self.entries.iter().filter(|(k, _)| !MAY_CHANGE_ON_RESUME.contains(&k.as_str()))
    }
}

/// The dotted keys of the sections that have defaults, at those defaults.
fn section_defaults() -> BTreeMap<String, String> {
    let sections = serde_json::json!({
        "eval": EvalSection::default(),
        "sft": SftSection::default(),
        "grpo": GrpoSection::default(),
        "runtime": RuntimeSection::default(),
    });
    let mut entries = BTreeMap::new();
    flatten("", &sections, &mut entries);
    entries
}

/// Objects become dotted keys; anything else (numbers, strings, lists) is one value.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::config::EMBEDDED_DEFAULT;

    fn recipe(edit: impl Fn(&mut TrainConfig)) -> Recipe {
        let mut cfg = TrainConfig::from_toml(EMBEDDED_DEFAULT, "default").unwrap();
        edit(&mut cfg);
        Recipe::of(&cfg)
    }

    #[test]
    fn a_changed_learning_setting_is_named_and_changes_the_hash() {
        let saved = recipe(|_| {});
        let now = recipe(|c| {
            c.grpo.lr = 1e-3;
            c.runtime.pipeline.group_size = 8;
        });
        assert_eq!(now.changes_since(&saved), vec!["grpo.lr: 0.0003 → 0.001", "runtime.group_size: 16 → 8"]);
        assert_ne!(now.hash(), saved.hash());
    }

    #[test]
    fn length_cadence_address_and_devices_may_change() {
        let saved = recipe(|_| {});
        let now = recipe(|c| {
            c.grpo.steps = 400;
            c.runtime.pipeline.checkpoint_every = 5;
            c.runtime.metrics_addr = "127.0.0.1:9999".into();
            c.out_dir = "elsewhere".into();
            c.model.device = "cuda:0".into();
        });
        assert!(now.changes_since(&saved).is_empty(), "{:?}", now.changes_since(&saved));
        assert_eq!(now.hash(), saved.hash());
    }

    /// A checkpoint from before a key existed resumes while the key keeps its default.
    #[test]
    fn a_key_added_since_the_run_began_counts_only_when_set() {
        let mut saved = recipe(|_| {});
        saved.entries.remove("grpo.ratio_cap");
        saved.entries.remove("sft.weight_decay");
        assert!(recipe(|_| {}).changes_since(&saved).is_empty(), "{:?}", recipe(|_| {}).changes_since(&saved));
        let set = recipe(|c| c.grpo.algo.loss.ratio_cap = Some(1.5));
        assert_eq!(set.changes_since(&saved), vec!["grpo.ratio_cap: (absent) → 1.5"]);
    }

    #[test]
    fn defaults_count_as_set_and_the_json_round_trips() {
        let saved = recipe(|_| {});
        assert!(saved.entries.contains_key("grpo.epsilon_high"), "defaults are part of the recipe");
        assert_eq!(Recipe::from_json(&saved.to_json()), Some(saved.clone()));
        let added_kd = recipe(|c| {
            c.kd = Some(toml::from_str("teacher = \"t.gguf\"").unwrap());
        });
        assert!(
            added_kd.changes_since(&saved).iter().any(|c| c.starts_with("kd.teacher: (absent) → ")),
            "{:?}",
            added_kd.changes_since(&saved)
        );
    }
}
