//! The plaintext and sealed JSON objects of a repository (docs/format.md,
//! "config", "Manifest", "Catalog entry"), as the judge reads them:
//! tolerant of fields it does not know, strict on the ones the format says
//! must be there.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::records::Counts;

/// The only format version the judge reads.
pub const FORMAT: u32 = 1;

/// Where a backup's catalog entry lives in a tier.
pub fn key(backup: &str) -> String {
    format!("catalog/{backup}.json")
}

/// Where a backup's sealed manifest lives.
pub fn manifest_key(backup: &str) -> String {
    format!("backup/{backup}/manifest")
}

/// `config`.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub format: u32,
    /// The name key, sealed under each master key id (hex envelopes).
    pub name_key: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Full,
    Incremental,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecoveryPoint {
    /// Unix ms: every transaction committed by then is claimed to be in.
    pub time_ms: u64,
    pub seq: u64,
}

/// `catalog/<id>.json`: its presence says the backup is complete.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Entry {
    pub format: u32,
    pub id: String,
    pub kind: Kind,
    pub parent: Option<String>,
    pub created_ms: u64,
    pub recovery_point: RecoveryPoint,
    pub counts: Counts,
    /// How many chunks the manifest lists.
    pub chunks: u64,
    pub merkle_root: String,
}

/// `backup/<id>/manifest`, once opened.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub id: String,
    pub kind: Kind,
    pub parent: Option<String>,
    pub created_ms: u64,
    pub recovery_point: RecoveryPoint,
    pub counts: Counts,
    /// Chunk names in stream order (a name may repeat).
    pub chunks: Vec<String>,
    /// Bytes of the record stream.
    pub raw_bytes: u64,
    pub merkle_root: String,
}

/// A JSON object that is not what the format says, naming the object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{object}`: {message}")]
pub struct ObjectError {
    pub object: String,
    pub message: String,
}

fn parse<T: DeserializeOwned>(object: &str, bytes: &[u8]) -> Result<T, ObjectError> {
    let err = |message: String| ObjectError {
        object: object.to_string(),
        message,
    };
    // The version first: a newer format is refused as such, not as a shape error.
    let version = serde_json::from_slice::<serde_json::Value>(bytes)
        .map_err(|e| err(e.to_string()))?["format"]
        .as_u64();
    match version {
        Some(v) if v == u64::from(FORMAT) => {}
        Some(v) => return Err(err(format!("format {v}; the judge reads format {FORMAT}"))),
        None => return Err(err("no `format` number".into())),
    }
    serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))
}

/// Decodes `config`.
pub fn config(bytes: &[u8]) -> Result<Config, ObjectError> {
    let config: Config = parse("config", bytes)?;
    if config.name_key.is_empty() {
        return Err(ObjectError {
            object: "config".into(),
            message: "`name_key` seals the name key under no key".into(),
        });
    }
    Ok(config)
}

/// Decodes the entry stored under `key`; it must name the backup it is
/// for, and a parent exactly when it is incremental.
pub fn decode(key: &str, backup: &str, bytes: &[u8]) -> Result<Entry, ObjectError> {
    let entry: Entry = parse(key, bytes)?;
    check_identity(key, backup, entry.kind, &entry.id, &entry.parent)?;
    Ok(entry)
}

/// Decodes an opened manifest stored under `key`.
pub fn manifest(key: &str, backup: &str, bytes: &[u8]) -> Result<Manifest, ObjectError> {
    let m: Manifest = parse(key, bytes)?;
    check_identity(key, backup, m.kind, &m.id, &m.parent)?;
    Ok(m)
}

fn check_identity(
    key: &str,
    backup: &str,
    kind: Kind,
    id: &str,
    parent: &Option<String>,
) -> Result<(), ObjectError> {
    let err = |message: String| {
        Err(ObjectError {
            object: key.to_string(),
            message,
        })
    };
    if id != backup {
        return err(format!("names backup `{id}`"));
    }
    match (kind, parent) {
        (Kind::Full, Some(p)) => err(format!("a full backup with parent `{p}`")),
        (Kind::Incremental, None) => err("an incremental backup without a parent".into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY: &str = r#"{"format":1,"id":"b1","kind":"full","parent":null,"created_ms":9,
        "recovery_point":{"time_ms":7,"seq":3},"future":true,
        "counts":{"nodes":1,"rels":0,"deletions":0,"schema":0},"chunks":1,"merkle_root":"ab"}"#;

    #[test]
    fn unknown_fields_are_ignored_and_required_ones_are_not() {
        let e = decode("catalog/b1.json", "b1", ENTRY.as_bytes()).unwrap();
        assert_eq!(e.recovery_point.time_ms, 7);
        let without = ENTRY.replace(r#""merkle_root":"ab""#, r#""other":1"#);
        let err = decode("catalog/b1.json", "b1", without.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("merkle_root"), "{err}");
        let err = decode("catalog/b1.json", "b2", ENTRY.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("names backup `b1`"), "{err}");
    }

    #[test]
    fn another_format_version_is_refused_as_such() {
        let v2 = ENTRY.replace(r#""format":1"#, r#""format":2"#);
        let err = decode("catalog/b1.json", "b1", v2.as_bytes()).unwrap_err();
        assert!(err.message.contains("format 2"), "{err}");
    }

    #[test]
    fn kind_and_parent_must_agree() {
        let orphan = ENTRY.replace(r#""kind":"full""#, r#""kind":"incremental""#);
        let err = decode("catalog/b1.json", "b1", orphan.as_bytes()).unwrap_err();
        assert!(err.message.contains("without a parent"), "{err}");
    }
}
