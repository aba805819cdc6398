//! Keeps the tracker informed of what this seeder shares: registers each torrent, announces at
//! start and every interval (sooner when the catalog changes), and says "stopped" on shutdown.
//! When the public URL moves (a new external address), it announces the new URL at once and
//! says "stopped" for the old one, on fresh connections: the old ones died with the address.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};
use url::Url;

use super::Seeder;
use crate::api_client;
use crate::metainfo::Metainfo;
use crate::tracker::swarm::Event;
use crate::tracker::{SeederAnnounce, Tracker};
use crate::types::{join_url, InfoHash, InfoHashV2, SeederUrl};

/// The tracker a seeder reports to: this process's own, or another server over HTTP.
#[derive(Clone)]
pub enum TrackerClient {
    Local(Arc<Tracker>),
    Remote {
        base: Url,
        http: reqwest::Client,
        /// The tracker's write token, when it requires one.
        token: Option<String>,
    },
}

#[derive(Serialize)]
struct AnnounceBody<'a> {
    info_hash: String,
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<Event>,
}

/// An announce reply is a few dozen bytes; anything far larger is not one.
const MAX_REPLY_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
struct AnnounceReply {
    interval: u64,
    /// Our address as the tracker saw it (absent from older trackers).
    external_ip: Option<IpAddr>,
}

/// What a tracker answered to an announce.
#[derive(Debug)]
pub struct Announced {
    /// When to announce again.
    pub interval: Duration,
    /// The address the tracker saw the announce come from, when it says.
    pub external_ip: Option<IpAddr>,
}

/// The HTTP client a seeder talks to trackers with.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client with timeouts only builds")
}

impl TrackerClient {
    pub async fn register(&self, meta: &Metainfo) -> anyhow::Result<()> {
        match self {
            TrackerClient::Local(tracker) => {
                tracker.register(meta.clone()).await?;
            }
            TrackerClient::Remote { base, http, token } => {
                let response = with_token(http.post(join_url(base, "torrents")), token)
                    .header("content-type", "application/x-bittorrent")
                    .body(meta.bytes.to_vec())
                    .send()
                    .await?;
                api_client::checked(response).await?;
            }
        }
        Ok(())
    }

    /// The same tracker over new connections (after an address change the pooled ones are
    /// dead: the router forgot them).
    pub fn reconnected(&self) -> Self {
        match self {
            TrackerClient::Local(_) => self.clone(),
            TrackerClient::Remote { base, token, .. } => TrackerClient::Remote {
                base: base.clone(),
                http: http_client(),
                token: token.clone(),
            },
        }
    }

    /// Announces; returns the interval the tracker asks for and the address it saw.
    pub async fn announce(
        &self,
        hash: InfoHashV2,
        url: &SeederUrl,
        event: Option<Event>,
    ) -> anyhow::Result<Announced> {
        match self {
            TrackerClient::Local(tracker) => Ok(Announced {
                interval: tracker
                    .announce(SeederAnnounce {
                        hash: InfoHash::V2(hash),
                        url: url.clone(),
                        event,
                        // This process: the same machine as the tracker.
                        client: Some(std::net::Ipv4Addr::LOCALHOST.into()),
                    })
                    .await?,
                external_ip: None,
            }),
            TrackerClient::Remote { base, http, token } => {
                let body = AnnounceBody {
                    info_hash: hash.to_string(),
                    url: url.as_str(),
                    event,
                };
                let response = with_token(http.post(join_url(base, "announce")), token)
                    .json(&body)
                    .send()
                    .await?;
                let body =
                    api_client::read_limited(api_client::checked(response).await?, MAX_REPLY_BYTES)
                        .await?;
                let reply: AnnounceReply = serde_json::from_slice(&body)?;
                Ok(Announced {
                    interval: Duration::from_secs(reply.interval.max(1)),
                    external_ip: reply.external_ip,
                })
            }
        }
    }
}

fn with_token(request: reqwest::RequestBuilder, token: &Option<String>) -> reqwest::RequestBuilder {
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// Runs until `shutdown` turns true, then announces "stopped" for everything it announced.
pub struct Announcer {
    pub seeder: Arc<Seeder>,
    pub client: TrackerClient,
    /// Where the public URL comes from, and where the tracker's view of us goes.
    pub reach: Arc<crate::reach::Reach>,
    pub default_interval: Duration,
    /// Notified by rescans that change the catalog.
    pub catalog_changed: Arc<Notify>,
    pub shutdown: watch::Receiver<bool>,
}

impl Announcer {
    pub async fn run(mut self) {
        // The first announce waits for the port mapping, so it carries the reachable URL.
        tokio::select! {
            _ = self.reach.settled() => {}
            _ = self.shutdown.wait_for(|stop| *stop) => return,
        }
        let mut urls = self.reach.subscribe();
        let Some(mut own_url) = seeder_url(&urls.borrow_and_update()) else {
            return;
        };
        let mut registered: HashSet<InfoHashV2> = HashSet::new();
        let mut announced: HashSet<InfoHashV2> = HashSet::new();
        let mut interval = self.default_interval;
        loop {
            let mut moved = HashSet::new();
            if let Some(new_url) = seeder_url(&urls.borrow_and_update()).filter(|u| *u != own_url) {
                self.client = self.client.reconnected();
                // The new URL first, and the old one stopped only where the new one is listed,
                // so downloaders are never left with neither.
                for &hash in &announced {
                    if self
                        .announce(hash, &new_url, Some(Event::Started))
                        .await
                        .is_some()
                    {
                        moved.insert(hash);
                    }
                }
                for &hash in &moved {
                    self.announce(hash, &own_url, Some(Event::Stopped)).await;
                }
                tracing::info!(from = %own_url.as_str(), to = %new_url.as_str(), torrents = moved.len(), "announced the new URL and stopped the old");
                own_url = new_url;
            }
            let files = self.seeder.catalog().torrents();
            let current: HashSet<InfoHashV2> = files.iter().map(|f| f.meta.info_hash_v2).collect();
            for gone in announced.difference(&current).copied().collect::<Vec<_>>() {
                self.announce(gone, &own_url, Some(Event::Stopped)).await;
                announced.remove(&gone);
            }
            for file in &files {
                let hash = file.meta.info_hash_v2;
                if !registered.contains(&hash) {
                    match self.client.register(&file.meta).await {
                        Ok(()) => {
                            registered.insert(hash);
                        }
                        Err(e) => {
                            tracing::warn!(name = %file.name, error = %format!("{e:#}"), "registering torrent with tracker failed");
                            continue;
                        }
                    }
                }
                if moved.contains(&hash) {
                    continue;
                }
                let event = (!announced.contains(&hash)).then_some(Event::Started);
                if let Some(asked) = self.announce(hash, &own_url, event).await {
                    interval = asked;
                    announced.insert(hash);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.catalog_changed.notified() => {}
                _ = urls.changed() => {}
                _ = self.shutdown.wait_for(|stop| *stop) => break,
            }
        }
        for hash in announced {
            self.announce(hash, &own_url, Some(Event::Stopped)).await;
        }
    }

    async fn announce(
        &self,
        hash: InfoHashV2,
        url: &SeederUrl,
        event: Option<Event>,
    ) -> Option<Duration> {
        match self.client.announce(hash, url, event).await {
            Ok(reply) => {
                if let Some(ip) = reply.external_ip {
                    self.reach.tracker_saw(ip);
                }
                Some(reply.interval)
            }
            Err(e) => {
                tracing::warn!(info_hash = %hash, error = %format!("{e:#}"), "announce failed; will retry");
                None
            }
        }
    }
}

/// The public URL as a seeder URL; a URL the tracker would refuse is logged and skipped.
fn seeder_url(url: &Url) -> Option<SeederUrl> {
    match SeederUrl::parse(url.as_str()) {
        Ok(url) => Some(url),
        Err(e) => {
            tracing::error!(%url, error = %e, "the public URL is not usable as a seeder URL; not announcing it");
            None
        }
    }
}
