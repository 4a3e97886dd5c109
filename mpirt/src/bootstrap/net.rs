//! Which local address to listen on: an interface's address by name, the
//! source address the kernel would use to reach a host, and the rules that
//! pick a rank's TCP listening address. Shared by the ranks and by `mpirun`
//! (whose PMI server binds by the same rules).
//!
//! Rules for a rank, first match wins; never every interface by default:
//! 1. `MPIRT_BIND_ADDR=IP`;
//! 2. the address of interface `MPIRT_IFACE` (or of MPICH's
//!    `MPIR_CVAR_NEMESIS_TCP_NETWORK_IFACE`);
//! 3. loopback, when every rank of the job is on this node;
//! 4. the address Hydra puts in `MPIR_CVAR_CH3_INTERFACE_HOSTNAME` (the
//!    `mpiexec -iface` interface's address, else the host's name as Hydra
//!    knows it; Hydra sets it even for one-host jobs, hence after rule 3);
//! 5. the local address of the route to `PMI_PORT`'s host (the launcher is
//!    on the network the ranks share);
//! 6. the first non-loopback address this host's name resolves to.

use std::ffi::CStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};

use crate::error::Error;

/// The address of interface `name` (IPv4 preferred over IPv6).
pub fn interface_address(name: &str) -> io::Result<IpAddr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `list`, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut v4 = None;
    let mut v6 = None;
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned, which
        // stays valid until freeifaddrs.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_addr.is_null() || entry.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let entry_name = unsafe { CStr::from_ptr(entry.ifa_name) };
        if entry_name.to_bytes() != name.as_bytes() {
            continue;
        }
        // SAFETY: ifa_addr is non-null; its family says which sockaddr it is.
        let family = unsafe { (*entry.ifa_addr).sa_family } as libc::c_int;
        if family == libc::AF_INET && v4.is_none() {
            // SAFETY: family AF_INET means the address is a sockaddr_in.
            let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
            v4 = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))));
        } else if family == libc::AF_INET6 && v6.is_none() {
            // SAFETY: family AF_INET6 means the address is a sockaddr_in6.
            let sin6 = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in6) };
            v6 = Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    v4.or(v6).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface named {name:?} with an IP address"),
        )
    })
}

/// The local address the kernel would send from to reach `destination`
/// (a UDP socket is connected, which sends nothing, and asked its address).
pub fn route_source(destination: IpAddr) -> io::Result<IpAddr> {
    let unspecified: IpAddr = match destination {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind(SocketAddr::new(unspecified, 0))?;
    socket.connect(SocketAddr::new(destination, 9))?;
    Ok(socket.local_addr()?.ip())
}

/// The first address `host` resolves to (a literal address is itself).
pub fn resolve(host: &str) -> io::Result<IpAddr> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip);
    }
    (host, 0)
        .to_socket_addrs()?
        .map(|a| a.ip())
        .min_by_key(|ip| ip.is_ipv6())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address")))
}

/// The interface chosen through the environment, if any: `MPIRT_IFACE`, or
/// MPICH's variable (see the module doc).
fn chosen_interface() -> Result<Option<IpAddr>, Error> {
    for variable in ["MPIRT_IFACE", "MPIR_CVAR_NEMESIS_TCP_NETWORK_IFACE"] {
        if let Some(name) = std::env::var(variable).ok().filter(|v| !v.is_empty()) {
            return interface_address(&name)
                .map(Some)
                .map_err(|e| Error::Bootstrap(format!("{variable}={name}: {e}")));
        }
    }
    Ok(None)
}

/// The address Hydra names for this host, if it names one.
fn hydra_interface() -> Result<Option<IpAddr>, Error> {
    if let Some(host) = std::env::var("MPIR_CVAR_CH3_INTERFACE_HOSTNAME")
        .ok()
        .filter(|v| !v.is_empty())
    {
        return resolve(&host).map(Some).map_err(|e| {
            Error::Bootstrap(format!("MPIR_CVAR_CH3_INTERFACE_HOSTNAME={host}: {e}"))
        });
    }
    Ok(None)
}

/// The address a rank's TCP listener binds (port 0), by the module's rules.
/// `one_node` says every rank of the job is on this node.
pub fn rank_listen_address(one_node: bool) -> Result<SocketAddr, Error> {
    let ip = rank_listen_ip(one_node)?;
    Ok(SocketAddr::new(ip, 0))
}

fn rank_listen_ip(one_node: bool) -> Result<IpAddr, Error> {
    if let Ok(text) = std::env::var("MPIRT_BIND_ADDR") {
        return text.parse::<IpAddr>().map_err(|_| {
            Error::Bootstrap(format!("MPIRT_BIND_ADDR={text:?} is not an IP address"))
        });
    }
    if let Some(ip) = chosen_interface()? {
        return Ok(ip);
    }
    if one_node {
        return Ok(Ipv4Addr::LOCALHOST.into());
    }
    if let Some(ip) = hydra_interface()? {
        return Ok(ip);
    }
    if let Some(port) = std::env::var("PMI_PORT").ok().filter(|p| !p.is_empty()) {
        let host = port.rsplit_once(':').map_or(port.as_str(), |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = resolve(host).and_then(route_source) {
            return Ok(ip);
        }
    }
    let name = crate::environment::processor_name();
    match resolve(&name) {
        Ok(ip) if !ip.is_loopback() => Ok(ip),
        _ => Err(Error::Bootstrap(format!(
            "this job spans nodes, but no interface was chosen and this host's name ({name}) \
             has no non-loopback address: set MPIRT_IFACE=NAME or MPIRT_BIND_ADDR=IP"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_interface_and_route() {
        assert_eq!(
            interface_address("lo").unwrap(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert!(interface_address("no-such-if0").is_err());
        assert_eq!(
            route_source(Ipv4Addr::LOCALHOST.into()).unwrap(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
        assert_eq!(
            resolve("127.0.0.1").unwrap(),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
    }
}
