//! Unknown keys of a `srlm train` TOML. A section that flattens the real config types into it
//! (`[grpo]`, `[runtime]`) cannot ask serde to deny unknown keys, so a key counts as known when
//! the parsed config, serialized back, has it: a key that no type read cannot come back.

use serde_json::Value;

/// The first key of `file` that `parsed` (the config read from it, serialized) lacks, as
/// `unknown key 'section.key' (known in [section]: …)`.
pub(super) fn first_unknown_key(file: &toml::Table, parsed: &Value) -> Option<String> {
    unknown_in("", file, parsed)
}

fn unknown_in(prefix: &str, file: &toml::Table, parsed: &Value) -> Option<String> {
    let known = parsed.as_object()?;
    for (key, value) in file {
        let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
        let Some(read) = known.get(key) else {
            let names: Vec<&str> = known.keys().map(String::as_str).collect();
            let place = if prefix.is_empty() { "at the top level".to_string() } else { format!("in [{prefix}]") };
            return Some(format!("unknown key '{path}' (known {place}: {})", names.join(", ")));
        };
        if let toml::Value::Table(inner) = value {
            if let Some(unknown) = unknown_in(&path, inner, read) {
                return Some(unknown);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_key_nothing_read_is_named_with_its_section_s_keys() {
        let parsed = serde_json::json!({ "seed": 0, "grpo": { "lr": 1e-6, "steps": 3 } });
        let err = first_unknown_key(&table("seed = 1\n[grpo]\nlr = 1e-3\nratio_kap = 2.0\n"), &parsed).unwrap();
        assert_eq!(err, "unknown key 'grpo.ratio_kap' (known in [grpo]: lr, steps)");
        let err = first_unknown_key(&table("sed = 1\n"), &parsed).unwrap();
        assert!(err.starts_with("unknown key 'sed' (known at the top level: "), "{err}");
    }

    #[test]
    fn keys_that_came_back_pass() {
        let parsed = serde_json::json!({ "grpo": { "lr": 1e-6, "steps": 3 }, "rewards": { "format": 0.5 } });
        assert_eq!(first_unknown_key(&table("[grpo]\nsteps = 3\n[rewards]\nformat = 0.5\n"), &parsed), None);
    }
}
