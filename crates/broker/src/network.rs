//! An IP address or a network (`192.0.2.0/24`, `2001:db8::/32`): the admin API's address
//! filter and the bans by address. An IPv4 network also holds the IPv4-mapped IPv6 addresses
//! of its members (a dual-stack socket reports those).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address (a network of one) or a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Network {
    /// The network's first address (the bits past the prefix are zero).
    base: IpAddr,
    /// How many leading bits are the network's.
    prefix: u8,
}

/// Why a text is not a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotANetwork;

impl fmt::Display for NotANetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an IP address or a network (a.b.c.d/n, x:y::/n) is needed")
    }
}

impl std::error::Error for NotANetwork {}

impl Network {
    /// Reads `192.0.2.7`, `192.0.2.0/24`, `2001:db8::1` or `2001:db8::/32`. Bits past the
    /// prefix are ignored (`192.0.2.7/24` is `192.0.2.0/24`).
    pub fn parse(text: &str) -> Result<Network, NotANetwork> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let base: IpAddr = address.parse().map_err(|_| NotANetwork)?;
        let width = width(base);
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|p| u32::from(*p) <= width)
                .ok_or(NotANetwork)?,
            Some(_) => return Err(NotANetwork),
            None => width as u8,
        };
        Ok(Network::masked(base, prefix))
    }

    /// The network of `prefix` bits that holds `address`.
    fn masked(address: IpAddr, prefix: u8) -> Network {
        let width = width(address);
        let bits = bits(address) & mask(width, prefix);
        let base = match address {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(bits as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(bits)),
        };
        Network { base, prefix }
    }

    /// The network of one address.
    pub fn address(address: IpAddr) -> Network {
        let address = canonical(address);
        Network::masked(address, width(address) as u8)
    }

    /// How many leading bits are the network's.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether it is IPv4.
    pub fn is_ipv4(&self) -> bool {
        self.base.is_ipv4()
    }

    /// Whether `address` is in the network.
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        address.is_ipv4() == self.base.is_ipv4() && Network::masked(address, self.prefix) == *self
    }

    /// The network of `self.prefix()` bits holding `address` (to look it up among networks
    /// of that prefix), if `address` is of the same family.
    pub fn enclosing(address: IpAddr, prefix: u8, ipv4: bool) -> Option<Network> {
        let address = canonical(address);
        (address.is_ipv4() == ipv4).then(|| Network::masked(address, prefix))
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if u32::from(self.prefix) == width(self.base) {
            write!(f, "{}", self.base)
        } else {
            write!(f, "{}/{}", self.base, self.prefix)
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn width(address: IpAddr) -> u32 {
    if address.is_ipv4() {
        32
    } else {
        128
    }
}

fn bits(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The first `prefix` of `width` bits set.
fn mask(width: u32, prefix: u8) -> u128 {
    let all = if width == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    match width - u32::from(prefix) {
        shift if shift >= width => 0,
        shift => (all >> shift) << shift,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses_and_no_others() {
        let net = Network::parse("192.0.2.0/24").unwrap();
        assert!(net.contains(ip("192.0.2.200")));
        assert!(net.contains(ip("::ffff:192.0.2.9")));
        assert!(!net.contains(ip("192.0.3.1")));
        assert!(!net.contains(ip("2001:db8::1")));
        let one = Network::parse("2001:db8::1").unwrap();
        assert!(one.contains(ip("2001:db8::1")));
        assert!(!one.contains(ip("2001:db8::2")));
        assert!(Network::parse("0.0.0.0/0")
            .unwrap()
            .contains(ip("10.1.2.3")));
        assert!(Network::parse("::/0").unwrap().contains(ip("2001:db8::2")));
        for bad in [
            "192.0.2.0/33",
            "nowhere",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "::/129",
        ] {
            assert_eq!(Network::parse(bad), Err(NotANetwork), "{bad}");
        }
    }

    #[test]
    fn a_network_is_written_and_compared_by_its_base() {
        let net = Network::parse("192.0.2.77/24").unwrap();
        assert_eq!(net.to_string(), "192.0.2.0/24");
        assert_eq!(net, Network::parse("192.0.2.0/24").unwrap());
        assert_eq!(
            Network::address(ip("::ffff:10.0.0.1")).to_string(),
            "10.0.0.1"
        );
        assert_eq!(
            Network::enclosing(ip("10.9.8.7"), 8, true),
            Some(Network::parse("10.0.0.0/8").unwrap())
        );
        assert_eq!(Network::enclosing(ip("10.9.8.7"), 8, false), None);
    }
}
