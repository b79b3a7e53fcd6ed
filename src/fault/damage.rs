//! Damage to one stored object of a tier, as rot, a lost write or an
//! operator's mistake leave it: a flipped byte, a truncated object, a
//! deleted one. Written with the runner's own access to storage (the admin
//! identity, the tier's folder); heal puts the original bytes back.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::{BoxFuture, Fault, FaultError};
use crate::env::Environment;
use crate::repository::Objects;

/// What is done to the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Harm {
    /// One byte inverted, at an offset the drill's seed chooses.
    Flip,
    /// Cut to half its length.
    Truncate,
    Delete,
}

impl Harm {
    /// The damaged bytes, or `None` for an object to delete. `pick` chooses
    /// the flipped byte.
    pub fn apply(self, mut bytes: Vec<u8>, pick: u64) -> Option<Vec<u8>> {
        match self {
            Harm::Flip => {
                if !bytes.is_empty() {
                    let at = (pick % bytes.len() as u64) as usize;
                    bytes[at] = !bytes[at];
                }
                Some(bytes)
            }
            Harm::Truncate => {
                bytes.truncate(bytes.len() / 2);
                Some(bytes)
            }
            Harm::Delete => None,
        }
    }
}

pub struct Damage {
    objects: Objects,
    /// The tier's name, for the description.
    tier: &'static str,
    key: String,
    harm: Harm,
    pick: u64,
    /// The object as it was, while the damage is in place.
    original: Mutex<Option<Vec<u8>>>,
}

impl Damage {
    pub fn new(objects: Objects, tier: &'static str, key: &str, harm: Harm, pick: u64) -> Self {
        Self {
            objects,
            tier,
            key: key.to_string(),
            harm,
            pick,
            original: Mutex::new(None),
        }
    }

    fn original(&self) -> std::sync::MutexGuard<'_, Option<Vec<u8>>> {
        self.original.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Damage {
    async fn damage(&self) -> Result<(), FaultError> {
        let bytes =
            self.objects
                .get(&self.key)
                .await?
                .ok_or_else(|| FaultError::UnknownTarget {
                    what: "stored object",
                    name: format!("{} in {}", self.key, self.tier),
                    valid: "the objects the backup is made of".into(),
                })?;
        *self.original() = Some(bytes.clone());
        match self.harm.apply(bytes, self.pick) {
            Some(damaged) => self.objects.put(&self.key, damaged).await?,
            None => self.objects.delete(&self.key).await?,
        }
        Ok(())
    }

    async fn put_back(&self) -> Result<(), FaultError> {
        let original = self.original().clone();
        if let Some(bytes) = original {
            self.objects.put(&self.key, bytes).await?;
            *self.original() = None;
        }
        Ok(())
    }
}

impl Fault for Damage {
    fn describe(&self) -> String {
        let how = match self.harm {
            Harm::Flip => "a byte flipped in",
            Harm::Truncate => "truncated:",
            Harm::Delete => "deleted:",
        };
        format!("{how} `{}` in {}", self.key, self.tier)
    }

    fn inject<'a>(&'a self, _env: &'a Environment) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(self.damage())
    }

    fn heal<'a>(&'a self, _env: &'a Environment) -> BoxFuture<'a, Result<(), FaultError>> {
        Box::pin(self.put_back())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flip_changes_exactly_one_byte_where_the_pick_says() {
        let bytes = vec![0u8; 10];
        let flipped = Harm::Flip.apply(bytes.clone(), 13).unwrap();
        let changed: Vec<usize> = (0..10).filter(|&i| flipped[i] != bytes[i]).collect();
        assert_eq!(changed, vec![3]);
        assert_eq!(flipped[3], 0xff);
    }

    #[test]
    fn a_truncation_keeps_the_first_half_and_a_deletion_keeps_nothing() {
        let bytes: Vec<u8> = (0..9).collect();
        assert_eq!(
            Harm::Truncate.apply(bytes.clone(), 0),
            Some(vec![0, 1, 2, 3])
        );
        assert_eq!(Harm::Delete.apply(bytes, 0), None);
        assert_eq!(Harm::Flip.apply(Vec::new(), 5), Some(Vec::new()));
    }

    #[tokio::test]
    async fn healing_puts_the_original_bytes_back() {
        let dir = tempfile::tempdir().unwrap();
        let objects = Objects::Folder(dir.path().to_path_buf());
        objects
            .put("chunks/ab/abcd", b"sealed chunk".to_vec())
            .await
            .unwrap();
        for harm in [Harm::Flip, Harm::Truncate, Harm::Delete] {
            let d = Damage::new(objects.clone(), "local", "chunks/ab/abcd", harm, 2);
            d.damage().await.unwrap();
            let now = objects.get("chunks/ab/abcd").await.unwrap();
            assert_ne!(now.as_deref(), Some(&b"sealed chunk"[..]), "{harm:?}");
            d.put_back().await.unwrap();
            d.put_back().await.unwrap();
            let back = objects.get("chunks/ab/abcd").await.unwrap();
            assert_eq!(back.as_deref(), Some(&b"sealed chunk"[..]), "{harm:?}");
        }
    }
}
