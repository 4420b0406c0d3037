//! Creating repositories and committing files, with large files going through Git LFS the
//! way the Hub expects: `preupload` decides the mode, the LFS batch API hands out upload URLs,
//! and the NDJSON commit references LFS objects by SHA-256.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use serde::Deserialize;
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::client::{HubClient, HubError, RepoType, encode_segment, split_repo_id};

const LFS_JSON: &str = "application/vnd.git-lfs+json";
/// Files the preupload endpoint is asked about per request (the Hub's own client uses 256).
const PREUPLOAD_CHUNK: usize = 256;

/// Where a file's content comes from.
#[derive(Debug, Clone)]
pub enum FileSource {
    /// In-memory content (a generated README, a small JSON).
    Bytes(Vec<u8>),
    /// A local file, streamed when large.
    Path(PathBuf),
}

/// A file to put at `path_in_repo`.
#[derive(Debug, Clone)]
pub struct CommitFile {
    /// Destination path inside the repo (`/`-separated).
    pub path_in_repo: String,
    /// The content.
    pub source: FileSource,
}

impl CommitFile {
    /// A file with in-memory content.
    pub fn from_bytes(path_in_repo: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Self {
        CommitFile {
            path_in_repo: path_in_repo.into(),
            source: FileSource::Bytes(bytes.into()),
        }
    }

    /// A file read from `local`.
    pub fn from_path(path_in_repo: impl Into<String>, local: impl Into<PathBuf>) -> Self {
        CommitFile {
            path_in_repo: path_in_repo.into(),
            source: FileSource::Path(local.into()),
        }
    }
}

/// What a commit did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitInfo {
    /// The new commit's id (`None` when nothing changed and no commit was made).
    pub commit_oid: Option<String>,
    /// Web URL of the commit.
    pub commit_url: Option<String>,
    /// Paths written by the commit.
    pub committed: Vec<String>,
    /// Paths skipped because the Hub already had identical content.
    pub unchanged: Vec<String>,
    /// Paths whose content went through LFS.
    pub lfs: Vec<String>,
}

/// Size and hashes of a file about to be committed.
#[derive(Debug, Clone)]
struct UploadInfo {
    size: u64,
    sha256: String,
    git_oid: String,
    sample: Vec<u8>,
}

impl UploadInfo {
    fn from_source(source: &FileSource) -> Result<Self, HubError> {
        match source {
            FileSource::Bytes(b) => {
                Ok(Self::from_reader(&b[..], b.len() as u64)
                    .expect("reading from memory cannot fail"))
            }
            FileSource::Path(p) => {
                let file = std::fs::File::open(p).map_err(|e| HubError::io("opening", p, e))?;
                let len = file
                    .metadata()
                    .map_err(|e| HubError::io("reading metadata of", p, e))?
                    .len();
                Self::from_reader(std::io::BufReader::new(file), len)
                    .map_err(|e| HubError::io("reading", p, e))
            }
        }
    }

    /// One pass computing the SHA-256 (LFS oid) and the git blob SHA-1 (regular-file oid).
    fn from_reader(mut reader: impl Read, len: u64) -> std::io::Result<Self> {
        let mut sha256 = Sha256::new();
        let mut git = Sha1::new();
        git.update(format!("blob {len}\0").as_bytes());
        let mut sample = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            if sample.len() < 512 {
                let take = (512 - sample.len()).min(n);
                sample.extend_from_slice(&buf[..take]);
            }
            sha256.update(&buf[..n]);
            git.update(&buf[..n]);
            size += n as u64;
        }
        if size != len {
            return Err(std::io::Error::other(format!(
                "file changed while hashing ({len} bytes expected, {size} read)"
            )));
        }
        Ok(UploadInfo {
            size,
            sha256: hex::encode(sha256.finalize()),
            git_oid: hex::encode(git.finalize()),
            sample,
        })
    }
}

#[derive(Debug, Deserialize)]
struct PreuploadAnswer {
    files: Vec<PreuploadFile>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PreuploadFile {
    path: String,
    upload_mode: String,
    #[serde(default)]
    should_ignore: bool,
    #[serde(default)]
    oid: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LfsBatchAnswer {
    objects: Vec<LfsBatchObject>,
}

#[derive(Debug, Deserialize)]
struct LfsBatchObject {
    oid: String,
    #[serde(default)]
    actions: Option<LfsActions>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct LfsActions {
    upload: Option<LfsAction>,
    verify: Option<LfsAction>,
}

#[derive(Debug, Deserialize)]
struct LfsAction {
    href: String,
    #[serde(default)]
    header: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CommitAnswer {
    #[serde(default)]
    commit_oid: Option<String>,
    #[serde(default)]
    commit_url: Option<String>,
}

impl HubClient {
    /// Creates `repo_id` unless it exists. Returns true when it was created.
    pub async fn create_repo(
        &self,
        kind: RepoType,
        repo_id: &str,
        private: bool,
    ) -> Result<bool, HubError> {
        let (owner, name) = split_repo_id(repo_id)?;
        let what = format!("creating {} repo `{repo_id}`", kind.name());
        let url = self.url("/api/repos/create");
        let body =
            json!({"name": name, "organization": owner, "type": kind.name(), "private": private});
        let response = self
            .send(&what, || {
                Ok(self.authed(
                    self.http
                        .post(&url)
                        .timeout(self.config.api_timeout)
                        .json(&body),
                ))
            })
            .await?;
        match response.status().as_u16() {
            200..=299 => Ok(true),
            // Already exists (ours or someone else's; the commit will tell which).
            409 => Ok(false),
            _ => Err(crate::client::status_error(&what, response).await),
        }
    }

    /// Commits `files` to `revision` in one commit, uploading large files through LFS and
    /// skipping files whose content the Hub already has at that path.
    pub async fn commit(
        &self,
        kind: RepoType,
        repo_id: &str,
        revision: &str,
        message: &str,
        files: &[CommitFile],
    ) -> Result<CommitInfo, HubError> {
        split_repo_id(repo_id)?;
        let mut infos = Vec::with_capacity(files.len());
        for f in files {
            let source = f.source.clone();
            let info = tokio::task::spawn_blocking(move || UploadInfo::from_source(&source))
                .await
                .expect("hashing does not panic")?;
            infos.push(info);
        }
        let modes = self
            .preupload(kind, repo_id, revision, files, &infos)
            .await?;

        let mut info = CommitInfo::default();
        let mut lines: Vec<Value> = vec![json!({
            "key": "header",
            "value": {"summary": message, "description": ""},
        })];
        let mut lfs_uploads = Vec::new();
        for (file, up) in files.iter().zip(&infos) {
            let path = &file.path_in_repo;
            let Some(remote) = modes.get(path) else {
                return Err(HubError::protocol(
                    "preupload",
                    format!("no upload mode returned for `{path}`"),
                ));
            };
            if remote.should_ignore {
                tracing::warn!(%path, "the Hub ignores this path (.gitignore); not uploaded");
                continue;
            }
            // The Hub's LFS storage cannot hold empty objects.
            let lfs = remote.upload_mode == "lfs" && up.size > 0;
            let local_oid = if lfs { &up.sha256 } else { &up.git_oid };
            if remote.oid.as_deref() == Some(local_oid.as_str()) {
                info.unchanged.push(path.clone());
                continue;
            }
            if lfs {
                lines.push(json!({"key": "lfsFile", "value": {
                    "path": path, "algo": "sha256", "oid": up.sha256, "size": up.size,
                }}));
                lfs_uploads.push((file, up));
                info.lfs.push(path.clone());
            } else {
                let bytes = read_source(&file.source).await?;
                lines.push(json!({"key": "file", "value": {
                    "content": BASE64.encode(&bytes), "path": path, "encoding": "base64",
                }}));
            }
            info.committed.push(path.clone());
        }
        if info.committed.is_empty() {
            tracing::info!(repo_id, "nothing changed; no commit made");
            return Ok(info);
        }
        self.upload_lfs(kind, repo_id, revision, &lfs_uploads)
            .await?;

        let what = format!("committing to {} `{repo_id}`", kind.name());
        let mut body = Vec::new();
        for line in &lines {
            serde_json::to_writer(&mut body, line).expect("JSON values serialise");
            body.push(b'\n');
        }
        let url = self.url(&format!(
            "/api/{}/{repo_id}/commit/{}",
            kind.api_segment(),
            encode_segment(revision)
        ));
        let answer: CommitAnswer = self
            .send_json(&what, || {
                Ok(self.authed(
                    self.http
                        .post(&url)
                        .header(CONTENT_TYPE, "application/x-ndjson")
                        .body(body.clone()),
                ))
            })
            .await?;
        info.commit_oid = answer.commit_oid;
        info.commit_url = answer.commit_url;
        Ok(info)
    }

    /// Asks the Hub, per file, whether it goes to LFS and what it currently holds.
    async fn preupload(
        &self,
        kind: RepoType,
        repo_id: &str,
        revision: &str,
        files: &[CommitFile],
        infos: &[UploadInfo],
    ) -> Result<HashMap<String, PreuploadFile>, HubError> {
        let what = format!("preupload to {} `{repo_id}`", kind.name());
        let url = self.url(&format!(
            "/api/{}/{repo_id}/preupload/{}",
            kind.api_segment(),
            encode_segment(revision)
        ));
        let mut modes = HashMap::new();
        let pairs: Vec<_> = files.iter().zip(infos).collect();
        for chunk in pairs.chunks(PREUPLOAD_CHUNK) {
            let body = json!({"files": chunk.iter().map(|(f, i)| json!({
                "path": f.path_in_repo,
                "sample": BASE64.encode(&i.sample),
                "size": i.size,
                "sha": i.sha256,
            })).collect::<Vec<_>>()});
            let answer: PreuploadAnswer = self
                .send_json(&what, || {
                    Ok(self.authed(
                        self.http
                            .post(&url)
                            .timeout(self.config.api_timeout)
                            .json(&body),
                    ))
                })
                .await?;
            for f in answer.files {
                modes.insert(f.path.clone(), f);
            }
        }
        Ok(modes)
    }

    /// Uploads LFS objects the Hub does not have yet.
    async fn upload_lfs(
        &self,
        kind: RepoType,
        repo_id: &str,
        revision: &str,
        uploads: &[(&CommitFile, &UploadInfo)],
    ) -> Result<(), HubError> {
        if uploads.is_empty() {
            return Ok(());
        }
        let what = format!("LFS batch for {} `{repo_id}`", kind.name());
        let url = self.url(&format!(
            "/{}{repo_id}.git/info/lfs/objects/batch",
            kind.url_prefix()
        ));
        let body = json!({
            "operation": "upload",
            "transfers": ["basic", "multipart"],
            "objects": uploads.iter().map(|(_, i)| json!({"oid": i.sha256, "size": i.size})).collect::<Vec<_>>(),
            "hash_algo": "sha256",
            "ref": {"name": revision},
        });
        let answer: LfsBatchAnswer = self
            .send_json(&what, || {
                Ok(self.authed(
                    self.http
                        .post(&url)
                        .timeout(self.config.api_timeout)
                        .header(ACCEPT, LFS_JSON)
                        .header(CONTENT_TYPE, LFS_JSON)
                        .json(&body),
                ))
            })
            .await?;
        for object in answer.objects {
            if let Some(error) = object.error {
                return Err(HubError::protocol(
                    &what,
                    format!("object {} refused: {error}", object.oid),
                ));
            }
            let Some((file, up)) = uploads.iter().find(|(_, i)| i.sha256 == object.oid) else {
                return Err(HubError::protocol(
                    &what,
                    format!("unknown object {}", object.oid),
                ));
            };
            // No actions: the Hub already stores this object.
            let Some(actions) = object.actions else {
                continue;
            };
            if let Some(upload) = actions.upload {
                self.put_lfs_object(&file.path_in_repo, &file.source, up, &upload)
                    .await?;
            }
            if let Some(verify) = actions.verify {
                let what = format!("verifying LFS upload of `{}`", file.path_in_repo);
                let body = json!({"oid": up.sha256, "size": up.size});
                self.send_ok(&what, || {
                    let mut b = self
                        .http
                        .post(&verify.href)
                        .header(ACCEPT, LFS_JSON)
                        .header(CONTENT_TYPE, LFS_JSON)
                        .json(&body);
                    for (k, v) in &verify.header {
                        b = b.header(k, v);
                    }
                    Ok(b)
                })
                .await?;
            }
        }
        Ok(())
    }

    /// PUTs one LFS object: in one request ("basic"), or in parts when the Hub's action
    /// carries a `chunk_size` and numbered part URLs ("multipart").
    async fn put_lfs_object(
        &self,
        path: &str,
        source: &FileSource,
        up: &UploadInfo,
        action: &LfsAction,
    ) -> Result<(), HubError> {
        let what = format!("uploading `{path}` to LFS");
        let Some(chunk_size) = action.header.get("chunk_size") else {
            // Pre-signed URL: its own headers only, never our token.
            self.send_ok(&what, || {
                let mut b = self
                    .http
                    .put(&action.href)
                    .header(CONTENT_LENGTH, up.size)
                    .body(body_of(source, 0, up.size)?);
                for (k, v) in &action.header {
                    b = b.header(k, v);
                }
                Ok(b)
            })
            .await?;
            return Ok(());
        };
        let chunk_size: u64 =
            chunk_size.parse().ok().filter(|c| *c > 0).ok_or_else(|| {
                HubError::protocol(&what, format!("bad chunk_size `{chunk_size}`"))
            })?;
        let mut parts: Vec<(u64, &String)> = action
            .header
            .iter()
            .filter_map(|(k, v)| Some((k.parse::<u64>().ok()?, v)))
            .collect();
        parts.sort_by_key(|(n, _)| *n);
        if parts.len() as u64 != up.size.div_ceil(chunk_size) {
            return Err(HubError::protocol(
                &what,
                format!(
                    "{} part URLs for {} bytes in chunks of {chunk_size}",
                    parts.len(),
                    up.size
                ),
            ));
        }
        let mut etags = Vec::with_capacity(parts.len());
        for (i, (number, part_url)) in parts.iter().enumerate() {
            let offset = i as u64 * chunk_size;
            let len = chunk_size.min(up.size - offset);
            let response = self
                .send_ok(&what, || {
                    Ok(self
                        .http
                        .put(part_url.as_str())
                        .header(CONTENT_LENGTH, len)
                        .body(body_of(source, offset, len)?))
                })
                .await?;
            let etag = response
                .headers()
                .get(reqwest::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .filter(|e| !e.is_empty())
                .ok_or_else(|| HubError::protocol(&what, format!("part {number} has no ETag")))?
                .to_string();
            etags.push(json!({"partNumber": number, "etag": etag}));
        }
        let body = json!({"oid": up.sha256, "parts": etags});
        self.send_ok(&what, || {
            Ok(self
                .http
                .post(&action.href)
                .header(ACCEPT, LFS_JSON)
                .header(CONTENT_TYPE, LFS_JSON)
                .json(&body))
        })
        .await?;
        Ok(())
    }

    /// Commits every file under `dir` (hidden files and directories skipped) to the repo root.
    pub async fn upload_dir(
        &self,
        kind: RepoType,
        repo_id: &str,
        dir: &Path,
        message: &str,
    ) -> Result<CommitInfo, HubError> {
        let mut files = Vec::new();
        collect_files(dir, dir, &mut files)?;
        if files.is_empty() {
            return Err(HubError::io(
                "uploading",
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no files to upload"),
            ));
        }
        self.commit(kind, repo_id, "main", message, &files).await
    }
}

/// Creates the model repo `repo_id` if needed and uploads every file of `dir` (config.json,
/// tokenizer.json, *.safetensors, README.md, …) in one commit. Rerunning updates files in
/// place and skips unchanged ones.
pub async fn publish_model_dir(
    client: &HubClient,
    repo_id: &str,
    dir: &Path,
    private: bool,
    message: &str,
) -> Result<CommitInfo, HubError> {
    if !dir.is_dir() {
        return Err(HubError::io(
            "publishing model directory",
            dir,
            std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
        ));
    }
    client
        .create_repo(RepoType::Model, repo_id, private)
        .await?;
    client
        .upload_dir(RepoType::Model, repo_id, dir, message)
        .await
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<CommitFile>) -> Result<(), HubError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| HubError::io("listing", dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| HubError::io("listing", dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).expect("walked from root");
            let rel: Vec<_> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect();
            out.push(CommitFile::from_path(rel.join("/"), path));
        }
    }
    Ok(())
}

async fn read_source(source: &FileSource) -> Result<Vec<u8>, HubError> {
    match source {
        FileSource::Bytes(b) => Ok(b.clone()),
        FileSource::Path(p) => tokio::fs::read(p)
            .await
            .map_err(|e| HubError::io("reading", p, e)),
    }
}

/// A streaming body of `len` bytes of `source` starting at `offset`.
fn body_of(source: &FileSource, offset: u64, len: u64) -> Result<reqwest::Body, HubError> {
    match source {
        FileSource::Bytes(b) => Ok(reqwest::Body::from(
            b[offset as usize..(offset + len) as usize].to_vec(),
        )),
        FileSource::Path(p) => {
            use std::io::{Seek, SeekFrom};
            let mut file = std::fs::File::open(p).map_err(|e| HubError::io("opening", p, e))?;
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| HubError::io("seeking in", p, e))?;
            let reader = tokio::fs::File::from_std(file).take(len);
            Ok(reqwest::Body::wrap_stream(
                tokio_util::io::ReaderStream::new(reader),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_oid_matches_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        let i = UploadInfo::from_reader(&b"hello\n"[..], 6).unwrap();
        assert_eq!(i.git_oid, "ce013625030ba8dba906f756967f9e9ca394464a");
        // `printf 'hello\n' | sha256sum`
        assert_eq!(
            i.sha256,
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        assert_eq!(i.sample, b"hello\n");
    }

    #[test]
    fn sample_is_the_first_512_bytes() {
        let data = vec![7u8; 100_000];
        let i = UploadInfo::from_reader(&data[..], data.len() as u64).unwrap();
        assert_eq!(i.sample.len(), 512);
        assert_eq!(i.size, 100_000);
    }

    #[test]
    fn a_file_that_changes_while_hashed_is_an_error() {
        assert!(UploadInfo::from_reader(&b"abc"[..], 5).is_err());
    }
}
