//! Listing repo files and downloading them into an on-disk cache.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use reqwest::header::{CONTENT_LENGTH, ETAG, LINK};
use serde::{Deserialize, Serialize};
use sqlrft_files::AtomicFile;

use crate::client::{
    HubClient, HubError, RepoType, encode_path, encode_segment, split_repo_id, transport_error,
};

/// A file in a repository, as the tree API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoEntry {
    /// `file` or `directory`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Path inside the repo.
    pub path: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Git blob id.
    #[serde(default)]
    pub oid: String,
    /// LFS pointer details, for files stored in LFS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lfs: Option<LfsPointer>,
}

/// The LFS object behind a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LfsPointer {
    /// SHA-256 of the content.
    pub oid: String,
    /// Size in bytes.
    pub size: u64,
}

/// What we remember about a cached file, to know when it is stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CacheMeta {
    etag: String,
    size: u64,
}

/// Where a remote file lives and what it is.
struct RemoteFile {
    etag: Option<String>,
    size: Option<u64>,
}

impl HubClient {
    /// Every file of a repo at `revision` (recursive), following the API's pagination.
    pub async fn list_files(
        &self,
        kind: RepoType,
        repo_id: &str,
        revision: &str,
    ) -> Result<Vec<RepoEntry>, HubError> {
        split_repo_id(repo_id)?;
        let what = format!("listing files of {} `{repo_id}`", kind.name());
        let mut next = Some(self.url(&format!(
            "/api/{}/{repo_id}/tree/{}?recursive=true&expand=false",
            kind.api_segment(),
            encode_segment(revision)
        )));
        let mut files = Vec::new();
        while let Some(url) = next.take() {
            let response = self
                .send_ok(&what, || Ok(self.authed(self.http.get(&url))))
                .await?;
            next = response
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let page: Vec<RepoEntry> = response
                .json()
                .await
                .map_err(|e| HubError::protocol(&what, e.to_string()))?;
            files.extend(page.into_iter().filter(|e| e.kind == "file"));
        }
        Ok(files)
    }

    /// The local path of `path` from the repo at `revision`, downloading it unless the
    /// cached copy has the remote's ETag and size. With the Hub unreachable, a cached copy
    /// is used as it is.
    pub async fn download(
        &self,
        kind: RepoType,
        repo_id: &str,
        revision: &str,
        path: &str,
    ) -> Result<PathBuf, HubError> {
        let (owner, name) = split_repo_id(repo_id)?;
        let what = format!("downloading `{path}` from {} `{repo_id}`", kind.name());
        let root = self
            .config
            .cache_dir
            .join(kind.api_segment())
            .join(format!("{owner}--{name}"))
            .join(encode_segment(revision));
        let local = root.join("files").join(path);
        let meta_path = root.join("meta").join(format!("{path}.json"));
        let cached = read_meta(&meta_path)
            .await
            .filter(|m| std::fs::metadata(&local).is_ok_and(|f| f.len() == m.size));
        let url = self.url(&format!(
            "/{}{repo_id}/resolve/{}/{}",
            kind.url_prefix(),
            encode_segment(revision),
            encode_path(path)
        ));

        let remote = match self.head(&what, &url).await {
            Ok(remote) => remote,
            Err(err) if cached.is_some() && matches!(err.status(), None | Some(500..)) => {
                tracing::warn!(error = %err, path = %local.display(), "Hub unreachable; using the cached copy");
                return Ok(local);
            }
            Err(err) => return Err(err),
        };
        if let (Some(meta), Some(etag)) = (&cached, &remote.etag)
            && meta.etag == *etag
            && remote.size.is_none_or(|s| s == meta.size)
        {
            tracing::debug!(path = %local.display(), "cache hit");
            return Ok(local);
        }

        let size = self.fetch_to(&what, &url, &local).await?;
        if let Some(expected) = remote.size
            && expected != size
        {
            return Err(HubError::protocol(
                &what,
                format!("expected {expected} bytes, received {size}"),
            ));
        }
        let meta = CacheMeta {
            etag: remote.etag.unwrap_or_default(),
            size,
        };
        let meta_json = serde_json::to_vec(&meta).expect("cache metadata serialises");
        let meta_file = meta_path.clone();
        durably(&meta_path, move || {
            sqlrft_files::write(&meta_file, meta_json)
        })
        .await?;
        Ok(local)
    }

    /// HEAD without following redirects: the Hub puts the ETag and size of LFS files in
    /// `X-Linked-Etag`/`X-Linked-Size` of its redirect.
    async fn head(&self, what: &str, url: &str) -> Result<RemoteFile, HubError> {
        let response = self
            .send(what, || Ok(self.authed(self.head_http.head(url))))
            .await?;
        let status = response.status();
        if !(status.is_success() || status.is_redirection()) {
            return Err(crate::client::status_error(what, response).await);
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header("x-linked-etag")
            .or_else(|| header(ETAG.as_str()))
            .map(|e| e.trim_start_matches("W/").trim_matches('"').to_string());
        let size = header("x-linked-size")
            .or_else(|| header(CONTENT_LENGTH.as_str()))
            .and_then(|s| s.parse().ok());
        Ok(RemoteFile { etag, size })
    }

    /// Streams `url` into `dest` atomically (a reader sees the old copy or the whole new one);
    /// returns bytes written.
    async fn fetch_to(&self, what: &str, url: &str, dest: &Path) -> Result<u64, HubError> {
        let response = self
            .send_ok(what, || Ok(self.authed(self.http.get(url))))
            .await?;
        let mut file = AtomicFile::create(dest)?;
        let mut stream = response.bytes_stream();
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| transport_error(what, url, e))?;
            // A chunk lands in the page cache in microseconds, so it is written here; the fsync
            // in `commit` is the slow step and goes to the blocking pool.
            file.write_all(&chunk)
                .map_err(|e| HubError::io("writing", dest, e))?;
            written += chunk.len() as u64;
        }
        durably(dest, move || file.commit()).await?;
        Ok(written)
    }
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

async fn read_meta(path: &Path) -> Option<CacheMeta> {
    let bytes = tokio::fs::read(path).await.ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Runs a write that fsyncs on the blocking pool, off the async workers.
async fn durably(
    path: &Path,
    write: impl FnOnce() -> Result<(), sqlrft_files::Error> + Send + 'static,
) -> Result<(), HubError> {
    tokio::task::spawn_blocking(write)
        .await
        .map_err(|e| HubError::io("could not finish writing", path, std::io::Error::other(e)))?
        .map_err(HubError::from)
}

impl From<sqlrft_files::Error> for HubError {
    fn from(e: sqlrft_files::Error) -> Self {
        HubError::io(e.action, e.path, e.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_is_found_among_others() {
        let h = r#"<https://hf.co/api/x?cursor=abc>; rel="next", <https://hf.co/a>; rel="prev""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://hf.co/api/x?cursor=abc")
        );
        assert_eq!(next_link(r#"<https://hf.co/a>; rel="prev""#), None);
    }

    #[test]
    fn tree_entries_parse_with_and_without_lfs() {
        let v: Vec<RepoEntry> = serde_json::from_str(
            r#"[{"type":"file","oid":"a","size":3,"path":"README.md"},
                {"type":"directory","oid":"b","size":0,"path":"data"},
                {"type":"file","oid":"c","size":9,"path":"data/x.parquet",
                 "lfs":{"oid":"d","size":9,"pointerSize":130}}]"#,
        )
        .unwrap();
        assert_eq!(v[2].lfs.as_ref().unwrap().oid, "d");
        assert!(v[0].lfs.is_none());
    }
}
