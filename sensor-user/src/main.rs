//! `modelwatch`: only wiring; see the library for the stages.

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

// Every event is a few dozen small allocations (strings of the process and the model,
// cloned per subscriber); glibc's arenas spent a third of a candidate storm in malloc,
// free and heap growth (mprotect). mimalloc's thread-local free lists halve that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("MODELWATCH_LOG").unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    let cli = modelwatch::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            modelwatch::cli::report_error(&error);
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(modelwatch::cli::dispatch(cli));
    std::process::exit(code);
}
