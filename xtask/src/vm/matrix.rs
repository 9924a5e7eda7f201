//! The matrix, as Markdown: tests × kernels, hooks × kernels, wall times, problems.

use std::fmt::Write as _;

use super::report::{HookLoad, Outcome, Run};

/// What a column is, beside its kernel and backend.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Column {
    pub(crate) arch: &'static str,
    /// `generic`, `rt`, `cloud`, or `host`.
    pub(crate) flavour: &'static str,
    /// Ran the smoke subset only.
    pub(crate) smoke: bool,
}

pub(crate) fn render(runs: &[Run], setup: &[(String, std::time::Duration)]) -> String {
    let mut out = String::from("# modelwatch end-to-end tests by kernel\n\n");
    out.push_str(
        "Columns marked *smoke* ran the named smoke subset (`xtask/src/vm/suite.rs`); a test \
         they did not run shows `not run`.\n\n",
    );
    let headers: Vec<String> = runs.iter().map(column_title).collect();
    table_header(&mut out, &["test"], &headers);
    let kinds = runs.iter().map(|run| format!("*{} {}*", run.column.arch, run.column.flavour));
    table_row(&mut out, &["*architecture, flavour*"], kinds);
    // Sorted: the order cargo lists test executables in is not stable across builds.
    let mut tests = union(runs.iter().map(|run| run.tests.iter().map(|(name, _)| name.clone())));
    tests.sort();
    for test in tests {
        let cells = runs.iter().map(|run| {
            run.tests.iter().find(|(name, _)| *name == test).map_or("not run".into(), |(_, o)| cell(o))
        });
        table_row(&mut out, &[test.as_str()], cells);
    }
    let wall = runs.iter().map(|run| format!("{} s", run.wall.as_secs()));
    table_row(&mut out, &["wall time"], wall);
    if !setup.is_empty() {
        out.push_str("\n| step | wall time |\n|---|---:|\n");
        for (step, took) in setup {
            let _ = writeln!(out, "| {step} | {} s |", took.as_secs());
        }
    }
    out.push_str("\n## Hooks: backend and instructions verified\n\n");
    table_header(&mut out, &["hook", "attach point"], &headers);
    let keys =
        union(runs.iter().map(|run| run.hooks.iter().map(|h| (h.watches.clone(), h.attach_point.clone()))));
    for (watches, attach_point) in keys {
        let cells = runs.iter().map(|run| {
            run.hooks
                .iter()
                .find(|h| h.watches == watches && h.attach_point == attach_point)
                .map_or("-".into(), hook_cell)
        });
        table_row(&mut out, &[watches.as_str(), &format!("`{attach_point}`")], cells);
    }
    for run in runs.iter().filter(|run| !run.reruns.is_empty()) {
        let _ = writeln!(out, "\n## Booted again: {}\n", column_title(run));
        for why in &run.reruns {
            let _ = writeln!(out, "- {why}");
        }
    }
    for run in runs.iter().filter(|run| run.failed()) {
        let _ = writeln!(out, "\n## Problems on {}\n", column_title(run));
        for problem in &run.problems {
            let _ = writeln!(out, "- {problem}");
        }
        for (test, _) in run.tests.iter().filter(|(_, outcome)| *outcome == Outcome::Fail) {
            let _ = writeln!(out, "- {test}: FAILED");
        }
    }
    out
}

fn column_title(run: &Run) -> String {
    let backend = run.label.rsplit_once(' ').map_or("", |(_, backend)| backend);
    let smoke = if run.column.smoke { " (smoke)" } else { "" };
    match (&run.kernel, run.label.as_str()) {
        (Some(kernel), "host") => format!("host {kernel}"),
        (Some(kernel), _) => format!("{kernel} {backend}{smoke}").trim_end().to_owned(),
        (None, label) => format!("{label}{smoke}"),
    }
}

fn cell(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Pass => "pass".into(),
        Outcome::Fail => "**FAIL**".into(),
        Outcome::Skip(reason) => format!("skip: {}", escape(reason)),
        Outcome::Ignored => "ignored".into(),
    }
}

fn hook_cell(hook: &HookLoad) -> String {
    if !hook.attached {
        let reason = hook.reason.lines().next().unwrap_or("");
        let short: String = reason.chars().take(200).collect();
        return match hook.backend.as_str() {
            "" => format!("**not attached**: {}", escape(&short)),
            backend => format!("**not attached** ({backend}): {}", escape(&short)),
        };
    }
    // "none": the program reads only its context and maps.
    let reads = match hook.reads.as_str() {
        "" => String::new(),
        "none" => " (context only)".to_owned(),
        reads => format!(" ({reads} reads)"),
    };
    match hook.verified_insns {
        Some(insns) => format!("{}{reads}, {insns} insns", hook.backend),
        None => format!("{}{reads}", hook.backend),
    }
}

/// Keeps a table cell on one line and its `|` from splitting it.
fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Distinct items in first-seen order.
fn union<T: PartialEq, I: IntoIterator<Item = T>>(lists: impl Iterator<Item = I>) -> Vec<T> {
    let mut out = Vec::new();
    for item in lists.flatten() {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn table_header(out: &mut String, first: &[&str], headers: &[String]) {
    let _ = writeln!(out, "| {} | {} |", first.join(" | "), headers.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(first.len() + headers.len()));
}

fn table_row(out: &mut String, first: &[&str], cells: impl Iterator<Item = String>) {
    let cells: Vec<String> = cells.collect();
    let _ = writeln!(out, "| {} | {} |", first.join(" | "), cells.join(" | "));
}
