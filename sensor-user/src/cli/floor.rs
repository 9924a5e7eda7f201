//! `modelwatch floor` (hidden): attaches programs that return at once on the sensor's
//! hooks and waits. The benchmark runs it to measure the cost of the hooks themselves.

use crate::{config::SensorConfig, sensor::filter_settings, source::loader};

pub(super) async fn run() -> i32 {
    let mut config = SensorConfig::default();
    config.kernel.backend = crate::source::hooks::BackendChoice::Tracepoint;
    let settings = filter_settings(&config);
    let loaded = match loader::load_floor(&settings) {
        Ok(loaded) => loaded,
        Err(error) => {
            super::report(&error);
            return 1;
        }
    };
    let attached = loaded.hooks.iter().filter(|h| h.attached).count();
    #[expect(clippy::print_stdout, reason = "the benchmark waits for this line")]
    {
        println!("floor attached {attached} hooks");
    }
    super::run::shutdown_signal().await;
    drop(loaded);
    0
}
