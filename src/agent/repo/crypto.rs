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
/// Rotation adds a key and makes it current; old backups stay readable.
#[derive(Clone)]
pub struct Keyring {
    current: String,
    keys: BTreeMap<String, Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    pub fn new(key_id: &str, key: Key) -> Self {
        Self {
            current: key_id.to_string(),
            keys: BTreeMap::from([(key_id.to_string(), key)]),
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

    /// Adds `key` and makes it the one that seals from now on.
    pub fn rotate(&mut self, key_id: &str, key: Key) {
        self.keys.insert(key_id.to_string(), key);
        self.current = key_id.to_string();
    }

    pub fn current_id(&self) -> &str {
        &self.current
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Seals `plaintext` with the current key, bound to `name`.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let key = &self.keys[&self.current];
        let id = self.current.as_bytes();
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
            message: format!(
                "object `{name}` is sealed with key `{key_id}`, which this agent does not hold (it has: {})",
                self.ids().collect::<Vec<_>>().join(", ")
            ),
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
