//! Where a tier keeps its objects: a local folder or an S3 bucket, behind
//! the five operations the repository needs. Local writes go to a temporary
//! file first and are renamed into place, so a crash never leaves half an
//! object under its final name.

use std::path::PathBuf;

use crate::s3::{Bucket, S3Error, S3ErrorKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    NotFound,
    /// The storage refused the identity (S3 `AccessDenied`, file permissions).
    Permission,
    Timeout,
    Network,
    Other,
}

#[derive(Debug, thiserror::Error)]
#[error("{store}: {op} `{key}`: {message}")]
pub struct StoreError {
    pub store: String,
    pub op: &'static str,
    pub key: String,
    pub kind: StoreErrorKind,
    pub message: String,
}

#[derive(Debug, Clone)]
pub enum Store {
    Local(PathBuf),
    S3(Bucket),
}

impl Store {
    /// For messages: `local:/path` or `s3:bucket`.
    pub fn describe(&self) -> String {
        match self {
            Store::Local(p) => format!("local:{}", p.display()),
            Store::S3(b) => format!("s3:{}", b.name()),
        }
    }

    fn s3_error(&self, e: S3Error) -> StoreError {
        StoreError {
            store: self.describe(),
            op: e.op,
            key: e.target,
            kind: match e.kind {
                S3ErrorKind::AccessDenied => StoreErrorKind::Permission,
                S3ErrorKind::NotFound => StoreErrorKind::NotFound,
                S3ErrorKind::Timeout => StoreErrorKind::Timeout,
                S3ErrorKind::Network => StoreErrorKind::Network,
                S3ErrorKind::Server | S3ErrorKind::Invalid => StoreErrorKind::Other,
            },
            message: e.message,
        }
    }

    fn io_error(&self, op: &'static str, key: &str, e: std::io::Error) -> StoreError {
        StoreError {
            store: self.describe(),
            op,
            key: key.to_string(),
            kind: match e.kind() {
                std::io::ErrorKind::NotFound => StoreErrorKind::NotFound,
                std::io::ErrorKind::PermissionDenied => StoreErrorKind::Permission,
                _ => StoreErrorKind::Other,
            },
            message: e.to_string(),
        }
    }

    fn path(root: &std::path::Path, key: &str) -> PathBuf {
        root.join(key)
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        match self {
            Store::S3(b) => b.put(key, bytes).await.map_err(|e| self.s3_error(e)),
            Store::Local(root) => {
                let path = Self::path(root, key);
                let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
                let write = async {
                    if let Some(dir) = path.parent() {
                        tokio::fs::create_dir_all(dir).await?;
                    }
                    tokio::fs::write(&tmp, &bytes).await?;
                    tokio::fs::rename(&tmp, &path).await
                };
                write.await.map_err(|e| self.io_error("put", key, e))
            }
        }
    }

    pub async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        match self {
            Store::S3(b) => b.get(key).await.map_err(|e| self.s3_error(e)),
            Store::Local(root) => tokio::fs::read(Self::path(root, key))
                .await
                .map_err(|e| self.io_error("get", key, e)),
        }
    }

    /// The object's size, or `None` if it is absent.
    pub async fn stat(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self {
            Store::S3(b) => b.stat(key).await.map_err(|e| self.s3_error(e)),
            Store::Local(root) => match tokio::fs::metadata(Self::path(root, key)).await {
                Ok(m) => Ok(Some(m.len())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(self.io_error("stat", key, e)),
            },
        }
    }

    /// Keys under `prefix` (a folder, ending in `/`) with sizes, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        match self {
            Store::S3(b) => b.list(prefix).await.map_err(|e| self.s3_error(e)),
            Store::Local(root) => {
                let mut out = Vec::new();
                let mut dirs = vec![Self::path(root, prefix)];
                while let Some(dir) = dirs.pop() {
                    let mut entries = match tokio::fs::read_dir(&dir).await {
                        Ok(e) => e,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(self.io_error("list", prefix, e)),
                    };
                    while let Some(entry) = entries
                        .next_entry()
                        .await
                        .map_err(|e| self.io_error("list", prefix, e))?
                    {
                        let meta = entry
                            .metadata()
                            .await
                            .map_err(|e| self.io_error("list", prefix, e))?;
                        let path = entry.path();
                        if meta.is_dir() {
                            dirs.push(path);
                        } else if !path.to_string_lossy().contains(".tmp-") {
                            let key = path
                                .strip_prefix(root)
                                .expect("listed under root")
                                .to_string_lossy()
                                .into_owned();
                            out.push((key, meta.len()));
                        }
                    }
                }
                out.sort();
                Ok(out)
            }
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Store::S3(b) => b.delete(key).await.map_err(|e| self.s3_error(e)),
            Store::Local(root) => match tokio::fs::remove_file(Self::path(root, key)).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(self.io_error("delete", key, e))
                }
                _ => Ok(()),
            },
        }
    }
}
