use super::EventHeader;

/// `sock:inet_sock_set_state` to `TCP_LISTEN`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenEvent {
    pub header: EventHeader,
    /// Host byte order.
    pub port: u16,
    /// `AF_INET` (2) or `AF_INET6` (10).
    pub family: u16,
    /// `IPPROTO_TCP` (6).
    pub protocol: u16,
    pub _pad: u16,
    /// [`super::reason`] bits.
    pub reason: u32,
    /// IPv4 in the first four bytes, or IPv6; network order.
    pub addr: [u8; 16],
    /// The process's `MARKED` bits when it listened (`settings::mark`): a listener
    /// forwarded only for a provisional mark waits for userspace to confirm it.
    pub marks: u32,
}
const _: () = assert!(core::mem::size_of::<ListenEvent>() == 88);
