//! The tests' Python environment: a venv under `target/pyenv` with the third-party
//! tools the suite runs against the sensor (`tests/python/requirements.txt`). Created
//! and updated idempotently: pip runs only when the requirements file changed.

use std::{path::PathBuf, process::Command};

use anyhow::Context as _;

use crate::setup::run_checked;

const REQUIREMENTS: &str = "tests/python/requirements.txt";

/// Where the venv lives, relative to the workspace root.
pub(crate) fn dir() -> PathBuf {
    PathBuf::from("target/pyenv")
}

/// The venv's interpreter, absolute (tests run from other directories).
pub(crate) fn python() -> anyhow::Result<PathBuf> {
    let path = std::env::current_dir()?.join(dir()).join("bin/python");
    Ok(path)
}

/// Creates the venv if missing and installs the requirements if they changed.
pub(crate) fn ensure() -> anyhow::Result<()> {
    let venv = dir();
    if !venv.join("bin/python").exists() {
        eprintln!("setup: creating the tests' Python environment in {}", venv.display());
        run_checked(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    let wanted = std::fs::read_to_string(REQUIREMENTS).with_context(|| format!("reading {REQUIREMENTS}"))?;
    let stamp = venv.join("installed-requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    if wanted.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')) {
        eprintln!("setup: installing the tests' Python packages ({REQUIREMENTS})");
        run_checked(Command::new(venv.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            REQUIREMENTS,
        ]))?;
    }
    std::fs::write(&stamp, wanted).context("recording the installed requirements")?;
    Ok(())
}
