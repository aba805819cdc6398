//! Fetching one piece over HTTP, from a gotorrent-http seeder (`/chunks`) or a BEP 19 web seed
//! (a Range request on the file's URL), with every answer checked before its bytes are trusted.
//! Used by the downloader and by the tracker, which verifies a new seeder with one piece.

use std::fmt;
use std::time::Duration;

use reqwest::header::{CONTENT_RANGE, RANGE, RETRY_AFTER};
use reqwest::StatusCode;
use url::Url;

use crate::metainfo::{Metainfo, PieceSpan};
use crate::types::join_url;

/// One place pieces can be fetched from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A gotorrent-http seeder: `GET {base}/chunks/{info_hash}/{index}`.
    Native(Url),
    /// A BEP 19 web seed: Range requests on the file's URL.
    WebSeed(Url),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Native(url) | Endpoint::WebSeed(url) => f.write_str(url.as_str()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Transport(String),
    #[error("HTTP {status}")]
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
    /// The answer is not what was asked for: a Range ignored (200 for a range), a wrong
    /// Content-Range, or a body of the wrong length. Not trusted for this request.
    #[error("{0}")]
    Protocol(String),
    /// The deadline passed with `received` of the piece's bytes in.
    #[error("too slow: {received} of {len} bytes in {:.1} s", elapsed.as_secs_f64())]
    TooSlow {
        received: u64,
        len: u64,
        elapsed: Duration,
    },
}

impl FetchError {
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Fetches piece `index` (at `span` of its file) from `endpoint`, all of it within
/// `deadline`: a per-read timeout alone would let a seeder that sends a byte now and then hold
/// the request forever.
pub async fn piece(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    meta: &Metainfo,
    index: u32,
    span: PieceSpan,
    deadline: Duration,
) -> Result<Vec<u8>, FetchError> {
    let PieceSpan { offset, len, .. } = span;
    let started = tokio::time::Instant::now();
    let until = started + deadline;
    let too_slow = |received: usize| FetchError::TooSlow {
        received: received as u64,
        len,
        elapsed: started.elapsed(),
    };
    let request = match endpoint {
        Endpoint::Native(base) => {
            let url = join_url(
                &join_url(&join_url(base, "chunks"), &meta.info_hash_v2.to_string()),
                &index.to_string(),
            );
            http.get(url)
        }
        Endpoint::WebSeed(url) => {
            // A folder's web seed is its directory: the file's path goes below it.
            let mut url = url.clone();
            if meta.is_folder {
                for part in &meta.files[span.file].path {
                    url = join_url(&url, part);
                }
            }
            http.get(url)
                .header(RANGE, format!("bytes={}-{}", offset, offset + len - 1))
        }
    };
    let mut response = tokio::time::timeout_at(until, request.send())
        .await
        .map_err(|_| too_slow(0))?
        .map_err(|e| FetchError::Transport(describe(&e)))?;
    let status = response.status();
    match endpoint {
        Endpoint::Native(_) if status == StatusCode::OK => {}
        Endpoint::WebSeed(_) if status == StatusCode::PARTIAL_CONTENT => {
            let expected = format!(
                "bytes {}-{}/{}",
                offset,
                offset + len - 1,
                meta.files[span.file].length
            );
            let got = response
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok());
            if got != Some(expected.as_str()) {
                return Err(FetchError::Protocol(format!(
                    "wrong Content-Range {got:?}, expected {expected:?}"
                )));
            }
        }
        Endpoint::WebSeed(_) if status == StatusCode::OK => {
            return Err(FetchError::Protocol(
                "ignored the Range header (200 instead of 206)".into(),
            ));
        }
        _ => {
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(FetchError::Status {
                status,
                retry_after,
            });
        }
    }
    if response.content_length().is_some_and(|n| n != len) {
        return Err(FetchError::Protocol(format!(
            "Content-Length {} for a {len}-byte piece",
            response.content_length().unwrap_or_default()
        )));
    }
    // Read at most `len` bytes, whatever the server claims, so memory stays bounded.
    let mut data = Vec::with_capacity(len as usize);
    while let Some(chunk) = tokio::time::timeout_at(until, response.chunk())
        .await
        .map_err(|_| too_slow(data.len()))?
        .map_err(|e| FetchError::Transport(describe(&e)))?
    {
        if data.len() + chunk.len() > len as usize {
            return Err(FetchError::Protocol(format!(
                "sent more than the piece's {len} bytes"
            )));
        }
        data.extend_from_slice(&chunk);
    }
    if data.len() as u64 != len {
        return Err(FetchError::Protocol(format!(
            "sent {} of the piece's {len} bytes",
            data.len()
        )));
    }
    Ok(data)
}

/// reqwest's Display hides the cause ("error sending request"); the chain says what happened.
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
