//! [`Application`]: a whole server, wired from validated settings. It binds first (so callers,
//! and tests on port 0, learn the real port before anything runs), builds the services through
//! the bootstrap layer, hands them to the HTTP layer and starts the background jobs; on stop it
//! says "stopped" to the tracker before it gives up the port mapping.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use url::Url;

use crate::bootstrap::{self, jobs, TorrentUrlsFor};
use crate::db::StateDb;
use crate::metainfo::Metainfo;
use crate::reach::Reach;
use crate::seeder::announcer::TrackerClient;
use crate::seeder::Seeder;
use crate::server::{self, workers, Services};
use crate::settings::Settings;
use crate::types::SeederUrl;

/// What `seed` shares besides the storage's own files: files and folders from elsewhere, and
/// torrents to serve some of them under (matched by name, checked against their bytes).
#[derive(Debug, Default)]
pub struct Seeds {
    pub files: Vec<PathBuf>,
    pub torrents: Vec<Metainfo>,
}

impl From<Vec<PathBuf>> for Seeds {
    fn from(files: Vec<PathBuf>) -> Self {
        Seeds {
            files,
            torrents: Vec::new(),
        }
    }
}

pub struct Application {
    port: u16,
    reach: Arc<Reach>,
    server: workers::Server,
    /// Tells the announcer to say "stopped".
    shutdown: watch::Sender<bool>,
    announcer: Option<JoinHandle<()>>,
    /// Keeps the port mapping; removes it once `stop_reach` turns true, after the announcer
    /// has said "stopped".
    reach_monitor: JoinHandle<()>,
    stop_reach: watch::Sender<bool>,
}

/// The seeder's jobs: stamping torrents with each new public URL, rescans, and announces when
/// there is a tracker to announce to (the announcer's handle, to await its "stopped").
fn seeder_jobs(
    settings: &Settings,
    seeder: &Arc<Seeder>,
    client: Option<TrackerClient>,
    reach: &Arc<Reach>,
    urls: TorrentUrlsFor,
    stopping: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    jobs::follow_public_url(seeder, reach, urls);
    let catalog_changed = Arc::new(Notify::new());
    jobs::rescans(
        seeder,
        settings.storage.rescan_interval,
        catalog_changed.clone(),
    );
    let Some(client) = client else {
        tracing::warn!(
            "no tracker: the tracker role is off and seeder.tracker is unset, so nothing is \
             announced"
        );
        return None;
    };
    Some(jobs::announcer(
        seeder,
        client,
        reach,
        settings.tracker.announce_interval,
        catalog_changed,
        stopping,
    ))
}

impl Application {
    /// Binds, opens the state, and starts the server and its background jobs (rescans,
    /// announces, peer expiry, port mapping); [`Application::run_until_stopped`] waits for the
    /// stop.
    pub async fn build(settings: Settings, seeds: Seeds) -> anyhow::Result<Self> {
        for warning in &settings.warnings {
            tracing::warn!("{warning}");
        }
        let (local, listeners) = server::bind(&settings.server)?;
        let reach = bootstrap::reach(&settings, local);
        let public_url = reach.url();
        let db = Arc::new(StateDb::open(&settings.storage.state_dir)?);
        let tracker = bootstrap::tracker(&settings.tracker, &db)?;
        let client = bootstrap::tracker_client(&settings, tracker.as_ref());
        if settings.seeder.enabled && client.is_some() {
            // Announced as the seeder's URL, so it must be one (no credentials, query or fragment).
            SeederUrl::parse(public_url.as_str())
                .context("server.public_url is not usable as a seeder URL")?;
        }
        let urls = TorrentUrlsFor::new(&settings);
        let seeder = bootstrap::seeder(&settings, seeds, &db, &urls, &public_url)?;

        let server = server::start(
            listeners,
            Services {
                seeder: seeder.clone(),
                tracker: tracker.clone(),
                reach: reach.clone(),
            },
            &settings,
        )?;

        if let Some(tracker) = &tracker {
            jobs::expiry(tracker, settings.tracker.announce_interval);
        }
        let (shutdown, stopping) = watch::channel(false);
        let announcer = match &seeder {
            Some(seeder) => seeder_jobs(&settings, seeder, client, &reach, urls, stopping),
            None => None,
        };
        // Last: the seeder follows every URL the mapping moves to.
        let (stop_reach, reach_stopping) = watch::channel(false);
        let reach_monitor = jobs::reach_monitor(
            &reach,
            &settings.reach,
            local,
            settings.server.public_url.clone(),
            reach_stopping,
        );

        Ok(Application {
            port: local.port(),
            reach,
            server,
            shutdown,
            announcer,
            reach_monitor,
            stop_reach,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The public URL now (it may move once the gateway maps the port).
    pub fn public_url(&self) -> Url {
        self.reach.url()
    }

    /// Stops the server as SIGTERM would (tests use it to restart on the same state).
    pub fn handle(&self) -> workers::Handle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM (or the server handle stops it), then finishes in-flight
    /// responses and tells the tracker this seeder has stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.run().await;
        self.shutdown.send_replace(true);
        if let Some(announcer) = self.announcer {
            if tokio::time::timeout(Duration::from_secs(10), announcer)
                .await
                .is_err()
            {
                tracing::warn!("gave up sending 'stopped' announces after 10 s");
            }
        }
        // After the announces: the mapping keeps the URL valid until the tracker has heard
        // "stopped". A UPnP request may take 10 s.
        self.stop_reach.send_replace(true);
        if tokio::time::timeout(Duration::from_secs(15), self.reach_monitor)
            .await
            .is_err()
        {
            tracing::warn!("gave up removing the port mapping after 15 s");
        }
        served
    }
}
