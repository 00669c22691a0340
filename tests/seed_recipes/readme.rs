//! The tables of configs/seed/README.md, rendered from index.toml and the recipes it names.

use crate::index::{Command, Index};

pub const BEGIN: &str = "<!-- generated from index.toml by tests/seed_recipes (SRLM_BLESS=1 rewrites it): begin -->";
pub const END: &str = "<!-- generated: end -->";

pub fn render(index: &Index) -> String {
    let mut out = format!("{BEGIN}\n\n");
    out += "| model | seed row | starts from | trains on | commands, in order | GPU h of these commands (est.) |\n";
    out += "|---|---|---|---|---|---|\n";
    let (mut train_hours, mut evals) = (0.0, 0);
    for row in &index.row {
        let commands: Vec<Command> = row.commands.iter().map(|c| Command::parse(c)).collect();
        let hours = commands.iter().map(|c| index.estimate.hours(c, index)).fold(0.0, |a, b| a + b);
        train_hours += hours;
        evals += usize::from(row.evaluate);
        let (from, data) = match commands.first() {
            Some(first) => {
                let (from, data) = first.inputs();
                (named(index, &from), named(index, &data))
            }
            None => (format!("`{}`", index.hub_id(row)), "—".into()),
        };
        let lines: Vec<String> = commands.iter().map(|c| format!("`{}`", c.line())).collect();
        let (lines, hours) = match lines.is_empty() {
            true => ("— (evaluated as it is)".to_string(), "—".to_string()),
            false => (lines.join("<br>"), format!("{hours:.1}")),
        };
        let model = row.model.as_deref().unwrap_or("both");
        out += &format!("| {model} | {} | {from} | {data} | {lines} | {hours} |\n", row.method);
    }
    // Every evaluation runs the same flags, so one stands for all.
    let eval_hours = index.row.iter().find_map(|r| index.eval_command(r)).map_or(0.0, |c| index.estimate.hours(&Command::parse(&c), index));
    out += &format!(
        "\nTraining: **{train_hours:.1} GPU h** in all. Each evaluation: **{eval_hours:.1} GPU h**; {evals} of them \
         (every row above but the teacher's): **{:.1} GPU h**. Together: **{:.1} GPU h**.\n\n",
        evals as f64 * eval_hours,
        train_hours + evals as f64 * eval_hours
    );
    out += "The seed's evaluation of every row (run each after the row's commands):\n\n```sh\n";
    for row in &index.row {
        if let Some(eval) = index.eval_command(row) {
            out += &format!("# {}, {}\n{eval}\n", row.model.as_deref().unwrap_or("both"), row.method);
        }
    }
    out += &format!("```\n\n{END}");
    out
}

/// A path or checkpoint, with the row that writes it when one does.
fn named(index: &Index, what: &str) -> String {
    match index.row.iter().find(|r| !r.commands.is_empty() && index.output(r) == what) {
        Some(row) => format!("`{what}` ({})", row.id),
        None => format!("`{what}`"),
    }
}

/// The README with its generated part replaced by `generated`.
pub fn with_generated(readme: &str, generated: &str) -> String {
    let start = readme.find(BEGIN).expect("configs/seed/README.md has the begin marker");
    let end = readme.find(END).expect("configs/seed/README.md has the end marker") + END.len();
    format!("{}{generated}{}", &readme[..start], &readme[end..])
}
