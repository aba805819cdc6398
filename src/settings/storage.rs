//! The `[storage]` and `[storage.s3]` sections: where shared files and the state live. The
//! backend becomes one variant of [`StorageConfig`]; credentials come only from the `AWS_*`
//! environment variables.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{parse_http_url, positive_secs, SettingsError};
use crate::storage::{S3Config, StorageConfig};

/// The only place S3 credentials are read from.
pub(super) const AWS_VARIABLES: [&str; 3] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// Largest `storage.s3.cache_mib`.
const MAX_CACHE_MIB: u64 = 1 << 20;

/// `[storage]` as written in a file or the environment.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(super) struct StorageSection {
    backend: Backend,
    data_dir: PathBuf,
    state_dir: PathBuf,
    rescan_interval_secs: u64,
    s3: S3Section,
}

/// `storage.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum Backend {
    Local,
    S3,
}

/// `[storage.s3]`. Credentials are never read from here.
#[derive(Debug, Clone, Deserialize, Serialize)]
struct S3Section {
    bucket: Option<String>,
    prefix: String,
    endpoint: Option<String>,
    region: String,
    redirect_files: bool,
    cache_mib: u64,
}

/// `[storage]`, validated.
#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// Where shared files are read from.
    pub backend: StorageConfig,
    /// The SQLite state database's directory (registry, hash cache).
    pub state_dir: PathBuf,
    /// How often the shared files are listed again.
    pub rescan_interval: Duration,
}

impl StorageSection {
    pub(super) fn validate(
        self,
        aws: &HashMap<&str, String>,
    ) -> Result<StorageSettings, SettingsError> {
        let backend = match self.backend {
            Backend::Local => StorageConfig::Local {
                data_dir: self.data_dir,
            },
            Backend::S3 => StorageConfig::ObjectStore(Box::new(self.s3.validate(aws)?)),
        };
        Ok(StorageSettings {
            backend,
            state_dir: self.state_dir,
            rescan_interval: positive_secs(
                "storage.rescan_interval_secs",
                self.rescan_interval_secs,
            )?,
        })
    }
}

impl S3Section {
    /// The bucket to share from, with the credentials from `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
    fn validate(self, aws: &HashMap<&str, String>) -> Result<S3Config, SettingsError> {
        let var = |name: &str| aws.get(name).cloned();
        let invalid = SettingsError::invalid;
        let bucket = self.bucket.filter(|b| !b.is_empty()).ok_or_else(|| {
            invalid(
                "storage.s3.bucket",
                "",
                "storage.backend = \"s3\" needs a bucket (GOTORRENT__STORAGE__S3__BUCKET)",
            )
        })?;
        if bucket.contains('/') {
            return Err(invalid(
                "storage.s3.bucket",
                &bucket,
                "a bucket name has no '/'; put the path in storage.s3.prefix",
            ));
        }
        let prefix = self.prefix.trim_matches('/').to_owned();
        if !prefix.is_empty()
            && prefix
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(invalid(
                "storage.s3.prefix",
                &self.prefix,
                "expected folder names separated by single '/', without '.' or '..'",
            ));
        }
        let endpoint = self
            .endpoint
            .as_deref()
            .filter(|e| !e.is_empty())
            .map(|e| parse_http_url("storage.s3.endpoint", e))
            .transpose()?;
        if self.region.is_empty() {
            return Err(invalid("storage.s3.region", "", "must not be empty"));
        }
        if self.cache_mib > MAX_CACHE_MIB {
            return Err(invalid(
                "storage.s3.cache_mib",
                &self.cache_mib.to_string(),
                &format!("at most {MAX_CACHE_MIB} (1 TiB)"),
            ));
        }
        let (Some(access_key_id), Some(secret_access_key)) =
            (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
        else {
            return Err(invalid(
                "storage.backend",
                "s3",
                "reading a bucket needs the environment variables AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials)",
            ));
        };
        Ok(S3Config {
            bucket,
            prefix,
            endpoint,
            region: self.region,
            access_key_id,
            secret_access_key,
            session_token: var("AWS_SESSION_TOKEN"),
            redirect_files: self.redirect_files,
            cache_bytes: self.cache_mib << 20,
        })
    }
}
