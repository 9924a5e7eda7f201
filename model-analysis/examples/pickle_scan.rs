//! Prints what the analysis says about files (a development aid):
//! `cargo run --release -p model-analysis --example pickle_scan -- FILE...`
#![allow(clippy::print_stdout, reason = "a command-line aid prints its results")]

use model_analysis::{Limits, Root, analyze_path};

fn main() {
    let root = Root::host().expect("host root");
    for path in std::env::args().skip(1) {
        let (report, _) =
            analyze_path(&root, std::path::Path::new(&path), &Limits::default()).expect("analyse");
        println!("{path}: {:?} max {:?}", report.format, report.max_severity());
        for f in &report.findings {
            println!("  [{:?}] {}", f.severity, f.message);
        }
        if let Some(p) = &report.pickle {
            for i in &p.imports {
                println!("  import {}.{} {:?} called={}", i.module, i.name, i.verdict, i.called);
            }
        }
    }
}
