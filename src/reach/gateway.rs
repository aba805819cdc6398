//! Port mappings on the local gateway: UPnP IGD (igd-next), PCP and NAT-PMP (crab_nat).
//!
//! A [`Mapping`] is one TCP port forwarded from the gateway's external address to this server.
//! [`Mapping::refresh`] re-asserts it and reads the external address again, so one call both
//! renews the lease and notices a new address or a gateway that restarted and forgot it.
//! Only IPv4 is mapped: an IPv6 host is reachable without a NAT, and the three protocols are
//! about IPv4 NAT on every home router.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::num::NonZeroU16;
use std::time::Duration;

use crab_nat::{natpmp, pcp, InternetProtocol, PortMappingOptions, PortMappingType, TimeoutConfig};
use igd_next::aio::tokio::Tokio;
use igd_next::PortMappingProtocol;
use serde::{Deserialize, Serialize};

/// How a port mapping was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// UPnP Internet Gateway Device (SSDP discovery, SOAP over HTTP).
    Upnp,
    /// Port Control Protocol, RFC 6887.
    Pcp,
    /// NAT Port Mapping Protocol, RFC 6886.
    NatPmp,
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Upnp => "UPnP IGD",
            Protocol::Pcp => "PCP",
            Protocol::NatPmp => "NAT-PMP",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("no default IPv4 gateway: {0}")]
    NoGateway(String),
    #[error("cannot tell this host's address toward the gateway {gateway}: {source}")]
    LocalAddress {
        gateway: Ipv4Addr,
        source: std::io::Error,
    },
    #[error("no UPnP gateway answered: {0}")]
    UpnpSearch(#[from] igd_next::SearchError),
    #[error("UPnP gateway {gateway}: {message}")]
    Upnp {
        gateway: SocketAddr,
        message: String,
    },
    #[error("{0}")]
    Pcp(#[from] pcp::Failure),
    #[error("{0}")]
    NatPmp(#[from] natpmp::Failure),
    #[error("the gateway's external address {0} is not IPv4")]
    NotIpv4(IpAddr),
    #[error("the gateway's external address {0} is not a public one (no WAN link yet, or a second NAT in front: carrier-grade NAT?)")]
    NotPublic(Ipv4Addr),
}

/// Where the mapping requests go and what they forward to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lan {
    pub gateway: Ipv4Addr,
    /// This server as the gateway sees it: our LAN address and listening port.
    pub server: SocketAddrV4,
}

impl Lan {
    /// The default route's gateway (or `gateway` when configured), and our address toward it:
    /// the bind address when it is specific, else the one the kernel picks to reach the gateway.
    pub async fn discover(
        configured_gateway: Option<Ipv4Addr>,
        bind: SocketAddr,
    ) -> Result<Lan, MapError> {
        let gateway = match configured_gateway {
            Some(gateway) => gateway,
            None => tokio::task::spawn_blocking(default_gateway)
                .await
                .map_err(|e| MapError::NoGateway(e.to_string()))??,
        };
        let ip = match bind.ip() {
            IpAddr::V4(ip) if !ip.is_unspecified() => ip,
            _ => local_ip_toward(gateway)
                .await
                .map_err(|source| MapError::LocalAddress { gateway, source })?,
        };
        Ok(Lan {
            gateway,
            server: SocketAddrV4::new(ip, bind.port()),
        })
    }

    fn internal_port(&self) -> NonZeroU16 {
        NonZeroU16::new(self.server.port()).expect("a bound listener has a port")
    }
}

fn default_gateway() -> Result<Ipv4Addr, MapError> {
    let device = netdev::get_default_gateway().map_err(MapError::NoGateway)?;
    device
        .ipv4
        .first()
        .copied()
        .ok_or_else(|| MapError::NoGateway("the default gateway has no IPv4 address".into()))
}

/// The source address the kernel would use to reach `gateway` (a connected UDP socket sends
/// nothing).
async fn local_ip_toward(gateway: Ipv4Addr) -> std::io::Result<Ipv4Addr> {
    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    socket.connect((gateway, crab_nat::GATEWAY_PORT)).await?;
    match socket.local_addr()?.ip() {
        IpAddr::V4(ip) => Ok(ip),
        other => Err(std::io::Error::other(format!("{other} is not IPv4"))),
    }
}

/// One forwarded TCP port.
pub struct Mapping {
    pub protocol: Protocol,
    /// The gateway's external address and the port mapped on it.
    pub external: SocketAddrV4,
    /// The lease granted; zero for a permanent mapping.
    pub lease: Duration,
    lan: Lan,
    handle: Handle,
}

enum Handle {
    Upnp(igd_next::aio::Gateway<Tokio>),
    /// The PCP session's nonce, from the first answer on: it owns the mapping.
    Pcp(Option<pcp::Nonce>),
    NatPmp,
}

/// What the mapping is called in the gateway's table (UPnP shows it to the router's owner).
const DESCRIPTION: &str = "gotorrent-http";

/// Gateways answer on the LAN in milliseconds; one that stays silent has no such service, and
/// start-up should not wait the RFC's full minute of retries to learn that.
const QUICK: TimeoutConfig = TimeoutConfig {
    initial_timeout: Duration::from_millis(250),
    max_retries: 2,
    max_retry_timeout: Some(Duration::from_secs(1)),
};
const UPNP_SEARCH: Duration = Duration::from_secs(3);

impl Mapping {
    /// Asks the gateway with `protocol` to forward `lease` seconds of TCP to this server,
    /// preferring the same external port as ours.
    pub async fn create(protocol: Protocol, lan: Lan, lease: Duration) -> Result<Self, MapError> {
        let mut mapping = Mapping {
            protocol,
            external: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, lan.server.port()),
            lease,
            lan,
            handle: match protocol {
                Protocol::Upnp => Handle::Upnp(upnp_search(lan).await?),
                Protocol::Pcp => Handle::Pcp(None),
                Protocol::NatPmp => Handle::NatPmp,
            },
        };
        mapping.refresh().await?;
        Ok(mapping)
    }

    /// Asks for the mapping again (the same external port when the gateway allows it) and reads
    /// the gateway's external address: renews the lease, restores a mapping a restarted gateway
    /// forgot, and notices a new external address.
    pub async fn refresh(&mut self) -> Result<(), MapError> {
        let lease_secs = u32::try_from(self.lease.as_secs()).unwrap_or(u32::MAX);
        let options = PortMappingOptions {
            external_port: NonZeroU16::new(self.external.port()),
            lifetime_seconds: Some(lease_secs),
            timeout_config: Some(QUICK),
        };
        let internal = self.lan.internal_port();
        let (ip, port, lease) = match &mut self.handle {
            Handle::Upnp(gateway) => {
                let upnp_error = |message: String| MapError::Upnp {
                    gateway: gateway.addr,
                    message,
                };
                let ip = gateway
                    .get_external_ip()
                    .await
                    .map_err(|e| upnp_error(e.to_string()))?;
                let server = SocketAddr::V4(self.lan.server);
                let lease = match gateway
                    .add_port(
                        PortMappingProtocol::TCP,
                        self.external.port(),
                        server,
                        lease_secs,
                        DESCRIPTION,
                    )
                    .await
                {
                    Ok(()) => lease_secs,
                    // Older IGDs take only permanent leases; removed on shutdown all the same.
                    Err(igd_next::AddPortError::OnlyPermanentLeasesSupported) => {
                        gateway
                            .add_port(
                                PortMappingProtocol::TCP,
                                self.external.port(),
                                server,
                                0,
                                DESCRIPTION,
                            )
                            .await
                            .map_err(|e| upnp_error(e.to_string()))?;
                        0
                    }
                    Err(e) => return Err(upnp_error(e.to_string())),
                };
                (ip, self.external.port(), lease)
            }
            Handle::Pcp(nonce) => {
                let base = pcp::BaseMapRequest::new(
                    self.lan.gateway.into(),
                    IpAddr::V4(*self.lan.server.ip()),
                    InternetProtocol::Tcp,
                    internal,
                );
                // No suggested external address: after an address change the old one is gone.
                let mapping = pcp::port_mapping(base, *nonce, None, options).await?;
                let PortMappingType::Pcp {
                    external_ip,
                    nonce: session,
                    ..
                } = mapping.mapping_type()
                else {
                    unreachable!("a PCP request answers with a PCP mapping")
                };
                *nonce = Some(session);
                (
                    external_ip,
                    mapping.external_port().get(),
                    mapping.lifetime(),
                )
            }
            Handle::NatPmp => {
                let gateway = self.lan.gateway.into();
                let mapping =
                    natpmp::port_mapping(gateway, InternetProtocol::Tcp, internal, options).await?;
                let ip = natpmp::external_address(gateway, Some(QUICK)).await?;
                (
                    IpAddr::V4(ip),
                    mapping.external_port().get(),
                    mapping.lifetime(),
                )
            }
        };
        let IpAddr::V4(ip) = ip.to_canonical() else {
            return Err(MapError::NotIpv4(ip));
        };
        // A router without its WAN lease says 0.0.0.0; behind a second NAT it says a private
        // address. Neither is worth announcing.
        if !super::is_global(ip) {
            return Err(MapError::NotPublic(ip));
        }
        self.external = SocketAddrV4::new(ip, port);
        self.lease = Duration::from_secs(lease.into());
        Ok(())
    }

    /// Removes the mapping from the gateway.
    pub async fn remove(self) -> Result<(), MapError> {
        match self.handle {
            Handle::Upnp(gateway) => gateway
                .remove_port(PortMappingProtocol::TCP, self.external.port())
                .await
                .map_err(|e| MapError::Upnp {
                    gateway: gateway.addr,
                    message: e.to_string(),
                }),
            Handle::Pcp(None) => Ok(()),
            Handle::Pcp(Some(nonce)) => Ok(pcp::try_drop_mapping(
                self.lan.gateway.into(),
                IpAddr::V4(*self.lan.server.ip()),
                nonce,
                pcp::DropMappingRange::Single {
                    internal_port: self.lan.internal_port(),
                    protocol: InternetProtocol::Tcp,
                },
                Some(QUICK),
            )
            .await?),
            Handle::NatPmp => Ok(natpmp::try_drop_mapping(
                self.lan.gateway.into(),
                InternetProtocol::Tcp,
                Some(self.lan.internal_port()),
                Some(QUICK),
            )
            .await?),
        }
    }
}

/// Finds the IGD by SSDP, asking from our LAN address so the search leaves on the right
/// interface.
async fn upnp_search(lan: Lan) -> Result<igd_next::aio::Gateway<Tokio>, MapError> {
    let mut options = igd_next::SearchOptions::default();
    options.bind_addr = SocketAddr::new(IpAddr::V4(*lan.server.ip()), 0);
    options.timeout = Some(UPNP_SEARCH);
    options.single_search_timeout = Some(UPNP_SEARCH);
    Ok(igd_next::aio::tokio::search_gateway(options).await?)
}
