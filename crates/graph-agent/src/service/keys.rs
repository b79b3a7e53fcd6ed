//! The data key: resumed from the state folder at start, rotated on
//! demand, and saved sealed by the master key so a restart goes on with it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::Ordering;

use serde::{Deserialize, Serialize};

use super::{Agent, now_ms};
use crate::config::AgentConfig;
use crate::repo::Keyring;

/// The current data key, sealed by the master key, kept in the state folder
/// so a restart goes on with it until rotation is due.
#[derive(Serialize, Deserialize)]
struct SavedDataKey {
    id: String,
    since_ms: u64,
    sealed_hex: String,
}

const DATA_KEY_FILE: &str = "data-key.json";

/// Resumes the saved data key if the master key opens it and its rotation
/// is not due, else makes a new one; returns when the current one was made.
pub(super) fn resume_or_make_data_key(keyring: &mut Keyring, config: &AgentConfig) -> u64 {
    let path = config.agent.state_dir.join(DATA_KEY_FILE);
    let now = now_ms();
    let rotation = config.encryption.rotation.0.as_millis() as u64;
    let saved = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<SavedDataKey>(&b).ok());
    // A key "made" in the future (a skewed clock, an edited file) would
    // never come due: not resumed.
    if let Some(saved) = saved
        && saved.since_ms <= now + 60_000
        && now.saturating_sub(saved.since_ms) < rotation
    {
        let resumed = hex::decode(&saved.sealed_hex)
            .map_err(|e| e.to_string())
            .and_then(|sealed| {
                keyring
                    .resume_data_key(&saved.id, &sealed)
                    .map_err(|e| e.to_string())
            });
        match resumed {
            Ok(()) => {
                tracing::info!(key = %saved.id, "resumed the data key");
                return saved.since_ms;
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "not resuming the saved data key")
            }
        }
    }
    keyring.new_data_key(now);
    save_data_key(keyring, config, now);
    now
}

fn save_data_key(keyring: &Keyring, config: &AgentConfig, since_ms: u64) {
    let Some(sealed) = keyring.sealed_current() else {
        return;
    };
    let saved = SavedDataKey {
        id: keyring.current_id().to_string(),
        since_ms,
        sealed_hex: hex::encode(sealed),
    };
    let path = config.agent.state_dir.join(DATA_KEY_FILE);
    let text = serde_json::to_string(&saved).expect("a saved key serializes");
    // Sealed by the master key, yet nobody else's to read; written whole
    // or not at all.
    let tmp = path.with_extension("json.tmp");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        tracing::warn!(file = %path.display(), error = %e, "cannot save the data key");
    }
}

impl Agent {
    /// Makes a new data key the one that seals from now on (jobs already
    /// running keep theirs); returns its id.
    pub fn rotate_data_key(&self) -> String {
        let now = now_ms();
        let id = self
            .keyring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .new_data_key(now);
        self.data_key_since_ms.store(now, Ordering::SeqCst);
        save_data_key(
            &self.keyring.lock().unwrap_or_else(|p| p.into_inner()),
            &self.config,
            now,
        );
        self.metrics
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .key_rotations += 1;
        tracing::info!(key = %id, "rotated the data key");
        id
    }

    /// (master key id, current data key id, when that data key was made).
    pub fn key_status(&self) -> (String, String, u64) {
        let ring = self.keyring.lock().unwrap_or_else(|p| p.into_inner());
        (
            ring.master_id().to_string(),
            ring.current_id().to_string(),
            self.data_key_since_ms.load(Ordering::SeqCst),
        )
    }
}
