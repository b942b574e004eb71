//! Where videos' bytes live: a directory (the default, in the data directory) or an
//! S3-compatible bucket (for a cluster, where every replica must read what any wrote).
//! Both are `object_store`'s, behind its one trait; this module only chooses, names keys,
//! and streams a staged file in.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::AsyncReadExt;

/// A part of a multipart put (S3's smallest part is 5 MiB).
const PART: usize = 8 * 1024 * 1024;

/// S3-compatible object storage.
#[derive(Clone)]
pub struct S3Settings {
    /// The bucket (it must exist).
    pub bucket: String,
    /// The region [us-east-1 when empty].
    pub region: String,
    /// The endpoint of an S3-compatible server (MinIO, moto, …); `None`: AWS.
    pub endpoint: Option<String>,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key: never logged (see the `Debug` below).
    pub secret_access_key: String,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Which storage holds the videos.
#[derive(Debug, Clone, Default)]
pub enum StorageSettings {
    /// `media/` beside the SQLite database; none with PostgreSQL (videos then answer
    /// 404 with the reason).
    #[default]
    Default,
    /// A directory.
    Directory(PathBuf),
    /// A bucket.
    S3(S3Settings),
}

/// Why the storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No such object.
    #[error("not found")]
    NotFound,
    /// Anything else (the store's message, logged where it is mapped).
    #[error("{0}")]
    Other(String),
}

impl From<object_store::Error> for StorageError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { .. } => StorageError::NotFound,
            other => StorageError::Other(other.to_string()),
        }
    }
}

/// The media storage: cheap to clone.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    what: String,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl Storage {
    /// A directory (made if missing, private to this user).
    pub fn directory(dir: &Path) -> Result<Storage, StorageError> {
        crate::keystore::private_dir(dir).map_err(|e| StorageError::Other(e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(dir)?;
        Ok(Storage {
            store: Arc::new(store),
            what: format!("directory {}", dir.display()),
        })
    }

    /// A bucket of an S3-compatible server.
    pub fn s3(s: &S3Settings) -> Result<Storage, StorageError> {
        let region = if s.region.is_empty() {
            "us-east-1"
        } else {
            &s.region
        };
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&s.bucket)
            .with_region(region)
            .with_access_key_id(&s.access_key_id)
            .with_secret_access_key(&s.secret_access_key);
        if let Some(e) = &s.endpoint {
            b = b
                .with_endpoint(e)
                .with_allow_http(e.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        Ok(Storage {
            store: Arc::new(b.build()?),
            what: format!("s3 bucket {}", s.bucket),
        })
    }

    /// The storage `settings` name; `data_dir` is where the default one goes (none:
    /// no storage).
    pub fn open(
        settings: &StorageSettings,
        data_dir: Option<&Path>,
    ) -> Result<Option<Storage>, StorageError> {
        match settings {
            StorageSettings::Default => data_dir
                .map(|d| Storage::directory(&d.join("media")))
                .transpose(),
            StorageSettings::Directory(d) => Storage::directory(d).map(Some),
            StorageSettings::S3(s) => Storage::s3(s).map(Some),
        }
    }

    /// Stores the file at `file` under `key`, in parts; nothing is left under `key` when
    /// it fails.
    pub async fn put_file(&self, key: &str, file: &Path) -> Result<u64, StorageError> {
        let mut f = tokio::fs::File::open(file)
            .await
            .map_err(|e| StorageError::Other(format!("{}: {e}", file.display())))?;
        let upload = self.store.put_multipart(&Key::from(key)).await?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buf = vec![0u8; 1024 * 1024];
        let mut total = 0u64;
        loop {
            let n = match f.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(StorageError::Other(format!("{}: {e}", file.display())));
                }
            };
            if let Err(e) = w.wait_for_capacity(2).await {
                return Err(e.into());
            }
            w.write(&buf[..n]);
            total += n as u64;
        }
        w.finish().await?;
        Ok(total)
    }

    /// Stores `bytes` under `key`.
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StorageError> {
        self.store.put(&Key::from(key), bytes.into()).await?;
        Ok(())
    }

    /// The whole object `key` (for small ones: a video's still).
    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        Ok(self.store.get(&Key::from(key)).await?.bytes().await?)
    }

    /// The bytes of `range` of the object `key`.
    pub async fn read(&self, key: &str, range: Range<u64>) -> Result<Bytes, StorageError> {
        Ok(self.store.get_range(&Key::from(key), range).await?)
    }

    /// The bytes of `range` of the object `key`, as they come.
    pub async fn stream(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, StorageError>>, StorageError> {
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        let got = self.store.get_opts(&Key::from(key), opts).await?;
        Ok(got.into_stream().map_err(StorageError::from).boxed())
    }

    /// The size of the object `key`.
    pub async fn size(&self, key: &str) -> Result<u64, StorageError> {
        Ok(self.store.head(&Key::from(key)).await?.size)
    }

    /// Removes the object `key` (gone already: fine).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.store.delete(&Key::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_key_is_never_printed() {
        let s = S3Settings {
            bucket: "b".into(),
            region: String::new(),
            endpoint: None,
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG".into(),
        };
        let shown = format!("{s:?} {:?}", StorageSettings::S3(s.clone()));
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(shown.contains("AKIDEXAMPLE"));
    }

    #[tokio::test]
    async fn a_directory_stores_reads_ranges_and_deletes() {
        let dir = std::env::temp_dir().join(format!("cascade-storage-{}", std::process::id()));
        let st = Storage::directory(&dir).unwrap();
        let file = dir.join("staged");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&file, &data).unwrap();
        assert_eq!(
            st.put_file("videos/a.webm", &file).await.unwrap(),
            3_000_000
        );
        assert_eq!(st.size("videos/a.webm").await.unwrap(), 3_000_000);
        let part = st
            .read("videos/a.webm", 1_000_000..1_000_010)
            .await
            .unwrap();
        assert_eq!(&part[..], &data[1_000_000..1_000_010]);
        st.delete("videos/a.webm").await.unwrap();
        assert!(matches!(
            st.size("videos/a.webm").await,
            Err(StorageError::NotFound)
        ));
        st.delete("videos/a.webm").await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
