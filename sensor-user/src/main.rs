//! `modelwatch`: only wiring; see the library for the stages.

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

// Every event is a few dozen small allocations (strings of the process and the model,
// cloned per subscriber); glibc's arenas spent a third of a candidate storm in malloc,
// free and heap growth (mprotect). mimalloc's thread-local free lists halve that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay`: the 16th `mi_option_e` in mimalloc.h (v2 and v3 alike).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // A laptop agent must stay small. By default mimalloc keeps what start-up used (BTF,
    // the process snapshot) until the thread allocates again: an idle sensor sat at
    // 67 MB resident. Freed memory now goes back at once; arena memory is committed on
    // demand (a build setting in .cargo/config.toml: it is read before main).
    // SAFETY: sets a process-wide option; no precondition.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
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
