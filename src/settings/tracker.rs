//! The `[tracker]` section: the tracker role, its policy, its caps and where it keeps its state.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::{at_least_one, check_token, positive_secs, SettingsError};
use crate::tracker::{Limits, PrivateSeeders};

/// `[tracker]` as written in a file or the environment.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(super) struct TrackerSection {
    enabled: bool,
    announce_interval_secs: u64,
    max_peers: usize,
    accept_ip_param: bool,
    write_token: Option<String>,
    read_token: Option<String>,
    allowlist: bool,
    /// Unset: "same-network" (an option, so that setting it can be told from the default).
    private_seeders: Option<PrivateSeeders>,
    /// Deprecated for `private_seeders`: still read for a release, never written.
    #[serde(default, skip_serializing)]
    allow_private_seeders: Option<bool>,
    verify_seeders: bool,
    rate_limit_per_second: u32,
    rate_limit_burst: u32,
    max_torrents: usize,
    max_swarms: usize,
    max_peers_per_swarm: usize,
    max_seeders: usize,
    max_bittorrent_peers: usize,
    redis_url: Option<String>,
}

/// Where the tracker keeps its registry and swarms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackerStoreConfig {
    /// The registry in the state dir's SQLite database, swarms in this process's memory.
    Embedded,
    /// Both in a Redis shared by several tracker instances (`tracker.redis_url`).
    Redis { url: Url },
}

/// `[tracker]`, validated.
#[derive(Debug, Clone)]
pub struct TrackerSettings {
    /// The tracker role is on: `/announce`, `/peers`, `/scrape` and `POST /torrents`.
    pub enabled: bool,
    /// Told to seeders and peers; an entry silent for twice this long is dropped.
    pub announce_interval: Duration,
    pub max_peers: usize,
    pub accept_ip_param: bool,
    /// Bearer tokens for writes and reads; `None`: open.
    pub write_token: Option<String>,
    pub read_token: Option<String>,
    pub allowlist: bool,
    pub private_seeders: PrivateSeeders,
    pub verify_seeders: bool,
    /// Requests per second per client on tracker endpoints (0: no limit), and the burst.
    pub rate_limit_per_second: u32,
    pub rate_limit_burst: u32,
    pub limits: Limits,
    pub store: TrackerStoreConfig,
}

impl TrackerSection {
    /// Validated, and a warning for each deprecated key that was set.
    pub(super) fn validate(
        self,
        warnings: &mut Vec<String>,
    ) -> Result<TrackerSettings, SettingsError> {
        let announce_interval = positive_secs(
            "tracker.announce_interval_secs",
            self.announce_interval_secs,
        )?;
        let store = match self.redis_url.as_deref().filter(|u| !u.is_empty()) {
            None => TrackerStoreConfig::Embedded,
            Some(url) => TrackerStoreConfig::Redis {
                url: Url::parse(url)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "redis" | "rediss"))
                    .ok_or_else(|| SettingsError::Invalid {
                        key: "tracker.redis_url",
                        value: url.to_owned(),
                        message: "expected redis://HOST[:PORT][/DB] (or rediss:// for TLS)".into(),
                    })?,
            },
        };
        let private_seeders = self.private_seeders(warnings)?;
        at_least_one("tracker.max_peers", self.max_peers)?;
        let limits = Limits {
            max_torrents: at_least_one("tracker.max_torrents", self.max_torrents)?,
            max_swarms: at_least_one("tracker.max_swarms", self.max_swarms)?,
            max_peers_per_swarm: at_least_one(
                "tracker.max_peers_per_swarm",
                self.max_peers_per_swarm,
            )?,
            max_seeders: at_least_one("tracker.max_seeders", self.max_seeders)?,
            max_bittorrent_peers: at_least_one(
                "tracker.max_bittorrent_peers",
                self.max_bittorrent_peers,
            )?,
        };
        at_least_one("tracker.rate_limit_burst", self.rate_limit_burst as usize)?;
        Ok(TrackerSettings {
            enabled: self.enabled,
            announce_interval,
            max_peers: self.max_peers,
            accept_ip_param: self.accept_ip_param,
            write_token: check_token("tracker.write_token", self.write_token)?,
            read_token: check_token("tracker.read_token", self.read_token)?,
            allowlist: self.allowlist,
            private_seeders,
            verify_seeders: self.verify_seeders,
            rate_limit_per_second: self.rate_limit_per_second,
            rate_limit_burst: self.rate_limit_burst,
            limits,
            store,
        })
    }

    /// `private_seeders`, or what the deprecated `allow_private_seeders` meant: `true` lists
    /// every address ("always"), `false` public ones only ("never").
    fn private_seeders(&self, warnings: &mut Vec<String>) -> Result<PrivateSeeders, SettingsError> {
        let Some(allow) = self.allow_private_seeders else {
            return Ok(self.private_seeders.unwrap_or(PrivateSeeders::SameNetwork));
        };
        let (meant, name) = match allow {
            true => (PrivateSeeders::Always, "always"),
            false => (PrivateSeeders::Never, "never"),
        };
        if self.private_seeders.is_some_and(|set| set != meant) {
            return Err(SettingsError::Invalid {
                key: "tracker.allow_private_seeders",
                value: allow.to_string(),
                message: "contradicts tracker.private_seeders, which replaces it: set only \
                          tracker.private_seeders"
                    .into(),
            });
        }
        warnings.push(format!(
            "tracker.allow_private_seeders is deprecated and will be removed in the next \
             release: set tracker.private_seeders = \"{name}\" instead"
        ));
        Ok(meant)
    }
}
