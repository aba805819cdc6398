//! Where others reach this server: the configured public URL, or one derived from the bound
//! address until the gateway maps a port.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use url::Url;

use crate::reach::Reach;
use crate::settings::Settings;

/// The server's reachability, starting from `server.public_url` or the bound address `local`.
pub fn reach(settings: &Settings, local: SocketAddr) -> Arc<Reach> {
    let configured = settings.server.public_url.clone();
    Arc::new(Reach::new(
        configured
            .clone()
            .unwrap_or_else(|| derived_public_url(local)),
        configured.is_some(),
        settings.reach.mapping,
    ))
}

/// With no public URL configured, the server's own address; an unspecified bind address
/// (0.0.0.0) is not dialable, so loopback stands in for it.
fn derived_public_url(local: SocketAddr) -> Url {
    let ip = match local.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    Url::parse(&format!("http://{}", SocketAddr::new(ip, local.port())))
        .expect("a socket address makes a valid URL")
}
