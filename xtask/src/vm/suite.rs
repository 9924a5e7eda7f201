//! The shell loop that runs the test executables, shared by the guests' `/init` and the
//! host run so that both report in the same words: `@@mw begin <suite>`, libtest's own
//! lines, `@@mw end <suite> rc=<code>`, and `@@mw done` once every suite has run.

use std::fmt::Write as _;

/// The smoke subset, by suite: what the slow columns (PREEMPT_RT, cloud, arm64) run.
/// One test per capability: an exec, an open and a map of a GGUF blob, a listener, loss
/// accounting, and the verifier's budget, read mode and fallbacks of every program.
pub(crate) const SMOKE: [(&str, &[&str]); 4] = [
    (
        "detection",
        &[
            "ollama_serve_is_classified_as_the_ollama_runtime",
            "an_ollama_blob_opened_and_mapped_by_a_child_is_a_gguf_model",
        ],
    ),
    ("listeners", &["loopback_listener_on_the_ollama_port"]),
    ("kernel_filter", &["with_a_tiny_ring_buffer_delivered_plus_lost_equals_generated"]),
    (
        "verifier_budget",
        &[
            "every_program_is_within_its_verifier_budget",
            "each_hook_reports_how_it_reads_kernel_memory",
            "a_tracepoint_fallback_says_why_and_what_it_cannot_see",
        ],
    ),
];

/// One test executable to run: its name, its path, and the tests to run in it (all
/// when empty).
pub(crate) struct Planned {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) only: Vec<&'static str>,
}

/// `tests` (name, path) as planned for the whole suite, or for the smoke subset.
pub(crate) fn plan(tests: &[(String, String)], smoke: bool) -> Vec<Planned> {
    tests
        .iter()
        .filter_map(|(name, path)| {
            let only =
                if smoke { SMOKE.iter().find(|(suite, _)| suite == name)?.1.to_vec() } else { Vec::new() };
            Some(Planned { name: name.clone(), path: path.clone(), only })
        })
        .collect()
}

/// How the test executables run.
#[derive(Clone, Copy)]
pub(crate) struct SuiteOptions {
    /// Each executable is killed after this long (busybox and coreutils `timeout`), so one
    /// hung test does not hide the results of the others.
    pub(crate) suite_timeout_secs: u64,
    /// libtest's `--nocapture`: the tests' output goes to the console as it happens, mixed
    /// with the sensor's stderr, instead of after each test.
    pub(crate) nocapture: bool,
}

/// Exit codes of `timeout` for a command it had to kill: coreutils (host), busybox
/// (guests: the SIGTERM death of the command itself).
pub(crate) const TIMEOUT_EXITS: [i32; 2] = [124, 128 + 15];

/// A `sh` function `run_suite NAME PATH [TEST...]` and the `@@mw done` line's writer.
/// Without `nocapture`, the tests' output is captured by libtest and printed with
/// `--show-output` (that is where the `SKIPPED:` reasons and the hooks line are), while
/// the sensor's own stderr goes to `stderr_to`, away from libtest's result lines.
fn prologue(stderr_to: &str, options: SuiteOptions) -> String {
    let (capture, stderr) = if options.nocapture {
        ("--nocapture", "2>&1".to_owned())
    } else {
        ("--show-output", format!("2>>{}", quote(stderr_to)))
    };
    format!(
        "run_suite() {{\n\
         \x20   name=$1; path=$2; shift 2\n\
         \x20   echo \"@@mw begin $name\"\n\
         \x20   timeout {timeout} \"$path\" --test-threads=1 {capture} \"$@\" {stderr}\n\
         \x20   echo \"@@mw end $name rc=$?\"\n\
         }}\n",
        timeout = options.suite_timeout_secs,
    )
}

/// The calls of `run_suite` for `planned` (a smoke plan passes `--exact` and its tests).
fn calls(planned: &[Planned]) -> String {
    let mut out = String::new();
    for test in planned {
        let _ = write!(out, "run_suite {} {}", quote(&test.name), quote(&test.path));
        if !test.only.is_empty() {
            out.push_str(" --exact");
            for name in &test.only {
                let _ = write!(out, " {}", quote(name));
            }
        }
        out.push('\n');
    }
    out
}

/// A `sh` script that runs `planned` in turn.
pub(crate) fn script(planned: &[Planned], stderr_to: &str, options: SuiteOptions) -> String {
    format!("{}{}echo '@@mw done'\n", prologue(stderr_to, options), calls(planned))
}

/// A `sh` script that runs the full plan, or the smoke plan when the kernel command line
/// says `mw.suite=smoke` (one initramfs serves both).
pub(crate) fn guest_script(
    full: &[Planned],
    smoke: &[Planned],
    stderr_to: &str,
    options: SuiteOptions,
) -> String {
    format!(
        "{}case \"$MW_SUITE\" in\nsmoke)\n{}    ;;\n*)\n{}    ;;\nesac\necho '@@mw done'\n",
        prologue(stderr_to, options),
        calls(smoke),
        calls(full),
    )
}

/// Single-quotes `text` for `sh`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tests() -> Vec<(String, String)> {
        ["detection", "paths", "verifier_budget"]
            .iter()
            .map(|n| ((*n).to_owned(), format!("/mw/deps/{n}")))
            .collect()
    }

    #[test]
    fn the_smoke_plan_names_its_tests_and_leaves_other_suites_out() {
        let plan = plan(&tests(), true);
        let names: Vec<&str> = plan.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["detection", "verifier_budget"]);
        let text = calls(&plan);
        assert!(text.contains(
            "run_suite 'detection' '/mw/deps/detection' --exact 'ollama_serve_is_classified_as_the_ollama_runtime'"
        ));
        let full = calls(&super::plan(&tests(), false));
        assert!(full.contains("run_suite 'paths' '/mw/deps/paths'\n"), "{full}");
    }

    #[test]
    fn every_smoke_test_is_named_once() {
        let mut all: Vec<&str> = SMOKE.iter().flat_map(|(_, tests)| tests.iter().copied()).collect();
        let before = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), before);
    }
}
