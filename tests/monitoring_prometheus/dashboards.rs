//! Dashboard panels as PromQL a server can run: every query target of every panel in
//! `dashboards/*.json`, with Grafana's template variables replaced by concrete values.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// One query target of one panel.
#[derive(Debug)]
pub struct PanelQuery {
    pub dashboard: String,
    pub panel: String,
    pub legend: Option<String>,
    /// PromQL with every variable substituted.
    pub expr: String,
}

impl PanelQuery {
    pub fn name(&self) -> String {
        format!("{} / {} / {}", self.dashboard, self.panel, self.legend.as_deref().unwrap_or("-"))
    }

    /// Labels the legend shows (`{{generator}}`): each must exist on every series returned.
    pub fn legend_labels(&self) -> Vec<String> {
        let mut labels = Vec::new();
        let mut rest = self.legend.as_deref().unwrap_or_default();
        while let Some((_, tail)) = rest.split_once("{{") {
            let Some((label, after)) = tail.split_once("}}") else { break };
            labels.push(label.trim().to_string());
            rest = after;
        }
        labels
    }
}

/// Every panel query of the dashboards in `dir`, in file order. Variables take, in turn, the
/// value in `known` (what the test knows: job, instance), Grafana's built-in intervals for a
/// scrape every `scrape`, or the dashboard variable's saved current value.
pub fn panel_queries(dir: &Path, scrape: Duration, known: &BTreeMap<&str, String>) -> Vec<PanelQuery> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read dashboards/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut queries = Vec::new();
    for file in files {
        let name = file.file_name().expect("a file name").to_string_lossy().into_owned();
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("read dashboard")).unwrap_or_else(|e| panic!("{name}: {e}"));
        let builtins = builtins(scrape, dashboard_range(&json));
        let saved = saved_values(&json);
        let lookup = |var: &str| known.get(var).cloned().or_else(|| builtins.get(var).cloned()).or_else(|| saved.get(var).cloned());
        collect(&json["panels"], &mut |panel, target| {
            let Some(raw) = target["expr"].as_str() else { return };
            let expr = substitute(raw, &lookup).unwrap_or_else(|e| panic!("{name}: {e} in `{raw}`"));
            queries.push(PanelQuery {
                dashboard: name.clone(),
                panel: panel["title"].as_str().unwrap_or_default().to_string(),
                legend: target["legendFormat"].as_str().map(str::to_string),
                expr,
            });
        });
    }
    queries
}

/// Calls `f(panel, target)` for each target, descending into rows' nested panels.
fn collect(panels: &Value, f: &mut dyn FnMut(&Value, &Value)) {
    for panel in panels.as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            f(panel, target);
        }
        collect(&panel["panels"], f);
    }
}

/// Grafana's interval variables as it would set them for a panel over `range`: `$__interval`
/// can be no finer than the scrape, and `$__rate_interval` is max(interval + scrape, 4 × scrape).
fn builtins(scrape: Duration, range: Duration) -> BTreeMap<&'static str, String> {
    let interval = scrape;
    let rate_interval = (interval + scrape).max(4 * scrape);
    BTreeMap::from([
        ("__interval", format!("{}ms", interval.as_millis())),
        ("__interval_ms", interval.as_millis().to_string()),
        ("__rate_interval", format!("{}ms", rate_interval.as_millis())),
        ("__range", format!("{}s", range.as_secs())),
        ("__range_s", range.as_secs().to_string()),
        ("__range_ms", range.as_millis().to_string()),
    ])
}

/// The dashboard's default time range (`"time": {"from": "now-1h"}`); an hour when unreadable.
fn dashboard_range(json: &Value) -> Duration {
    let from = json["time"]["from"].as_str().and_then(|f| f.strip_prefix("now-")).unwrap_or("1h");
    let (count, unit) = from.split_at(from.len().saturating_sub(1));
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => 0,
    };
    match count.parse::<u64>() {
        Ok(n) if seconds > 0 => Duration::from_secs(n * seconds),
        _ => Duration::from_secs(3600),
    }
}

/// Saved current values of the dashboard's variables; several values become the regex
/// alternation Grafana writes for Prometheus.
fn saved_values(json: &Value) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for var in json["templating"]["list"].as_array().into_iter().flatten() {
        let (Some(name), current) = (var["name"].as_str(), &var["current"]["value"]) else { continue };
        let value = match current {
            Value::String(s) => s.clone(),
            Value::Array(items) => format!("({})", items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("|")),
            _ => continue,
        };
        values.insert(name.to_string(), value);
    }
    values
}

/// Replaces `$var`, `${var}`, `${var:format}` and `[[var]]` with `lookup(var)`; a variable it
/// cannot resolve is an error (PromQL itself never contains `$`).
pub fn substitute(expr: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = expr;
    loop {
        let next = [rest.find('$'), rest.find("[[")].into_iter().flatten().min();
        let Some(at) = next else {
            out.push_str(rest);
            return Ok(out);
        };
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let (name, used) = if let Some(inner) = tail.strip_prefix("[[") {
            let end = inner.find("]]").ok_or(format!("unclosed [[ at `{tail}`"))?;
            (&inner[..end], end + 4)
        } else if let Some(inner) = tail.strip_prefix("${") {
            let end = inner.find('}').ok_or(format!("unclosed ${{ at `{tail}`"))?;
            let (name, _format) = inner[..end].split_once(':').unwrap_or((&inner[..end], ""));
            (name, end + 3)
        } else {
            let len = tail[1..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len() - 1);
            (&tail[1..1 + len], len + 1)
        };
        out.push_str(&lookup(name).ok_or(format!("unknown variable `{name}`"))?);
        rest = &tail[used..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(var: &str) -> Option<String> {
        let values = builtins(Duration::from_secs(1), Duration::from_secs(3600));
        match var {
            "job" => Some("srlm".into()),
            _ => values.get(var).cloned(),
        }
    }

    #[test]
    fn every_variable_syntax_is_substituted() {
        let e = r#"rate(x{job="$job",i=~"${job:regex}"}[$__rate_interval]) / [[__range_s]] + ${__interval_ms}"#;
        assert_eq!(substitute(e, &lookup).unwrap(), r#"rate(x{job="srlm",i=~"srlm"}[4000ms]) / 3600 + 1000"#);
        assert_eq!(substitute("sum(x) by (job)", &lookup).unwrap(), "sum(x) by (job)");
        assert_eq!(substitute("x[$__range]", &lookup).unwrap(), "x[3600s]");
    }

    #[test]
    fn an_unknown_variable_is_an_error() {
        assert_eq!(substitute("x{gpu=\"$gpu\"}", &lookup).unwrap_err(), "unknown variable `gpu`");
    }

    #[test]
    fn the_dashboard_range_and_saved_values_are_read() {
        let json: Value = serde_json::from_str(
            r#"{"time": {"from": "now-30m"}, "templating": {"list": [
                {"name": "run", "current": {"value": "a"}}, {"name": "gen", "current": {"value": ["0", "1"]}}]}}"#,
        )
        .unwrap();
        assert_eq!(dashboard_range(&json), Duration::from_secs(1800));
        assert_eq!(saved_values(&json), BTreeMap::from([("run".to_string(), "a".to_string()), ("gen".to_string(), "(0|1)".to_string())]));
    }

    #[test]
    fn legend_labels_are_the_braced_names() {
        let q = PanelQuery {
            dashboard: "d".into(),
            panel: "p".into(),
            legend: Some("generator {{generator}} / {{ queue }}".into()),
            expr: "x".into(),
        };
        assert_eq!(q.legend_labels(), ["generator", "queue"]);
    }
}
