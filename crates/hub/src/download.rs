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

/// What the Hub says about a file before we fetch it.
struct RemoteFile {
    etag: Option<String>,
    size: Option<u64>,
    /// The commit `revision` resolved to (`X-Repo-Commit`).
    commit: Option<String>,
}

/// Files bigger than this get a progress bar.
const PROGRESS_BYTES: u64 = 16 * 1024 * 1024;

/// One repo's folder in the cache, laid out as `huggingface_hub` lays it out, so the Python
/// tools and we share downloads: `blobs/<etag>` holds each content once,
/// `snapshots/<commit>/<path>` links to its blob, `refs/<revision>` names a branch's commit.
struct RepoCache {
    root: PathBuf,
}

impl RepoCache {
    fn new(cache_dir: &Path, kind: RepoType, repo_id: &str) -> Result<Self, HubError> {
        let (owner, name) = split_repo_id(repo_id)?;
        Ok(RepoCache {
            root: cache_dir.join(format!("{}--{owner}--{name}", kind.api_segment())),
        })
    }

    fn blob(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(etag)
    }

    fn snapshot(&self, commit: &str, path: &str) -> PathBuf {
        self.root.join("snapshots").join(commit).join(path)
    }

    fn reference(&self, revision: &str) -> PathBuf {
        self.root.join("refs").join(revision)
    }

    /// The cached copy of `path` at `revision` (a branch through its ref, or a commit), if any.
    fn find(&self, revision: &str, path: &str) -> Option<PathBuf> {
        let commit = std::fs::read_to_string(self.reference(revision))
            .map(|c| c.trim().to_string())
            .unwrap_or_else(|_| revision.to_string());
        let snapshot = self.snapshot(&commit, path);
        snapshot.is_file().then_some(snapshot)
    }

    /// Links `snapshots/<commit>/<path>` to the blob and records `revision` → `commit`.
    fn record(
        &self,
        revision: &str,
        commit: &str,
        path: &str,
        etag: &str,
    ) -> Result<PathBuf, HubError> {
        let snapshot = self.snapshot(commit, path);
        let parent = snapshot.parent().expect("a snapshot path has a parent");
        std::fs::create_dir_all(parent).map_err(|e| HubError::io("creating", parent, e))?;
        // Relative, as huggingface_hub makes it, so the cache can move as a whole.
        let depth = path.split('/').count() + 1;
        let target = PathBuf::from("../".repeat(depth)).join("blobs").join(etag);
        link(&target, &self.blob(etag), &snapshot)?;
        if revision != commit {
            sqlrft_files::write(&self.reference(revision), commit.as_bytes())?;
        }
        Ok(snapshot)
    }
}

/// Points `link_path` at `target` (relative to it) atomically: a reader sees the old link or
/// the new one.
fn link(target: &Path, blob: &Path, link_path: &Path) -> Result<(), HubError> {
    let name = link_path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let temp = link_path.with_file_name(format!(".{name}.tmp-link-{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    make_link(target, blob, &temp).map_err(|e| HubError::io("linking", &temp, e))?;
    std::fs::rename(&temp, link_path).map_err(|e| HubError::io("linking", link_path, e))
}

#[cfg(unix)]
fn make_link(target: &Path, _blob: &Path, at: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, at)
}

/// Where symlinks need privileges (Windows), a copy, as `huggingface_hub` falls back to.
#[cfg(not(unix))]
fn make_link(_target: &Path, blob: &Path, at: &Path) -> std::io::Result<()> {
    std::fs::copy(blob, at).map(|_| ())
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

    /// The local path of `path` from the repo at `revision`, in the shared cache layout
    /// (see [`HubConfig::cache_dir`](crate::HubConfig)). Downloads unless the cache already
    /// holds the content the Hub names by its ETag. Offline (`HF_HUB_OFFLINE`), or with the
    /// Hub unreachable, a cached copy is used as it is.
    pub async fn download(
        &self,
        kind: RepoType,
        repo_id: &str,
        revision: &str,
        path: &str,
    ) -> Result<PathBuf, HubError> {
        let cache = RepoCache::new(&self.config.cache_dir, kind, repo_id)?;
        let what = format!("downloading `{path}` from {} `{repo_id}`", kind.name());
        if self.config.offline {
            return cache
                .find(revision, path)
                .ok_or_else(|| HubError::NotCached {
                    kind: kind.name(),
                    repo_id: repo_id.to_string(),
                    revision: revision.to_string(),
                    path: path.to_string(),
                    cache: self.config.cache_dir.clone(),
                });
        }
        let url = self.url(&format!(
            "/{}{repo_id}/resolve/{}/{}",
            kind.url_prefix(),
            encode_segment(revision),
            encode_path(path)
        ));
        let remote = match self.head(&what, &url).await {
            Ok(remote) => remote,
            Err(err) if matches!(err.status(), None | Some(500..)) => {
                let Some(cached) = cache.find(revision, path) else {
                    return Err(err);
                };
                tracing::warn!(error = %err, path = %cached.display(), "Hub unreachable; using the cached copy");
                return Ok(cached);
            }
            Err(err) => return Err(err),
        };
        let etag = remote
            .etag
            .filter(|e| !e.is_empty() && !e.contains(['/', '\\']))
            .ok_or_else(|| HubError::protocol(&what, "no usable ETag on the file"))?;
        // Without `X-Repo-Commit` (not the Hub), the revision names the snapshot.
        let commit = remote
            .commit
            .filter(|c| !c.is_empty() && !c.contains(['/', '\\']))
            .unwrap_or_else(|| encode_segment(revision));
        let blob = cache.blob(&etag);
        let have = std::fs::metadata(&blob).is_ok_and(|m| remote.size.is_none_or(|s| s == m.len()));
        if have {
            tracing::debug!(path = %blob.display(), "cache hit");
        } else {
            let size = self.fetch_to(&what, &url, &blob, remote.size).await?;
            if let Some(expected) = remote.size
                && expected != size
            {
                return Err(HubError::protocol(
                    &what,
                    format!("expected {expected} bytes, received {size}"),
                ));
            }
        }
        let (revision, path) = (revision.to_string(), path.to_string());
        tokio::task::spawn_blocking(move || cache.record(&revision, &commit, &path, &etag))
            .await
            .map_err(|e| {
                HubError::io("could not finish writing", &blob, std::io::Error::other(e))
            })?
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
        let commit = header("x-repo-commit");
        Ok(RemoteFile { etag, size, commit })
    }

    /// Streams `url` into `dest` atomically (a reader sees the old copy or the whole new one),
    /// with a progress bar on stderr for large files; returns bytes written.
    async fn fetch_to(
        &self,
        what: &str,
        url: &str,
        dest: &Path,
        expected: Option<u64>,
    ) -> Result<u64, HubError> {
        let response = self
            .send_ok(what, || Ok(self.authed(self.http.get(url))))
            .await?;
        let total = expected.or(response.content_length()).unwrap_or(0);
        let progress = if total >= PROGRESS_BYTES {
            let name = dest
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let bar = indicatif::ProgressBar::new(total)
                .with_message(url.rsplit('/').next().unwrap_or(&name).to_string());
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
                )
                .expect("valid template"),
            );
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
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
            progress.set_position(written);
        }
        progress.finish_and_clear();
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
