//! Keeps the tracker informed of what this seeder shares: registers each torrent, announces at
//! start and every interval (sooner when the catalog changes), and says "stopped" on shutdown.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
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

    /// Announces and returns the interval the tracker asks for.
    pub async fn announce(
        &self,
        hash: InfoHashV2,
        url: &SeederUrl,
        event: Option<Event>,
    ) -> anyhow::Result<Duration> {
        match self {
            TrackerClient::Local(tracker) => Ok(tracker
                .announce(SeederAnnounce {
                    hash: InfoHash::V2(hash),
                    url: url.clone(),
                    event,
                    // This process: the same machine as the tracker.
                    client: Some(std::net::Ipv4Addr::LOCALHOST.into()),
                })
                .await?),
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
                Ok(Duration::from_secs(reply.interval.max(1)))
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

/// Runs until `shutdown` is notified, then announces "stopped" for everything it announced.
pub struct Announcer {
    pub seeder: Arc<Seeder>,
    pub client: TrackerClient,
    pub own_url: SeederUrl,
    pub default_interval: Duration,
    /// Notified by rescans that change the catalog.
    pub catalog_changed: Arc<Notify>,
    pub shutdown: Arc<Notify>,
}

impl Announcer {
    pub async fn run(self) {
        let mut registered: HashSet<InfoHashV2> = HashSet::new();
        let mut announced: HashSet<InfoHashV2> = HashSet::new();
        let mut interval = self.default_interval;
        loop {
            let files = self.seeder.catalog().torrents();
            let current: HashSet<InfoHashV2> = files.iter().map(|f| f.meta.info_hash_v2).collect();
            for gone in announced.difference(&current).copied().collect::<Vec<_>>() {
                self.announce(gone, Some(Event::Stopped)).await;
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
                let event = (!announced.contains(&hash)).then_some(Event::Started);
                if let Some(asked) = self.announce(hash, event).await {
                    interval = asked;
                    announced.insert(hash);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.catalog_changed.notified() => {}
                _ = self.shutdown.notified() => break,
            }
        }
        for hash in announced {
            self.announce(hash, Some(Event::Stopped)).await;
        }
    }

    async fn announce(&self, hash: InfoHashV2, event: Option<Event>) -> Option<Duration> {
        match self.client.announce(hash, &self.own_url, event).await {
            Ok(interval) => Some(interval),
            Err(e) => {
                tracing::warn!(info_hash = %hash, error = %format!("{e:#}"), "announce failed; will retry");
                None
            }
        }
    }
}
