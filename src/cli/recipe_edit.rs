//! Recipe edits: a `srlm train` TOML recipe as a table whose dotted keys can be set
//! (`runtime.max_staleness = 2`) and written back, so a benchmark can derive one recipe per mode.

use std::path::Path;

use anyhow::{bail, Context, Result};
use srlm::train::config::TrainConfig;
use toml::{Table, Value};

pub struct Recipe {
    pub table: Table,
}

impl Recipe {
    /// `origin` names the text in errors (a file path, or the embedded recipe's name).
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let table = text.parse::<Table>().with_context(|| format!("{origin}: not a TOML table"))?;
        Ok(Self { table })
    }

    /// Sets `key`, `section.key` or `section.sub.key` (`grpo.lora.r`), creating sections when
    /// absent.
    pub fn set(&mut self, dotted: &str, value: Value) -> Result<()> {
        let parts: Vec<&str> = dotted.split('.').collect();
        let Some((key, sections)) = parts.split_last().filter(|_| parts.iter().all(|p| !p.is_empty())) else {
            bail!("'{dotted}': expected `key`, `section.key` or `section.sub.key`");
        };
        let mut table = &mut self.table;
        for (depth, section) in sections.iter().enumerate() {
            table = match table.entry(*section).or_insert_with(|| Value::Table(Table::new())) {
                Value::Table(t) => t,
                _ => bail!("'{dotted}': '{}' is not a section", sections[..=depth].join(".")),
            };
        }
        table.insert(key.to_string(), value);
        Ok(())
    }

    /// Applies each `KEY=VALUE` of the command line (`--set`), naming the one that fails.
    pub fn apply(&mut self, assignments: &[String]) -> Result<()> {
        for a in assignments {
            let (key, value) = parse_assignment(a)?;
            self.set(&key, value).with_context(|| format!("--set {a}"))?;
        }
        Ok(())
    }

    /// Removes `section.key` when present.
    pub fn remove(&mut self, section: &str, key: &str) {
        if let Some(Value::Table(t)) = self.table.get_mut(section) {
            t.remove(key);
        }
    }

    /// The stage names in order (`stages = [...]`).
    pub fn stages(&self) -> Vec<String> {
        let stages = self.table.get("stages").and_then(Value::as_array);
        stages.map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
    }

    /// Writes the recipe to `path` and checks it the way `srlm train` will, so a bad edit fails
    /// here, naming the file, before any child process starts.
    pub fn write_checked(&self, path: &Path) -> Result<TrainConfig> {
        let text = toml::to_string(&self.table).context("serialising the recipe")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(TrainConfig::from_file(path)?)
    }
}

/// `text` (from `origin`) with each `KEY=VALUE` of `assignments` applied, as TOML text.
pub fn apply_assignments(text: &str, origin: &str, assignments: &[String]) -> Result<String> {
    let mut recipe = Recipe::parse(text, origin)?;
    recipe.apply(assignments)?;
    toml::to_string(&recipe.table).context("serialising the edited recipe")
}

/// `KEY=VALUE` from the command line; VALUE is a TOML value (`8`, `1e-3`, `[0]`, `"x"`), and a
/// bare word that is not one is taken as a string.
fn parse_assignment(s: &str) -> Result<(String, Value)> {
    let Some((key, raw)) = s.split_once('=') else { bail!("'{s}': expected KEY=VALUE, e.g. runtime.group_size=8") };
    let (key, raw) = (key.trim(), raw.trim());
    let value = match format!("v = {raw}").parse::<Table>() {
        Ok(mut t) => t.remove("v").context("parsed value vanished")?,
        Err(_) => Value::String(raw.to_string()),
    };
    Ok((key.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_keys_set_values_in_sections() {
        let mut r = Recipe::parse("stages = [\"sft\", \"grpo\"]\n[runtime]\ngroup_size = 16\n", "t").unwrap();
        let (k, v) = parse_assignment("runtime.group_size=8").unwrap();
        r.set(&k, v).unwrap();
        let (k, v) = parse_assignment("model.source=runs/x").unwrap();
        r.set(&k, v).unwrap();
        assert_eq!(r.table["runtime"]["group_size"], Value::Integer(8));
        assert_eq!(r.table["model"]["source"].as_str(), Some("runs/x"));
        assert_eq!(r.stages(), ["sft", "grpo"]);
        assert!(r.set("runtime.", Value::Integer(1)).is_err());
        assert!(r.set("stages.x", Value::Integer(1)).is_err());
        assert!(parse_assignment("runtime.group_size").is_err());
    }

    #[test]
    fn nested_sections_are_reached_and_created() {
        let mut r = Recipe::parse("[grpo]\nlr = 1e-6\n[grpo.lora]\nr = 16\n", "t").unwrap();
        r.set("grpo.lora.r", Value::Integer(8)).unwrap();
        r.set("grpo.lora.alpha", Value::Integer(16)).unwrap();
        r.set("kd.lora.r", Value::Integer(4)).unwrap();
        assert_eq!(r.table["grpo"]["lora"]["r"], Value::Integer(8));
        assert_eq!(r.table["grpo"]["lora"]["alpha"], Value::Integer(16));
        assert_eq!(r.table["grpo"]["lr"], Value::Float(1e-6));
        assert_eq!(r.table["kd"]["lora"]["r"], Value::Integer(4));
        let err = r.set("grpo.lr.x", Value::Integer(1)).unwrap_err().to_string();
        assert!(err.contains("'grpo.lr' is not a section"), "{err}");
        assert!(r.set("grpo..r", Value::Integer(1)).is_err());
    }

    #[test]
    fn assignments_edit_the_text_and_name_the_bad_one() {
        let text = apply_assignments("seed = 0\n[grpo]\nlr = 1e-6\n", "r.toml", &["grpo.lr=5e-5".into(), "seed=3".into()]).unwrap();
        let table: Table = text.parse().unwrap();
        assert_eq!(table["grpo"]["lr"], Value::Float(5e-5));
        assert_eq!(table["seed"], Value::Integer(3));
        let err = format!("{:#}", apply_assignments("seed = 0\n", "r.toml", &["seed.x=1".into()]).unwrap_err());
        assert!(err.starts_with("--set seed.x=1: 'seed.x': 'seed' is not a section"), "{err}");
    }
}
