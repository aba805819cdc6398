//! The `[ddns]` section: a DNS name kept at the external address (RFC 2136 + TSIG). The key's
//! secret is read only from the environment variable `ddns.secret_env` names.

use serde::{Deserialize, Serialize};

use super::SettingsError;
use crate::reach::{ddns, DdnsConfig};

/// `[ddns]` as written in a file or the environment.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(super) struct DdnsSection {
    name: Option<String>,
    zone: Option<String>,
    server: Option<String>,
    key_name: Option<String>,
    algorithm: String,
    pub(super) secret_env: String,
    ttl_secs: u32,
}

impl DdnsSection {
    /// The dynamic DNS update to make, when `ddns.name` is set: every other key is then needed.
    pub(super) fn validate(
        self,
        secret: Option<String>,
    ) -> Result<Option<DdnsConfig>, SettingsError> {
        let Some(name) = self.name.as_deref().filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let required = |key: &'static str, value: &Option<String>| {
            value
                .clone()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| SettingsError::Invalid {
                    key,
                    value: String::new(),
                    message: format!("ddns.name = {name:?} needs it too"),
                })
        };
        let invalid = |key: &'static str, value: &str| {
            let value = value.to_owned();
            move |message: String| SettingsError::Invalid {
                key,
                value,
                message,
            }
        };
        let zone = required("ddns.zone", &self.zone)?;
        let server = required("ddns.server", &self.server)?;
        let key_name = required("ddns.key_name", &self.key_name)?;
        let name = ddns::parse_name(name).map_err(invalid("ddns.name", name))?;
        let zone = ddns::parse_name(&zone).map_err(invalid("ddns.zone", &zone))?;
        if !zone.zone_of(&name) {
            return Err(SettingsError::Invalid {
                key: "ddns.name",
                value: name.to_string(),
                message: format!(
                    "is not inside ddns.zone = {zone:?}",
                    zone = zone.to_string()
                ),
            });
        }
        let server = server.parse().map_err(|_| SettingsError::Invalid {
            key: "ddns.server",
            value: server.clone(),
            message: "expected IP:PORT of the zone's primary server, e.g. 192.0.2.53:53".into(),
        })?;
        let secret = secret.ok_or_else(|| SettingsError::Invalid {
            key: "ddns.secret_env",
            value: self.secret_env.clone(),
            message: "this environment variable must hold the TSIG key's secret (base64, as \
                      tsig-keygen prints it)"
                .into(),
        })?;
        let secret = data_encoding::BASE64
            .decode(secret.trim().as_bytes())
            .map_err(|e| SettingsError::Invalid {
                key: "ddns.secret_env",
                value: self.secret_env.clone(),
                message: format!("the secret in this variable is not base64: {e}"),
            })?;
        Ok(Some(DdnsConfig {
            server,
            zone,
            name,
            ttl: self.ttl_secs,
            key_name: ddns::parse_name(&key_name).map_err(invalid("ddns.key_name", &key_name))?,
            algorithm: ddns::parse_algorithm(&self.algorithm)
                .map_err(invalid("ddns.algorithm", &self.algorithm))?,
            secret,
        }))
    }
}
