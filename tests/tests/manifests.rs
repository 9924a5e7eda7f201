//! The deployment files, checked by the tools a platform team would run: the
//! Kubernetes manifests rendered by `kubectl kustomize` (base, example overlay, and
//! the base with every optional component), validated against the Kubernetes 1.33
//! schemas by `kubernetes-validate --strict`, scanned by checkov (no failing check; every
//! skip carries its reason, and no skip is stale) and yamllint; the systemd unit
//! verified by `systemd-analyze verify` and rated by `systemd-analyze security`. Both
//! carry exactly the capability set that `capabilities.rs` measures.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use modelwatch_tests::{deploy::KEPT_CAPABILITIES, test_python};
use serde_json::Value;

/// The Kubernetes version whose schemas the manifests are checked against.
const KUBERNETES_VERSION: &str = "1.33.0";
/// The unit's `systemd-analyze security` exposure may not grow past this (measured 1.7).
const MAX_SYSTEMD_EXPOSURE: f64 = 1.7;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// A tool from the tests' venv (`tests/python/requirements.txt`).
fn venv_tool(name: &str) -> Result<PathBuf, String> {
    let python = test_python()?;
    let tool = python.parent().ok_or("venv without bin/")?.join(name);
    if tool.exists() { Ok(tool) } else { Err(format!("{} is missing from the venv", tool.display())) }
}

fn output(command: &mut Command) -> (bool, String, String) {
    let out = command.output().unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Why `kubectl kustomize` cannot render these manifests here, if it cannot.
fn kustomize_skip_reason() -> Option<String> {
    let Ok(out) = Command::new("kubectl").args(["version", "--client", "--output=json"]).output() else {
        return Some("kubectl is not installed".into());
    };
    let version: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let kustomize = version["kustomizeVersion"].as_str().unwrap_or("");
    let major: u32 =
        kustomize.trim_start_matches('v').split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
    // Components (the optional parts) need kustomize 3.7; kubectl 1.21+ embeds v4+.
    (major < 4)
        .then(|| format!("kubectl's kustomize is {kustomize:?}: components need v4 or later (kubectl 1.21+)"))
}

/// The three renderings: base, example overlay, base with every component.
fn renderings(scratch: &Path) -> Vec<(&'static str, PathBuf)> {
    let kubernetes = repo().join("deploy/kubernetes");
    let everything = scratch.join("all-components");
    std::fs::create_dir_all(&everything).expect("mkdir");
    let relative = |dir: &str| pathdiff(&kubernetes.join(dir), &everything);
    std::fs::write(
        everything.join("kustomization.yaml"),
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - {}\ncomponents:\n  - {}\n  - {}\n",
            relative("base"),
            relative("components/mtls"),
            relative("components/seccomp-localhost"),
        ),
    )
    .expect("write kustomization");
    [
        ("base", kubernetes.join("base")),
        ("example", kubernetes.join("overlays/example")),
        ("all-components", everything),
    ]
    .into_iter()
    .map(|(name, dir)| {
        let (ok, yaml, err) = output(Command::new("kubectl").arg("kustomize").arg(&dir));
        assert!(ok, "kubectl kustomize {} failed: {err}", dir.display());
        let file = scratch.join(format!("{name}.yaml"));
        std::fs::write(&file, yaml).expect("write rendering");
        (name, file)
    })
    .collect()
}

/// `target` relative to `from` (kustomize refuses absolute paths for resources).
fn pathdiff(target: &Path, from: &Path) -> String {
    let ups = from.components().count();
    let mut out = PathBuf::new();
    for _ in 0..ups {
        out.push("..");
    }
    out.join(target.strip_prefix("/").unwrap_or(target)).display().to_string()
}

/// The documents of a YAML file, as JSON (through the venv's PyYAML).
fn documents(file: &Path) -> Vec<Value> {
    let python = test_python().expect("venv");
    let script =
        "import sys, json, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))";
    let (ok, json, err) = output(Command::new(python).args(["-c", script]).arg(file));
    assert!(ok, "reading {}: {err}", file.display());
    serde_json::from_str(&json).expect("JSON from PyYAML")
}

fn daemonset(documents: &[Value]) -> &Value {
    documents.iter().find(|d| d["kind"] == "DaemonSet").expect("a DaemonSet")
}

#[test]
fn kustomize_renders_valid_kubernetes_objects() {
    if let Some(reason) = kustomize_skip_reason().or_else(|| venv_tool("kubernetes-validate").err()) {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    for (name, file) in renderings(scratch.path()) {
        let (ok, out, err) = output(
            Command::new(venv_tool("kubernetes-validate").expect("tool"))
                .args(["--strict", "--kubernetes-version", KUBERNETES_VERSION])
                .arg(&file),
        );
        assert!(ok, "{name} is not valid Kubernetes {KUBERNETES_VERSION}:\n{out}\n{err}");
        let objects = out.lines().filter(|l| l.contains("passed for resource")).count();
        assert!(objects >= 4, "{name}: {objects} objects validated:\n{out}");
        eprintln!("{name}: {objects} objects valid against Kubernetes {KUBERNETES_VERSION} (strict)");
        check_daemonset(name, &documents(&file));
    }
}

/// What the review asked for, on the rendered DaemonSet.
fn check_daemonset(name: &str, documents: &[Value]) {
    let pod = &daemonset(documents)["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["privileged"], false, "{name}");
    assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
    assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]), "{name}");
    let added: Vec<&str> =
        security["capabilities"]["add"].as_array().expect("added").iter().filter_map(Value::as_str).collect();
    let kept: Vec<&str> = KEPT_CAPABILITIES.iter().map(|k| k.name).collect();
    assert_eq!(added, kept, "{name}: the DaemonSet adds exactly the measured capabilities");
    let image = container["image"].as_str().expect("image");
    let version_tag = format!(":{}", env!("CARGO_PKG_VERSION"));
    assert!(
        image.contains("@sha256:") || image.ends_with(&version_tag),
        "{name}: image {image} is neither pinned by digest nor by this version's tag"
    );
    let mounts = container["volumeMounts"].as_array().expect("mounts");
    let mount = |path: &str| mounts.iter().find(|m| m["mountPath"] == path);
    assert!(mount("/sys/fs/bpf").is_none(), "{name}: nothing is pinned, so no bpffs");
    for read_only in ["/sys/kernel/tracing", "/sys/kernel/btf", "/var/log/pods", "/var/log/containers"] {
        assert_eq!(
            mount(read_only).map(|m| m["readOnly"].clone()),
            Some(Value::Bool(true)),
            "{name}: {read_only}"
        );
    }
    let state = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["hostPath"]["path"] == "/var/lib/modelwatch");
    assert!(state.is_some(), "{name}: the state directory is a hostPath (the durable log)");
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let command = &container[probe]["exec"]["command"];
        assert_eq!(command[0], "/modelwatch", "{name}: {probe} runs the binary itself (no shell)");
        assert_eq!(command[1], "status", "{name}: {probe}");
    }
    assert!(container["resources"]["limits"]["memory"].is_string(), "{name}: a memory limit");
    let rolling = &daemonset(documents)["spec"]["updateStrategy"];
    assert_eq!(rolling["rollingUpdate"]["maxUnavailable"], 1, "{name}: node by node");
    assert_eq!(rolling["rollingUpdate"]["maxSurge"], 0, "{name}: never two sensors on a node");
}

#[test]
fn checkov_finds_nothing_unexplained() {
    if let Some(reason) = kustomize_skip_reason().or_else(|| venv_tool("checkov").err()) {
        eprintln!("SKIPPED: {reason}");
        return;
    }
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut every_skip_used = std::collections::BTreeSet::new();
    for (name, file) in renderings(scratch.path()) {
        let (_, json, err) = output(
            Command::new(venv_tool("checkov").expect("tool"))
                .args(["--framework", "kubernetes", "--skip-download", "--output", "json", "--file"])
                .arg(&file)
                // Offline: no platform lookups.
                .env("BC_SKIP_MAPPING", "TRUE"),
        );
        let report: Value =
            serde_json::from_str(&json).unwrap_or_else(|e| panic!("checkov JSON ({e}): {err}"));
        let results = &report["results"];
        let failed: Vec<String> = results["failed_checks"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| format!("{} {} ({})", c["check_id"], c["check_name"], c["resource"]))
            .collect();
        assert!(
            failed.is_empty(),
            "{name}: checkov checks that fail without an explanation:\n{}",
            failed.join("\n")
        );
        for skip in results["skipped_checks"].as_array().into_iter().flatten() {
            let reason = skip["check_result"]["suppress_comment"].as_str().unwrap_or("");
            assert!(reason.len() > 20, "{name}: {} is skipped without a reason", skip["check_id"]);
            every_skip_used.insert(skip["check_id"].as_str().unwrap_or("").to_owned());
        }
        eprintln!("{name}: checkov {}", report["summary"]);
    }
    for manifest in yaml_files(&repo().join("deploy/kubernetes")) {
        let text = std::fs::read_to_string(&manifest).expect("read");
        for line in text.lines().filter(|l| l.trim_start().starts_with("CKV")) {
            let id = line.trim().split('=').next().unwrap_or("");
            assert!(
                every_skip_used.contains(id),
                "{}: the skip of {id} is stale: checkov passes it",
                manifest.display()
            );
        }
    }
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
    out
}

#[test]
fn yamllint_is_clean() {
    let Ok(yamllint) = venv_tool("yamllint") else {
        eprintln!("SKIPPED: {}", venv_tool("yamllint").expect_err("missing"));
        return;
    };
    let kubernetes = repo().join("deploy/kubernetes");
    let (ok, out, err) = output(
        Command::new(yamllint).arg("--strict").arg("-c").arg(kubernetes.join(".yamllint")).arg(&kubernetes),
    );
    assert!(ok, "yamllint:\n{out}{err}");
}

/// The unit with its ExecStart pointing at the built binary (verify checks it exists).
fn unit_for_this_build(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/modelwatch.service")).expect("read unit");
    let binary = modelwatch_tests::workspace_binary("modelwatch");
    let path = dir.join("modelwatch.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/modelwatch", &binary.display().to_string()))
        .expect("write");
    path
}

#[test]
fn the_systemd_unit_verifies_and_keeps_only_the_measured_capabilities() {
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("SKIPPED: systemd-analyze is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = unit_for_this_build(dir.path());
    let (ok, out, err) = output(Command::new("systemd-analyze").arg("verify").arg(&unit));
    assert!(ok && err.trim().is_empty(), "systemd-analyze verify:\n{out}{err}");
    let text = std::fs::read_to_string(&unit).expect("read");
    let setting = |key: &str| text.lines().filter_map(|l| l.strip_prefix(key)).collect::<Vec<_>>();
    let bounding: Vec<&str> =
        setting("CapabilityBoundingSet=").iter().flat_map(|v| v.split_whitespace()).collect();
    let kept: Vec<String> = KEPT_CAPABILITIES.iter().map(|k| format!("CAP_{}", k.name)).collect();
    assert_eq!(bounding, kept, "the unit's bounding set is the measured set");
    for required in [
        "ProtectSystem=strict",
        "ProtectKernelModules=yes",
        "NoNewPrivileges=yes",
        "StateDirectory=modelwatch",
    ] {
        assert!(text.lines().any(|l| l == required), "the unit lacks {required}");
    }
    assert!(!setting("SystemCallFilter=").is_empty(), "the unit filters system calls");
    assert!(!text.contains("/sys/fs/bpf"), "nothing is pinned: bpffs stays read-only");
    let (_, report, err) =
        output(Command::new("systemd-analyze").args(["security", "--offline=true", "--no-pager"]).arg(&unit));
    let exposure: f64 = report
        .lines()
        .find_map(|l| l.split("Overall exposure level for modelwatch.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}{err}"));
    eprintln!("systemd-analyze security: exposure {exposure}");
    assert!(exposure <= MAX_SYSTEMD_EXPOSURE, "exposure {exposure} > {MAX_SYSTEMD_EXPOSURE}:\n{report}");
}
