//! The worst files we know how to make for each analyser, and benign files shaped like
//! real models, written to disk (some are large and sparse). Shared by the budget tests
//! and the `hostile_bench` example, so that the benchmark measures the files the tests
//! check.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::DeflateEncoder;
use model_analysis::FindingKind;

use super::gguf_writer::{Gguf, Value};
use super::pickle_writer::torch_state_dict;
use super::zip_writer::{ZipEntry, pytorch_zip, zip, zip_with_prefix};

mod archives;
mod benign;
mod executables;
mod gguf;
mod safetensors;

use archives::*;
use benign::*;
use executables::*;
use gguf::*;
use safetensors::*;

const MIB: usize = 1024 * 1024;

/// A sandbox escape, to be found at the far end of a hostile template.
pub const PAYLOAD: &str = "{{ lipsum.__globals__['os'].popen('id').read() }}";

/// The Llama 3 chat template, as shipped.
pub const LLAMA3_TEMPLATE: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/// One class of file.
pub struct Class {
    pub name: &'static str,
    /// The file name written (its extension is part of some tricks).
    pub file: &'static str,
    pub hostile: bool,
    /// Kinds the analysis must report when no deadline interferes.
    pub expect: &'static [FindingKind],
    /// The budget that stops it (the start of its `analysis_budget_exceeded` message).
    pub budget: Option<&'static str>,
    pub write: fn(&Path) -> io::Result<()>,
}

const fn class(
    name: &'static str,
    file: &'static str,
    hostile: bool,
    expect: &'static [FindingKind],
    write: fn(&Path) -> io::Result<()>,
) -> Class {
    let budget = None;
    Class { name, file, hostile, expect, budget, write }
}

impl Class {
    const fn stopped_by(mut self, budget: &'static str) -> Self {
        self.budget = Some(budget);
        self
    }
}

use FindingKind as K;

/// Every class, hostile first.
pub fn classes() -> Vec<Class> {
    vec![
        class("template-quadratic", "t.gguf", true, &[K::ChatTemplateRisk], template_quadratic),
        class("template-needle-prefixes", "t.gguf", true, &[K::ChatTemplateRisk], template_needle_prefixes),
        class("template-held-closers", "t.gguf", true, &[K::ChatTemplateRisk], template_held_closers),
        class(
            "many-templates",
            "t.gguf",
            true,
            &[K::ChatTemplateRisk, K::AnalysisBudgetExceeded],
            many_templates,
        )
        .stopped_by("chat-template budget"),
        class(
            "gguf-4m-tiny-kvs",
            "m.gguf",
            true,
            &[K::ChatTemplateRisk, K::CountExceedsLimit, K::AnalysisBudgetExceeded],
            gguf_tiny_kvs,
        )
        .stopped_by("item budget"),
        class("gguf-huge-array", "m.gguf", true, &[K::AnalysisBudgetExceeded], gguf_huge_array)
            .stopped_by("header byte budget"),
        class(
            "gguf-300k-tensors",
            "m.gguf",
            true,
            &[K::CountExceedsLimit, K::AnalysisBudgetExceeded],
            gguf_many_tensors,
        )
        .stopped_by("item budget"),
        class("st-deep-nesting", "m.safetensors", true, &[K::MalformedHeader], st_deep_nesting),
        class("st-900k-keys", "m.safetensors", true, &[K::AnalysisBudgetExceeded], st_many_keys)
            .stopped_by("item budget"),
        class("st-4m-dim-shape", "m.safetensors", true, &[K::SafetensorsSizeMismatch], st_huge_shape),
        class("st-100mb-header", "m.safetensors", true, &[K::AnalysisBudgetExceeded], st_100mb_header)
            .stopped_by("header byte budget"),
        class("st-60mb-string", "m.safetensors", true, &[K::AnalysisBudgetExceeded], st_long_string)
            .stopped_by("string budget"),
        class(
            "zip-10m-entries-declared",
            "m.zip",
            true,
            &[K::CountExceedsLimit, K::AnalysisBudgetExceeded],
            zip_declared_millions,
        )
        .stopped_by("item budget"),
        class(
            "zip-overlapping-bomb",
            "m.pt",
            true,
            &[K::ZipBomb, K::AnalysisBudgetExceeded],
            zip_overlapping_bomb,
        )
        .stopped_by("zip entry byte budget"),
        class("zip-1gib-deflate", "m.pt", true, &[K::ZipBomb], zip_high_ratio),
        class("zip-nested", "m.zip", true, &[K::UnsupportedContainer], zip_nested),
        class("zip-65k-pickles", "m.pt", true, &[], zip_tiny_pickles),
        class("zip-4k-names", "m.zip", true, &[K::AnalysisBudgetExceeded], zip_long_names)
            .stopped_by("memory budget"),
        class("npy-64k-header", "m.npy", true, &[K::NumpyObjectArray], npy_header_bomb),
        class("npz-20k-headers", "m.npz", true, &[K::AnalysisBudgetExceeded], npz_many_headers)
            .stopped_by("zip entry byte budget"),
        class("keras-11mb-config", "m.keras", true, &[K::KerasLambdaLayer], keras_config_bomb),
        class(
            "llamafile-fake-magics",
            "m.llamafile",
            true,
            &[K::EmbeddedInExecutable, K::ChatTemplateRisk],
            llamafile_fake_magics,
        ),
        class(
            "llamafile-fake-entries",
            "m.llamafile",
            true,
            &[K::AnalysisBudgetExceeded],
            llamafile_fake_entries,
        )
        .stopped_by("item budget"),
        class("benign-gguf", "llama.gguf", false, &[], benign_gguf),
        class("benign-safetensors", "model.safetensors", false, &[], benign_safetensors),
        class("benign-pytorch-zip", "pytorch_model.bin", false, &[], benign_pytorch),
        class("benign-npz", "arrays.npz", false, &[], benign_npz),
        class("benign-llamafile", "m.llamafile", false, &[K::EmbeddedInExecutable], benign_llamafile),
    ]
}

/// Writes `head`, then extends the file to `len` bytes with a hole.
fn sparse(path: &Path, head: &[u8], len: u64) -> io::Result<()> {
    std::fs::write(path, head)?;
    OpenOptions::new().write(true).open(path)?.set_len(len)
}
