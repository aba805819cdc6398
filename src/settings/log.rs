//! The `[log]` section: what the log looks like and how much of it there is.

use serde::{Deserialize, Serialize};

/// `[log]`: nothing to validate beyond its types; `level` is an EnvFilter directive, checked
/// where the subscriber is installed.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human text on a terminal, JSON lines otherwise.
    Auto,
    Text,
    Json,
}
