//! The payload part of a readable line.

use std::fmt::Write as _;

use proto::v1::{Exposure, LossSource, ModelFile, ModelFormat, event::Payload};

use super::format::short;

pub(super) fn payload(line: &mut String, payload: &Payload) {
    match payload {
        Payload::SensorStatus(status) => {
            let attached: Vec<String> = status
                .hooks
                .iter()
                .filter(|h| h.attached)
                .map(|h| format!("{}={}", h.watches, h.backend))
                .collect();
            let _ = write!(
                line,
                " version={} kernel={} hooks=[{}]",
                status.version,
                status.kernel,
                attached.join(",")
            );
            if !status.degraded.is_empty() {
                let _ = write!(line, " degraded={}", status.degraded.len());
            }
        }
        Payload::ProcessExec(exec) => {
            if !exec.runtime_role.is_empty() {
                let _ = write!(line, " role={} rule=\"{}\"", exec.runtime_role, exec.runtime_rule);
            }
        }
        Payload::ProcessExit(exit) => {
            let _ = write!(line, " exit_code={} signal={}", exit.exit_code, exit.signal);
        }
        Payload::ModelFileOpened(open) => {
            file(line, open.file.as_ref());
            let _ = write!(line, " fd={} reasons={}", open.fd, open.reasons.join(","));
        }
        Payload::ModelFileMapped(map) => {
            file(line, map.file.as_ref());
            let _ =
                write!(line, " length={} prot={:#x} reasons={}", map.length, map.prot, map.reasons.join(","));
        }
        Payload::ModelHashed(hashed) => {
            let _ = write!(line, " path={} sha256={}", hashed.path, hashed.sha256);
            if let Some(matches) = hashed.claimed_sha256_matches {
                let _ = write!(line, " name_digest_matches={matches}");
            }
            verdict(line, hashed.verdict.as_ref());
        }
        Payload::ListenerOpened(listener) => {
            let exposure = Exposure::try_from(listener.exposure).unwrap_or_default();
            let _ = write!(
                line,
                " {}:{} exposure={} reasons={}",
                listener.address,
                listener.port,
                short(exposure.as_str_name(), "EXPOSURE_"),
                listener.reasons.join(",")
            );
        }
        Payload::ModelAnalyzed(analyzed) => {
            let format = ModelFormat::try_from(analyzed.format).unwrap_or_default();
            let _ = write!(
                line,
                " path={} format={}",
                analyzed.path,
                short(format.as_str_name(), "MODEL_FORMAT_")
            );
            metadata(line, analyzed.metadata.as_ref());
            let worst = analyzed.findings.iter().map(|f| f.severity).max().unwrap_or(0);
            let worst = proto::v1::Severity::try_from(worst).unwrap_or_default();
            let _ = write!(
                line,
                " findings={} worst={} took={}ms",
                analyzed.findings.len(),
                short(worst.as_str_name(), "SEVERITY_"),
                analyzed.duration_ms
            );
            verdict(line, analyzed.verdict.as_ref());
        }
        Payload::SessionStarted(started) => session(line, started.session.as_ref(), ""),
        Payload::SessionUpdated(updated) => session(line, updated.session.as_ref(), &updated.change),
        Payload::SessionEnded(ended) => session(line, ended.session.as_ref(), ""),
        Payload::Finding(finding) => {
            let _ = write!(line, " {}={}", finding.subject, finding.subject_id);
            verdict(line, finding.verdict.as_ref());
        }
        Payload::CandidateFile(candidate) => {
            let _ = write!(line, " path={} outcome={}", candidate.path, candidate.outcome);
        }
        Payload::AcceleratorActivity(activity) => {
            let _ = write!(
                line,
                " kinds={} rate={:.0}/s window={}s sustained={} source={}",
                activity.kinds.join(","),
                activity.ioctls_per_second,
                activity.window_seconds,
                activity.sustained,
                activity.source
            );
            if activity.source == "nvml" {
                let _ = write!(
                    line,
                    " gpu={}% memory={}",
                    activity.gpu_utilization_percent,
                    human_size(activity.gpu_memory_bytes)
                );
            }
        }
        Payload::AcceleratorUsed(accel) => {
            let _ = write!(line, " device={} kind={}", accel.device, accel.kind);
        }
        Payload::EventsLost(lost) => {
            let source = LossSource::try_from(lost.source).unwrap_or_default();
            let _ = write!(
                line,
                " source={} count={} total={}",
                short(source.as_str_name(), "LOSS_SOURCE_"),
                lost.count,
                lost.total
            );
            if lost.first_seq > 0 {
                let _ = write!(line, " seq={}..{}", lost.first_seq, lost.last_seq);
            }
        }
    }
}

fn file(line: &mut String, file: Option<&ModelFile>) {
    let Some(file) = file else { return };
    let format = ModelFormat::try_from(file.format).unwrap_or_default();
    let size = file.identity.as_ref().map_or(0, |i| i.size);
    let _ = write!(
        line,
        " path={} format={} size={}",
        file.path,
        short(format.as_str_name(), "MODEL_FORMAT_"),
        human_size(size)
    );
    metadata(line, file.metadata.as_ref());
    verdict(line, file.verdict.as_ref());
    let analysis = proto::v1::AnalysisState::try_from(file.analysis).unwrap_or_default();
    if analysis != proto::v1::AnalysisState::Unspecified {
        let _ = write!(line, " analysis={}", short(analysis.as_str_name(), "ANALYSIS_STATE_"));
    }
    if !file.findings.is_empty() {
        let _ = write!(line, " findings={}", file.findings.len());
    }
}

fn session(line: &mut String, session: Option<&proto::v1::InferenceSession>, change: &str) {
    let Some(session) = session else { return };
    let _ = write!(
        line,
        " session={} models={} listeners={}",
        session.id,
        session.models.len(),
        session.listeners.len()
    );
    if !change.is_empty() {
        let _ = write!(line, " change=\"{change}\"");
    }
    verdict(line, session.verdict.as_ref());
}

fn verdict(line: &mut String, verdict: Option<&proto::v1::Verdict>) {
    let Some(verdict) = verdict else { return };
    let _ = write!(line, " verdict={}", verdict.verdict);
    if verdict.provisional {
        line.push_str("(provisional)");
    }
    if !verdict.reason.is_empty() {
        let _ = write!(line, " reason=\"{}\"", verdict.reason);
    }
}

fn metadata(line: &mut String, meta: Option<&proto::v1::ModelMetadata>) {
    let Some(meta) = meta else { return };
    for (key, value) in [("name", &meta.name), ("license", &meta.license), ("quant", &meta.quantization)] {
        if !value.is_empty() {
            let _ = write!(line, " {key}={value}");
        }
    }
}

/// 3221225472 -> "3.0GiB".
#[must_use]
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes}B") } else { format!("{value:.1}{}", UNITS[unit]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(3 << 30), "3.0GiB");
        assert_eq!(human_size(1536), "1.5KiB");
    }
}
