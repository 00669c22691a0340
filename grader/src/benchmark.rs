//! Benchmarks: which gold field each data set uses and how its completions are searched.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::extract::{ExtractConfig, Strategy};
use crate::gold::{Gold, GoldError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Benchmark {
    #[serde(rename = "gsm8k")]
    Gsm8k,
    #[serde(rename = "math500")]
    Math500,
    #[serde(rename = "minerva_math")]
    Minerva,
    #[serde(rename = "olympiadbench")]
    OlympiadBench,
    #[serde(rename = "amc23")]
    Amc23,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown benchmark '{0}' (known: gsm8k, math500, minerva_math, olympiadbench, amc23)")]
pub struct UnknownBenchmark(pub String);

impl Benchmark {
    pub const ALL: [Benchmark; 5] = [Benchmark::Gsm8k, Benchmark::Math500, Benchmark::Minerva, Benchmark::OlympiadBench, Benchmark::Amc23];

    pub fn name(self) -> &'static str {
        match self {
            Benchmark::Gsm8k => "gsm8k",
            Benchmark::Math500 => "math500",
            Benchmark::Minerva => "minerva_math",
            Benchmark::OlympiadBench => "olympiadbench",
            Benchmark::Amc23 => "amc23",
        }
    }

    /// Numeric benchmarks also accept GSM8K's `#### N`; all end with the last number.
    pub fn extract_config(self) -> ExtractConfig {
        use Strategy::*;
        ExtractConfig::new(match self {
            Benchmark::Gsm8k | Benchmark::Amc23 => {
                vec![AnswerTag, Boxed, Hashes, Phrase, LastNumber]
            }
            _ => vec![AnswerTag, Boxed, Phrase, LastNumber],
        })
    }

    /// The gold answer of one data row, in the layout the set is published with.
    pub fn gold_from_json(self, row: &Value) -> Result<Gold, GoldError> {
        let benchmark = self.name();
        let field = |name: &'static str| row.get(name).ok_or(GoldError::MissingField { benchmark, field: name });
        let text = |name: &'static str| field(name)?.as_str().ok_or(GoldError::MissingField { benchmark, field: name });
        match self {
            Benchmark::Gsm8k => Gold::gsm8k(text("answer")?),
            Benchmark::Math500 => Gold::latex(text("answer")?),
            Benchmark::Minerva => Gold::minerva(text("solution")?),
            Benchmark::OlympiadBench => match field("final_answer")? {
                Value::Array(parts) => {
                    let parts: Option<Vec<&str>> = parts.iter().map(Value::as_str).collect();
                    Gold::list(&parts.ok_or(GoldError::MissingField { benchmark, field: "final_answer" })?)
                }
                Value::String(s) => Gold::latex(s),
                _ => Err(GoldError::MissingField { benchmark, field: "final_answer" }),
            },
            Benchmark::Amc23 => match field("answer")? {
                Value::Number(n) => Gold::number(n.as_f64().ok_or(GoldError::MissingField { benchmark, field: "answer" })?),
                Value::String(s) => Gold::latex(s),
                _ => Err(GoldError::MissingField { benchmark, field: "answer" }),
            },
        }
    }
}

impl fmt::Display for Benchmark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Benchmark {
    type Err = UnknownBenchmark;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "gsm8k" => Benchmark::Gsm8k,
            "math500" | "math" => Benchmark::Math500,
            "minerva" | "minerva_math" => Benchmark::Minerva,
            "olympiadbench" | "olympiad" => Benchmark::OlympiadBench,
            "amc23" | "amc" => Benchmark::Amc23,
            _ => return Err(UnknownBenchmark(s.to_string())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_round_trip() {
        for b in Benchmark::ALL {
            assert_eq!(b.name().parse::<Benchmark>(), Ok(b));
        }
        assert!("mmlu".parse::<Benchmark>().is_err());
        for b in Benchmark::ALL {
            assert_eq!(serde_json::to_string(&b).unwrap(), format!("\"{}\"", b.name()));
        }
    }

    #[test]
    fn rows() {
        let g = Benchmark::Amc23.gold_from_json(&json!({"answer": 27.0})).unwrap();
        assert_eq!(g.raw, "27");
        let g = Benchmark::OlympiadBench.gold_from_json(&json!({"final_answer": ["$69$,$84$"]})).unwrap();
        assert_eq!(g.raw, "$69$,$84$");
        let e = Benchmark::Math500.gold_from_json(&json!({"problem": "p"})).unwrap_err();
        assert_eq!(e, GoldError::MissingField { benchmark: "math500", field: "answer" });
    }
}
