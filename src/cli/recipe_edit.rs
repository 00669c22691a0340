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

    /// Sets `section.key` (or a top-level `key`), creating the section when absent.
    pub fn set(&mut self, dotted: &str, value: Value) -> Result<()> {
        let (section, key) = match dotted.split_once('.') {
            Some((s, k)) => (Some(s), k),
            None => (None, dotted),
        };
        if key.is_empty() || key.contains('.') || section.is_some_and(str::is_empty) {
            bail!("'{dotted}': expected `key` or `section.key`");
        }
        let table = match section {
            None => &mut self.table,
            Some(s) => match self.table.entry(s).or_insert_with(|| Value::Table(Table::new())) {
                Value::Table(t) => t,
                _ => bail!("'{dotted}': '{s}' is not a section"),
            },
        };
        table.insert(key.to_string(), value);
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

/// `KEY=VALUE` from the command line; VALUE is a TOML value (`8`, `1e-3`, `[0]`, `"x"`), and a
/// bare word that is not one is taken as a string.
pub fn parse_assignment(s: &str) -> Result<(String, Value)> {
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
}
