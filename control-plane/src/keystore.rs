//! The token-signing keys at rest: sealed in the database with a secret key that is not
//! in it, loaded into a [`Keyring`], and rotated with an overlap.
//!
//! **What the sealing protects against.** The database (or a backup, or a dump) alone no
//! longer lets anyone mint tokens: each private key is sealed with AES-256-GCM under a
//! 32-byte secret key from `CASCADE_SECRET_KEY` or `--secret-key-file`. When neither is
//! given, `serve` makes `secret.key` (0600) in the data directory: that protects a leaked
//! database file, backup or dump, not a stolen data directory (which holds both).
//!
//! **Rotation.** Every key has `signs_from` and `retired_at`. The signer signs with the
//! newest key whose `signs_from` has passed; every key not yet retired verifies. A token's
//! header names its key (`kid`, a fingerprint of the public key), so a media-only node
//! given several public keys picks the right one. Replicas reload the keyring every
//! [`RELOAD_EVERY`]; a new key starts signing only after a delay longer than that, so every
//! replica knows it before any token signed with it arrives.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey};

use crate::db::{now_ms, Backend, Db, DbError};

/// How often a running control plane re-reads the signing keys (to learn of a rotation).
pub const RELOAD_EVERY: Duration = Duration::from_secs(30);

/// Default wait between a rotation and the new key's first signature: four reloads, so
/// every replica verifies the new key before it meets a token signed with it.
pub const DEFAULT_ROTATION_DELAY_SECS: i64 = 120;

/// Where the secret key that seals the signing keys comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretKeySource {
    /// The key itself (`CASCADE_SECRET_KEY`): 32 bytes as base64 or 64 hex digits.
    Value(String),
    /// A file holding the key in the same text form. With `create`, a missing file is made
    /// (0600, a random key); without, a missing file is an error (a typo would otherwise
    /// make a new key that opens nothing).
    File {
        /// The file.
        path: PathBuf,
        /// Make it when missing.
        create: bool,
    },
}

impl std::fmt::Debug for SecretKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretKeySource::Value(_) => f.write_str("Value(<redacted>)"),
            SecretKeySource::File { path, create } => f
                .debug_struct("File")
                .field("path", path)
                .field("create", create)
                .finish(),
        }
    }
}

/// The 32-byte key that seals signing keys.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

fn secret_error(why: String) -> DbError {
    DbError::SecretKey(why)
}

impl SecretKey {
    /// Parses the text form: base64 (standard or url-safe, padded or not) or hex.
    pub fn parse(text: &str) -> Option<SecretKey> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
                .collect::<Option<Vec<u8>>>()?
        } else {
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|e| e.decode(text).ok())?
        };
        Some(SecretKey(bytes.try_into().ok()?))
    }

    /// A fresh random key.
    pub fn random() -> SecretKey {
        let mut bytes = [0u8; 32];
        // The system generator only fails if the OS has no randomness at all.
        SystemRandom::new()
            .fill(&mut bytes)
            .expect("operating system randomness");
        SecretKey(bytes)
    }

    /// The text form (base64url), as written to a key file.
    pub fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The key `source` names; `None` means the `secret.key` beside an SQLite database
    /// (PostgreSQL has no data directory of its own, so it needs a source).
    pub fn resolve(source: Option<&SecretKeySource>, url: &str) -> Result<SecretKey, DbError> {
        let source = match source {
            Some(s) => s.clone(),
            None => {
                let dir = crate::db::sqlite_dir(url).ok_or_else(|| {
                    secret_error(
                        "PostgreSQL needs CASCADE_SECRET_KEY or --secret-key-file (the same on every replica)"
                            .into(),
                    )
                })?;
                SecretKeySource::File {
                    path: dir.join("secret.key"),
                    create: true,
                }
            }
        };
        match source {
            SecretKeySource::Value(text) => SecretKey::parse(&text).ok_or_else(|| {
                secret_error("CASCADE_SECRET_KEY is not 32 bytes of base64 or hex".into())
            }),
            SecretKeySource::File { path, create } => read_or_create(&path, create),
        }
    }

    fn aead(&self) -> LessSafeKey {
        // 32 bytes is AES-256's key length, so this cannot fail.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("a 32-byte AES key"))
    }

    /// Seals `plain`, bound to `context` (the row's public key): `v1:` and base64url of
    /// nonce, ciphertext and tag.
    pub(crate) fn seal(&self, plain: &[u8], context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("operating system randomness");
        let mut buf = plain.to_vec();
        // Sealing with a valid key into a Vec only fails on absurd lengths.
        self.aead()
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .expect("AES-GCM seal");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        format!("v1:{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// Opens what [`SecretKey::seal`] made; `None` if the key or the context is wrong.
    pub(crate) fn open(&self, sealed: &str, context: &str) -> Option<Vec<u8>> {
        let raw = URL_SAFE_NO_PAD.decode(sealed.strip_prefix("v1:")?).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let mut buf = body.to_vec();
        let plain = self
            .aead()
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).ok()?,
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .ok()?;
        Some(plain.to_vec())
    }
}

/// Creates `dir` (and its parents) 0700 whatever the umask; an existing one is left alone.
pub(crate) fn private_dir(dir: &Path) -> Result<(), DbError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| DbError::Io(dir.to_path_buf(), e))?;
    // `mode` is filtered by the umask; set it outright.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| DbError::Io(dir.to_path_buf(), e))
}

fn read_or_create(path: &Path, create: bool) -> Result<SecretKey, DbError> {
    let io = |e| DbError::Io(path.to_path_buf(), e);
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(
                    "{} is readable by others (mode {:o}): chmod 600 it",
                    path.display(),
                    mode & 0o777
                );
            }
            SecretKey::parse(&text).ok_or_else(|| {
                secret_error(format!(
                    "{} does not hold 32 bytes of base64 or hex",
                    path.display()
                ))
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            if let Some(dir) = path.parent() {
                private_dir(dir)?;
            }
            // Write a temporary file, then link it into place: two processes starting at
            // once agree on one key, and nobody reads a half-written file.
            let key = SecretKey::random();
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| DbError::Io(tmp.clone(), e))?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                .and_then(|()| writeln!(f, "{}", key.to_text()))
                .and_then(|()| f.sync_all())
                .map_err(|e| DbError::Io(tmp.clone(), e))?;
            let linked = std::fs::hard_link(&tmp, path);
            let _ = std::fs::remove_file(&tmp);
            match linked {
                Ok(()) => {
                    tracing::info!("made a new secret key in {}", path.display());
                    Ok(key)
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    read_or_create(path, false)
                }
                Err(e) => Err(io(e)),
            }
        }
        Err(e) => Err(io(e)),
    }
}

/// A key's id in token headers: a fingerprint of its public key, so that a node given only
/// public keys finds the right one.
pub fn kid_of(public_b64: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public_b64.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12])
}

/// One public key that verifies tokens.
#[derive(Clone)]
pub(crate) struct PublicKey {
    pub(crate) kid: String,
    pub(crate) public_b64: String,
    pub(crate) decoding: DecodingKey,
    /// Milliseconds; tokens signed with it are refused from then on.
    pub(crate) retires_at: Option<i64>,
    /// Milliseconds; the signer picks it from then on.
    pub(crate) signs_from: i64,
}

impl PublicKey {
    /// From the raw 32-byte Ed25519 key, base64url.
    pub(crate) fn from_b64(b64: &str) -> Option<PublicKey> {
        let raw = URL_SAFE_NO_PAD.decode(b64.trim()).ok()?;
        if raw.len() != 32 {
            return None;
        }
        let public_b64 = URL_SAFE_NO_PAD.encode(&raw);
        Some(PublicKey {
            kid: kid_of(&public_b64),
            public_b64,
            decoding: DecodingKey::from_ed_der(&raw),
            retires_at: None,
            signs_from: 0,
        })
    }

    pub(crate) fn active(&self, now_ms: i64) -> bool {
        self.retires_at.is_none_or(|r| now_ms < r)
    }
}

/// The keys one control plane (or node) knows: the public halves that verify, and the
/// private halves of those that may sign.
#[derive(Clone, Default)]
pub(crate) struct Keyring {
    pub(crate) public: Vec<PublicKey>,
    /// (kid, signs_from, key), the private halves of the loaded keys.
    pub(crate) private: Vec<(String, i64, EncodingKey)>,
}

impl Keyring {
    /// The key to sign with at `now`: the newest whose time has come, else the first to come.
    pub(crate) fn signing(&self, now_ms: i64) -> Option<(&str, &EncodingKey)> {
        let live = |kid: &str| self.public.iter().any(|p| p.kid == kid && p.active(now_ms));
        let candidates = self.private.iter().filter(|(kid, _, _)| live(kid));
        candidates
            .clone()
            .filter(|(_, from, _)| *from <= now_ms)
            .max_by_key(|(_, from, _)| *from)
            .or_else(|| candidates.min_by_key(|(_, from, _)| *from))
            .map(|(kid, _, key)| (kid.as_str(), key))
    }
}

/// (id, private_pkcs8, private_sealed, public_key, signs_from, retired_at)
type KeyRow = (String, String, Option<String>, String, i64, Option<i64>);

fn context(public_b64: &str) -> String {
    format!("cascade signing key {public_b64}")
}

fn new_pair() -> Result<(Vec<u8>, String), DbError> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| secret_error("could not generate a signing key".into()))?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| secret_error("could not parse the signing key".into()))?;
    Ok((
        pkcs8.as_ref().to_vec(),
        URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
    ))
}

async fn insert_key(
    db: &Db,
    kek: &SecretKey,
    id: &str,
    signs_from: i64,
) -> Result<String, DbError> {
    let (pkcs8, public) = new_pair()?;
    sqlx::query(
        "INSERT INTO signing_keys (id, private_pkcs8, private_sealed, public_key, created_at, signs_from) \
         VALUES ($1, '', $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(kek.seal(&pkcs8, &context(&public)))
    .bind(&public)
    .bind(now_ms())
    .bind(signs_from)
    .execute(db.pool())
    .await?;
    Ok(kid_of(&public))
}

/// Seals keys stored in plaintext by an older version, and scrubs the plaintext from an
/// SQLite file (and its write-ahead log).
async fn seal_legacy(db: &Db, kek: &SecretKey) -> Result<(), DbError> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT id, private_pkcs8, public_key FROM signing_keys \
         WHERE private_sealed IS NULL AND private_pkcs8 <> ''",
    )
    .fetch_all(db.pool())
    .await?;
    if rows.is_empty() {
        return Ok(());
    }
    for (id, plain, public) in &rows {
        let der = URL_SAFE_NO_PAD
            .decode(plain)
            .map_err(|_| secret_error("a stored signing key is not base64".into()))?;
        sqlx::query(
            "UPDATE signing_keys SET private_sealed = $2, private_pkcs8 = '' \
             WHERE id = $1 AND private_sealed IS NULL",
        )
        .bind(id)
        .bind(kek.seal(&der, &context(public)))
        .execute(db.pool())
        .await?;
    }
    if db.backend() == Backend::Sqlite {
        // The old bytes linger in free pages and the log until rewritten.
        sqlx::raw_sql("VACUUM; PRAGMA wal_checkpoint(TRUNCATE);")
            .execute(db.pool())
            .await?;
    }
    tracing::info!("sealed {} signing key(s) stored in plaintext", rows.len());
    Ok(())
}

/// Reads the keys that still verify; opens their private halves.
pub(crate) async fn load(db: &Db, kek: &SecretKey) -> Result<Keyring, DbError> {
    let now = now_ms();
    let rows: Vec<KeyRow> = sqlx::query_as(
        "SELECT id, private_pkcs8, private_sealed, public_key, signs_from, retired_at \
         FROM signing_keys WHERE retired_at IS NULL OR retired_at > $1",
    )
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    let mut ring = Keyring::default();
    for (id, _, sealed, public, signs_from, retired_at) in rows {
        let mut key = PublicKey::from_b64(&public)
            .ok_or_else(|| secret_error(format!("signing key {id}: bad public key")))?;
        key.retires_at = retired_at;
        key.signs_from = signs_from;
        let der = sealed
            .as_deref()
            .and_then(|s| kek.open(s, &context(&public)));
        match der {
            Some(der) => {
                ring.private
                    .push((key.kid.clone(), signs_from, EncodingKey::from_ed_der(&der)))
            }
            None => {
                return Err(secret_error(format!(
                    "signing key {id} cannot be opened with this secret key: give every \
                     replica the same CASCADE_SECRET_KEY or --secret-key-file (or, if the \
                     secret key is lost, run `cascade rotate-signing-key --overlap 0`)"
                )))
            }
        }
        ring.public.push(key);
    }
    Ok(ring)
}

/// Loads the keyring, first sealing plaintext keys and making a key on a fresh database.
/// Two replicas starting at once agree on one key: the fixed id is inserted at most once.
pub(crate) async fn load_or_create(db: &Db, kek: &SecretKey) -> Result<Keyring, DbError> {
    seal_legacy(db, kek).await?;
    let ring = load(db, kek).await?;
    if !ring.private.is_empty() {
        return Ok(ring);
    }
    insert_key(db, kek, "primary", 0).await?;
    let ring = load(db, kek).await?;
    if !ring.private.is_empty() {
        return Ok(ring);
    }
    // Every key was retired: start a new one now.
    rotate(db, kek, 0, 0).await?;
    load(db, kek).await
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The new key's id (the `kid` of tokens it signs).
    pub kid: String,
    /// When it starts signing, milliseconds since the epoch.
    pub signs_from: i64,
    /// When the keys before it stop verifying, milliseconds since the epoch.
    pub old_retire_at: i64,
    /// When the rotation was made, milliseconds since the epoch.
    pub now: i64,
}

/// Makes a new signing key that signs `delay_secs` from now; the keys before it keep
/// verifying for `overlap_secs` after that, then retire. `overlap_secs == 0` is for a
/// compromised key: the old keys retire now and the new one signs at once.
pub async fn rotate(
    db: &Db,
    kek: &SecretKey,
    delay_secs: i64,
    overlap_secs: i64,
) -> Result<Rotation, DbError> {
    let now = now_ms();
    let (signs_from, old_retire_at) = if overlap_secs <= 0 {
        (now, now)
    } else {
        let from = now + delay_secs.max(0) * 1000;
        (from, from + overlap_secs * 1000)
    };
    let id = crate::tokens::random_id();
    let kid = insert_key(db, kek, &id, signs_from).await?;
    sqlx::query(
        "UPDATE signing_keys SET retired_at = $2 \
         WHERE id <> $1 AND (retired_at IS NULL OR retired_at > $2)",
    )
    .bind(&id)
    .bind(old_retire_at)
    .execute(db.pool())
    .await?;
    Ok(Rotation {
        kid,
        signs_from,
        old_retire_at,
        now,
    })
}
