//! `modelwatch scan`: exit codes a model-hub pipeline can gate on, and its JSON.

use std::process::Command;

use modelwatch_tests::{gguf_header, workspace_binary};

fn scan(args: &[&str]) -> std::process::Output {
    Command::new(workspace_binary("modelwatch")).arg("scan").args(args).output().expect("run modelwatch scan")
}

#[test]
fn clean_models_exit_0_and_are_listed_with_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("llama.gguf"), gguf_header("Llama", "llama3")).expect("gguf");
    std::fs::write(dir.path().join("notes.txt"), b"not a model").expect("txt");
    let out = scan(&["--output", "json", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 1, "only the model is listed: {lines:?}");
    assert_eq!(lines[0]["format"], "gguf");
    assert_eq!(lines[0]["gguf"]["license"], "llama3");
    assert_eq!(lines[0]["sha256"].as_str().map(str::len), Some(64));
}

#[test]
fn a_dangerous_pickle_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    // builtins.exec through GLOBAL (protocol 0 style), never unpickled.
    std::fs::write(dir.path().join("weights.pkl"), b"cbuiltins\nexec\n(Vprint(1)\ntR.").expect("pickle");
    let out = scan(&[&dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("weights.pkl") && table.contains("pickle_dangerous_import"), "{table}");
}

#[test]
fn an_unreadable_path_exits_2_and_names_it() {
    let out = scan(&["/nonexistent/modelwatch-scan"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/modelwatch-scan"));
}
