//! The backup repository of one tier: content-addressed, encrypted,
//! verifiable. `docs/format.md` describes the layout and its invariants;
//! this module is its only writer and reader.
//!
//! Write order is chunks → manifest → catalog entry, each confirmed present
//! before the next is written, so a reader that starts from the catalog
//! never meets a backup whose objects are missing.

mod crypto;
pub mod merkle;
mod store;

use std::collections::{BTreeMap, BTreeSet};

use futures_util::{StreamExt, TryStreamExt};
use rand::RngCore;
use serde::{Deserialize, Serialize};

pub use crypto::{Key, Keyring, data_key_object};
pub use store::{Store, StoreError, StoreErrorKind};

use crate::defect::{self, Defect};
use crate::graph::Record;
use graph_agent_api::BackupKind;

/// The repository format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Content-defined chunk sizes in bytes: minimum, average, maximum.
pub const CHUNK_MIN: u32 = 16 * 1024;
pub const CHUNK_AVG: u32 = 64 * 1024;
pub const CHUNK_MAX: u32 = 256 * 1024;
const ZSTD_LEVEL: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("key `{key_id}`: {message}")]
    Key { key_id: String, message: String },
    #[error("object `{object}` failed its integrity check: {message}")]
    Integrity { object: String, message: String },
    #[error("object `{object}`: {message}")]
    Format { object: String, message: String },
    #[error("backup `{backup}` needs its parent `{parent}`, which is not in the catalog")]
    MissingParent { backup: String, parent: String },
    #[error("no backup `{backup}` in the catalog")]
    NotFound { backup: String },
}

/// `config`: plaintext, written once (and again when a key is added).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    pub format: u32,
    pub id: String,
    pub chunker: ChunkerParams,
    /// The secret that names chunks, sealed by each key id that has used
    /// this repository (hex envelopes).
    pub name_key: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

/// What a backup promises about its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryPoint {
    /// Every transaction committed at or before this time (Unix ms) is in
    /// the backup, none is in it partially, and no relationship dangles.
    pub time_ms: u64,
    /// The source's change sequence number at that point.
    pub seq: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub nodes: u64,
    pub rels: u64,
    pub deletions: u64,
    pub schema: u64,
}

/// `backup/<id>/manifest`: sealed JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub id: String,
    pub kind: BackupKind,
    pub parent: Option<String>,
    pub created_ms: u64,
    pub recovery_point: RecoveryPoint,
    pub counts: Counts,
    /// Chunk names in stream order (a name may repeat).
    pub chunks: Vec<String>,
    /// Bytes of the record stream before chunking.
    pub raw_bytes: u64,
    /// Hex BLAKE3 Merkle root over `chunks`.
    pub merkle_root: String,
}

impl Manifest {
    /// The manifest of a new backup of `records`: incremental when it has a
    /// parent. [`Repository::write_backup`] fills in chunks, size and root.
    pub fn new(
        id: &str,
        parent: Option<String>,
        created_ms: u64,
        recovery_point: RecoveryPoint,
        records: &[Record],
    ) -> Self {
        let mut counts = Counts::default();
        for r in records {
            match r {
                Record::Node(_) => counts.nodes += 1,
                Record::Rel(_) => counts.rels += 1,
                Record::DeleteNode(_) | Record::DeleteRel(_) => counts.deletions += 1,
                Record::Schema(_) => counts.schema += 1,
            }
        }
        Self {
            format: FORMAT_VERSION,
            id: id.to_string(),
            kind: if parent.is_some() {
                BackupKind::Incremental
            } else {
                BackupKind::Full
            },
            parent,
            created_ms,
            recovery_point,
            counts,
            chunks: Vec::new(),
            raw_bytes: 0,
            merkle_root: String::new(),
        }
    }
}

/// `catalog/<id>.json`: plaintext; its presence means the backup is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogEntry {
    pub format: u32,
    pub id: String,
    pub kind: BackupKind,
    pub parent: Option<String>,
    pub created_ms: u64,
    pub recovery_point: RecoveryPoint,
    pub counts: Counts,
    pub chunks: u64,
    pub merkle_root: String,
}

/// What one write uploaded (a resumed or incremental write uploads less).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub chunks: u64,
    pub chunks_uploaded: u64,
    pub bytes_uploaded: u64,
}

/// What [`Repository::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub chunks_checked: u64,
    pub bytes_checked: u64,
}

pub fn manifest_key(id: &str) -> String {
    format!("backup/{id}/manifest")
}

pub fn catalog_key(id: &str) -> String {
    format!("catalog/{id}.json")
}

pub fn chunk_key(name: &str) -> String {
    format!("chunks/{}/{name}", &name[..2])
}

/// One tier's repository, opened with the agent's keys.
#[derive(Debug, Clone)]
pub struct Repository {
    store: Store,
    /// Shared with the threads that seal chunks.
    keyring: std::sync::Arc<Keyring>,
    name_key: [u8; 32],
    config: RepoConfig,
}

impl Repository {
    /// Opens the repository in `store`, creating it if empty. A repository
    /// of another format version is refused.
    pub async fn open(store: Store, keyring: Keyring) -> Result<Self, RepoError> {
        let (mut config, name_key) = match store.stat("config").await? {
            Some(_) => {
                let bytes = store.get("config").await?;
                let config: RepoConfig = serde_json::from_slice(&bytes).map_err(|e| {
                    let version = serde_json::from_slice::<serde_json::Value>(&bytes)
                        .ok()
                        .and_then(|v| v["format"].as_u64());
                    RepoError::Format {
                        object: "config".into(),
                        message: match version {
                            Some(v) if v != u64::from(FORMAT_VERSION) => format!(
                                "repository format {v} is not supported (this agent reads {FORMAT_VERSION})"
                            ),
                            _ => e.to_string(),
                        },
                    }
                })?;
                if config.format != FORMAT_VERSION {
                    return Err(RepoError::Format {
                        object: "config".into(),
                        message: format!(
                            "repository format {} is not supported (this agent reads {FORMAT_VERSION})",
                            config.format
                        ),
                    });
                }
                let name_key = unseal_name_key(&config, &keyring)?;
                (config, name_key)
            }
            None => {
                let mut name_key = [0u8; 32];
                rand::rng().fill_bytes(&mut name_key);
                let mut id = [0u8; 16];
                rand::rng().fill_bytes(&mut id);
                let config = RepoConfig {
                    format: FORMAT_VERSION,
                    id: hex::encode(id),
                    chunker: ChunkerParams {
                        min: CHUNK_MIN,
                        avg: CHUNK_AVG,
                        max: CHUNK_MAX,
                    },
                    name_key: BTreeMap::new(),
                };
                (config, name_key)
            }
        };
        // Seal the name key for the current master key too, so a holder of
        // only the newest master key can still read the repository.
        if !config.name_key.contains_key(keyring.master_id()) {
            let sealed = keyring.seal_with_master("config/name_key", &name_key);
            config
                .name_key
                .insert(keyring.master_id().to_string(), hex::encode(sealed));
            let text = serde_json::to_vec_pretty(&config).expect("config serializes");
            store.put("config", text).await?;
        }
        let mut keyring = keyring;
        let listed = store.list("keys/").await?;
        for (object, _) in &listed {
            let id = object.trim_start_matches("keys/");
            if !keyring.holds(id) {
                keyring.add_sealed(id, &store.get(object).await?)?;
            }
        }
        let sealed_key = keyring.sealed_current();
        let object = data_key_object(keyring.current_id());
        let repo = Self {
            store,
            keyring: std::sync::Arc::new(keyring),
            name_key,
            config,
        };
        // The data key that seals from now on is stored before anything it
        // seals: a reader never meets an object whose key is missing.
        if let Some(sealed) = sealed_key
            && !listed.iter().any(|(o, _)| *o == object)
        {
            repo.put_confirmed(&object, sealed).await?;
        }
        Ok(repo)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The keys it opened with, and the data keys it found in `keys/`.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// A chunk's name: a keyed hash, so names reveal nothing of the content.
    pub fn chunk_name(&self, plaintext: &[u8]) -> String {
        name_of(&self.name_key, plaintext)
    }

    /// Cuts `stream` into content-defined chunks.
    pub fn split<'a>(&self, stream: &'a [u8]) -> Vec<&'a [u8]> {
        let p = self.config.chunker;
        fastcdc::v2020::FastCDC::new(stream, p.min, p.avg, p.max)
            .map(|c| &stream[c.offset..c.offset + c.length])
            .collect()
    }

    /// Writes a backup: the chunks not already stored (at most `concurrency`
    /// uploads at once, each confirmed), then the manifest, then the catalog
    /// entry. Chunks already present are skipped, which is what makes an
    /// interrupted backup resume without uploading anything twice.
    pub async fn write_backup(
        &self,
        mut manifest: Manifest,
        stream: &[u8],
        concurrency: usize,
    ) -> Result<(Manifest, WriteStats), RepoError> {
        let present: BTreeSet<String> = self
            .store
            .list("chunks/")
            .await?
            .into_iter()
            .filter_map(|(k, _)| k.rsplit('/').next().map(String::from))
            .collect();
        let mut names = Vec::new();
        // Owned chunks: futures over borrowed data trip the compiler's
        // `Send` checks in callers.
        let mut todo: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for chunk in self.split(stream) {
            let name = self.chunk_name(chunk);
            if !present.contains(&name) {
                todo.entry(name.clone()).or_insert_with(|| chunk.to_vec());
            }
            names.push(name);
        }
        let stats = WriteStats {
            chunks: names.len() as u64,
            chunks_uploaded: todo.len() as u64,
            bytes_uploaded: 0,
        };
        let uploaded: Vec<u64> = futures_util::stream::iter(todo)
            .map(|(name, chunk)| self.put_chunk(name, chunk))
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;

        if crate::defect::active(crate::defect::Defect::LateRecoveryPoint) {
            manifest.recovery_point.time_ms = crate::service::now_ms();
        }
        manifest.format = FORMAT_VERSION;
        manifest.raw_bytes = stream.len() as u64;
        manifest.merkle_root = hex::encode(merkle::root(&names));
        manifest.chunks = names;
        let key = manifest_key(&manifest.id);
        let sealed = self.keyring.seal(
            &key,
            &serde_json::to_vec(&manifest).expect("manifest serializes"),
        );
        self.put_confirmed(&key, sealed).await?;

        let entry = CatalogEntry {
            format: FORMAT_VERSION,
            id: manifest.id.clone(),
            kind: manifest.kind,
            parent: manifest.parent.clone(),
            created_ms: manifest.created_ms,
            recovery_point: manifest.recovery_point.clone(),
            counts: manifest.counts.clone(),
            chunks: manifest.chunks.len() as u64,
            merkle_root: manifest.merkle_root.clone(),
        };
        let key = catalog_key(&manifest.id);
        self.put_confirmed(
            &key,
            serde_json::to_vec_pretty(&entry).expect("entry serializes"),
        )
        .await?;
        let stats = WriteStats {
            bytes_uploaded: uploaded.iter().sum(),
            ..stats
        };
        Ok((manifest, stats))
    }

    async fn put_chunk(&self, name: String, chunk: Vec<u8>) -> Result<u64, RepoError> {
        let key = chunk_key(&name);
        // Compressing and sealing are CPU work: on the blocking pool they use
        // every core while other chunks wait on the network.
        let (keyring, object) = (self.keyring.clone(), key.clone());
        let sealed = tokio::task::spawn_blocking(move || {
            zstd::bulk::compress(&chunk, ZSTD_LEVEL).map(|c| keyring.seal(&object, &c))
        })
        .await
        .map_err(|e| RepoError::Format {
            object: key.clone(),
            message: format!("sealing thread failed: {e}"),
        })?
        .map_err(|e| RepoError::Format {
            object: key.clone(),
            message: format!("compression failed: {e}"),
        })?;
        let len = sealed.len() as u64;
        self.put_confirmed(&key, sealed).await?;
        Ok(len)
    }

    /// Puts an object and confirms it is there with its full size.
    async fn put_confirmed(&self, key: &str, bytes: Vec<u8>) -> Result<(), RepoError> {
        let len = bytes.len() as u64;
        self.store.put(key, bytes).await?;
        match self.store.stat(key).await? {
            Some(n) if n == len => Ok(()),
            other => Err(RepoError::Integrity {
                object: key.to_string(),
                message: format!("written with {len} bytes, but storage reports {other:?}"),
            }),
        }
    }

    /// Every complete backup, oldest first.
    pub async fn catalog(&self) -> Result<Vec<CatalogEntry>, RepoError> {
        let mut entries = Vec::new();
        for object in self.catalog_objects().await? {
            entries.push(self.catalog_entry(&object).await?);
        }
        entries.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(entries)
    }

    /// The catalog's object names, one per backup, without reading them.
    pub async fn catalog_objects(&self) -> Result<Vec<String>, RepoError> {
        Ok(self
            .store
            .list("catalog/")
            .await?
            .into_iter()
            .map(|(key, _)| key)
            .collect())
    }

    /// One catalog entry. Entries are written once and never changed.
    pub async fn catalog_entry(&self, object: &str) -> Result<CatalogEntry, RepoError> {
        let bytes = self.store.get(object).await?;
        serde_json::from_slice(&bytes).map_err(|e| RepoError::Format {
            object: object.to_string(),
            message: e.to_string(),
        })
    }

    /// Reads and checks a manifest: it opens, names itself, and its Merkle
    /// root matches its chunk list.
    pub async fn manifest(&self, id: &str) -> Result<Manifest, RepoError> {
        self.manifest_and_key(id).await.map(|(m, _)| m)
    }

    /// [`Repository::manifest`], and the id of the key that sealed it.
    async fn manifest_and_key(&self, id: &str) -> Result<(Manifest, Option<String>), RepoError> {
        let key = manifest_key(id);
        let sealed = self.store.get(&key).await?;
        let sealed_by = Keyring::key_id_of(&sealed).map(str::to_string);
        let bytes = self.keyring.open(&key, &sealed)?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| RepoError::Format {
            object: key.clone(),
            message: e.to_string(),
        })?;
        if manifest.format != FORMAT_VERSION {
            return Err(RepoError::Format {
                object: key,
                message: format!(
                    "manifest format {} is not supported (this agent reads {FORMAT_VERSION})",
                    manifest.format
                ),
            });
        }
        if manifest.id != id || hex::encode(merkle::root(&manifest.chunks)) != manifest.merkle_root
        {
            return Err(RepoError::Integrity {
                object: key,
                message: "its id or Merkle root does not match its content".into(),
            });
        }
        Ok((manifest, sealed_by))
    }

    /// The manifests to restore `id`: its full ancestor first, `id` last.
    pub async fn chain(&self, id: &str) -> Result<Vec<Manifest>, RepoError> {
        let catalog: BTreeMap<String, CatalogEntry> = self
            .catalog()
            .await?
            .into_iter()
            .map(|e| (e.id.clone(), e))
            .collect();
        if !catalog.contains_key(id) {
            return Err(RepoError::NotFound { backup: id.into() });
        }
        let mut chain = Vec::new();
        let mut next = Some(id.to_string());
        while let Some(current) = next {
            let m = self.manifest(&current).await?;
            next = m.parent.clone();
            if let Some(parent) = &next
                && (!catalog.contains_key(parent) || chain.len() > catalog.len())
            {
                return Err(RepoError::MissingParent {
                    backup: current,
                    parent: parent.clone(),
                });
            }
            chain.push(m);
        }
        chain.reverse();
        Ok(chain)
    }

    /// Fetches, opens, decompresses and checks one chunk.
    pub async fn read_chunk(&self, name: String) -> Result<Vec<u8>, RepoError> {
        let sealed = self.store.get(&chunk_key(&name)).await?;
        self.open_chunk(name, sealed).await
    }

    async fn open_chunk(&self, name: String, sealed: Vec<u8>) -> Result<Vec<u8>, RepoError> {
        let key = chunk_key(&name);
        // Opening, decompressing and hashing are CPU work: off the async threads.
        let (keyring, name_key, object) = (self.keyring.clone(), self.name_key, key.clone());
        tokio::task::spawn_blocking(move || {
            let compressed = keyring.open(&object, &sealed)?;
            let plain = zstd::stream::decode_all(compressed.as_slice()).map_err(|e| {
                RepoError::Integrity {
                    object: object.clone(),
                    message: format!("does not decompress: {e}"),
                }
            })?;
            if name_of(&name_key, &plain) != name {
                return Err(RepoError::Integrity {
                    object,
                    message: "content does not match its name".into(),
                });
            }
            Ok(plain)
        })
        .await
        .map_err(|e| RepoError::Format {
            object: key,
            message: format!("reading thread failed: {e}"),
        })?
    }

    /// The record stream of one backup, every chunk checked.
    pub async fn read_stream(
        &self,
        manifest: &Manifest,
        concurrency: usize,
    ) -> Result<Vec<u8>, RepoError> {
        let chunks: Vec<Vec<u8>> = futures_util::stream::iter(manifest.chunks.clone())
            .map(|name| self.read_chunk(name))
            .buffered(concurrency.max(1))
            .try_collect()
            .await?;
        let stream = chunks.concat();
        if stream.len() as u64 != manifest.raw_bytes {
            return Err(RepoError::Integrity {
                object: manifest_key(&manifest.id),
                message: format!(
                    "chunks hold {} bytes, the manifest says {}",
                    stream.len(),
                    manifest.raw_bytes
                ),
            });
        }
        Ok(stream)
    }

    /// Re-reads a backup's chunks (a `sample` fraction of its distinct
    /// chunks, at least one) and checks each, without restoring.
    pub async fn verify(&self, id: &str, sample: f64) -> Result<VerifyReport, RepoError> {
        let (manifest, manifest_key_id) = self.manifest_and_key(id).await?;
        let distinct: BTreeSet<&String> = manifest.chunks.iter().collect();
        let take = ((distinct.len() as f64 * sample.clamp(0.0, 1.0)).ceil() as usize)
            .clamp(distinct.len().min(1), distinct.len());
        let mut picked: Vec<&String> = distinct.into_iter().collect();
        if take < picked.len() {
            use rand::seq::SliceRandom;
            picked.shuffle(&mut rand::rng());
            picked.truncate(take);
        }
        let mut report = VerifyReport::default();
        let mut key_ids: BTreeSet<String> = manifest_key_id.into_iter().collect();
        for name in picked {
            let sealed = self.store.get(&chunk_key(name)).await?;
            key_ids.extend(Keyring::key_id_of(&sealed).map(str::to_string));
            let plain = self.open_chunk(name.clone(), sealed).await?;
            report.chunks_checked += 1;
            report.bytes_checked += plain.len() as u64;
        }
        // This agent may hold a data key in memory that the tier lacks:
        // each must open from the tier with the master keys alone.
        let mut masters = self.keyring.masters_only();
        key_ids.retain(|k| !masters.is_master(k));
        for key_id in &key_ids {
            let object = data_key_object(key_id);
            let sealed = match self.store.stat(&object).await? {
                Some(_) => self.store.get(&object).await?,
                None => {
                    return Err(RepoError::Integrity {
                        object,
                        message: "is missing: the backup's data key cannot be opened \
                                  with the master key alone"
                            .into(),
                    });
                }
            };
            masters.add_sealed(key_id, &sealed)?;
            if !masters.holds(key_id) {
                return Err(RepoError::Integrity {
                    object,
                    message: "is sealed by a master key this agent lacks".into(),
                });
            }
        }
        Ok(report)
    }
}

/// What [`Repository::prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub backups_removed: Vec<String>,
    pub chunks_removed: u64,
}

impl Repository {
    /// Removes backups created more than `retention_ms` before `now_ms`,
    /// except those a retained backup still builds on, and then the chunks
    /// no remaining manifest references. Catalog entries go first, so a
    /// reader never sees a listed backup with missing objects.
    pub async fn prune(&self, now_ms: u64, retention_ms: u64) -> Result<PruneReport, RepoError> {
        let catalog = self.catalog().await?;
        let by_id: BTreeMap<&str, &CatalogEntry> =
            catalog.iter().map(|e| (e.id.as_str(), e)).collect();
        let mut keep = BTreeSet::new();
        for entry in &catalog {
            if now_ms.saturating_sub(entry.created_ms) <= retention_ms {
                // A retained backup keeps its whole chain.
                let mut next = Some(entry.id.as_str());
                while let Some(id) = next {
                    if !keep.insert(id.to_string()) {
                        break;
                    }
                    next = by_id.get(id).and_then(|e| e.parent.as_deref());
                    if defect::active(Defect::PruneIgnoresChains) {
                        next = None;
                    }
                }
            }
        }
        let mut report = PruneReport::default();
        for entry in catalog.iter().filter(|e| !keep.contains(&e.id)) {
            self.store.delete(&catalog_key(&entry.id)).await?;
            self.store.delete(&manifest_key(&entry.id)).await?;
            report.backups_removed.push(entry.id.clone());
        }
        let mut referenced = BTreeSet::new();
        for id in &keep {
            referenced.extend(self.manifest(id).await?.chunks);
        }
        for (key, _) in self.store.list("chunks/").await? {
            let name = key.rsplit('/').next().unwrap_or_default();
            if !referenced.contains(name) {
                self.store.delete(&key).await?;
                report.chunks_removed += 1;
            }
        }
        Ok(report)
    }
}

/// The name of a chunk with content `plaintext` under `name_key`.
fn name_of(name_key: &[u8; 32], plaintext: &[u8]) -> String {
    hex::encode(blake3::keyed_hash(name_key, plaintext).as_bytes())
}

fn unseal_name_key(config: &RepoConfig, keyring: &Keyring) -> Result<[u8; 32], RepoError> {
    let candidates = std::iter::once(keyring.master_id()).chain(keyring.ids());
    for key_id in candidates {
        if let Some(sealed) = config.name_key.get(key_id) {
            let sealed = hex::decode(sealed).map_err(|e| RepoError::Format {
                object: "config".into(),
                message: format!("name_key.{key_id}: {e}"),
            })?;
            let key = keyring.open("config/name_key", &sealed)?;
            return key.try_into().map_err(|_| RepoError::Integrity {
                object: "config".into(),
                message: format!("name_key.{key_id} has the wrong length"),
            });
        }
    }
    Err(RepoError::Key {
        key_id: keyring.master_id().to_string(),
        message: format!(
            "none of this agent's keys ({}) opens repository {}; it was written with: {}",
            keyring.ids().collect::<Vec<_>>().join(", "),
            config.id,
            config
                .name_key
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

#[cfg(test)]
mod tests;
