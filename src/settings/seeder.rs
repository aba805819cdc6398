//! The `[seeder]` section: serving shared files and announcing them.

use serde::{Deserialize, Serialize};
use url::Url;

use super::{at_least_one, check_token, parse_http_url, SettingsError};
use crate::types::{tracker_base, PieceLength};

/// `[seeder]` as written in a file or the environment.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(super) struct SeederSection {
    enabled: bool,
    piece_length: u64,
    max_streams: usize,
    max_streams_per_client: usize,
    uploads: bool,
    max_upload_bytes: u64,
    tracker: Option<String>,
    tracker_token: Option<String>,
}

/// `[seeder]`, validated.
#[derive(Debug, Clone)]
pub struct SeederSettings {
    /// The seeder role is on: `/chunks` and `/files` are served and shared files announced.
    pub enabled: bool,
    /// Piece length of the torrents made of shared files.
    pub piece_length: PieceLength,
    /// File and chunk responses streaming at once, in all and per client.
    pub max_streams: usize,
    pub max_streams_per_client: usize,
    /// The largest upload when uploads are on (`seeder.uploads`); `None`: uploads are off.
    pub max_upload_bytes: Option<u64>,
    /// Base URL of the tracker to announce to; `None`: this server's own tracker.
    pub tracker: Option<Url>,
    /// Bearer token for that tracker.
    pub tracker_token: Option<String>,
}

impl SeederSection {
    pub(super) fn validate(self) -> Result<SeederSettings, SettingsError> {
        let piece_length =
            PieceLength::new(self.piece_length).map_err(|e| SettingsError::Invalid {
                key: "seeder.piece_length",
                value: self.piece_length.to_string(),
                message: e.to_string(),
            })?;
        let tracker = self
            .tracker
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| parse_http_url("seeder.tracker", s).map(tracker_base))
            .transpose()?;
        at_least_one("seeder.max_streams", self.max_streams)?;
        at_least_one("seeder.max_streams_per_client", self.max_streams_per_client)?;
        at_least_one(
            "seeder.max_upload_bytes",
            usize::try_from(self.max_upload_bytes).unwrap_or(usize::MAX),
        )?;
        Ok(SeederSettings {
            enabled: self.enabled,
            piece_length,
            max_streams: self.max_streams,
            max_streams_per_client: self.max_streams_per_client,
            max_upload_bytes: self.uploads.then_some(self.max_upload_bytes),
            tracker,
            tracker_token: check_token("seeder.tracker_token", self.tracker_token)?,
        })
    }
}
