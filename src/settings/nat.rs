//! The `[nat]` section: port mapping on the home router. It makes the [`ReachConfig`], whose
//! DNS name `[ddns]` fills in.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SettingsError;
use crate::reach::{Protocol, ReachConfig};

/// `[nat]` as written in a file or the environment.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(super) struct NatSection {
    mapping: NatMapping,
    protocols: Vec<Protocol>,
    gateway: Option<String>,
    lease_secs: u64,
    check_interval_secs: u64,
}

/// Whether to ask the gateway for a port mapping (`nat.mapping`, `--nat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NatMapping {
    /// When the server listens on a non-loopback address and no public URL is set.
    Auto,
    On,
    Off,
}

impl NatMapping {
    /// The name in settings and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            NatMapping::Auto => "auto",
            NatMapping::On => "on",
            NatMapping::Off => "off",
        }
    }
}

impl std::str::FromStr for NatMapping {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(NatMapping::Auto),
            "on" => Ok(NatMapping::On),
            "off" => Ok(NatMapping::Off),
            _ => Err(format!("{s:?}: expected auto, on or off")),
        }
    }
}

impl NatSection {
    /// Port mapping on ("auto" resolved against the bind address and public URL); no DNS name
    /// yet.
    pub(super) fn validate(
        self,
        bind: SocketAddr,
        public_url_set: bool,
    ) -> Result<ReachConfig, SettingsError> {
        let invalid = |key: &'static str, value: String, message: String| {
            SettingsError::invalid(key, &value, message)
        };
        let mapping = match self.mapping {
            NatMapping::On => true,
            NatMapping::Off => false,
            NatMapping::Auto => !bind.ip().is_loopback() && !public_url_set,
        };
        if self.protocols.is_empty() && mapping {
            return Err(invalid(
                "nat.protocols",
                "[]".into(),
                "name at least one of upnp, pcp, nat-pmp, or set nat.mapping = \"off\"".into(),
            ));
        }
        let gateway = self
            .gateway
            .as_deref()
            .filter(|g| !g.is_empty())
            .map(|g| {
                g.parse().map_err(|_| {
                    invalid(
                        "nat.gateway",
                        g.to_owned(),
                        "expected an IPv4 address, e.g. 192.168.1.1".into(),
                    )
                })
            })
            .transpose()?;
        if self.check_interval_secs == 0 {
            return Err(invalid(
                "nat.check_interval_secs",
                "0".into(),
                "must be at least 1".into(),
            ));
        }
        let check_interval = Duration::from_secs(self.check_interval_secs);
        let lease = Duration::from_secs(self.lease_secs);
        // Renewed at every check: a lease shorter than two checks could lapse in between.
        if lease < 2 * check_interval {
            return Err(invalid(
                "nat.lease_secs",
                self.lease_secs.to_string(),
                format!(
                    "must be at least twice nat.check_interval_secs ({})",
                    self.check_interval_secs
                ),
            ));
        }
        Ok(ReachConfig {
            mapping,
            protocols: self.protocols,
            gateway,
            lease,
            check_interval,
            ddns: None,
        })
    }
}
