//! The SQLite state database in the state dir: the tracker's torrent registry and the seeder's
//! hash cache.
//!
//! WAL journaling with `synchronous = FULL`: a registration acknowledged to a client is on disk,
//! so it survives kill -9 and power loss. Calls are short and synchronous; async callers run them
//! on the blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{params, Connection, OptionalExtension};

use crate::metainfo::Metainfo;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot create state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("state database: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

pub struct StateDb {
    conn: Mutex<Connection>,
}

/// A cached hash result: the torrent of an object as it was at `size` bytes and `version`.
pub struct CachedHash {
    pub size: u64,
    pub version: String,
    pub piece_length: u64,
    pub metainfo: Vec<u8>,
}

impl StateDb {
    pub fn open(state_dir: &Path) -> Result<Self, DbError> {
        std::fs::create_dir_all(state_dir).map_err(|source| DbError::CreateDir {
            path: state_dir.to_owned(),
            source,
        })?;
        let path = state_dir.join("state.sqlite3");
        let open_err = |source| DbError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(open_err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS torrents (
                 info_hash_v2 TEXT PRIMARY KEY,
                 info_hash_v1 TEXT NOT NULL UNIQUE,
                 metainfo BLOB NOT NULL,
                 registered_at INTEGER NOT NULL
             );
             DROP TABLE IF EXISTS hash_cache;
             CREATE TABLE IF NOT EXISTS object_hashes (
                 key TEXT PRIMARY KEY,
                 size INTEGER NOT NULL,
                 version TEXT NOT NULL,
                 piece_length INTEGER NOT NULL,
                 metainfo BLOB NOT NULL
             );",
        )
        .map_err(open_err)?;
        Ok(StateDb {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent: keep serving.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Stores a torrent in the registry; registering the same torrent again is a no-op.
    pub fn register_torrent(&self, meta: &Metainfo, now_unix: i64) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT OR IGNORE INTO torrents (info_hash_v2, info_hash_v1, metainfo, registered_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                meta.info_hash_v2.to_string(),
                meta.info_hash_v1.to_string(),
                &meta.bytes[..],
                now_unix
            ],
        )?;
        Ok(())
    }

    /// Every registered torrent's bencoded metainfo, oldest first.
    pub fn registered_torrents(&self) -> Result<Vec<Vec<u8>>, DbError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT metainfo FROM torrents ORDER BY registered_at, rowid")?;
        let rows = stmt.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The torrent hashed for a storage key, with the size and version it was hashed at.
    pub fn cached_hash(&self, key: &str) -> Result<Option<CachedHash>, DbError> {
        let row = self
            .conn()
            .query_row(
                "SELECT size, version, piece_length, metainfo FROM object_hashes WHERE key = ?1",
                [key],
                |row| {
                    Ok(CachedHash {
                        size: row.get(0)?,
                        version: row.get(1)?,
                        piece_length: row.get(2)?,
                        metainfo: row.get(3)?,
                    })
                },
            )
            .optional()?;
        Ok(row)
    }

    pub fn store_hash(&self, key: &str, entry: &CachedHash) -> Result<(), DbError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO object_hashes (key, size, version, piece_length, metainfo)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                key,
                entry.size,
                entry.version,
                entry.piece_length,
                entry.metainfo
            ],
        )?;
        Ok(())
    }
}
