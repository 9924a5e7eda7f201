//! Hook: `sock:inet_sock_set_state` (kernel 6.1, 6.12, 6.18), on the transition to
//! `TCP_LISTEN`. It fires in the listening process's context and is not a syscall
//! tracepoint, so it costs nothing on other syscalls.

use aya_ebpf::{EbpfContext as _, macros::tracepoint, programs::TracePointContext};
use sensor_common::{EventKind, ListenEvent, counters, reason};

use crate::{
    emit::{header, submit_value},
    maps::{MARKED, PORTS, count, settings},
    offsets::off,
};

const TCP_LISTEN: i32 = 10;
const AF_INET: u16 = 2;

#[tracepoint]
pub(crate) fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    // SAFETY (all reads below): offsets come from this tracepoint's format.
    let Ok(newstate) = (unsafe { ctx.read_at::<i32>(off!(tp_sock_newstate) as usize) }) else {
        return 0;
    };
    if newstate != TCP_LISTEN {
        return 0;
    }
    count(counters::LISTEN_SEEN);
    let port = unsafe { ctx.read_at::<u16>(off!(tp_sock_sport) as usize) }.unwrap_or(0);
    let mut why = 0;
    // SAFETY: the value is only tested for presence.
    if unsafe { PORTS.get(&port).is_some() } {
        why |= reason::WATCHED_PORT;
    }
    // SAFETY: the value is copied out at once.
    let marks = unsafe { MARKED.get(&ctx.tgid()) }.copied().unwrap_or(0);
    if settings().listen_marked_any_port != 0 && marks != 0 {
        why |= reason::MARKED_RUNTIME;
    }
    if why == 0 {
        return 0;
    }
    let family = unsafe { ctx.read_at::<u16>(off!(tp_sock_family) as usize) }.unwrap_or(0);
    let mut addr = [0u8; 16];
    if family == AF_INET {
        let v4 = unsafe { ctx.read_at::<[u8; 4]>(off!(tp_sock_saddr) as usize) }.unwrap_or([0; 4]);
        addr[..4].copy_from_slice(&v4);
    } else {
        addr = unsafe { ctx.read_at::<[u8; 16]>(off!(tp_sock_saddr_v6) as usize) }.unwrap_or([0; 16]);
    }
    let event = ListenEvent {
        header: header(EventKind::Listen, core::mem::size_of::<ListenEvent>()),
        port,
        family,
        protocol: unsafe { ctx.read_at::<u16>(off!(tp_sock_protocol) as usize) }.unwrap_or(0),
        _pad: 0,
        reason: why,
        addr,
        marks,
    };
    submit_value(&event, counters::LISTEN_FORWARDED, counters::LISTEN_LOST);
    0
}
