//! `cargo xtask image`: the container image. A fully static `modelwatch` (the same
//! build as the VM tests', so one build serves both) in a `FROM scratch` image built by
//! podman: no shell, no libc, nothing but the binary. Labelled with the OCI annotations,
//! stamped with the commit's time so that the same binary gives the same digest, and
//! tagged with the workspace version: never a tag that moves.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use crate::{
    setup,
    vm::{Arch, static_build},
};

/// The image's name; its tag is the workspace version.
pub(crate) const NAME: &str = "modelwatch";
const CONTAINERFILE: &str = "deploy/container/Containerfile";
const CONTEXT: &str = "target/image/context";

/// What `cargo xtask image` made.
pub(crate) struct Image {
    pub(crate) reference: String,
    pub(crate) id: String,
    pub(crate) digest: String,
    pub(crate) size_bytes: u64,
    pub(crate) archive: PathBuf,
}

pub(crate) fn run() -> anyhow::Result<()> {
    let image = build()?;
    let version = version()?;
    let mib = image.size_bytes as f64 / f64::from(1 << 20);
    let report = format!(
        "image    {reference}\n\
         id       {id}\n\
         digest   {digest} (local storage)\n\
         size     {size} bytes ({mib:.1} MiB)\n\
         archive  {archive} (oci-archive)\n\n\
         Push it, then pin the digest the registry stored (a push compresses the layers,\n\
         so that digest, not the local one, is the one to pin):\n  \
         podman push --digestfile target/image/pushed-digest {reference} REGISTRY/{NAME}:{version}\n\
         then put that digest in your overlay's `images:` (see deploy/kubernetes/overlays/example).",
        reference = image.reference,
        id = image.id,
        digest = image.digest,
        size = image.size_bytes,
        archive = image.archive.display(),
    );
    #[expect(clippy::print_stdout, reason = "the command's report")]
    {
        println!("{report}");
    }
    Ok(())
}

/// Builds the static binary and the image; returns what was built.
pub(crate) fn build() -> anyhow::Result<Image> {
    setup::container_packages()?;
    // The image runs on this machine's architecture.
    let arch = Arch::host().context("no static build for this machine's architecture")?;
    let built = static_build::cargo_artifacts(
        arch,
        &["build", "-p", "modelwatch", "-p", "modelwatch-tests", "--bins"],
    )?;
    let binary = built
        .iter()
        .find(|b| b.name == "modelwatch")
        .map(|b| b.path.clone())
        .context("cargo built no `modelwatch` binary")?;
    static_build::ensure_static(&binary, arch)?;
    let context = PathBuf::from(CONTEXT);
    std::fs::create_dir_all(&context).with_context(|| format!("creating {CONTEXT}"))?;
    std::fs::copy(&binary, context.join("modelwatch")).context("copying the binary into the context")?;
    let version = version()?;
    let reference = format!("localhost/{NAME}:{version}");
    let (revision, created_unix) = commit()?;
    let mut build = podman();
    // No layer cache: it keys on the instruction's text, not on the build arguments,
    // and would keep the labels (revision, created) of an earlier build.
    build.args([
        "build",
        "--no-cache",
        "--file",
        CONTAINERFILE,
        "--tag",
        &reference,
        "--timestamp",
        &created_unix,
    ]);
    for (arg, value) in [("VERSION", version.as_str()), ("REVISION", revision.as_str())] {
        build.arg("--build-arg").arg(format!("{arg}={value}"));
    }
    build.arg("--build-arg").arg(format!("CREATED={}", rfc3339(&created_unix)?));
    build.arg(&context);
    setup::run_checked(&mut build)?;
    let inspect = |format: &str| -> anyhow::Result<String> {
        let out = podman().args(["image", "inspect", "--format", format, &reference]).output()?;
        if !out.status.success() {
            bail!("podman image inspect {reference}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let id = inspect("{{.Id}}")?;
    let digest = inspect("{{.Digest}}")?;
    let size_bytes = inspect("{{.Size}}")?.parse().context("image size")?;
    let archive = PathBuf::from(format!("target/image/{NAME}-{version}.oci.tar"));
    let _ = std::fs::remove_file(&archive);
    setup::run_checked(
        podman().args(["save", "--format", "oci-archive", "--output"]).arg(&archive).arg(&reference),
    )?;
    Ok(Image { reference, id, digest, size_bytes, archive })
}

/// podman as this project runs it: cgroupfs and a file for events work whether or not
/// systemd is PID 1 (CI machines have none).
pub(crate) fn podman() -> Command {
    let mut command = Command::new("podman");
    command.args(["--cgroup-manager=cgroupfs", "--events-backend=file"]);
    command
}

/// The workspace version (`[workspace.package] version`).
pub(crate) fn version() -> anyhow::Result<String> {
    let manifest = std::fs::read_to_string("Cargo.toml").context("reading Cargo.toml")?;
    manifest
        .lines()
        .skip_while(|line| line.trim() != "[workspace.package]")
        .find_map(|line| line.trim().strip_prefix("version = "))
        .map(|v| v.trim_matches('"').to_owned())
        .context("no version in [workspace.package] of Cargo.toml")
}

/// The commit's hash (with `-dirty` for uncommitted changes) and time (Unix seconds).
fn commit() -> anyhow::Result<(String, String)> {
    let git = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new("git").args(args).output().context("running git")?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let mut revision = git(&["rev-parse", "HEAD"])?;
    if revision.is_empty() {
        revision = "unknown".into();
    } else if !git(&["status", "--porcelain", "--untracked-files=no"])?.is_empty() {
        revision.push_str("-dirty");
    }
    let time = git(&["log", "-1", "--format=%ct"])?;
    Ok((revision, if time.is_empty() { "0".into() } else { time }))
}

/// Unix seconds as RFC 3339 UTC, by `date` (no time crate in xtask for one line).
fn rfc3339(unix: &str) -> anyhow::Result<String> {
    let out = Command::new("date").args(["-u", "-d", &format!("@{unix}"), "+%Y-%m-%dT%H:%M:%SZ"]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
