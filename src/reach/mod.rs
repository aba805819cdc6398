//! Reachability: the URL at which the world reaches this server, and keeping it true.
//!
//! [`Reach`] holds the current public URL (a `watch` channel the seeder, the announcer and the
//! web page follow) and the state /health reports. [`Reach::run`] owns the port mapping: it asks
//! the gateway once at start (each protocol of `nat.protocols` in turn, logging once which worked
//! or that none did), then every `nat.check_interval_secs` renews the mapping and reads the
//! external address again, sooner when a tracker reports seeing us at a new address. A new
//! address updates the DNS name (`ddns.*`) and the public URL, which makes the announcer announce
//! it at once and send "stopped" for the old one. On shutdown the mapping is removed.
//!
//! Invariant: the public URL is `server.public_url` when set; else `http://<ddns name>:<port>`
//! when a name is kept; else the mapped external address; else the address the server listens
//! on (reachable on this network only).

pub mod ddns;
mod gateway;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::watch;
use url::Url;

pub use ddns::DdnsConfig;
use gateway::{Lan, Mapping};
pub use gateway::{MapError, Protocol};

/// The `nat` and `ddns` settings, checked, with `nat.mapping = "auto"` decided.
#[derive(Debug, Clone)]
pub struct ReachConfig {
    pub mapping: bool,
    pub protocols: Vec<Protocol>,
    pub gateway: Option<Ipv4Addr>,
    pub lease: Duration,
    pub check_interval: Duration,
    pub ddns: Option<DdnsConfig>,
}

/// How others reach this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReachState {
    /// `server.public_url` is set: announced as is.
    Configured,
    /// Still asking the gateway for a port mapping.
    Pending,
    /// A port mapping on the gateway forwards the external address to this server.
    Mapped,
    /// No mapping: reachable where the listening address is (this network), unless something
    /// else forwards to it.
    Local,
}

/// The dynamic DNS name and how its last update went.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DdnsStatus {
    /// The name kept pointing at this server.
    pub name: String,
    /// The address the name was last set to.
    pub address: Option<String>,
    /// When, in seconds since the Unix epoch.
    pub updated_at: Option<u64>,
    /// Why the last update failed, if it did; retried at the next check.
    pub error: Option<String>,
}

/// What /health reports of reachability.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Reachability {
    pub state: ReachState,
    /// The URL announced to trackers and put in torrents.
    pub public_url: String,
    /// The protocol that made the port mapping.
    pub protocol: Option<Protocol>,
    /// The gateway's external address and the mapped port, IP:PORT.
    #[schema(example = "203.0.113.7:8080")]
    pub external_address: Option<String>,
    /// When the mapping's lease ends unless renewed, in seconds since the Unix epoch (it is
    /// renewed at every check); absent for a permanent mapping.
    pub lease_expires_at: Option<u64>,
    /// The last time the gateway was asked, in seconds since the Unix epoch.
    pub last_check: Option<u64>,
    /// The address a tracker last reported seeing this server announce from.
    pub tracker_sees: Option<String>,
    pub ddns: Option<DdnsStatus>,
    /// Why the last mapping attempt or renewal failed, if it did.
    pub error: Option<String>,
}

/// The public URL and its state, shared by the server, the seeder and the announcer.
pub struct Reach {
    url: watch::Sender<Url>,
    settled: watch::Sender<bool>,
    echo: watch::Sender<Option<IpAddr>>,
    status: Mutex<Reachability>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Reach {
    /// Starts at `url`: the configured public URL (`configured`), or the listening address
    /// until the gateway answers.
    pub fn new(url: Url, configured: bool, mapping: bool) -> Self {
        let state = match (configured, mapping) {
            (true, _) => ReachState::Configured,
            (false, true) => ReachState::Pending,
            (false, false) => ReachState::Local,
        };
        Reach {
            status: Mutex::new(Reachability {
                state,
                public_url: url.to_string(),
                protocol: None,
                external_address: None,
                lease_expires_at: None,
                last_check: None,
                tracker_sees: None,
                ddns: None,
                error: None,
            }),
            url: watch::channel(url).0,
            settled: watch::channel(!mapping).0,
            echo: watch::channel(None).0,
        }
    }

    /// The public URL now.
    pub fn url(&self) -> Url {
        self.url.borrow().clone()
    }

    /// Follows the public URL.
    pub fn subscribe(&self) -> watch::Receiver<Url> {
        self.url.subscribe()
    }

    /// Resolves once the first port mapping attempt has ended (at once without one), so the
    /// first announce carries the URL the world can reach.
    pub async fn settled(&self) {
        let _ = self.settled.subscribe().wait_for(|settled| *settled).await;
    }

    pub fn status(&self) -> Reachability {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reachability> {
        self.status.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A tracker reported the address it saw our announce come from. A new one makes the
    /// monitor check the gateway at once.
    pub fn tracker_saw(&self, ip: IpAddr) {
        self.lock().tracker_sees = Some(ip.to_string());
        self.echo.send_if_modified(|seen| {
            let changed = *seen != Some(ip);
            *seen = Some(ip);
            changed
        });
    }

    fn publish(&self, url: Url) {
        self.lock().public_url = url.to_string();
        self.url.send_if_modified(|current| {
            let changed = *current != url;
            if changed {
                tracing::info!(from = %current, to = %url, "public URL changed");
                *current = url;
            }
            changed
        });
    }

    /// Keeps the mapping, the DNS name and the public URL current until `shutdown`, then
    /// removes the mapping.
    pub async fn run(
        &self,
        config: ReachConfig,
        bind: SocketAddr,
        configured: Option<Url>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let local_url = self.url();
        let mut echo = self.echo.subscribe();
        let mut mapping: Option<Mapping> = None;
        let mut reported_failure = false;
        let mut ddns_done: Option<Ipv4Addr> = None;
        let mut warned: Option<(IpAddr, String)> = None;
        loop {
            if config.mapping {
                self.keep_mapping(&config, bind, &mut mapping, &mut reported_failure)
                    .await;
            }
            let seen = *echo.borrow_and_update();
            // The address to publish: the gateway's, or without a mapping what trackers see.
            let external = match (&mapping, seen) {
                (Some(m), _) => Some(*m.external.ip()),
                (None, Some(IpAddr::V4(ip))) if !config.mapping && is_global(ip) => Some(ip),
                _ => None,
            };
            if let (Some(ddns), Some(ip)) = (&config.ddns, external) {
                if ddns_done != Some(ip) && self.update_ddns(ddns, ip).await {
                    ddns_done = Some(ip);
                }
            }
            let url = match (&configured, &config.ddns, &mapping) {
                (Some(url), _, _) => url.clone(),
                (None, Some(ddns), m) => {
                    let port = m.as_ref().map_or(bind.port(), |m| m.external.port());
                    http_url(ddns.name.to_string().trim_end_matches('.'), port)
                }
                (None, None, Some(m)) => http_url(&m.external.ip().to_string(), m.external.port()),
                (None, None, None) => local_url.clone(),
            };
            self.publish(url.clone());
            if let Some(seen) = seen {
                check_echo(seen, &url, mapping.as_ref(), &mut warned).await;
            }
            self.settled.send_replace(true);

            // A gateway may grant less than asked: renew by half the granted lease at the latest.
            let next_check = match &mapping {
                Some(m) if !m.lease.is_zero() => config.check_interval.min(m.lease / 2),
                _ => config.check_interval,
            };
            tokio::select! {
                _ = tokio::time::sleep(next_check) => {}
                _ = echo.changed() => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        if let Some(mapping) = mapping {
            let (protocol, external) = (mapping.protocol, mapping.external);
            match mapping.remove().await {
                Ok(()) => tracing::info!(%protocol, %external, "port mapping removed"),
                Err(e) => {
                    tracing::warn!(%protocol, %external, error = %e, "cannot remove the port mapping; it lapses with its lease")
                }
            }
        }
    }

    /// Renews the mapping, or makes one when there is none (or renewal failed), and records how
    /// that went.
    async fn keep_mapping(
        &self,
        config: &ReachConfig,
        bind: SocketAddr,
        mapping: &mut Option<Mapping>,
        reported_failure: &mut bool,
    ) {
        let mut error = None;
        if let Some(m) = mapping.as_mut() {
            let before = m.external;
            match m.refresh().await {
                Ok(()) if m.external != before => tracing::warn!(
                    protocol = %m.protocol, from = %before, to = %m.external,
                    "the external address changed"
                ),
                Ok(()) => {}
                Err(e) => {
                    // A gateway restarting (or one that moved its UPnP control port) answers
                    // again soon: map afresh, and until that works keep announcing the last
                    // known address rather than a LAN one.
                    tracing::warn!(protocol = %m.protocol, error = %e, "renewing the port mapping failed; mapping again");
                    match map_port(config, bind).await {
                        Ok(new) => {
                            tracing::info!(protocol = %new.protocol, external = %new.external, "port mapped again");
                            *m = new;
                        }
                        Err(e) => error = Some(e),
                    }
                }
            }
        } else {
            match map_port(config, bind).await {
                Ok(m) => {
                    tracing::info!(
                        protocol = %m.protocol,
                        external = %m.external,
                        lease_secs = m.lease.as_secs(),
                        "port mapped on the gateway: reachable from outside"
                    );
                    *reported_failure = false;
                    *mapping = Some(m);
                }
                Err(e) => {
                    if !*reported_failure {
                        tracing::warn!(
                            error = %e,
                            url = %self.url(),
                            "no port mapping (the gateway offers none of nat.protocols): not \
                             reachable from outside this network; serving it"
                        );
                        *reported_failure = true;
                    }
                    error = Some(e);
                }
            }
        }
        let now = unix_now();
        let mut status = self.lock();
        status.last_check = Some(now);
        status.error = error;
        let configured = status.state == ReachState::Configured;
        match mapping {
            Some(m) => {
                if !configured {
                    status.state = ReachState::Mapped;
                }
                status.protocol = Some(m.protocol);
                status.external_address = Some(m.external.to_string());
                status.lease_expires_at = (!m.lease.is_zero()).then(|| now + m.lease.as_secs());
            }
            None => {
                if !configured {
                    status.state = ReachState::Local;
                }
                status.protocol = None;
                status.external_address = None;
                status.lease_expires_at = None;
            }
        }
    }

    /// Sets the DNS name to `ip`; whether it worked (a failure is retried at the next check).
    async fn update_ddns(&self, ddns: &DdnsConfig, ip: Ipv4Addr) -> bool {
        let result = ddns.update(ip).await;
        let mut status = self.lock();
        let entry = status.ddns.get_or_insert_with(|| DdnsStatus {
            name: ddns.name.to_string(),
            address: None,
            updated_at: None,
            error: None,
        });
        match result {
            Ok(()) => {
                tracing::info!(name = %ddns.name, %ip, "DNS name updated");
                entry.address = Some(ip.to_string());
                entry.updated_at = Some(unix_now());
                entry.error = None;
                true
            }
            Err(e) => {
                tracing::warn!(name = %ddns.name, %ip, error = %e, "DNS update failed; will retry");
                entry.error = Some(e.to_string());
                false
            }
        }
    }
}

/// Tries each protocol in order; the first mapping wins. The error names every failure.
async fn map_port(config: &ReachConfig, bind: SocketAddr) -> Result<Mapping, String> {
    let lan = Lan::discover(config.gateway, bind)
        .await
        .map_err(|e| e.to_string())?;
    let mut failures = Vec::new();
    for &protocol in &config.protocols {
        match Mapping::create(protocol, lan, config.lease).await {
            Ok(mapping) => return Ok(mapping),
            Err(e) => failures.push(format!("{protocol}: {e}")),
        }
    }
    Err(format!("gateway {}: {}", lan.gateway, failures.join("; ")))
}

fn http_url(host: &str, port: u16) -> Url {
    Url::parse(&format!("http://{host}:{port}")).expect("a host and a port make a URL")
}

/// An address others on the internet can reach: not private, loopback, link-local, CGNAT or
/// documentation space.
pub(crate) fn is_global(ip: Ipv4Addr) -> bool {
    let shared = ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64;
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || shared)
}

/// Warns, once per disagreement, when a tracker sees us at an address other than the one we
/// announce: behind a second NAT, or with a stale `server.public_url`, downloaders may not
/// reach the URL.
async fn check_echo(
    seen: IpAddr,
    url: &Url,
    mapping: Option<&Mapping>,
    warned: &mut Option<(IpAddr, String)>,
) {
    let seen = seen.to_canonical();
    // A tracker on this machine or network sees a local address, which says nothing about the
    // world's view.
    if seen.is_loopback() || matches!(seen, IpAddr::V4(v4) if !is_global(v4)) {
        return;
    }
    let announced: Vec<IpAddr> = match mapping {
        Some(m) => vec![IpAddr::V4(*m.external.ip())],
        None => match url.host() {
            Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
            Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
            Some(url::Host::Domain(name)) => {
                let port = url.port_or_known_default().unwrap_or(80);
                match tokio::net::lookup_host((name, port)).await {
                    Ok(addrs) => addrs.map(|a| a.ip().to_canonical()).collect(),
                    Err(_) => Vec::new(),
                }
            }
            None => Vec::new(),
        },
    };
    // Over IPv6 the tracker sees another address family than the IPv4 mapping: no evidence.
    if !announced.is_empty() && announced.iter().all(|a| a.is_ipv4() != seen.is_ipv4()) {
        return;
    }
    if announced.contains(&seen) {
        *warned = None;
        return;
    }
    let key = (seen, url.to_string());
    if warned.as_ref() != Some(&key) {
        tracing::warn!(
            tracker_sees = %seen,
            announced = %url,
            "the tracker sees this server at another address than the URL it announces \
             (a second NAT, or a stale server.public_url?): downloaders may not reach it"
        );
        *warned = Some(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_addresses_exclude_private_shared_and_documentation_space() {
        for ip in [
            "10.1.2.3",
            "192.168.1.1",
            "100.64.0.1",
            "127.0.0.1",
            "203.0.113.9",
        ] {
            assert!(!is_global(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["45.10.0.2", "100.128.0.1", "8.8.8.8"] {
            assert!(is_global(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn a_tracker_echo_wakes_the_monitor_only_when_it_changes() {
        let reach = Reach::new(http_url("127.0.0.1", 8080), false, false);
        let mut echo = reach.echo.subscribe();
        reach.tracker_saw("45.10.0.2".parse().unwrap());
        assert!(echo.has_changed().unwrap());
        echo.borrow_and_update();
        reach.tracker_saw("45.10.0.2".parse().unwrap());
        assert!(!echo.has_changed().unwrap());
        assert_eq!(reach.status().tracker_sees.as_deref(), Some("45.10.0.2"));
    }
}
