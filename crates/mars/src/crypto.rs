//! What the agent does to data before it leaves the machine.
//!
//! - A chunk is compressed (zstd) and sealed with ChaCha20-Poly1305 under a
//!   key derived from its own plaintext and the vault's deduplication key
//!   (convergent encryption): the same chunk seals to the same bytes on
//!   every machine of the vault, so the vault stores it once, yet nobody
//!   without the plaintext can derive the key. The chunk's id is the hash of
//!   that key, so the id says nothing about the content either.
//! - A recovery point's index (which files, which chunks, and the chunks'
//!   keys) is sealed under the machine's key, derived from its passphrase
//!   with Argon2id. Without the passphrase nothing can be restored.
//!
//! The trade-off of convergent encryption, stated: the service hands out the
//! deduplication key, so it could confirm that a machine stores a plaintext
//! it already knows. It cannot read anything it does not already know.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// "The encryption passphrase must be at least 16 characters" (MARS).
pub const MIN_PASSPHRASE: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The passphrase is shorter than MARS allows.
    ShortPassphrase(usize),
    /// Authentication failed: wrong key, or the bytes were altered.
    Unsealed,
    Malformed(String),
}

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CryptoError::ShortPassphrase(n) => write!(f, "the encryption passphrase has {n} characters; MARS requires at least {MIN_PASSPHRASE}"),
            CryptoError::Unsealed => write!(f, "the data cannot be decrypted with this passphrase (wrong passphrase, or the data was altered)"),
            CryptoError::Malformed(m) => write!(f, "malformed sealed data: {m}"),
        }
    }
}

impl std::error::Error for CryptoError {}

/// MARS: "the encryption passphrase is at least 16 characters".
pub fn check_passphrase(passphrase: &str) -> Result<(), CryptoError> {
    let n = passphrase.chars().count();
    if n < MIN_PASSPHRASE {
        return Err(CryptoError::ShortPassphrase(n));
    }
    Ok(())
}

/// The machine's key: Argon2id of the passphrase with the machine's salt.
pub fn machine_key(passphrase: &str, salt: &[u8]) -> Result<[u8; 32], CryptoError> {
    check_passphrase(passphrase)?;
    let mut out = [0u8; 32];
    argon2::Argon2::default()
        .hash_password_into(passphrase.as_bytes(), salt, &mut out)
        .map_err(|e| CryptoError::Malformed(e.to_string()))?;
    Ok(out)
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

/// A chunk's convergent key and id: BLAKE3 in keyed mode (a PRF) under
/// the vault's deduplication key, over the chunk's bytes.
pub fn chunk_key(dedup_key: &[u8; 32], plaintext: &[u8]) -> ([u8; 32], String) {
    let key: [u8; 32] = blake3::keyed_hash(dedup_key, plaintext).into();
    (key, chunk_key_id(&key))
}

/// A chunk's id: the hash of its key, so that the id tells nothing of the
/// content, and a key from an index can be checked against the id.
pub fn chunk_key_id(key: &[u8; 32]) -> String {
    hex::encode(Sha256::digest(key))
}

/// Compresses (when that helps) and seals a chunk under its own key: the
/// sealed payload is a flag byte (0 stored, 1 zstd) and the bytes. Each key
/// seals exactly one plaintext, so a fixed nonce is safe here.
pub fn seal_chunk(key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    let packed = zstd::bulk::compress(plaintext, 1).expect("zstd compresses any input");
    let mut payload = Vec::with_capacity(plaintext.len().min(packed.len()) + 1);
    if packed.len() < plaintext.len() {
        payload.push(1);
        payload.extend_from_slice(&packed);
    } else {
        // Incompressible (random, already compressed): stored as it is.
        payload.push(0);
        payload.extend_from_slice(plaintext);
    }
    ChaCha20Poly1305::new(Key::from_slice(key))
        .encrypt(Nonce::from_slice(&[0u8; 12]), payload.as_slice())
        .expect("sealing never fails")
}

pub fn open_chunk(key: &[u8; 32], sealed: &[u8], len: usize) -> Result<Vec<u8>, CryptoError> {
    let payload = ChaCha20Poly1305::new(Key::from_slice(key))
        .decrypt(Nonce::from_slice(&[0u8; 12]), sealed)
        .map_err(|_| CryptoError::Unsealed)?;
    let plain = match payload.split_first() {
        Some((1, packed)) => zstd::bulk::decompress(packed, len)
            .map_err(|e| CryptoError::Malformed(e.to_string()))?,
        Some((0, raw)) => raw.to_vec(),
        _ => return Err(CryptoError::Malformed("unknown chunk encoding".into())),
    };
    if plain.len() != len {
        return Err(CryptoError::Malformed(format!(
            "chunk holds {} bytes, the index says {len}",
            plain.len()
        )));
    }
    Ok(plain)
}

/// Seals `plaintext` under the machine key with a random nonce: `nonce ‖ ciphertext`.
pub fn seal(key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    let nonce: [u8; 12] = random_bytes();
    let mut out = nonce.to_vec();
    out.extend(
        ChaCha20Poly1305::new(Key::from_slice(key))
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .expect("sealing never fails"),
    );
    out
}

pub fn open(key: &[u8; 32], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < 12 + 16 {
        return Err(CryptoError::Malformed("too short".into()));
    }
    ChaCha20Poly1305::new(Key::from_slice(key))
        .decrypt(Nonce::from_slice(&sealed[..12]), &sealed[12..])
        .map_err(|_| CryptoError::Unsealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passphrases_shorter_than_16_characters_are_refused() {
        assert_eq!(
            check_passphrase("fifteen chars!!"),
            Err(CryptoError::ShortPassphrase(15))
        );
        assert!(check_passphrase("sixteen chars!!!").is_ok());
        // Characters, not bytes.
        assert!(check_passphrase("ééééééééééééééé").is_err());
    }

    #[test]
    fn the_same_chunk_seals_the_same_everywhere_and_only_its_key_opens_it() {
        let dk = [7u8; 32];
        let data = b"the quarterly figures".repeat(100);
        let (k1, id1) = chunk_key(&dk, &data);
        let (k2, id2) = chunk_key(&dk, &data);
        assert_eq!((k1, &id1), (k2, &id2));
        assert_eq!(seal_chunk(&k1, &data), seal_chunk(&k2, &data));
        let sealed = seal_chunk(&k1, &data);
        assert!(!sealed.windows(9).any(|w| w == b"quarterly"));
        assert_eq!(open_chunk(&k1, &sealed, data.len()).unwrap(), data);
        let (other, _) = chunk_key(&[8u8; 32], &data);
        assert_eq!(
            open_chunk(&other, &sealed, data.len()),
            Err(CryptoError::Unsealed)
        );
        // Another vault's key gives another id.
        assert_ne!(chunk_key(&[8u8; 32], &data).1, id1);
    }

    #[test]
    fn incompressible_chunks_are_stored_and_compressible_ones_packed() {
        let (k, _) = chunk_key(&[1u8; 32], b"x");
        let zeros = vec![0u8; 1 << 20];
        let sealed = seal_chunk(&k, &zeros);
        assert!(sealed.len() < 1000);
        assert_eq!(open_chunk(&k, &sealed, zeros.len()).unwrap(), zeros);
        let random: Vec<u8> = (0..100_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let sealed = seal_chunk(&k, &random);
        assert!(sealed.len() <= random.len() + 17);
        assert_eq!(open_chunk(&k, &sealed, random.len()).unwrap(), random);
    }

    #[test]
    fn a_wrong_passphrase_cannot_open_an_index() {
        let salt = [1u8; 16];
        let k = machine_key("correct horse battery", &salt).unwrap();
        let sealed = seal(&k, b"index");
        assert_eq!(open(&k, &sealed).unwrap(), b"index");
        let wrong = machine_key("incorrect horse battery", &salt).unwrap();
        assert_eq!(open(&wrong, &sealed), Err(CryptoError::Unsealed));
    }
}
