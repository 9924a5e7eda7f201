use std::time::Duration;

use model_analysis::Limits;

/// Default caps, a short deadline: a hang shows up as a libFuzzer timeout instead.
pub fn limits() -> Limits {
    Limits { deadline: Some(Duration::from_secs(2)), ..Limits::default() }
}
