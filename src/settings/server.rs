//! The `[server]` section: where the HTTP server listens and how others reach it.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use url::Url;

use super::{parse_http_url, SettingsError};

/// `[server]` as written in a file or the environment.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(super) struct ServerSection {
    bind: String,
    public_url: Option<String>,
    workers: usize,
    max_body_bytes: usize,
    trusted_proxy_hops: usize,
}

/// `[server]`, validated.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    /// Set by `server.public_url` (or the PaaS's domain); `None`: derived from the bound port.
    pub public_url: Option<Url>,
    /// HTTP worker threads (`server.workers`, 0 resolved to the number of cores).
    pub workers: usize,
    pub max_body_bytes: usize,
    /// Reverse proxies in front that append to X-Forwarded-For.
    pub trusted_proxy_hops: usize,
}

impl ServerSection {
    pub(super) fn validate(self) -> Result<ServerSettings, SettingsError> {
        let bind = self.bind.parse().map_err(|_| SettingsError::Invalid {
            key: "server.bind",
            value: self.bind.clone(),
            message: "expected HOST:PORT with a numeric IP address, e.g. 127.0.0.1:8080".into(),
        })?;
        let public_url = self
            .public_url
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| parse_http_url("server.public_url", s))
            .transpose()?;
        Ok(ServerSettings {
            bind,
            public_url,
            workers: match self.workers {
                0 => crate::per_thread::cores(),
                n => n,
            },
            max_body_bytes: self.max_body_bytes,
            trusted_proxy_hops: self.trusted_proxy_hops,
        })
    }
}
