//! Turns a run's console and stderr lines into per-test results and hook loads.

use std::{collections::HashMap, time::Duration};

use super::{console::Ending, suite::TIMEOUT_EXITS};

/// Starts the lines that `suite::script` prints.
const MARKER: &str = "@@mw ";
/// The harness prints this once per sensor start, followed by the hooks of the
/// `sensor_status` event as JSON (`tests/src/lib.rs`).
const HOOKS_PREFIX: &str = "modelwatch-hooks: ";
/// The sensor's one-line start-up failure for a hook the kernel refused (its stderr).
const REFUSED: (&str, &str) = ("modelwatch: the ", " did not load: ");
/// `require_privileges!` prints this when a test cannot run.
const SKIP_PREFIX: &str = "SKIPPED: ";

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pass,
    Fail,
    Skip(String),
    Ignored,
}

/// One hook as the sensor reported it at start-up.
pub(crate) struct HookLoad {
    pub(crate) watches: String,
    pub(crate) attach_point: String,
    pub(crate) backend: String,
    pub(crate) attached: bool,
    pub(crate) reason: String,
    pub(crate) verified_insns: Option<u64>,
    /// `typed`, `helper` or `none` (empty from a sensor that does not say).
    pub(crate) reads: String,
}

/// The suite on one kernel.
pub(crate) struct Run {
    /// `host`, or the kernel package.
    pub(crate) label: String,
    /// `uname -r`, as the run printed it.
    pub(crate) kernel: Option<String>,
    /// (`suite::test`, outcome), in the order they ran.
    pub(crate) tests: Vec<(String, Outcome)>,
    pub(crate) hooks: Vec<HookLoad>,
    /// Whatever makes the run fail besides a failed test: a crash, a timeout, a panic.
    pub(crate) problems: Vec<String>,
    /// Why the column was booted again (a guest kernel panic), reported, not failing.
    pub(crate) reruns: Vec<String>,
    pub(crate) wall: Duration,
    /// What the column is: architecture, flavour, subset.
    pub(crate) column: super::matrix::Column,
}

impl Run {
    pub(crate) fn failed(&self) -> bool {
        !self.problems.is_empty() || self.tests.iter().any(|(_, outcome)| *outcome == Outcome::Fail)
    }
}

/// The console and stderr lines of one run.
pub(crate) struct Output {
    /// What `suite::script` and libtest printed.
    pub(crate) console: Vec<String>,
    /// The sensor's stderr.
    pub(crate) stderr: Vec<String>,
}

pub(crate) fn parse(label: &str, output: &Output, suites: &[String], ending: &Ending, wall: Duration) -> Run {
    let mut parser = Parser::default();
    for line in &output.console {
        parser.line(line);
    }
    let Parser { kernel, results, skips, mut hooks, ended, done, mut problems, .. } = parser;
    if hooks.is_empty() {
        // The sensor never started: its stderr says which hook the kernel refused.
        hooks = refused_hooks(&output.stderr);
    }
    // A test's panic is its failure; a panic in the sensor (stderr) may fail no test.
    problems
        .extend(output.stderr.iter().filter(|l| l.contains("panicked at")).map(|l| format!("stderr: {l}")));
    for suite in suites {
        match ended.get(suite) {
            None => problems.push(format!("{suite}: did not finish")),
            Some(rc) if TIMEOUT_EXITS.contains(rc) => {
                problems.push(format!("{suite}: timed out (killed by `timeout`, exit {rc})"));
            }
            Some(0) if !results.iter().any(|(s, _, _)| s == suite) => {
                problems.push(format!("{suite}: ran no test"));
            }
            Some(0) => {}
            Some(rc) => problems.push(format!("{suite}: exited with {rc}")),
        }
    }
    match ending {
        Ending::TimedOut => problems.push(format!("timed out after {} s", wall.as_secs())),
        Ending::Exited(status) if !status.success() => problems.push(format!("exited with {status}")),
        Ending::Exited(_) if !done => problems.push("stopped before the end of the suite".into()),
        Ending::Exited(_) => {}
    }
    let tests = results
        .into_iter()
        .map(|(suite, test, outcome)| {
            let outcome = match (outcome, skips.get(&(suite.clone(), test.clone()))) {
                (Outcome::Pass, Some(reason)) => Outcome::Skip(reason.clone()),
                (outcome, _) => outcome,
            };
            (format!("{suite}::{test}"), outcome)
        })
        .collect();
    Run {
        label: label.to_owned(),
        kernel,
        tests,
        hooks,
        problems,
        reruns: Vec::new(),
        wall,
        column: super::matrix::Column::default(),
    }
}

#[derive(Default)]
struct Parser {
    kernel: Option<String>,
    suite: String,
    /// The test whose output the next lines are: one that started and has no result
    /// yet (`--nocapture`), or the section `---- name stdout ----` (`--show-output`).
    current: Option<String>,
    results: Vec<(String, String, Outcome)>,
    skips: HashMap<(String, String), String>,
    hooks: Vec<HookLoad>,
    ended: HashMap<String, i32>,
    done: bool,
    problems: Vec<String>,
}

impl Parser {
    fn line(&mut self, line: &str) {
        // NB: find, not strip_prefix: the guest's first line follows the firmware's
        // terminal escapes on the same line.
        if let Some(at) = line.find(MARKER) {
            self.marker(&line[at + MARKER.len()..]);
        } else if let Some((name, rest)) = line.strip_prefix("test ").and_then(|l| l.split_once(" ... ")) {
            match result_word(rest) {
                Some(outcome) => self.result(name, outcome),
                None => {
                    // `--nocapture`: the test's own output follows on the same line.
                    self.current = Some(name.to_owned());
                    self.output(rest);
                }
            }
        } else if let (Some(name), Some(outcome)) = (self.current.clone(), result_word(line)) {
            self.result(&name, outcome);
        } else if let Some(name) = line.strip_prefix("---- ").and_then(|l| l.strip_suffix(" stdout ----")) {
            self.current = Some(name.to_owned());
        } else if line == "successes:" || line == "failures:" {
            self.current = None;
        } else {
            self.output(line);
        }
    }

    /// A line of a test's output, or of the kernel's.
    fn output(&mut self, line: &str) {
        if let Some(at) = line.find(SKIP_PREFIX) {
            if let Some(test) = &self.current {
                let reason = line[at + SKIP_PREFIX.len()..].to_owned();
                self.skips.insert((self.suite.clone(), test.clone()), reason);
            }
        } else if let Some(at) = line.find(HOOKS_PREFIX) {
            if self.hooks.is_empty() {
                self.hooks = parse_hooks(&line[at + HOOKS_PREFIX.len()..]);
            }
        } else if line.contains("Kernel panic") || line.contains("BUG: ") || line.contains("Oops: ") {
            self.problems.push(format!("kernel: {line}"));
        }
    }

    fn marker(&mut self, marker: &str) {
        let mut words = marker.split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some("kernel"), Some(release), _) => self.kernel = Some(release.to_owned()),
            (Some("begin"), Some(suite), _) => {
                self.suite = suite.to_owned();
                self.current = None;
            }
            (Some("end"), Some(suite), Some(rc)) => {
                let rc = rc.strip_prefix("rc=").and_then(|rc| rc.parse().ok()).unwrap_or(-1);
                self.ended.insert(suite.to_owned(), rc);
            }
            (Some("done"), _, _) => self.done = true,
            _ => {}
        }
    }

    fn result(&mut self, name: &str, outcome: Outcome) {
        self.results.push((self.suite.clone(), name.to_owned(), outcome));
        self.current = None;
    }
}

/// libtest's verdict at the start of `rest`, if there is one.
fn result_word(rest: &str) -> Option<Outcome> {
    let word = rest.split([' ', ',']).next().unwrap_or("");
    match word {
        "ok" => Some(Outcome::Pass),
        "FAILED" => Some(Outcome::Fail),
        "ignored" => Some(Outcome::Ignored),
        _ => None,
    }
}

fn parse_hooks(json: &str) -> Vec<HookLoad> {
    let Ok(serde_json::Value::Array(hooks)) = serde_json::from_str(json) else {
        return Vec::new();
    };
    let text = |hook: &serde_json::Value, key: &str| hook[key].as_str().unwrap_or("").to_owned();
    hooks
        .iter()
        .map(|hook| HookLoad {
            watches: text(hook, "watches"),
            attach_point: text(hook, "attach_point"),
            backend: text(hook, "backend"),
            attached: hook["attached"].as_bool().unwrap_or(false),
            reason: text(hook, "reason"),
            verified_insns: hook["verified_insns"]
                .as_u64()
                .or_else(|| hook["verified_insns"].as_str().and_then(|s| s.parse().ok())),
            reads: text(hook, "reads"),
        })
        .collect()
}

/// Hooks named in the sensor's start-up failures, once each.
fn refused_hooks(stderr: &[String]) -> Vec<HookLoad> {
    let mut hooks: Vec<HookLoad> = Vec::new();
    for line in stderr {
        let Some((hook, why)) = line.strip_prefix(REFUSED.0).and_then(|rest| rest.split_once(REFUSED.1))
        else {
            continue;
        };
        let Some((watches, attach_point)) =
            hook.strip_suffix(')').and_then(|hook| hook.split_once(" hook ("))
        else {
            continue;
        };
        if !hooks.iter().any(|h| h.attach_point == attach_point) {
            hooks.push(HookLoad {
                watches: watches.to_owned(),
                attach_point: attach_point.to_owned(),
                // The failure does not name the backend.
                backend: String::new(),
                attached: false,
                reason: why.to_owned(),
                verified_insns: None,
                reads: String::new(),
            });
        }
    }
    hooks
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;

    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    fn run(console: &str, stderr: &str) -> Run {
        let output = Output { console: lines(console), stderr: lines(stderr) };
        let ending = Ending::Exited(std::process::ExitStatus::from_raw(0));
        parse("k", &output, &["detection".into()], &ending, Duration::from_secs(1))
    }

    const PASSING: &str = "\x1bc\x1b[2J@@mw kernel 6.12.1-amd64
@@mw begin detection
test a ... ok
test b ... FAILED
test c ... ok
test d ... ignored, slow
successes:
---- c stdout ----
modelwatch-hooks: [{\"watches\":\"open\",\"attach_point\":\"syscalls:sys_exit_openat\",\"attached\":true,\"backend\":\"tracepoint\",\"verified_insns\":38222}]
SKIPPED: not root
failures:
---- b stdout ----
thread 'b' panicked at tests/tests/detection.rs:1:1:
@@mw end detection rc=101
@@mw done
";

    #[test]
    fn results_skips_and_hooks_are_read_from_the_console() {
        let run = run(PASSING, "");
        assert_eq!(run.kernel.as_deref(), Some("6.12.1-amd64"), "the marker after terminal escapes");
        let outcomes: Vec<_> = run.tests.iter().map(|(name, o)| (name.as_str(), o.clone())).collect();
        assert_eq!(
            outcomes,
            [
                ("detection::a", Outcome::Pass),
                ("detection::b", Outcome::Fail),
                ("detection::c", Outcome::Skip("not root".into())),
                ("detection::d", Outcome::Ignored),
            ]
        );
        assert_eq!(run.hooks.len(), 1);
        assert_eq!(run.hooks[0].verified_insns, Some(38222));
        assert_eq!(run.problems, ["detection: exited with 101"]);
        assert!(run.failed());
    }

    #[test]
    fn a_result_after_uncaptured_output_belongs_to_the_test_that_started() {
        let hooks = r#"modelwatch-hooks: [{"watches":"exec","attached":true}]"#;
        let console = format!(
            "@@mw begin detection\ntest a ... {hooks}\nSKIPPED: no BTF\nok\n@@mw end detection rc=0\n@@mw done\n"
        );
        let run = run(&console, "");
        assert_eq!(run.hooks.len(), 1, "the hooks line on the test's own line");
        assert_eq!(run.tests, [("detection::a".to_owned(), Outcome::Skip("no BTF".into()))]);
        assert!(!run.failed());
    }

    #[test]
    fn a_run_cut_short_is_a_problem_and_refused_hooks_come_from_stderr() {
        let stderr = "modelwatch: the open hook (syscalls:sys_exit_openat) did not load: the verifier rejected it: 906: bad\n";
        let run = run("@@mw begin detection\ntest a ... ok\nKernel panic - not syncing: oops\n", stderr);
        assert!(run.problems.iter().any(|p| p.contains("Kernel panic")), "{:?}", run.problems);
        assert!(run.problems.contains(&"detection: did not finish".to_owned()));
        assert!(run.problems.contains(&"stopped before the end of the suite".to_owned()));
        assert_eq!(run.hooks.len(), 1);
        assert_eq!((run.hooks[0].watches.as_str(), run.hooks[0].attached), ("open", false));
        assert_eq!(run.hooks[0].attach_point, "syscalls:sys_exit_openat");
        assert_eq!(run.hooks[0].reason, "the verifier rejected it: 906: bad");
    }
}
