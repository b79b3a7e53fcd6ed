//! The judge's reader of graph-agent's catalog entries
//! (`catalog/<id>.json`, docs/format.md), written from that document and
//! not from the agent's code: tolerant of fields it does not know, strict
//! on the ones the format says an entry must have.

use serde::Deserialize;

/// Where a backup's catalog entry lives in a tier.
pub fn key(backup: &str) -> String {
    format!("catalog/{backup}.json")
}

/// What the judge takes from a catalog entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Entry {
    pub id: String,
    pub recovery_point: RecoveryPoint,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecoveryPoint {
    /// Unix ms: every transaction committed by then is claimed to be in.
    pub time_ms: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("catalog entry `{key}`: {message}")]
pub struct EntryError {
    pub key: String,
    pub message: String,
}

/// Decodes the entry stored under `key`; it must name the backup it is for.
pub fn decode(key: &str, backup: &str, bytes: &[u8]) -> Result<Entry, EntryError> {
    let err = |message: String| EntryError {
        key: key.to_string(),
        message,
    };
    let entry: Entry = serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))?;
    if entry.id != backup {
        return Err(err(format!("names backup `{}`", entry.id)));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_ignored_and_required_ones_are_not() {
        let json =
            br#"{"format":1,"id":"b1","future":true,"recovery_point":{"time_ms":7,"seq":3}}"#;
        let e = decode("catalog/b1.json", "b1", json).unwrap();
        assert_eq!(e.recovery_point.time_ms, 7);
        let err = decode("catalog/b1.json", "b1", br#"{"id":"b1"}"#).unwrap_err();
        assert!(err.to_string().contains("recovery_point"), "{err}");
        let err = decode("catalog/b1.json", "b2", json).unwrap_err();
        assert!(err.to_string().contains("names backup `b1`"), "{err}");
    }
}
