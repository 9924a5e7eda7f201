//! `cargo xtask imports`: the import graph between modules, measured from the source.
//! In `sensor-user` the pipeline stages must import forward only (a stage uses earlier
//! stages, never a later one); in both library crates no group of modules may import
//! each other in a cycle. Prints the stage graph and fails on any violation.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

/// `sensor-user`'s stages, in pipeline order. Modules not listed (`sensor`, `config`,
/// `cli`) are the wiring on top and may import any stage.
const STAGES: [&str; 7] = ["domain", "source", "enrich", "analyze", "policy", "correlate", "publish"];

pub(crate) fn run() -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for krate in ["sensor-user", "model-analysis"] {
        let graph = Graph::read(Path::new(krate).join("src").as_path())?;
        problems
            .extend(graph.cycles().into_iter().map(|c| format!("{krate}: import cycle: {}", c.join(" -> "))));
        if krate == "sensor-user" {
            print_stages(&graph);
            problems.extend(graph.backward_stage_edges().into_iter().map(|e| format!("{krate}: {e}")));
        }
    }
    if problems.is_empty() {
        #[expect(clippy::print_stdout, reason = "the graph is the command's output")]
        {
            println!("imports: no backward stage edge, no cycle");
        }
        Ok(())
    } else {
        for problem in &problems {
            eprintln!("imports: {problem}");
        }
        bail!("{} import problem(s)", problems.len())
    }
}

/// module path ("correlate::files") -> modules it imports through `crate::`.
struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    fn read(src: &Path) -> anyhow::Result<Self> {
        let mut edges = BTreeMap::new();
        for file in rust_files(src)? {
            let module = module_of(src, &file);
            let text =
                std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let targets: BTreeSet<String> = crate_references(&text)
                .into_iter()
                .filter(|target| !is_ancestor_or_self(target, &module))
                .collect();
            edges.insert(module, targets);
        }
        Ok(Self { edges })
    }

    /// The module a reference lands in: the longest known module that prefixes it.
    fn resolve(&self, reference: &str) -> Option<String> {
        let parts: Vec<&str> = reference.split("::").collect();
        (1..=parts.len()).rev().map(|n| parts[..n].join("::")).find(|m| self.edges.contains_key(m))
    }

    fn module_edges(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.edges
            .iter()
            .map(|(from, refs)| {
                let to = refs
                    .iter()
                    .filter_map(|r| self.resolve(r))
                    .filter(|m| !is_ancestor_or_self(m, from))
                    .collect();
                (from.clone(), to)
            })
            .collect()
    }

    /// Strongly connected groups of more than one module (Tarjan's algorithm).
    fn cycles(&self) -> Vec<Vec<String>> {
        let edges = self.module_edges();
        let mut state = Tarjan::default();
        for node in edges.keys() {
            if !state.index.contains_key(node) {
                state.visit(node, &edges);
            }
        }
        state.groups.into_iter().filter(|g| g.len() > 1).collect()
    }

    fn stage_edges(&self) -> BTreeMap<(String, String), usize> {
        let mut counts = BTreeMap::new();
        for (from, targets) in self.module_edges() {
            let from_stage = top(&from);
            for to in targets {
                let to_stage = top(&to);
                if from_stage != to_stage {
                    *counts.entry((from_stage.to_owned(), to_stage.to_owned())).or_insert(0) += 1;
                }
            }
        }
        counts
    }

    fn backward_stage_edges(&self) -> Vec<String> {
        let rank = |stage: &str| STAGES.iter().position(|s| *s == stage);
        self.stage_edges()
            .into_keys()
            .filter_map(|(from, to)| match (rank(&from), rank(&to)) {
                (Some(f), Some(t)) if t > f => Some(format!("stage `{from}` imports the later stage `{to}`")),
                (Some(_), None) => Some(format!("stage `{from}` imports the wiring module `{to}`")),
                _ => None,
            })
            .collect()
    }
}

#[derive(Default)]
struct Tarjan {
    next: usize,
    index: BTreeMap<String, usize>,
    low: BTreeMap<String, usize>,
    stack: Vec<String>,
    on_stack: BTreeSet<String>,
    groups: Vec<Vec<String>>,
}

impl Tarjan {
    fn visit(&mut self, node: &str, edges: &BTreeMap<String, BTreeSet<String>>) {
        self.index.insert(node.to_owned(), self.next);
        self.low.insert(node.to_owned(), self.next);
        self.next += 1;
        self.stack.push(node.to_owned());
        self.on_stack.insert(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if !self.index.contains_key(next) {
                self.visit(next, edges);
                let low = self.low[node].min(self.low[next]);
                self.low.insert(node.to_owned(), low);
            } else if self.on_stack.contains(next) {
                let low = self.low[node].min(self.index[next]);
                self.low.insert(node.to_owned(), low);
            }
        }
        if self.low[node] == self.index[node] {
            let mut group = Vec::new();
            while let Some(member) = self.stack.pop() {
                self.on_stack.remove(&member);
                let done = member == node;
                group.push(member);
                if done {
                    break;
                }
            }
            self.groups.push(group);
        }
    }
}

#[expect(clippy::print_stdout, reason = "the graph is the command's output")]
fn print_stages(graph: &Graph) {
    println!("sensor-user stage imports (from -> to: references), stages in order {}:", STAGES.join(" < "));
    for ((from, to), count) in graph.stage_edges() {
        println!("  {from} -> {to}: {count}");
    }
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

fn is_ancestor_or_self(candidate: &str, module: &str) -> bool {
    module == candidate || module.starts_with(&format!("{candidate}::"))
}

fn rust_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `src/correlate/files.rs` -> `correlate::files`; `mod.rs` is its directory.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib" || p == "main") {
        parts.pop();
    }
    parts.join("::")
}

/// Every `crate::a::b` path the text mentions outside comments, `use crate::{a, b::c}`
/// groups expanded.
fn crate_references(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .map(|line| line.split_once("//").map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        out.extend(expand("", rest));
    }
    out
}

/// Expands the path (or `{...}` group) at the start of `text`, prefixed by `prefix`.
fn expand(prefix: &str, text: &str) -> Vec<String> {
    let text = text.trim_start();
    if let Some(group) = text.strip_prefix('{') {
        let mut depth = 1;
        let mut end = group.len();
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        return split_top_level(&group[..end]).into_iter().flat_map(|item| expand(prefix, item)).collect();
    }
    let ident_end = text.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(text.len());
    let ident = &text[..ident_end];
    if ident.is_empty() || ident == "self" {
        return if prefix.is_empty() { Vec::new() } else { vec![prefix.to_owned()] };
    }
    let path = if prefix.is_empty() { ident.to_owned() } else { format!("{prefix}::{ident}") };
    match text[ident_end..].strip_prefix("::") {
        Some(more) => expand(&path, more),
        None => vec![path],
    }
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_paths_are_expanded() {
        let text = "use crate::{analyze::{pool::Finished, work}, domain::Drop};\nlet x = crate::enrich::devices::f();\n// crate::publish::nope\n";
        let refs = crate_references(text);
        assert_eq!(refs, ["analyze::pool::Finished", "analyze::work", "domain::Drop", "enrich::devices::f"]);
    }

    #[test]
    fn module_paths() {
        let src = Path::new("src");
        assert_eq!(module_of(src, Path::new("src/correlate/mod.rs")), "correlate");
        assert_eq!(module_of(src, Path::new("src/correlate/files.rs")), "correlate::files");
        assert_eq!(module_of(src, Path::new("src/lib.rs")), "");
    }
}
