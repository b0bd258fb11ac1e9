//! Sealing secrets at rest: AES-256-GCM, a fresh random nonce per value, and the row's identity as
//! associated data, so a sealed value moved to another row (or another column) no longer opens.
//!
//! A sealed value is `v1:` + base64(nonce ‖ ciphertext ‖ tag). The key is 32 random bytes, given as
//! base64 in `MASTODON_SIDECAR__STORE__KEY`, or in a file (`[store] key_file`); with the embedded store
//! and neither, a key file is created beside the database (mode 0600) on first start. The store keeps a
//! sealed check value, so a store opened with another key is refused instead of silently unreadable.

use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use super::StoreError;
use crate::config::StoreSettings;

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;
/// The plaintext of the check value; only its successful opening matters.
const CHECK_PLAINTEXT: &str = "mastodon-sidecar store key check";
pub const CHECK_AAD: &str = "meta|key_check";

/// Seals and opens values with one key.
pub struct Sealer {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer([REDACTED])")
    }
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Sealer {
        Sealer {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// A new random key, as base64.
    pub fn generate_key() -> SecretString {
        let key = Aes256Gcm::generate_key(&mut OsRng);
        SecretString::from(STANDARD.encode(key))
    }

    /// Reads a base64 key of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Sealer, String> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| "the key is not base64".to_owned())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("the key is {} bytes; it must be 32", b.len()))?;
        Ok(Sealer::new(&key))
    }

    /// Seals `plaintext` for the row and column named by `aad` (e.g. `tokens|main|user|access_token`).
    pub fn seal(&self, aad: &str, plaintext: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        // Encryption with a valid key and a 12-byte nonce cannot fail for inputs under 64 GiB.
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}", STANDARD.encode(sealed))
    }

    /// Opens a value sealed for `aad`; fails on another key, another row, or tampering.
    pub fn open(&self, aad: &str, sealed: &str) -> Result<SecretString, StoreError> {
        let corrupt = || StoreError::Corrupt(format!("a sealed value for {aad} does not open"));
        let body = sealed.strip_prefix(PREFIX).ok_or_else(corrupt)?;
        let bytes = STANDARD.decode(body).map_err(|_| corrupt())?;
        if bytes.len() < NONCE_LEN + 16 {
            return Err(corrupt());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plaintext = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| corrupt())?;
        String::from_utf8(plaintext)
            .map(SecretString::from)
            .map_err(|_| corrupt())
    }

    /// The value a store keeps to recognise its key.
    pub fn check_value(&self) -> String {
        self.seal(CHECK_AAD, CHECK_PLAINTEXT)
    }

    /// Whether `value` is this key's check value.
    pub fn verifies(&self, value: &str) -> bool {
        self.open(CHECK_AAD, value)
            .is_ok_and(|p| p.expose_secret() == CHECK_PLAINTEXT)
    }
}

/// The associated data of each sealed column: the row's identity, so a value cannot move rows.
pub fn app_aad(connection: &str) -> String {
    format!("apps|{connection}|client_secret")
}
pub fn token_aad(connection: &str, kind: super::TokenKind) -> String {
    format!("tokens|{connection}|{}|access_token", kind.as_str())
}
pub fn pending_aad(state: &str) -> String {
    format!("pending|{state}|code_verifier")
}

/// Where the key came from, for the start-up log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    File(PathBuf),
    /// Created now, beside the embedded database.
    Created(PathBuf),
}

/// The key file made beside an embedded database when no key is configured.
pub fn default_key_file(database: &Path) -> PathBuf {
    database.with_extension("key")
}

/// Finds the key: `store.key`, else `store.key_file`, else (embedded store only) the default key file,
/// created when missing.
pub fn load_key(settings: &StoreSettings) -> Result<(Sealer, KeySource), StoreError> {
    if let Some(key) = &settings.key {
        let sealer = Sealer::from_base64(key.expose_secret())
            .map_err(|e| StoreError::Key(format!("store.key: {e}")))?;
        return Ok((sealer, KeySource::Environment));
    }
    if let Some(path) = &settings.key_file {
        return Ok((read_key_file(path)?, KeySource::File(path.clone())));
    }
    if settings.url.is_some() {
        return Err(StoreError::Key(
            "a shared store needs store.key (MASTODON_SIDECAR__STORE__KEY) or store.key_file, the same on every replica".into(),
        ));
    }
    let path = default_key_file(&settings.path);
    if path.exists() {
        return Ok((read_key_file(&path)?, KeySource::File(path)));
    }
    let key = Sealer::generate_key();
    write_key_file(&path, &key)?;
    let sealer = Sealer::from_base64(key.expose_secret()).map_err(StoreError::Key)?;
    Ok((sealer, KeySource::Created(path)))
}

pub fn read_key_file(path: &Path) -> Result<Sealer, StoreError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        StoreError::Key(format!("cannot read the key file {}: {e}", path.display()))
    })?;
    Sealer::from_base64(&text).map_err(|e| StoreError::Key(format!("{}: {e}", path.display())))
}

/// Writes a key file that only the owner may read, refusing to overwrite an existing one.
pub fn write_key_file(path: &Path, key: &SecretString) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        StoreError::Key(format!(
            "cannot create the key file {}: {e}",
            path.display()
        ))
    })?;
    file.write_all(key.expose_secret().as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::from_base64(Sealer::generate_key().expose_secret()).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_for_its_row_only() {
        let s = sealer();
        let sealed = s.seal("tokens|main|user", "secret-token");
        assert!(!sealed.contains("secret-token"));
        assert_eq!(
            s.open("tokens|main|user", &sealed).unwrap().expose_secret(),
            "secret-token"
        );
        assert!(s.open("tokens|other|user", &sealed).is_err());
        // A fresh nonce each time: the same secret never seals the same way twice.
        assert_ne!(sealed, s.seal("tokens|main|user", "secret-token"));
    }

    #[test]
    fn another_key_is_recognised() {
        let (a, b) = (sealer(), sealer());
        let check = a.check_value();
        assert!(a.verifies(&check));
        assert!(!b.verifies(&check));
        assert!(b.open(CHECK_AAD, &check).is_err());
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(Sealer::from_base64("not base64!").is_err());
        assert!(Sealer::from_base64(&STANDARD.encode([0u8; 16])).is_err());
        assert!(Sealer::from_base64(&STANDARD.encode([0u8; 32])).is_ok());
    }

    #[test]
    fn a_created_key_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k/sidecar.key");
        write_key_file(&path, &Sealer::generate_key()).unwrap();
        assert!(read_key_file(&path).is_ok());
        assert!(write_key_file(&path, &Sealer::generate_key()).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
