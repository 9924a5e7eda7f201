//! A walked stream into the report and the findings: each import judged once per
//! file (again when it turns out to be called), calls counted, the end of the stream
//! reported as what it means.

use std::collections::HashMap;

use super::walker::{self, End, Walk};
use super::{
    ImportVerdict, MAX_IMPORTS_RECORDED, MAX_STREAMS_RECORDED, PickleCall, PickleImport, PickleReport,
    PickleStream, StreamContext, classify_import,
};
use crate::finding::{Finding, FindingKind, Severity, clip};
use crate::limits::Scan;

pub(super) fn record(walk: &Walk, context: &StreamContext<'_>, report: &mut PickleReport, scan: &mut Scan) {
    let (origin, offset, first) = (context.origin, context.offset, context.first);
    let complete = walk.end == End::Stop;
    // A stream after the first that fails without running anything is not a pickle:
    // it is the file's trailing data.
    let trailing =
        !first && !complete && !walk.ran_code() && matches!(walk.end, End::Truncated | End::Malformed(_));
    if trailing {
        return;
    }
    if !context.linear && report.streams.len() < MAX_STREAMS_RECORDED {
        report.streams.push(PickleStream {
            origin: clip(origin),
            offset,
            protocol: walk.protocol,
            opcodes: walk.opcodes,
            bytes: walk.bytes,
            complete,
            divergence: walk.divergence.as_ref().map(|d| clip(&format!("at byte {}: {}", d.offset, d.why))),
            framing: walk.framing.as_ref().map(|f| format!("at byte {}: {}", f.offset, f.what)),
        });
    }
    let mut called = vec![false; walk.imports.len()];
    for call in &walk.calls {
        if let Some(slot) = called.get_mut(call.callable as usize) {
            *slot = true;
        }
    }
    let mut index: HashMap<(String, String), usize> = report
        .imports
        .iter()
        .enumerate()
        .map(|(i, import)| ((import.module.clone(), import.name.clone()), i))
        .collect();
    for (site, &called) in walk.imports.iter().zip(&called) {
        let loader_dependent = site.loader_dependent || context.after_divergence;
        let key = (lossy(&site.module), lossy(&site.name));
        match index.get(&key) {
            // The buffered reading only reports what the first reading did not see.
            Some(_) if context.linear => {}
            Some(&i) => merge_import(&mut report.imports[i], site, called, loader_dependent, origin, scan),
            None => {
                if let Some(i) =
                    record_import(key.clone(), site, called, loader_dependent, origin, report, scan)
                {
                    index.insert(key, i);
                }
            }
        }
    }
    record_calls(walk, report);
    report_unresolved(walk, origin, scan);
    if let Some(anomaly) = &walk.framing {
        scan.find(
            FindingKind::PickleMalformed,
            format!(
                "{origin}: at byte {}, {}: readers with and without buffering run different opcodes from here",
                anomaly.offset, anomaly.what
            ),
        );
    }
    if !context.linear || matches!(walk.end, End::Limit(_) | End::Deadline | End::Io(_)) {
        report_end(walk, origin, first, scan);
    }
}

fn lossy(bytes: &[u8]) -> String {
    clip(&String::from_utf8_lossy(bytes))
}

/// A new import: judged, reported, and recorded while the report has room (its index).
fn record_import(
    (module, name): (String, String),
    site: &walker::ImportSite,
    called: bool,
    loader_dependent: bool,
    origin: &str,
    report: &mut PickleReport,
    scan: &mut Scan,
) -> Option<usize> {
    let written = site.written.as_ref().map(|(m, n)| (lossy(m), lossy(n)));
    let (mut verdict, mut reason) = classify_import(&module, &name);
    if let Some((m, n)) = &written {
        let (v, r) = classify_import(m, n);
        if v == ImportVerdict::Dangerous {
            (verdict, reason) = (v, r);
        }
    }
    let room = report.imports.len() < MAX_IMPORTS_RECORDED;
    // Past the report's cap, only what is high or worse is still worth a message.
    if room || verdict == ImportVerdict::Dangerous || called {
        report_import(&module, &name, verdict, reason, called, loader_dependent, origin, scan);
    }
    if !room {
        return None;
    }
    report.imports.push(PickleImport {
        module,
        name,
        written_as: written.map(|(m, n)| format!("{m}.{n}")),
        verdict,
        reason: reason.map(str::to_owned),
        opcode: site.via.to_owned(),
        count: site.count,
        origin: clip(origin),
        called,
        loader_dependent,
    });
    Some(report.imports.len() - 1)
}

/// An import seen before: counted; reported again only when it is now called.
fn merge_import(
    existing: &mut PickleImport,
    site: &walker::ImportSite,
    called: bool,
    loader_dependent: bool,
    origin: &str,
    scan: &mut Scan,
) {
    existing.count += site.count;
    existing.loader_dependent &= loader_dependent;
    if called && !existing.called {
        existing.called = true;
        if existing.verdict == ImportVerdict::Unknown {
            let (module, name) = (existing.module.clone(), existing.name.clone());
            report_import(&module, &name, existing.verdict, None, true, loader_dependent, origin, scan);
        }
    }
}

#[expect(clippy::too_many_arguments, reason = "one finding's facts; a struct would only rename them")]
fn report_import(
    module: &str,
    name: &str,
    verdict: ImportVerdict,
    reason: Option<&str>,
    called: bool,
    loader_dependent: bool,
    origin: &str,
    scan: &mut Scan,
) {
    let path = format!("{module}.{name}");
    let reached =
        if loader_dependent { " (reached by loaders that go past a default-unpickler error)" } else { "" };
    match verdict {
        ImportVerdict::Dangerous => scan.find(
            FindingKind::PickleDangerousImport,
            format!("{origin}: imports {path} ({}){reached}", reason.unwrap_or("known gadget")),
        ),
        ImportVerdict::Unknown if called => scan.report(
            Finding::new(
                FindingKind::PickleUnknownImport,
                format!("{origin}: imports and calls {path}, outside the ML allowlist: its code runs on load{reached}"),
            )
            .with_severity(Severity::High),
        ),
        ImportVerdict::Unknown => scan.find(
            FindingKind::PickleUnknownImport,
            format!("{origin}: imports {path}, outside the ML allowlist{reached}"),
        ),
        ImportVerdict::Allowed => {}
    }
}

fn record_calls(walk: &Walk, report: &mut PickleReport) {
    let names: Vec<String> = walk
        .imports
        .iter()
        .map(|site| clip(&format!("{}.{}", lossy(&site.module), lossy(&site.name))))
        .collect();
    let mut index: HashMap<(String, String), usize> =
        report.calls.iter().enumerate().map(|(i, c)| ((c.callable.clone(), c.opcode.clone()), i)).collect();
    for call in &walk.calls {
        let Some(callable) = names.get(call.callable as usize) else {
            continue;
        };
        let key = (callable.clone(), call.via.to_owned());
        if let Some(&i) = index.get(&key) {
            report.calls[i].count += call.count;
        } else if report.calls.len() < MAX_IMPORTS_RECORDED {
            report.calls.push(PickleCall {
                callable: key.0.clone(),
                opcode: key.1.clone(),
                count: call.count,
            });
            index.insert(key, report.calls.len() - 1);
        }
    }
}

fn report_unresolved(walk: &Walk, origin: &str, scan: &mut Scan) {
    if walk.unresolved > 0 {
        scan.find(
            FindingKind::PickleUnresolvedImport,
            format!(
                "{origin}: {} import(s) cannot be named statically: {}",
                walk.unresolved,
                walk.unresolved_examples.join("; ")
            ),
        );
    }
    if walk.indirect > 0 {
        scan.find(
            FindingKind::PickleIndirectCall,
            format!(
                "{origin}: {} call(s) of something other than a named import: {}",
                walk.indirect,
                walk.indirect_examples.join("; ")
            ),
        );
    }
}

pub(super) fn report_deadline(origin: &str, at: u64, scan: &mut Scan) {
    scan.out_of_time();
    scan.find(
        FindingKind::PickleResourceLimit,
        format!("{origin}: the analysis deadline was reached at byte {at}; the rest was not inspected"),
    );
}

fn report_end(walk: &Walk, origin: &str, first: bool, scan: &mut Scan) {
    let at = walk.bytes;
    let why = match &walk.end {
        End::Stop => return,
        End::Truncated => format!("the stream ends at byte {at} before STOP (truncated)"),
        End::Malformed(why) => clip(why),
        End::Limit(why) => {
            scan.find(
                FindingKind::PickleResourceLimit,
                format!("{origin}: {why} at byte {at}; the rest was not inspected"),
            );
            return;
        }
        End::Deadline => return report_deadline(origin, at, scan),
        End::Io(why) => {
            scan.find(FindingKind::ReadFailed, format!("{origin}: {why}"));
            return;
        }
    };
    // CPython raises here. After running code, or in a stream that announced itself
    // with PROTO, that is a broken or hostile pickle; a first stream that ran nothing
    // is merely not a valid pickle.
    let severity =
        if walk.ran_code() || (first && walk.protocol.is_some()) { Severity::High } else { Severity::Medium };
    let ran = if walk.ran_code() { " (after running imports or calls)" } else { "" };
    scan.report(
        Finding::new(FindingKind::PickleMalformed, format!("{origin}: {why}{ran}")).with_severity(severity),
    );
}
