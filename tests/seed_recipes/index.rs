//! configs/seed/index.toml: the seed's rows, their `srlm` commands, and what each command reads
//! and writes, taken from the recipes it names (loaded by the parsers `srlm` itself uses).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use srlm::learner::sft_recipe::SftRecipe;
use srlm::train::config::TrainConfig;

use crate::estimate::Estimate;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub eval_flags: String,
    /// `base` / `instruct` → the untrained checkpoint's hub id.
    pub models: BTreeMap<String, String>,
    pub estimate: Estimate,
    pub row: Vec<Row>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    pub id: String,
    /// A key of `models`; absent for steps both students share.
    pub model: Option<String>,
    pub method: String,
    #[serde(default = "yes")]
    pub evaluate: bool,
    /// The row whose output this row's training starts from (absent: the model's hub id).
    pub weights_from: Option<String>,
    /// The row whose output this row trains on (absent: GSM8K train).
    pub data_from: Option<String>,
    pub commands: Vec<String>,
}

fn yes() -> bool {
    true
}

/// GSM8K train, where every recipe expects it (the configs README's layout).
pub const GSM8K_TRAIN: &str = "data/gsm8k/train.jsonl";

impl Index {
    pub fn load() -> Index {
        let path = repo().join("configs/seed/index.toml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    pub fn row(&self, id: &str) -> &Row {
        self.row.iter().find(|r| r.id == id).unwrap_or_else(|| panic!("index.toml names no row '{id}'"))
    }

    pub fn commands(&self) -> impl Iterator<Item = (&Row, Command)> {
        self.row.iter().flat_map(|r| r.commands.iter().map(move |c| (r, Command::parse(c))))
    }

    /// What the row leaves behind: its last command's output, or the untrained checkpoint.
    pub fn output(&self, row: &Row) -> String {
        match row.commands.last() {
            Some(line) => Command::parse(line).output(),
            None => self.hub_id(row).to_string(),
        }
    }

    pub fn hub_id(&self, row: &Row) -> &str {
        let model = row.model.as_deref().unwrap_or_else(|| panic!("row '{}' names no model", row.id));
        self.models.get(model).unwrap_or_else(|| panic!("row '{}': model '{model}' is not in [models]", row.id))
    }

    /// The seed's evaluation of the row's output.
    pub fn eval_command(&self, row: &Row) -> Option<String> {
        row.evaluate.then(|| format!("srlm eval --model {} --out runs/seed/eval/{} {}", self.output(row), row.id, self.eval_flags))
    }

    /// The command that writes `output`.
    pub fn writer_of(&self, output: &str) -> Command {
        self.commands().map(|(_, c)| c).find(|c| c.output() == output).unwrap_or_else(|| panic!("no command in index.toml writes {output}"))
    }
}

/// One `srlm` command line, split at spaces (the index quotes nothing).
pub struct Command {
    pub words: Vec<String>,
}

/// A recipe named by `--config`, loaded by the parser of its subcommand.
pub enum Recipe {
    Train(Box<TrainConfig>),
    Sft(Box<SftRecipe>),
}

impl Command {
    pub fn parse(line: &str) -> Command {
        assert!(!line.contains(['"', '\'', '\\']), "quoting is not supported in index commands: {line}");
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        assert_eq!(words.first().map(String::as_str), Some("srlm"), "not an srlm command: {line}");
        assert!(words.len() > 1, "no subcommand: {line}");
        Command { words }
    }

    pub fn subcommand(&self) -> &str {
        &self.words[1]
    }

    /// The arguments after `srlm`.
    pub fn args(&self) -> &[String] {
        &self.words[1..]
    }

    /// The value after `--name`.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.words.iter().position(|w| w == name).and_then(|i| self.words.get(i + 1)).map(String::as_str)
    }

    pub fn line(&self) -> String {
        self.words.join(" ")
    }

    pub fn config_path(&self) -> Option<PathBuf> {
        self.flag("--config").map(|p| repo().join(p))
    }

    pub fn recipe(&self) -> Option<Recipe> {
        let path = self.config_path()?;
        Some(match self.subcommand() {
            "train" => Recipe::Train(Box::new(TrainConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}")))),
            "sft" => Recipe::Sft(Box::new(SftRecipe::from_file(&path).unwrap_or_else(|e| panic!("{e}")))),
            other => panic!("`srlm {other}` takes no --config: {}", self.line()),
        })
    }

    /// What the command writes for the next command (or the evaluation) to read.
    pub fn output(&self) -> String {
        match (self.subcommand(), self.recipe()) {
            ("distill", None) => self.required("--out").to_string(),
            (_, Some(Recipe::Sft(r))) => r.output.display().to_string(),
            (_, Some(Recipe::Train(c))) => {
                let last = c.stages.last().expect("validated: stages is not empty");
                let name = format!("{last:?}").to_lowercase();
                format!("{}/stage-{}-{name}", c.out_dir.display(), c.stages.len() - 1)
            }
            _ => panic!("no output known for: {}", self.line()),
        }
    }

    /// The checkpoint the command starts from (a teacher, for `distill`) and the data it reads.
    pub fn inputs(&self) -> (String, String) {
        match (self.subcommand(), self.recipe()) {
            ("distill", None) => (self.required("--teacher").to_string(), self.required("--data").to_string()),
            (_, Some(Recipe::Sft(r))) => (r.model, r.data.display().to_string()),
            (_, Some(Recipe::Train(c))) => {
                let train = c.data.train.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
                (c.model.source, train)
            }
            _ => panic!("no inputs known for: {}", self.line()),
        }
    }

    pub fn required(&self, name: &str) -> &str {
        self.flag(name).unwrap_or_else(|| panic!("{name} missing: {}", self.line()))
    }
}
