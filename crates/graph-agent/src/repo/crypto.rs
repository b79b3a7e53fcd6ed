//! Sealing objects: AES-GCM with a random 96-bit nonce per object, the key
//! id in the header, and the object's name as associated data, so an object
//! copied under another name fails to open.
//!
//! Envelope: `"GDE1" | key_id_len: u8 | key_id | nonce: 12 bytes | ciphertext || tag: 16 bytes`.

use std::collections::BTreeMap;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};
use rand::RngCore;

use super::RepoError;

const MAGIC: &[u8; 4] = b"GDE1";
const NONCE_LEN: usize = 12;

/// One AES-GCM key.
#[derive(Clone)]
pub enum Key {
    Aes256(Box<Aes256Gcm>),
    Aes128(Box<Aes128Gcm>),
}

impl Key {
    /// A key from its raw bytes: 32 for AES-256, 16 for AES-128.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        match bytes.len() {
            32 => Aes256Gcm::new_from_slice(bytes)
                .ok()
                .map(|k| Key::Aes256(Box::new(k))),
            16 => Aes128Gcm::new_from_slice(bytes)
                .ok()
                .map(|k| Key::Aes128(Box::new(k))),
            _ => None,
        }
    }

    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let payload = Payload {
            msg: plaintext,
            aad,
        };
        let nonce = Nonce::from_slice(nonce);
        match self {
            Key::Aes256(k) => k.encrypt(nonce, payload),
            Key::Aes128(k) => k.encrypt(nonce, payload),
        }
        .expect("AES-GCM encryption of an in-memory buffer cannot fail")
    }

    fn open(&self, nonce: &[u8], aad: &[u8], ciphertext: &[u8]) -> Option<Vec<u8>> {
        let payload = Payload {
            msg: ciphertext,
            aad,
        };
        let nonce = Nonce::from_slice(nonce);
        match self {
            Key::Aes256(k) => k.decrypt(nonce, payload),
            Key::Aes128(k) => k.decrypt(nonce, payload),
        }
        .ok()
    }
}

/// The keys an agent holds: the current one seals, any of them opens.
///
/// Two kinds. *Master keys* come from the configuration (`key_file`, and
/// `previous` after an operator's rotation); they seal only data keys and a
/// repository's name key. *Data keys* are made by the agent on a schedule
/// (`encryption.rotation`) and seal the objects of backups; each is stored in
/// every repository it sealed something in, as `keys/<id>` sealed by the
/// master key, so any holder of that master key can read the backups and a
/// data key never lives only on the agent's disk.
#[derive(Clone)]
pub struct Keyring {
    current: String,
    master: String,
    keys: BTreeMap<String, Key>,
    /// Ids of the master keys among `keys`: the only ones that seal data keys.
    masters: std::collections::BTreeSet<String>,
    /// Raw bytes of the data keys this keyring made, to seal into `keys/`.
    made: BTreeMap<String, Vec<u8>>,
    /// Data keys found in a repository whose master key is not held:
    /// data key id → master key id, for an error that names both.
    locked: BTreeMap<String, String>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("master", &self.master)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The object a data key is stored in.
pub fn data_key_object(id: &str) -> String {
    format!("keys/{id}")
}

impl Keyring {
    pub fn new(key_id: &str, key: Key) -> Self {
        Self {
            current: key_id.to_string(),
            master: key_id.to_string(),
            keys: BTreeMap::from([(key_id.to_string(), key)]),
            masters: std::collections::BTreeSet::from([key_id.to_string()]),
            made: BTreeMap::new(),
            locked: BTreeMap::new(),
        }
    }

    /// Reads a key file holding the key as hex (64 or 32 digits).
    pub fn load_key(path: &Path) -> Result<Key, RepoError> {
        let text = std::fs::read_to_string(path).map_err(|e| RepoError::Key {
            key_id: path.display().to_string(),
            message: format!("cannot read `{}`: {e}", path.display()),
        })?;
        hex::decode(text.trim())
            .ok()
            .and_then(|b| Key::from_bytes(&b))
            .ok_or_else(|| RepoError::Key {
                key_id: path.display().to_string(),
                message: format!(
                    "`{}` must hold 64 hex digits (AES-256) or 32 (AES-128)",
                    path.display()
                ),
            })
    }

    /// Adds master key `key` and makes it the one that seals from now on.
    pub fn rotate(&mut self, key_id: &str, key: Key) {
        self.keys.insert(key_id.to_string(), key);
        self.masters.insert(key_id.to_string());
        self.current = key_id.to_string();
        self.master = key_id.to_string();
    }

    /// Makes a fresh data key, of the master key's size, the one that seals
    /// from now on; returns its id.
    pub fn new_data_key(&mut self, now_ms: u64) -> String {
        let len = match self.keys[&self.master] {
            Key::Aes256(_) => 32,
            Key::Aes128(_) => 16,
        };
        let mut bytes = vec![0u8; len];
        rand::rng().fill_bytes(&mut bytes);
        let id = format!("dk-{now_ms}-{:08x}", rand::rng().next_u32());
        let key = Key::from_bytes(&bytes).expect("16 or 32 bytes make a key");
        self.keys.insert(id.clone(), key);
        self.made.insert(id.clone(), bytes);
        self.current = id.clone();
        id
    }

    pub fn current_id(&self) -> &str {
        &self.current
    }

    pub fn master_id(&self) -> &str {
        &self.master
    }

    pub fn holds(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    pub fn is_master(&self, key_id: &str) -> bool {
        self.masters.contains(key_id)
    }

    /// The master keys alone: what a restore somewhere else starts from.
    pub fn masters_only(&self) -> Keyring {
        let mut ring = self.clone();
        ring.keys.retain(|id, _| self.masters.contains(id));
        ring.made.clear();
        ring.locked.clear();
        ring.current = self.master.clone();
        ring
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// The current data key sealed by the master key, for
    /// [`data_key_object`]; `None` while the master key seals (no data key yet).
    pub fn sealed_current(&self) -> Option<Vec<u8>> {
        let bytes = self.made.get(&self.current)?;
        Some(self.seal_with(&self.master, &data_key_object(&self.current), bytes))
    }

    /// Makes data key `id` the one that seals again, from `sealed` as
    /// [`Keyring::sealed_current`] gave it (an agent restarting with the key
    /// it had); fails unless the current master key opens it.
    pub fn resume_data_key(&mut self, id: &str, sealed: &[u8]) -> Result<(), RepoError> {
        let object = data_key_object(id);
        if Self::key_id_of(sealed) != Some(self.master.as_str()) {
            return Err(RepoError::Key {
                key_id: id.to_string(),
                message: format!("not sealed by the master key `{}`", self.master),
            });
        }
        let bytes = self.open(&object, sealed)?;
        let key = Key::from_bytes(&bytes).ok_or_else(|| RepoError::Integrity {
            object,
            message: format!("holds {} bytes, not a 16- or 32-byte key", bytes.len()),
        })?;
        self.keys.insert(id.to_string(), key);
        self.made.insert(id.to_string(), bytes);
        self.current = id.to_string();
        Ok(())
    }

    /// Takes in the keys `other` holds and this one lacks (data keys a
    /// repository gave it), so each is fetched once, not on every open.
    /// Which key seals stays as it is.
    pub fn learn(&mut self, other: &Keyring) {
        for (id, key) in &other.keys {
            self.keys.entry(id.clone()).or_insert_with(|| key.clone());
        }
    }

    /// Adds data key `id` from its sealed object. A data key sealed by a
    /// master key this keyring lacks is remembered, to be named when an
    /// object needs it.
    pub fn add_sealed(&mut self, id: &str, sealed: &[u8]) -> Result<(), RepoError> {
        let object = data_key_object(id);
        match Self::key_id_of(sealed) {
            Some(master) if !self.keys.contains_key(master) => {
                self.locked.insert(id.to_string(), master.to_string());
                return Ok(());
            }
            // Only a master key vouches for a data key: one sealed by a data
            // key could be planted by anyone who ever held that data key.
            Some(other) if !self.masters.contains(other) => {
                return Err(RepoError::Integrity {
                    object,
                    message: format!("sealed by `{other}`, which is not a master key"),
                });
            }
            _ => {}
        }
        let bytes = self.open(&object, sealed)?;
        let key = Key::from_bytes(&bytes).ok_or_else(|| RepoError::Integrity {
            object,
            message: format!("holds {} bytes, not a 16- or 32-byte key", bytes.len()),
        })?;
        self.keys.insert(id.to_string(), key);
        Ok(())
    }

    /// Seals `plaintext` with the current key, bound to `name`.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> Vec<u8> {
        self.seal_with(&self.current, name, plaintext)
    }

    /// Seals `plaintext` with the master key, bound to `name`.
    pub fn seal_with_master(&self, name: &str, plaintext: &[u8]) -> Vec<u8> {
        self.seal_with(&self.master, name, plaintext)
    }

    fn seal_with(&self, key_id: &str, name: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let key = &self.keys[key_id];
        let id = key_id.as_bytes();
        let mut out = Vec::with_capacity(4 + 1 + id.len() + NONCE_LEN + plaintext.len() + 16);
        out.extend_from_slice(MAGIC);
        out.push(u8::try_from(id.len()).expect("key ids are at most 64 bytes"));
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&key.seal(&nonce, name.as_bytes(), plaintext));
        out
    }

    /// The key id in an envelope's header, if the header is intact.
    pub fn key_id_of(sealed: &[u8]) -> Option<&str> {
        let rest = sealed.strip_prefix(MAGIC)?;
        let (&len, rest) = rest.split_first()?;
        std::str::from_utf8(rest.get(..len as usize)?).ok()
    }

    /// Opens an envelope that was sealed under `name`.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, RepoError> {
        let damaged = |why: &str| RepoError::Integrity {
            object: name.to_string(),
            message: why.to_string(),
        };
        let key_id = Self::key_id_of(sealed).ok_or_else(|| damaged("bad envelope header"))?;
        let key = self.keys.get(key_id).ok_or_else(|| RepoError::Key {
            key_id: key_id.to_string(),
            message: match self.locked.get(key_id) {
                Some(master) => format!(
                    "object `{name}` is sealed with data key `{key_id}`, which `{}` seals with master key `{master}`, which this agent does not hold (it has: {})",
                    data_key_object(key_id),
                    self.ids().collect::<Vec<_>>().join(", ")
                ),
                None => format!(
                    "object `{name}` is sealed with key `{key_id}`, which this agent does not hold (it has: {})",
                    self.ids().collect::<Vec<_>>().join(", ")
                ),
            },
        })?;
        let body = &sealed[MAGIC.len() + 1 + key_id.len()..];
        if body.len() < NONCE_LEN + 16 {
            return Err(damaged("truncated"));
        }
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        key.open(nonce, name.as_bytes(), ciphertext).ok_or_else(|| {
            damaged("authentication failed (damaged, truncated or under the wrong name)")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(id: &str, byte: u8) -> Keyring {
        Keyring::new(id, Key::from_bytes(&[byte; 32]).unwrap())
    }

    #[test]
    fn sealed_objects_open_only_under_their_name() {
        let k = ring("k1", 1);
        let sealed = k.seal("chunks/ab/cd", b"hello");
        assert_eq!(k.open("chunks/ab/cd", &sealed).unwrap(), b"hello");
        assert!(matches!(
            k.open("chunks/ab/ce", &sealed),
            Err(RepoError::Integrity { .. })
        ));
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let k = ring("k1", 1);
        let sealed = k.seal("o", b"some payload");
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    k.open("o", &bad).is_err(),
                    "flip at byte {i} bit {bit} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn wrong_key_is_named() {
        let sealed = ring("k1", 1).seal("o", b"x");
        let err = ring("k2", 2).open("o", &sealed).unwrap_err().to_string();
        assert!(err.contains("key `k1`"), "{err}");
    }

    #[test]
    fn a_key_object_sealed_by_a_data_key_is_refused() {
        let mut ring = ring("m1", 1);
        ring.new_data_key(1);
        // Anyone who held this data key could write such an object.
        let planted = ring.seal(&data_key_object("dk-planted"), &[7; 32]);
        let err = ring
            .clone()
            .add_sealed("dk-planted", &planted)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a master key"), "{err}");
    }

    #[test]
    fn a_resumed_data_key_seals_as_before_and_only_under_its_master_key() {
        let mut before = ring("m1", 1);
        let id = before.new_data_key(1);
        let sealed = before.sealed_current().unwrap();
        let object = before.seal("o", b"x");
        let mut after = ring("m1", 1);
        after.resume_data_key(&id, &sealed).unwrap();
        assert_eq!(after.current_id(), id);
        assert_eq!(after.open("o", &object).unwrap(), b"x");
        // It is stored in new repositories as before.
        assert!(after.sealed_current().is_some());
        let err = ring("m2", 2)
            .resume_data_key(&id, &sealed)
            .unwrap_err()
            .to_string();
        assert!(err.contains("m2"), "{err}");
    }

    #[test]
    fn a_data_key_travels_sealed_by_the_master_key() {
        let mut writer = ring("m1", 1);
        let id = writer.new_data_key(1_700_000_000_000);
        assert_eq!(writer.current_id(), id);
        assert_eq!(writer.master_id(), "m1");
        let object = writer.seal("o", b"payload");
        let sealed = writer.sealed_current().unwrap();
        assert_eq!(Keyring::key_id_of(&sealed), Some("m1"));

        let mut reader = ring("m1", 1);
        reader.add_sealed(&id, &sealed).unwrap();
        assert_eq!(reader.open("o", &object).unwrap(), b"payload");

        // Without the master key, the error names the data key and the master.
        let mut stranger = ring("m2", 2);
        stranger.add_sealed(&id, &sealed).unwrap();
        let err = stranger.open("o", &object).unwrap_err().to_string();
        assert!(
            err.contains(&id) && err.contains("master key `m1`"),
            "{err}"
        );
        // A data key filed under another id does not open.
        assert!(ring("m1", 1).add_sealed("dk-other", &sealed).is_err());
    }

    #[test]
    fn rotation_keeps_old_objects_readable() {
        let mut k = ring("k1", 1);
        let old = k.seal("o", b"old");
        k.rotate("k2", Key::from_bytes(&[2; 16]).unwrap());
        let new = k.seal("o", b"new");
        assert_eq!(Keyring::key_id_of(&new), Some("k2"));
        assert_eq!(k.open("o", &old).unwrap(), b"old");
        assert_eq!(k.open("o", &new).unwrap(), b"new");
    }
}
