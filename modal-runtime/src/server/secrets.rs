//! Secret values at rest: sealed with the server's key (ChaCha20-Poly1305), opened only to
//! start a container that asked for them.

use std::collections::BTreeMap;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use crate::model::SealedValues;

/// The key secrets are sealed with.
#[derive(Clone)]
pub(crate) struct SecretKey(Key);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A key that lives as long as the process (the embedded control plane keeps no secrets).
    pub(crate) fn ephemeral() -> Self {
        SecretKey(ChaCha20Poly1305::generate_key(&mut OsRng))
    }

    /// The key in `path`, created (readable by its owner only) when missing.
    #[cfg(feature = "server")]
    pub(crate) fn load_or_create(path: &std::path::Path) -> Result<Self, String> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        match std::fs::read(path) {
            Ok(bytes) if bytes.len() == 32 => Ok(SecretKey(*Key::from_slice(&bytes))),
            Ok(bytes) => Err(format!(
                "{} holds {} bytes; a secret key is 32 bytes",
                path.display(),
                bytes.len()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = ChaCha20Poly1305::generate_key(&mut OsRng);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
                f.write_all(key.as_slice())
                    .and_then(|()| f.sync_all())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                Ok(SecretKey(key))
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Seals `values`: `(nonce, ciphertext)`.
    pub(crate) fn seal(
        &self,
        values: &BTreeMap<String, String>,
    ) -> Result<(Vec<u8>, Vec<u8>), String> {
        let plain = serde_json::to_vec(values).map_err(|e| e.to_string())?;
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = ChaCha20Poly1305::new(&self.0)
            .encrypt(&nonce, plain.as_slice())
            .map_err(|_| "cannot encrypt the secret".to_owned())?;
        Ok((nonce.to_vec(), ct))
    }

    /// Seals the values a definition carries, with a digest keyed by this key (equal values,
    /// equal digests; nothing about them is learnt from it without the key).
    pub(crate) fn seal_values(
        &self,
        values: &BTreeMap<String, String>,
    ) -> Result<SealedValues, String> {
        let (nonce, ciphertext) = self.seal(values)?;
        let plain = serde_json::to_vec(values).map_err(|e| e.to_string())?;
        let digest_key = blake3::derive_key("modal-rs sealed values digest v1", self.0.as_slice());
        Ok(SealedValues {
            digest: blake3::keyed_hash(&digest_key, &plain).as_bytes().to_vec(),
            nonce,
            ciphertext,
        })
    }

    /// A secret derived from this key for `purpose`: the same for as long as the key is (a
    /// standalone control plane's key outlives its restarts).
    pub(crate) fn derive_secret(&self, purpose: &str) -> String {
        blake3::derive_key(purpose, self.0.as_slice())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Opens what [`seal_values`](SecretKey::seal_values) sealed.
    pub(crate) fn open_values(
        &self,
        sealed: &SealedValues,
    ) -> Result<BTreeMap<String, String>, String> {
        self.open(&sealed.nonce, &sealed.ciphertext)
    }

    /// Opens what [`seal`](SecretKey::seal) sealed.
    pub(crate) fn open(
        &self,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<BTreeMap<String, String>, String> {
        if nonce.len() != 12 {
            return Err("a stored secret has a malformed nonce".into());
        }
        let plain = ChaCha20Poly1305::new(&self.0)
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| "a stored secret cannot be decrypted with this server's key".to_owned())?;
        serde_json::from_slice(&plain).map_err(|_| "a stored secret is malformed".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let key = SecretKey::ephemeral();
        let values = BTreeMap::from([("API_KEY".to_string(), "hunter2".to_string())]);
        let (nonce, ct) = key.seal(&values).unwrap();
        assert!(
            !ct.windows(7).any(|w| w == b"hunter2"),
            "the value is not in clear"
        );
        assert_eq!(key.open(&nonce, &ct).unwrap(), values);
        assert!(SecretKey::ephemeral().open(&nonce, &ct).is_err());
    }

    #[test]
    fn sealed_values_are_equal_when_their_values_are() {
        let key = SecretKey::ephemeral();
        let values = BTreeMap::from([("API_KEY".to_string(), "hunter2".to_string())]);
        let a = key.seal_values(&values).unwrap();
        let b = key.seal_values(&values).unwrap();
        assert_ne!(a.nonce, b.nonce, "each sealing has its own nonce");
        assert_eq!(a, b);
        let other = BTreeMap::from([("API_KEY".to_string(), "hunter3".to_string())]);
        assert_ne!(a, key.seal_values(&other).unwrap());
        assert_ne!(a, SecretKey::ephemeral().seal_values(&values).unwrap());
        assert_eq!(key.open_values(&b).unwrap(), values);
        assert!(!format!("{a:?}").contains("hunter2"));
    }

    #[test]
    #[cfg(feature = "server")]
    fn key_file_is_created_once() {
        let dir = std::env::temp_dir().join(format!("modal-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret.key");
        let a = SecretKey::load_or_create(&path).unwrap();
        let b = SecretKey::load_or_create(&path).unwrap();
        let values = BTreeMap::from([("K".to_string(), "v".to_string())]);
        let (n, ct) = a.seal(&values).unwrap();
        assert_eq!(b.open(&n, &ct).unwrap(), values);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
