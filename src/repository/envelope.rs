//! Sealed objects (docs/format.md, "Envelopes"):
//! `"GDE1" | key_id_len: u8 | key_id | nonce: 12 bytes | ciphertext || tag: 16 bytes`,
//! AES-GCM with the object's key as associated data.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};

const MAGIC: &[u8; 4] = b"GDE1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why an envelope does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("bad envelope header")]
    Header,
    #[error("sealed with key `{0}`, which the judge does not hold")]
    UnknownKey(String),
    #[error("truncated envelope")]
    Truncated,
    #[error("authentication failed (damaged, truncated or stored under another name)")]
    Authentication,
    #[error("key `{0}` is neither 16 nor 32 bytes")]
    KeySize(String),
}

/// The key id an envelope names, if its header is intact.
pub fn key_id(sealed: &[u8]) -> Result<&str, EnvelopeError> {
    let rest = sealed.strip_prefix(MAGIC).ok_or(EnvelopeError::Header)?;
    let (&len, rest) = rest.split_first().ok_or(EnvelopeError::Header)?;
    let id = rest.get(..usize::from(len)).ok_or(EnvelopeError::Header)?;
    std::str::from_utf8(id).map_err(|_| EnvelopeError::Header)
}

/// Keys by id.
pub type Keys = BTreeMap<String, Vec<u8>>;

/// Opens `sealed`, stored under `object`, with the key it names from `keys`.
pub fn open(object: &str, sealed: &[u8], keys: &Keys) -> Result<Vec<u8>, EnvelopeError> {
    let id = key_id(sealed)?;
    let secret = keys
        .get(id)
        .ok_or_else(|| EnvelopeError::UnknownKey(id.to_string()))?;
    let body = &sealed[MAGIC.len() + 1 + id.len()..];
    if body.len() < NONCE_LEN + TAG_LEN {
        return Err(EnvelopeError::Truncated);
    }
    let (nonce, ciphertext) = body.split_at(NONCE_LEN);
    let payload = Payload {
        msg: ciphertext,
        aad: object.as_bytes(),
    };
    let nonce = Nonce::from_slice(nonce);
    let opened = match secret.len() {
        16 => Aes128Gcm::new_from_slice(secret).map(|c| c.decrypt(nonce, payload)),
        32 => Aes256Gcm::new_from_slice(secret).map(|c| c.decrypt(nonce, payload)),
        _ => return Err(EnvelopeError::KeySize(id.to_string())),
    };
    opened
        .map_err(|_| EnvelopeError::KeySize(id.to_string()))?
        .map_err(|_| EnvelopeError::Authentication)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An envelope made the way docs/format.md describes it.
    fn seal(id: &str, key: &[u8; 32], object: &str, plain: &[u8]) -> Vec<u8> {
        let nonce = [7u8; NONCE_LEN];
        let payload = Payload {
            msg: plain,
            aad: object.as_bytes(),
        };
        let ct = Aes256Gcm::new_from_slice(key)
            .unwrap()
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap();
        let mut out = MAGIC.to_vec();
        out.push(id.len() as u8);
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    #[test]
    fn an_envelope_opens_only_under_its_name_with_its_key() {
        let key = [1u8; 32];
        let sealed = seal("k1", &key, "chunks/ab/ab", b"hello");
        let held = Keys::from([("k1".to_string(), key.to_vec())]);
        let held = &held;
        assert_eq!(open("chunks/ab/ab", &sealed, held).unwrap(), b"hello");
        assert_eq!(
            open("chunks/cd/cd", &sealed, held),
            Err(EnvelopeError::Authentication)
        );
        assert_eq!(
            open("chunks/ab/ab", &sealed, &Keys::new()),
            Err(EnvelopeError::UnknownKey("k1".into()))
        );
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(
            open("chunks/ab/ab", &flipped, held),
            Err(EnvelopeError::Authentication)
        );
        assert_eq!(
            open("chunks/ab/ab", &sealed[..12], held),
            Err(EnvelopeError::Truncated)
        );
        assert_eq!(
            open("chunks/ab/ab", b"GDE2", held),
            Err(EnvelopeError::Header)
        );
    }
}
