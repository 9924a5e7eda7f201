//! The shell loop that runs the test executables, shared by the guests' `/init` and the
//! host run so that both report in the same words: `@@mw begin <suite>`, libtest's own
//! lines, `@@mw end <suite> rc=<code>`, and `@@mw done` once every suite has run.

use std::fmt::Write as _;

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

/// A `sh` script that runs each `(name, path)` in turn. Without `nocapture`, the tests'
/// output is captured by libtest and printed with `--show-output` (that is where the
/// `SKIPPED:` reasons and the hooks line are), while the sensor's own stderr goes to
/// `stderr_to`, away from libtest's result lines.
pub(crate) fn script(tests: &[(String, String)], stderr_to: &str, options: SuiteOptions) -> String {
    let (capture, stderr) = if options.nocapture {
        ("--nocapture", "2>&1".to_owned())
    } else {
        ("--show-output", format!("2>>{}", quote(stderr_to)))
    };
    let mut out = format!(
        "run_suite() {{\n\
         \x20   name=$1; shift\n\
         \x20   echo \"@@mw begin $name\"\n\
         \x20   timeout {timeout} \"$@\" --test-threads=1 {capture} {stderr}\n\
         \x20   echo \"@@mw end $name rc=$?\"\n\
         }}\n",
        timeout = options.suite_timeout_secs,
    );
    for (name, path) in tests {
        let _ = writeln!(out, "run_suite {} {}", quote(name), quote(path));
    }
    out.push_str("echo '@@mw done'\n");
    out
}

/// Single-quotes `text` for `sh`.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}
