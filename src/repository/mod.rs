//! The judge's reader of graph-agent's backup repositories, written from
//! docs/format.md and not from the agent's code: "a backup job succeeded"
//! is believed only when this reader finds the whole chain in storage, every
//! object authentic and every record parsing, as the format's read order
//! says (catalog entry → manifest → parents → chunks → records).

pub mod catalog;
pub mod envelope;
pub mod records;

use std::path::PathBuf;

use futures_util::{StreamExt, TryStreamExt};

use crate::s3::{Bucket, S3ErrorKind};
use catalog::{Entry, Manifest};
use envelope::Keys;

/// How many chunks are fetched at once.
const FETCH_CONCURRENCY: usize = 8;

/// Where a tier's objects are: a folder (keys are relative paths) or a bucket.
#[derive(Debug, Clone)]
pub enum Objects {
    Folder(PathBuf),
    Bucket(Bucket),
}

/// Why a backup cannot be read back from storage, naming the object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryError {
    #[error("`{object}` is missing")]
    Missing { object: String },
    #[error("`{object}` is damaged: {message}")]
    Damaged { object: String, message: String },
    #[error(transparent)]
    Format(#[from] catalog::ObjectError),
    #[error("`{object}` could not be read: {message}")]
    Unreadable { object: String, message: String },
}

impl Objects {
    /// The object under `key`, or `None` if there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, RepositoryError> {
        let unreadable = |message: String| RepositoryError::Unreadable {
            object: key.to_string(),
            message,
        };
        match self {
            Objects::Folder(dir) => match std::fs::read(dir.join(key)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(unreadable(e.to_string())),
            },
            Objects::Bucket(b) => match b.get(key).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind == S3ErrorKind::NotFound => Ok(None),
                Err(e) => Err(unreadable(e.to_string())),
            },
        }
    }

    async fn must(&self, key: &str) -> Result<Vec<u8>, RepositoryError> {
        self.get(key)
            .await?
            .ok_or_else(|| RepositoryError::Missing {
                object: key.to_string(),
            })
    }

    /// The keys under `prefix` (a folder path ending in `/`).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, RepositoryError> {
        let unreadable = |message: String| RepositoryError::Unreadable {
            object: prefix.to_string(),
            message,
        };
        match self {
            Objects::Folder(dir) => match std::fs::read_dir(dir.join(prefix)) {
                Ok(entries) => Ok(entries
                    .flatten()
                    .map(|e| format!("{prefix}{}", e.file_name().to_string_lossy()))
                    .collect()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
                Err(e) => Err(unreadable(e.to_string())),
            },
            Objects::Bucket(b) => Ok(b
                .list(prefix)
                .await
                .map_err(|e| unreadable(e.to_string()))?
                .into_iter()
                .map(|(k, _)| k)
                .collect()),
        }
    }
}

impl Objects {
    /// Writes `bytes` under `key`: for the storage faults, which damage and
    /// put back what an agent stored.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), RepositoryError> {
        let unwritable = |message: String| RepositoryError::Unreadable {
            object: key.to_string(),
            message,
        };
        match self {
            Objects::Folder(dir) => {
                let path = dir.join(key);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| unwritable(e.to_string()))?;
                }
                std::fs::write(path, bytes).map_err(|e| unwritable(e.to_string()))
            }
            Objects::Bucket(b) => b
                .put(key, bytes)
                .await
                .map_err(|e| unwritable(e.to_string())),
        }
    }

    /// Removes `key`; one already gone is no error.
    pub async fn delete(&self, key: &str) -> Result<(), RepositoryError> {
        let failed = |message: String| RepositoryError::Unreadable {
            object: key.to_string(),
            message,
        };
        match self {
            Objects::Folder(dir) => match std::fs::remove_file(dir.join(key)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(failed(e.to_string())),
                _ => Ok(()),
            },
            Objects::Bucket(b) => b.delete(key).await.map_err(|e| failed(e.to_string())),
        }
    }
}

/// What kind of object of a backup, for choosing one to damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Catalog,
    Manifest,
    Chunk,
}

/// What the reader found behind one claimed backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The backup and its parents, newest first.
    pub chain: Vec<String>,
    /// Chunks fetched and checked, over the whole chain.
    pub chunks: usize,
    /// Record-stream bytes over the whole chain.
    pub bytes: u64,
}

/// An opened repository: its name key and every data key the judge's
/// master keys open.
pub struct Reader {
    objects: Objects,
    name_key: [u8; 32],
    keys: Keys,
}

impl Reader {
    /// Opens the repository in `objects` with the master keys the runner
    /// gave the agent.
    pub async fn open(objects: Objects, masters: &Keys) -> Result<Self, RepositoryError> {
        let config = catalog::config(&objects.must("config").await?)?;
        let mut keys = masters.clone();
        let name_key = open_name_key(&config, masters)?;
        for object in objects.list("keys/").await? {
            let id = object.trim_start_matches("keys/").to_string();
            if keys.contains_key(&id) {
                continue;
            }
            let sealed = objects.must(&object).await?;
            // Only master keys seal data keys; one the judge lacks stays
            // unopened, and is named when an object needs it.
            match envelope::open(&object, &sealed, masters) {
                Ok(key) => {
                    keys.insert(id, key);
                }
                Err(envelope::EnvelopeError::UnknownKey(_)) => {}
                Err(e) => return Err(damaged(&object, e)),
            }
        }
        Ok(Self {
            objects,
            name_key,
            keys,
        })
    }

    /// Reads `backup` and its parents the way a restore would, checking
    /// everything the format promises; the first broken promise is the error.
    pub async fn verify(&self, backup: &str) -> Result<Verified, RepositoryError> {
        let mut found = Verified {
            chain: Vec::new(),
            chunks: 0,
            bytes: 0,
        };
        let mut next = Some(backup.to_string());
        while let Some(id) = next {
            if found.chain.contains(&id) {
                return Err(catalog::ObjectError {
                    object: catalog::key(&id),
                    message: format!("the chain of `{backup}` loops back to `{id}`"),
                }
                .into());
            }
            let manifest = self.manifest(&id).await?;
            let stream = self.stream(&manifest).await?;
            let object = catalog::manifest_key(&id);
            if stream.len() as u64 != manifest.raw_bytes {
                return Err(damaged(
                    &object,
                    format!(
                        "its chunks hold {} bytes; it says {}",
                        stream.len(),
                        manifest.raw_bytes
                    ),
                ));
            }
            let counts = records::count(&stream).map_err(|e| damaged(&object, e))?;
            if counts != manifest.counts {
                return Err(damaged(
                    &object,
                    format!(
                        "its records count {counts:?}; it says {:?}",
                        manifest.counts
                    ),
                ));
            }
            found.chunks += manifest.chunks.len();
            found.bytes += manifest.raw_bytes;
            found.chain.push(id);
            next = manifest.parent;
        }
        Ok(found)
    }

    /// The objects `backup` itself is made of (not its parents'), as the
    /// format names them: its catalog entry, its manifest, its chunks.
    pub async fn objects_of(
        &self,
        backup: &str,
    ) -> Result<Vec<(ObjectKind, String)>, RepositoryError> {
        let manifest = self.manifest(backup).await?;
        let mut out = vec![
            (ObjectKind::Catalog, catalog::key(backup)),
            (ObjectKind::Manifest, catalog::manifest_key(backup)),
        ];
        let chunks: std::collections::BTreeSet<&String> = manifest.chunks.iter().collect();
        out.extend(
            chunks
                .into_iter()
                .map(|name| (ObjectKind::Chunk, chunk_key(name))),
        );
        Ok(out)
    }

    /// The catalog entry and the manifest of `id`, which must agree.
    async fn manifest(&self, id: &str) -> Result<Manifest, RepositoryError> {
        let key = catalog::key(id);
        let entry = catalog::decode(&key, id, &self.objects.must(&key).await?)?;
        let object = catalog::manifest_key(id);
        let sealed = self.objects.must(&object).await?;
        let opened = self.unseal(&object, &sealed)?;
        let m = catalog::manifest(&object, id, &opened)?;
        let root = hex::encode(merkle_root(&m.chunks));
        if root != m.merkle_root {
            return Err(damaged(
                &object,
                format!("its chunk list hashes to {root}; it says {}", m.merkle_root),
            ));
        }
        if let Some(field) = disagreement(&entry, &m) {
            return Err(damaged(
                &key,
                format!("its `{field}` differs from the manifest's"),
            ));
        }
        Ok(m)
    }

    /// The record stream: every chunk fetched, opened under its name,
    /// decompressed and hashed back to its name, in the manifest's order.
    async fn stream(&self, m: &Manifest) -> Result<Vec<u8>, RepositoryError> {
        for name in &m.chunks {
            if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(damaged(
                    &catalog::manifest_key(&m.id),
                    format!("lists `{name}`, which is not a chunk name"),
                ));
            }
        }
        // Owned names: futures over borrowed ones trip the `Send` check of
        // callers that spawn this.
        let chunks: Vec<Vec<u8>> = futures_util::stream::iter(m.chunks.clone())
            .map(|name| async move { self.chunk(&name).await })
            .buffered(FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(chunks.concat())
    }

    async fn chunk(&self, name: &str) -> Result<Vec<u8>, RepositoryError> {
        let object = chunk_key(name);
        let sealed = self.objects.must(&object).await?;
        let compressed = self.unseal(&object, &sealed)?;
        let plain = zstd::stream::decode_all(compressed.as_slice())
            .map_err(|e| damaged(&object, format!("does not decompress: {e}")))?;
        let hash = hex::encode(blake3::keyed_hash(&self.name_key, &plain).as_bytes());
        if hash != name {
            return Err(damaged(&object, format!("its content hashes to {hash}")));
        }
        Ok(plain)
    }

    fn unseal(&self, object: &str, sealed: &[u8]) -> Result<Vec<u8>, RepositoryError> {
        envelope::open(object, sealed, &self.keys).map_err(|e| damaged(object, e))
    }
}

/// Where the chunk `name` lives.
fn chunk_key(name: &str) -> String {
    format!("chunks/{}/{name}", name.get(..2).unwrap_or(name))
}

fn damaged(object: &str, message: impl ToString) -> RepositoryError {
    RepositoryError::Damaged {
        object: object.to_string(),
        message: message.to_string(),
    }
}

/// The name key, opened with the first master key the config seals it under.
fn open_name_key(config: &catalog::Config, keys: &Keys) -> Result<[u8; 32], RepositoryError> {
    let object = "config/name_key";
    let mut last = None;
    for (id, sealed) in &config.name_key {
        if !keys.contains_key(id) {
            continue;
        }
        let sealed = hex::decode(sealed).map_err(|e| damaged("config", e))?;
        match envelope::open(object, &sealed, keys) {
            Ok(key) => {
                return key
                    .try_into()
                    .map_err(|_| damaged("config", "the name key is not 32 bytes"));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(damaged(
        "config",
        match last {
            Some(e) => format!("the name key does not open: {e}"),
            None => format!(
                "the name key is sealed only under {}, none of which the judge holds",
                config
                    .name_key
                    .keys()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    ))
}

/// The first field in which a catalog entry and its manifest disagree.
fn disagreement(e: &Entry, m: &Manifest) -> Option<&'static str> {
    [
        ("kind", e.kind == m.kind),
        ("parent", e.parent == m.parent),
        ("created_ms", e.created_ms == m.created_ms),
        ("recovery_point", e.recovery_point == m.recovery_point),
        ("counts", e.counts == m.counts),
        ("chunks", e.chunks == m.chunks.len() as u64),
        ("merkle_root", e.merkle_root == m.merkle_root),
    ]
    .into_iter()
    .find(|(_, same)| !same)
    .map(|(field, _)| field)
}

/// The Merkle root of a chunk list (docs/format.md, "Manifest").
fn merkle_root(names: &[String]) -> [u8; 32] {
    let hash = |prefix: u8, parts: &[&[u8]]| {
        let mut h = blake3::Hasher::new();
        h.update(&[prefix]);
        for p in parts {
            h.update(p);
        }
        *h.finalize().as_bytes()
    };
    if names.is_empty() {
        return hash(2, &[]);
    }
    let mut level: Vec<[u8; 32]> = names.iter().map(|n| hash(0, &[n.as_bytes()])).collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => hash(1, &[l, r]),
                _ => pair[0],
            })
            .collect();
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_merkle_root_follows_order_and_carries_an_odd_node_up() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let leaf = |s: &str| *blake3::hash(&[&[0u8][..], s.as_bytes()].concat()).as_bytes();
        let inner = |l: [u8; 32], r: [u8; 32]| {
            *blake3::hash(&[&[1u8][..], &l[..], &r[..]].concat()).as_bytes()
        };
        assert_eq!(merkle_root(&[]), *blake3::hash(&[2]).as_bytes());
        assert_eq!(merkle_root(&names(&["a"])), leaf("a"));
        assert_eq!(
            merkle_root(&names(&["a", "b", "c"])),
            inner(inner(leaf("a"), leaf("b")), leaf("c"))
        );
        assert_ne!(
            merkle_root(&names(&["a", "b"])),
            merkle_root(&names(&["b", "a"]))
        );
    }
}
