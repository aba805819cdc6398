//! The `[log]` section: what the log looks like and how much of it there is.

use serde::{Deserialize, Serialize};

use super::SettingsError;

/// `[log]`, as written and as validated: `level` is checked to be an EnvFilter directive.
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

impl LogSettings {
    pub(super) fn validate(self) -> Result<LogSettings, SettingsError> {
        tracing_subscriber::EnvFilter::try_new(&self.level).map_err(|e| {
            SettingsError::invalid(
                "log.level",
                &self.level,
                format!("not a tracing filter ({e}); e.g. info, or warn,gotorrent_http=debug"),
            )
        })?;
        Ok(self)
    }
}
