//! Listeners: port, address and how exposed they are.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proto::v1::{Exposure, ListenerOpened, event::Payload};
use sensor_common::ListenEvent;

use super::{Pipeline, convert};

const AF_INET: u16 = 2;

impl Pipeline {
    pub(super) fn on_listen(&mut self, event: &ListenEvent) {
        let header = &event.header;
        let address = address(event);
        let info = self.processes.lookup(header);
        let payload = Payload::ListenerOpened(ListenerOpened {
            port: u32::from(event.port),
            address: address.to_string(),
            exposure: exposure(address).into(),
            family: if event.family == AF_INET { "ipv4" } else { "ipv6" }.to_owned(),
            protocol: "tcp".to_owned(),
            reasons: convert::reasons(event.reason),
            snapshot: false,
        });
        self.publish(header.ktime_ns, Some(convert::process(&info, header.tid)), payload);
    }
}

fn address(event: &ListenEvent) -> IpAddr {
    if event.family == AF_INET {
        IpAddr::V4(Ipv4Addr::new(event.addr[0], event.addr[1], event.addr[2], event.addr[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(event.addr))
    }
}

/// Who can reach a listener bound to `address`.
#[must_use]
pub(super) fn exposure(address: IpAddr) -> Exposure {
    let address = match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if address.is_unspecified() {
        Exposure::AllInterfaces
    } else if address.is_loopback() {
        Exposure::Loopback
    } else {
        Exposure::SpecificAddress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_of_common_binds() {
        let cases = [
            ("127.0.0.1", Exposure::Loopback),
            ("127.0.1.1", Exposure::Loopback),
            ("0.0.0.0", Exposure::AllInterfaces),
            ("::", Exposure::AllInterfaces),
            ("::1", Exposure::Loopback),
            ("::ffff:127.0.0.1", Exposure::Loopback),
            ("::ffff:0.0.0.0", Exposure::AllInterfaces),
            ("192.168.1.10", Exposure::SpecificAddress),
            ("fe80::1", Exposure::SpecificAddress),
        ];
        for (text, expected) in cases {
            let address: IpAddr = text.parse().expect("address");
            assert_eq!(exposure(address), expected, "{text}");
        }
    }
}
