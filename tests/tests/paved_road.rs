//! End to end: the paved road. Real probes, real fake runtimes, a real catalog file, and
//! the verdicts, sessions, inventory and bill of materials that come out.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use modelwatch_tests::{
    Sensor, gguf_header, grpc, kind, pid_of, require_privileges, run_actor, spawn_actor, test_python,
    workspace_binary,
};
use proto::v1::{Inventory, ListInventoryRequest};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_owned()
}

fn catalog(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("catalog.toml");
    std::fs::write(&path, text).expect("catalog");
    path
}

fn start_with(catalog: &Path) -> Sensor {
    Sensor::start(&["--catalog", &catalog.display().to_string()])
}

/// The final verdict of `path`: on its `model_hashed`, else on a non-provisional finding.
fn final_verdict(sensor: &mut Sensor, path: &str) -> Value {
    let event = sensor
        .next_matching(WAIT, |e| {
            (kind(e) == "model_hashed"
                && e["model_hashed"]["path"] == path
                && e["model_hashed"]["verdict"]["provisional"] != true)
                || (kind(e) == "finding" && e["finding"]["subject_id"] == path)
        })
        .unwrap_or_else(|| panic!("no final verdict for {path}"));
    let name = kind(&event).to_owned();
    if name == "finding" {
        event["finding"]["verdict"].clone()
    } else {
        event[name.as_str()]["verdict"].clone()
    }
}

fn inventory(sensor: &Sensor) -> Inventory {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let mut client = grpc::connect(&sensor.socket).await;
        client
            .list_inventory(ListInventoryRequest {})
            .await
            .expect("ListInventory")
            .into_inner()
            .inventory
            .expect("inventory")
    })
}

#[test]
fn a_model_whose_digest_is_pinned_is_approved() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("qwen.gguf");
    std::fs::write(&model, gguf_header("qwen2.5-coder-7b-instruct", "apache-2.0")).expect("model");
    let digest = sha256_hex(&model);
    let catalog = catalog(
        dir.path(),
        &format!(
            "[[model]]\nname = \"qwen2.5-coder-7b-instruct\"\nsha256 = [\"{digest}\"]\nlicense = \"apache-2.0\"\n"
        ),
    );
    let mut sensor = start_with(&catalog);
    let path = model.display().to_string();
    let _ = run_actor(dir.path(), "llama-server", &["-m", &path], &format!("openmap:{path};sleep:300"));
    let verdict = final_verdict(&mut sensor, &path);
    assert_eq!(verdict["verdict"], "approved", "{verdict}");
    assert!(verdict["reason"].as_str().unwrap_or("").contains("pinned"), "{verdict}");
}

#[test]
fn the_same_ollama_tag_with_other_content_is_tampered() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    let content = gguf_header("tinyllama", "apache-2.0");
    let blob_path = models.join("blobs/sha256-pending");
    std::fs::create_dir_all(blob_path.parent().expect("parent")).expect("blobs");
    std::fs::write(&blob_path, &content).expect("blob");
    let digest = sha256_hex(&blob_path);
    let blob = models.join("blobs").join(format!("sha256-{digest}"));
    std::fs::rename(&blob_path, &blob).expect("rename");
    let manifest = models.join("manifests/registry.ollama.ai/library/tinyllama/latest");
    std::fs::create_dir_all(manifest.parent().expect("parent")).expect("manifests");
    std::fs::write(&manifest, format!(r#"{{"schemaVersion":2,"layers":[{{"digest":"sha256:{digest}"}}]}}"#))
        .expect("manifest");
    // The catalog pins another digest for the same model:tag.
    let pinned = "0".repeat(64);
    let catalog = catalog(
        dir.path(),
        &format!(
            "[[model]]\nname = \"tinyllama\"\nsha256 = [\"{pinned}\"]\nsources = [\"ollama:tinyllama:latest\"]\n"
        ),
    );
    let mut sensor = start_with(&catalog);
    let path = blob.display().to_string();
    let _ = run_actor(dir.path(), "ollama", &["runner"], &format!("open:{path};sleep:300"));
    let verdict = final_verdict(&mut sensor, &path);
    assert_eq!(verdict["verdict"], "tampered", "{verdict}");
    assert_eq!(verdict["severity"], "SEVERITY_CRITICAL");
}

#[test]
fn a_non_commercial_license_is_restricted() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("nc.gguf");
    std::fs::write(&model, gguf_header("research-only", "cc-by-nc-4.0")).expect("model");
    // No catalog: the default policy denies non-commercial licenses.
    let mut sensor = Sensor::start(&[]);
    let path = model.display().to_string();
    let _ = run_actor(dir.path(), "llama-server", &[], &format!("open:{path};sleep:300"));
    let verdict = final_verdict(&mut sensor, &path);
    assert_eq!(verdict["verdict"], "license_restricted", "{verdict}");
}

/// A stored zip entry (PyTorch checkpoints are zips of stored entries).
fn stored_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let crc = crc32(data);
        let offset = u32::try_from(out.len()).expect("small");
        let size = u32::try_from(data.len()).expect("small");
        let name_len = u16::try_from(name.len()).expect("short");
        out.extend_from_slice(b"PK\x03\x04\x14\0\0\0\0\0\0\0\0\0");
        for v in [crc, size, size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(b"PK\x01\x02\x14\0\x14\0\0\0\0\0\0\0\0\0");
        for v in [crc, size, size] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(&name_len.to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let at = u32::try_from(out.len()).expect("small");
    let count = u16::try_from(entries.len()).expect("few");
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&u32::try_from(central.len()).expect("small").to_le_bytes());
    out.extend_from_slice(&at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn a_pytorch_zip_whose_pickle_runs_a_command_is_unsafe() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let pickle = b"\x80\x02cos\nsystem\nq\x00X\x02\x00\x00\x00idq\x01\x85q\x02Rq\x03.";
    let zip = stored_zip(&[("archive/data.pkl", pickle), ("archive/version", b"3\n")]);
    let model = dir.path().join("model.pt");
    std::fs::write(&model, zip).expect("model");
    let mut sensor = Sensor::start(&[]);
    let path = model.display().to_string();
    let _ = run_actor(dir.path(), "trainer", &[], &format!("open:{path};sleep:300"));
    let verdict = final_verdict(&mut sensor, &path);
    assert_eq!(verdict["verdict"], "unsafe_format", "{verdict}");
    assert_eq!(verdict["severity"], "SEVERITY_CRITICAL", "{verdict}");
}

/// Keys and signatures made by the real `model-signing` package.
fn signed_model(dir: &Path) -> Option<PathBuf> {
    let python = match test_python() {
        Ok(python) => python,
        Err(reason) => {
            eprintln!("SKIPPED: {reason}");
            return None;
        }
    };
    let script = r#"
import pathlib, sys
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
import model_signing
work = pathlib.Path(sys.argv[1])
for name in ("platform", "stranger"):
    key = ec.generate_private_key(ec.SECP256R1())
    (work / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (work / f"{name}.pub").write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
for name, key in (("good", "platform"), ("stranger", "stranger")):
    model = work / name
    model.mkdir()
    (model / "weights.gguf").write_bytes(pathlib.Path(sys.argv[2]).read_bytes())
    config = model_signing.signing.Config().use_elliptic_key_signer(private_key=work / f"{key}.key")
    config.sign(model, model / "model.sig")
"#;
    let header = dir.join("header.gguf");
    std::fs::write(&header, gguf_header("signed", "apache-2.0")).expect("header");
    let out = Command::new(python).args(["-c", script]).arg(dir).arg(&header).output().expect("python");
    assert!(out.status.success(), "signing failed: {}", String::from_utf8_lossy(&out.stderr));
    Some(dir.join("platform.pub"))
}

#[test]
fn signed_models_are_approved_tampered_ones_invalid_and_unlisted_signers_unapproved() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(key) = signed_model(dir.path()) else { return };
    let catalog = catalog(
        dir.path(),
        &format!("[[model]]\nname = \"platform-team-model\"\nsigners = [\"{}\"]\n", key.display()),
    );
    let mut sensor = start_with(&catalog);
    let good = dir.path().join("good/weights.gguf").display().to_string();
    let _ = run_actor(dir.path(), "llama-server", &[], &format!("open:{good};sleep:300"));
    assert_eq!(final_verdict(&mut sensor, &good)["verdict"], "approved");
    let stranger = dir.path().join("stranger/weights.gguf").display().to_string();
    let _ = run_actor(dir.path(), "llama-server", &[], &format!("open:{stranger};sleep:300"));
    assert_eq!(final_verdict(&mut sensor, &stranger)["verdict"], "unapproved");
    // One byte changed after signing.
    let mut bytes = std::fs::read(&good).expect("read");
    *bytes.last_mut().expect("bytes") ^= 1;
    std::fs::write(&good, bytes).expect("write");
    let _ = run_actor(dir.path(), "llama-server", &[], &format!("open:{good};sleep:300"));
    assert_eq!(final_verdict(&mut sensor, &good)["verdict"], "signature_invalid");
}

fn session_of(inventory: &Inventory, pid: u32) -> Option<&proto::v1::InferenceSession> {
    inventory.sessions.iter().find(|s| s.pids.contains(&pid) || s.root.as_ref().is_some_and(|r| r.pid == pid))
}

/// Waits until the inventory shows a session for `pid` satisfying `done`.
fn wait_session(
    sensor: &Sensor,
    pid: u32,
    done: impl Fn(&proto::v1::InferenceSession) -> bool,
) -> proto::v1::InferenceSession {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let inventory = inventory(sensor);
        if let Some(session) = session_of(&inventory, pid).filter(|s| done(s)) {
            return session.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no session for {pid}: {inventory:#?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn a_runtime_running_before_the_sensor_is_one_session_in_the_inventory() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("preloaded.gguf");
    std::fs::write(&model, gguf_header("preloaded", "apache-2.0")).expect("model");
    let script = format!("openmap:{};listen:127.0.0.1:11434;sleep:30000", model.display());
    let mut runtime = spawn_actor(dir.path(), "ollama", &["serve"], &script);
    std::thread::sleep(Duration::from_millis(500));
    let sensor = Sensor::start(&[]);
    let session = wait_session(&sensor, runtime.id(), |s| !s.models.is_empty() && !s.listeners.is_empty());
    let _ = runtime.kill();
    let _ = runtime.wait();
    assert_eq!(session.runtime, proto::v1::Runtime::Ollama as i32);
    assert_eq!(session.models[0].path, model.display().to_string());
    assert_eq!(session.listeners[0].port, 11434);
    let rendered = Command::new(workspace_binary("modelwatch"))
        .args(["inventory", "--socket"])
        .arg(&sensor.socket)
        .output()
        .expect("modelwatch inventory");
    let table = String::from_utf8_lossy(&rendered.stdout);
    eprintln!("{table}");
    assert!(table.contains(&session.id), "{table}");
}

#[test]
fn an_unclassified_process_that_maps_a_model_and_listens_is_an_unknown_runtime() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("side.gguf");
    std::fs::write(&model, gguf_header("side", "apache-2.0")).expect("model");
    let sensor = Sensor::start(&[]);
    let mut notepad = spawn_actor(
        dir.path(),
        "notepad",
        &[],
        &format!("openmap:{};listen:127.0.0.1:9999;sleep:5000", model.display()),
    );
    let session = wait_session(&sensor, notepad.id(), |s| {
        s.verdict.as_ref().is_some_and(|v| v.rules.iter().any(|r| r.verdict == "unknown_runtime"))
    });
    let _ = notepad.kill();
    let _ = notepad.wait();
    assert_eq!(session.listeners[0].port, 9999);
}

#[test]
fn a_listener_on_all_interfaces_is_exposed() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sensor = Sensor::start(&[]);
    let pid = run_actor(dir.path(), "ollama", &["serve"], "listen:0.0.0.0:11434;sleep:500");
    let finding = sensor
        .next_matching(WAIT, |e| kind(e) == "finding" && pid_of(e) == u64::from(pid))
        .expect("a finding for the exposed server");
    assert_eq!(finding["finding"]["verdict"]["verdict"], "exposed_listener", "{finding}");
    assert_eq!(finding["finding"]["subject"], "session");
}

/// A copy of the actor named `ollama` carrying Go build info of Ollama `version`.
fn old_ollama(dir: &Path, version: &str) -> Option<PathBuf> {
    if !Command::new("objcopy").arg("--version").output().is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: objcopy (binutils) is not installed");
        return None;
    }
    let modinfo = format!(
        "path\tgithub.com/ollama/ollama\nmod\tgithub.com/ollama/ollama\t(devel)\t\nbuild\t-ldflags=\"-X=github.com/ollama/ollama/version.Version={version}\""
    );
    let mut info = b"\xff Go buildinf:".to_vec();
    info.extend_from_slice(&[8, 0x2]);
    info.resize(32, 0);
    let mut framed = vec![b'0'; 16];
    framed.extend_from_slice(modinfo.as_bytes());
    framed.push(b'\n');
    framed.extend_from_slice(&[b'1'; 16]);
    for s in [b"go1.24.0".as_slice(), framed.as_slice()] {
        let mut n = s.len() as u64;
        while n >= 0x80 {
            info.push(u8::try_from(n & 0x7f).expect("7 bits") | 0x80);
            n >>= 7;
        }
        info.push(u8::try_from(n).expect("small"));
        info.extend_from_slice(s);
    }
    let blob = dir.join("buildinfo");
    std::fs::write(&blob, info).expect("buildinfo");
    let out = dir.join("ollama");
    let status = Command::new("objcopy")
        .arg(format!("--add-section=.go.buildinfo={}", blob.display()))
        .arg("--set-section-flags=.go.buildinfo=contents,readonly,data")
        .arg(workspace_binary("mw-actor"))
        .arg(&out)
        .status()
        .expect("objcopy");
    assert!(status.success());
    Some(out)
}

#[test]
fn an_ollama_below_its_fixed_version_is_a_vulnerable_runtime() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    if old_ollama(dir.path(), "0.12.0").is_none() {
        return;
    }
    let sensor = Sensor::start(&[]);
    // run_actor reuses the `ollama` already in dir: the one carrying old build info.
    let mut server = spawn_actor(dir.path(), "ollama", &["serve"], "listen:127.0.0.1:11434;sleep:5000");
    let session = wait_session(&sensor, server.id(), |s| {
        s.verdict.as_ref().is_some_and(|v| v.rules.iter().any(|r| r.verdict == "vulnerable_runtime"))
    });
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(session.runtime_version, "0.12.0");
    let verdict = session.verdict.expect("verdict");
    assert!(verdict.rules.iter().any(|r| r.reason.contains("CVE-2026-7482")), "{verdict:?}");
}

#[test]
fn a_broken_catalog_is_refused_and_the_old_verdicts_stay() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("kept.gguf");
    std::fs::write(&model, gguf_header("kept", "apache-2.0")).expect("model");
    let digest = sha256_hex(&model);
    let catalog = catalog(dir.path(), &format!("[[model]]\nname = \"kept\"\nsha256 = [\"{digest}\"]\n"));
    let mut sensor = start_with(&catalog);
    let path = model.display().to_string();
    let _ = run_actor(dir.path(), "llama-server", &[], &format!("open:{path};sleep:300"));
    assert_eq!(final_verdict(&mut sensor, &path)["verdict"], "approved");
    std::fs::write(&catalog, "[[model]]\nname = \"kept\"\nsha256 = [\"not-a-digest\"]\n").expect("break it");
    let refused = sensor
        .next_matching(WAIT, |e| kind(e) == "finding" && e["finding"]["subject"] == "catalog")
        .expect("the refusal is a finding");
    assert_eq!(refused["finding"]["verdict"]["verdict"], "catalog_invalid", "{refused}");
    assert!(refused["finding"]["verdict"]["reason"].as_str().unwrap_or("").contains("line 3"), "{refused}");
    let inventory = inventory(&sensor);
    let kept = inventory
        .models
        .iter()
        .find(|m| m.file.as_ref().is_some_and(|f| f.path == path))
        .and_then(|m| m.file.as_ref())
        .and_then(|f| f.verdict.clone())
        .expect("the model in the inventory");
    assert_eq!(kept.verdict, "approved");
}

#[test]
fn the_bill_of_materials_is_valid_cyclonedx_and_carries_the_approved_hash() {
    require_privileges!();
    let python = match test_python() {
        Ok(python) => python,
        Err(reason) => {
            eprintln!("SKIPPED: {reason}");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("bom.gguf");
    std::fs::write(&model, gguf_header("bom-model", "apache-2.0")).expect("model");
    let digest = sha256_hex(&model);
    let catalog = catalog(dir.path(), &format!("[[model]]\nname = \"bom-model\"\nsha256 = [\"{digest}\"]\n"));
    let mut sensor = start_with(&catalog);
    let path = model.display().to_string();
    let _ = run_actor(dir.path(), "llama-server", &[], &format!("open:{path};sleep:300"));
    assert_eq!(final_verdict(&mut sensor, &path)["verdict"], "approved");
    let bom = dir.path().join("bom.json");
    let status = Command::new(workspace_binary("modelwatch"))
        .args(["bom", "--socket"])
        .arg(&sensor.socket)
        .arg("--output")
        .arg(&bom)
        .status()
        .expect("modelwatch bom");
    assert!(status.success());
    let text = std::fs::read_to_string(&bom).expect("bom");
    assert!(text.contains(&digest), "the approved model's hash is in the BOM");
    let validate = r#"
import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(open(sys.argv[1]).read())
if errors:
    print(errors)
    sys.exit(1)
"#;
    let out = Command::new(python).args(["-c", validate]).arg(&bom).output().expect("python");
    assert!(
        out.status.success(),
        "the BOM does not validate against CycloneDX 1.6: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_session_opening_a_sensitive_path_is_a_finding() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = dir.path().join("customer-data");
    std::fs::create_dir(&secrets).expect("mkdir");
    std::fs::write(secrets.join("export.csv"), "name,card\n").expect("data");
    let model = dir.path().join("m.gguf");
    std::fs::write(&model, gguf_header("m", "apache-2.0")).expect("model");
    let catalog = catalog(dir.path(), &format!("[policy]\nsensitive_paths = [\"{}\"]\n", secrets.display()));
    let mut sensor = start_with(&catalog);
    let script = format!(
        "openmap:{};listen:127.0.0.1:0;sleep:500;open:{};sleep:500",
        model.display(),
        secrets.join("export.csv").display()
    );
    let pid = run_actor(dir.path(), "llama-server", &[], &script);
    let finding = sensor
        .next_matching(WAIT, |e| {
            kind(e) == "finding"
                && pid_of(e) == u64::from(pid)
                && e["finding"]["verdict"]["verdict"] == "sensitive_data_access"
        })
        .expect("a sensitive-data finding");
    assert!(
        finding["finding"]["verdict"]["reason"].as_str().unwrap_or("").contains("export.csv"),
        "{finding}"
    );
}

#[test]
fn the_sweep_lists_models_at_rest() {
    require_privileges!();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store");
    std::fs::create_dir(&store).expect("mkdir");
    let model = store.join("resting.gguf");
    std::fs::write(&model, gguf_header("resting", "apache-2.0")).expect("model");
    let config = dir.path().join("modelwatch.toml");
    std::fs::write(&config, format!("[sweep]\nonly_roots = true\nroots = [\"{}\"]\n", store.display()))
        .expect("config");
    let sensor = Sensor::start(&["--config", &config.display().to_string()]);
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let inventory = inventory(&sensor);
        let found = inventory
            .models
            .iter()
            .find(|m| m.file.as_ref().is_some_and(|f| f.path == model.display().to_string()));
        if let Some(found) = found {
            assert!(found.at_rest, "{found:?}");
            assert!(inventory.sweep.as_ref().is_some_and(|s| s.models_found >= 1));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the at-rest model never showed: {inventory:#?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}
