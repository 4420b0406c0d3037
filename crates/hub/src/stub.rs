//! An in-memory Hugging Face Hub for tests, on real HTTP at 127.0.0.1:0.
//!
//! It implements just what sqlrft uses: tree listing, `resolve` downloads (LFS files answer
//! with a redirect carrying `X-Linked-Etag`, like the Hub), repo creation, `preupload`, the
//! NDJSON commit, the Git LFS batch API with basic and multipart uploads and verification,
//! bearer-token checks (401), and injected failures (429 with `Retry-After`, 5xx).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::client::RepoType;

/// A commit the stub accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubCommit {
    /// The commit id the stub answered.
    pub oid: String,
    /// The header's summary.
    pub summary: String,
    /// Paths added or updated.
    pub paths: Vec<String>,
}

/// A request the stub received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StubHubRequest {
    /// HTTP method.
    pub method: Method,
    /// Path (without query).
    pub path: String,
}

#[derive(Debug, Clone)]
struct StoredFile {
    content: Vec<u8>,
    lfs: bool,
}

impl StoredFile {
    /// The oid the Hub reports: SHA-256 for LFS files, the git blob id otherwise.
    fn oid(&self) -> String {
        if self.lfs {
            sha256_hex(&self.content)
        } else {
            git_oid(&self.content)
        }
    }
}

#[derive(Debug, Default)]
struct StubRepo {
    private: bool,
    files: BTreeMap<String, StoredFile>,
    commits: Vec<StubCommit>,
}

impl StubRepo {
    /// The commit `main` points at, for `X-Repo-Commit`: the last commit, or for files put in
    /// directly, a hash of the tree (so changing a file moves it, as a commit would).
    fn head(&self) -> String {
        if let Some(last) = self.commits.last() {
            return last.oid.clone();
        }
        let mut h = Sha1::new();
        for (path, file) in &self.files {
            h.update(path.as_bytes());
            h.update(file.oid().as_bytes());
        }
        hex::encode(h.finalize())
    }
}

#[derive(Debug)]
struct Fault {
    path_contains: String,
    status: u16,
    retry_after: Option<String>,
    remaining: usize,
}

#[derive(Debug, Default)]
struct HubState {
    base_url: String,
    token: Option<String>,
    repos: HashMap<(RepoType, String), StubRepo>,
    lfs_objects: HashMap<String, Vec<u8>>,
    lfs_parts: HashMap<(String, u64), Vec<u8>>,
    faults: Vec<Fault>,
    requests: Vec<StubHubRequest>,
    lfs_threshold: u64,
    multipart_chunk: Option<u64>,
}

type Shared = Arc<Mutex<HubState>>;

/// A running Hub stub; it stops when dropped.
pub struct HubStub {
    addr: std::net::SocketAddr,
    state: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl HubStub {
    /// Starts a stub. With `token`, writes (and reads of private repos) need
    /// `Authorization: Bearer {token}`.
    pub async fn start(token: Option<&str>) -> std::io::Result<HubStub> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state: Shared = Arc::new(Mutex::new(HubState {
            base_url: format!("http://{addr}"),
            token: token.map(str::to_string),
            lfs_threshold: 10 * 1024 * 1024,
            ..HubState::default()
        }));
        let app = Router::new()
            .route("/api/repos/create", post(create_repo))
            .route("/api/{kind}/{owner}/{name}/tree/{rev}", get(tree))
            .route(
                "/api/{kind}/{owner}/{name}/preupload/{rev}",
                post(preupload),
            )
            .route("/api/{kind}/{owner}/{name}/commit/{rev}", post(commit))
            .route("/api/lfs-stub/object/{oid}", get(lfs_object))
            .route("/api/lfs-stub/upload/{oid}", put(lfs_put))
            .route("/api/lfs-stub/part/{oid}/{part}", put(lfs_put_part))
            .route("/api/lfs-stub/complete/{oid}", post(lfs_complete))
            .route("/api/lfs-stub/verify", post(lfs_verify))
            .route(
                "/datasets/{owner}/{name}/resolve/{rev}/{*path}",
                get(resolve_dataset),
            )
            .route("/{owner}/{name}/resolve/{rev}/{*path}", get(resolve_model))
            .route(
                "/datasets/{owner}/{name}/info/lfs/objects/batch",
                post(lfs_batch_dataset),
            )
            .route(
                "/{owner}/{name}/info/lfs/objects/batch",
                post(lfs_batch_model),
            )
            .layer(middleware::from_fn_with_state(
                state.clone(),
                record_and_inject,
            ))
            .with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(HubStub {
            addr,
            state,
            server,
        })
    }

    /// `http://127.0.0.1:PORT`, to use as `HF_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        self.state.lock().expect("hub stub lock")
    }

    /// Files of at least this many bytes go to LFS (default 10 MiB, like the Hub).
    pub fn set_lfs_threshold(&self, bytes: u64) {
        self.lock().lfs_threshold = bytes;
    }

    /// LFS objects larger than `chunk` are uploaded in parts of `chunk` bytes.
    pub fn set_multipart_chunk(&self, chunk: Option<u64>) {
        self.lock().multipart_chunk = chunk;
    }

    /// Puts a file into a repo directly (creating the repo), for download tests.
    pub fn add_file(
        &self,
        kind: RepoType,
        repo_id: &str,
        path: &str,
        content: &[u8],
        private: bool,
    ) {
        let mut s = self.lock();
        let lfs = content.len() as u64 >= s.lfs_threshold;
        let repo = s.repos.entry((kind, repo_id.to_string())).or_default();
        repo.private = private;
        repo.files.insert(
            path.to_string(),
            StoredFile {
                content: content.to_vec(),
                lfs,
            },
        );
        if lfs {
            s.lfs_objects.insert(sha256_hex(content), content.to_vec());
        }
    }

    /// A file's content.
    pub fn file(&self, kind: RepoType, repo_id: &str, path: &str) -> Option<Vec<u8>> {
        let s = self.lock();
        Some(
            s.repos
                .get(&(kind, repo_id.to_string()))?
                .files
                .get(path)?
                .content
                .clone(),
        )
    }

    /// Whether a file is stored through LFS.
    pub fn is_lfs(&self, kind: RepoType, repo_id: &str, path: &str) -> Option<bool> {
        let s = self.lock();
        Some(
            s.repos
                .get(&(kind, repo_id.to_string()))?
                .files
                .get(path)?
                .lfs,
        )
    }

    /// Paths in a repo, sorted.
    pub fn paths(&self, kind: RepoType, repo_id: &str) -> Vec<String> {
        let s = self.lock();
        s.repos
            .get(&(kind, repo_id.to_string()))
            .map(|r| r.files.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Commits made to a repo, oldest first.
    pub fn commits(&self, kind: RepoType, repo_id: &str) -> Vec<StubCommit> {
        let s = self.lock();
        s.repos
            .get(&(kind, repo_id.to_string()))
            .map(|r| r.commits.clone())
            .unwrap_or_default()
    }

    /// `Some(private)` when the repo exists.
    pub fn repo_private(&self, kind: RepoType, repo_id: &str) -> Option<bool> {
        self.lock()
            .repos
            .get(&(kind, repo_id.to_string()))
            .map(|r| r.private)
    }

    /// Number of repos.
    pub fn repo_count(&self) -> usize {
        self.lock().repos.len()
    }

    /// Answers the next `times` requests whose path contains `path_contains` with `status`.
    pub fn fail_next(&self, path_contains: &str, status: u16, times: usize) {
        self.push_fault(path_contains, status, None, times);
    }

    /// Answers the next `times` matching requests with 429 and `Retry-After: {retry_after}`.
    pub fn rate_limit_next(&self, path_contains: &str, retry_after: &str, times: usize) {
        self.push_fault(path_contains, 429, Some(retry_after.to_string()), times);
    }

    fn push_fault(
        &self,
        path_contains: &str,
        status: u16,
        retry_after: Option<String>,
        times: usize,
    ) {
        self.lock().faults.push(Fault {
            path_contains: path_contains.to_string(),
            status,
            retry_after,
            remaining: times,
        });
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<StubHubRequest> {
        self.lock().requests.clone()
    }

    /// Requests with this method whose path contains `path_contains`.
    pub fn count(&self, method: Method, path_contains: &str) -> usize {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.method == method && r.path.contains(path_contains))
            .count()
    }
}

impl Drop for HubStub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn git_oid(bytes: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    hex::encode(h.finalize())
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

fn kind_of(segment: &str) -> Option<RepoType> {
    match segment {
        "datasets" => Some(RepoType::Dataset),
        "models" => Some(RepoType::Model),
        _ => None,
    }
}

fn authorised(state: &HubState, headers: &HeaderMap) -> bool {
    let Some(token) = &state.token else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        == Some(token.as_str())
}

fn unauthorised() -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "Invalid credentials in Authorization header",
    )
}

async fn record_and_inject(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let fault = {
        let mut s = state.lock().expect("hub stub lock");
        let path = request.uri().path().to_string();
        s.requests.push(StubHubRequest {
            method: request.method().clone(),
            path: path.clone(),
        });
        s.faults
            .iter_mut()
            .find(|f| f.remaining > 0 && path.contains(&f.path_contains))
            .map(|f| {
                f.remaining -= 1;
                (f.status, f.retry_after.clone())
            })
    };
    match fault {
        Some((status, retry_after)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut response = error(status, "injected failure");
            if let Some(ra) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, ra.parse().expect("ascii header"));
            }
            response
        }
        None => next.run(request).await,
    }
}

async fn create_repo(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let mut s = state.lock().expect("hub stub lock");
    if s.token.is_some() && !authorised(&s, &headers) {
        return unauthorised();
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "body is not JSON");
    };
    let Some(name) = req["name"].as_str() else {
        return error(StatusCode::BAD_REQUEST, "missing name");
    };
    let Some(owner) = req["organization"].as_str() else {
        return error(StatusCode::BAD_REQUEST, "the stub needs `organization`");
    };
    let kind = match req["type"].as_str().unwrap_or("model") {
        "dataset" => RepoType::Dataset,
        "model" => RepoType::Model,
        other => return error(StatusCode::BAD_REQUEST, format!("unsupported type {other}")),
    };
    let id = format!("{owner}/{name}");
    let url = format!("{}/{}{id}", s.base_url, kind.url_prefix());
    if s.repos.contains_key(&(kind, id.clone())) {
        return (
            StatusCode::CONFLICT,
            axum::Json(json!({"error": "You already created this repo", "url": url})),
        )
            .into_response();
    }
    s.repos.insert(
        (kind, id),
        StubRepo {
            private: req["private"].as_bool().unwrap_or(false),
            ..StubRepo::default()
        },
    );
    axum::Json(json!({"url": url})).into_response()
}

async fn tree(
    State(state): State<Shared>,
    Path((kind, owner, name, _rev)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let s = state.lock().expect("hub stub lock");
    let Some(kind) = kind_of(&kind) else {
        return error(StatusCode::NOT_FOUND, "unknown repo type");
    };
    let Some(repo) = s.repos.get(&(kind, format!("{owner}/{name}"))) else {
        return error(StatusCode::NOT_FOUND, "Repository not found");
    };
    if repo.private && !authorised(&s, &headers) {
        return unauthorised();
    }
    let entries: Vec<Value> = repo
        .files
        .iter()
        .map(|(path, f)| {
            let mut e = json!({
                "type": "file",
                "oid": git_oid(&f.content),
                "size": f.content.len(),
                "path": path,
            });
            if f.lfs {
                e["lfs"] = json!({"oid": sha256_hex(&f.content), "size": f.content.len(), "pointerSize": 132});
            }
            e
        })
        .collect();
    axum::Json(entries).into_response()
}

async fn resolve_dataset(
    state: State<Shared>,
    Path((owner, name, rev, path)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    resolve(state, RepoType::Dataset, owner, name, rev, path, headers)
}

async fn resolve_model(
    state: State<Shared>,
    Path((owner, name, rev, path)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    resolve(state, RepoType::Model, owner, name, rev, path, headers)
}

fn resolve(
    State(state): State<Shared>,
    kind: RepoType,
    owner: String,
    name: String,
    _rev: String,
    path: String,
    headers: HeaderMap,
) -> Response {
    let s = state.lock().expect("hub stub lock");
    let Some(repo) = s.repos.get(&(kind, format!("{owner}/{name}"))) else {
        return error(StatusCode::NOT_FOUND, "Repository not found");
    };
    if repo.private && !authorised(&s, &headers) {
        return unauthorised();
    }
    let Some(file) = repo.files.get(&path) else {
        return error(StatusCode::NOT_FOUND, "Entry not found");
    };
    let etag = format!("\"{}\"", file.oid());
    let commit = (
        header::HeaderName::from_static("x-repo-commit"),
        repo.head(),
    );
    if file.lfs {
        // Like the Hub: LFS content lives elsewhere; the redirect carries its ETag and size.
        let location = format!("{}/api/lfs-stub/object/{}", s.base_url, file.oid());
        return (
            StatusCode::FOUND,
            [
                (header::LOCATION, location),
                (header::HeaderName::from_static("x-linked-etag"), etag),
                commit,
                (
                    header::HeaderName::from_static("x-linked-size"),
                    file.content.len().to_string(),
                ),
            ],
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [(header::ETAG, etag), commit],
        file.content.clone(),
    )
        .into_response()
}

async fn lfs_object(State(state): State<Shared>, Path(oid): Path<String>) -> Response {
    let s = state.lock().expect("hub stub lock");
    match s.lfs_objects.get(&oid) {
        Some(bytes) => (StatusCode::OK, bytes.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such object"),
    }
}

async fn preupload(
    State(state): State<Shared>,
    Path((kind, owner, name, _rev)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let s = state.lock().expect("hub stub lock");
    if !authorised(&s, &headers) {
        return unauthorised();
    }
    let Some(kind) = kind_of(&kind) else {
        return error(StatusCode::NOT_FOUND, "unknown repo type");
    };
    let Some(repo) = s.repos.get(&(kind, format!("{owner}/{name}"))) else {
        return error(StatusCode::NOT_FOUND, "Repository not found");
    };
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "body is not JSON");
    };
    let Some(files) = req["files"].as_array() else {
        return error(StatusCode::BAD_REQUEST, "missing files");
    };
    let mut out = Vec::new();
    for f in files {
        let (Some(path), Some(size)) = (f["path"].as_str(), f["size"].as_u64()) else {
            return error(StatusCode::BAD_REQUEST, "each file needs path and size");
        };
        if f["sample"]
            .as_str()
            .is_none_or(|b| BASE64.decode(b).is_err())
        {
            return error(StatusCode::BAD_REQUEST, "sample must be base64");
        }
        let lfs = size >= s.lfs_threshold
            || [".parquet", ".safetensors", ".bin"]
                .iter()
                .any(|ext| path.ends_with(ext));
        let mut entry = json!({
            "path": path,
            "uploadMode": if lfs { "lfs" } else { "regular" },
            "shouldIgnore": false,
        });
        if let Some(existing) = repo.files.get(path) {
            entry["oid"] = json!(existing.oid());
        }
        out.push(entry);
    }
    axum::Json(json!({"files": out})).into_response()
}

async fn lfs_batch_dataset(
    state: State<Shared>,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    lfs_batch(state, RepoType::Dataset, owner, name, headers, body)
}

async fn lfs_batch_model(
    state: State<Shared>,
    Path((owner, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    lfs_batch(state, RepoType::Model, owner, name, headers, body)
}

fn lfs_batch(
    State(state): State<Shared>,
    kind: RepoType,
    owner: String,
    name: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let s = state.lock().expect("hub stub lock");
    if !authorised(&s, &headers) {
        return unauthorised();
    }
    let Some(name) = name.strip_suffix(".git") else {
        return error(StatusCode::NOT_FOUND, "LFS lives under {repo}.git");
    };
    if !s.repos.contains_key(&(kind, format!("{owner}/{name}"))) {
        return error(StatusCode::NOT_FOUND, "Repository not found");
    }
    let lfs_json = "application/vnd.git-lfs+json";
    if headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) != Some(lfs_json) {
        return error(
            StatusCode::NOT_ACCEPTABLE,
            "Accept must be application/vnd.git-lfs+json",
        );
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "body is not JSON");
    };
    if req["operation"] != "upload" || req["hash_algo"] != "sha256" {
        return error(StatusCode::BAD_REQUEST, "expected an sha256 upload batch");
    }
    let base = &s.base_url;
    let auth = format!("Bearer {}", s.token.clone().unwrap_or_default());
    let mut objects = Vec::new();
    for o in req["objects"].as_array().into_iter().flatten() {
        let (Some(oid), Some(size)) = (o["oid"].as_str(), o["size"].as_u64()) else {
            return error(StatusCode::BAD_REQUEST, "objects need oid and size");
        };
        if s.lfs_objects.contains_key(oid) {
            objects.push(json!({"oid": oid, "size": size}));
            continue;
        }
        let upload = match s.multipart_chunk {
            Some(chunk) if size > chunk => {
                let mut header = serde_json::Map::new();
                header.insert("chunk_size".into(), json!(chunk.to_string()));
                for part in 1..=size.div_ceil(chunk) {
                    header.insert(
                        format!("{part:05}"),
                        json!(format!("{base}/api/lfs-stub/part/{oid}/{part}")),
                    );
                }
                json!({"href": format!("{base}/api/lfs-stub/complete/{oid}"), "header": header})
            }
            _ => json!({"href": format!("{base}/api/lfs-stub/upload/{oid}"), "header": {}}),
        };
        objects.push(json!({
            "oid": oid,
            "size": size,
            "authenticated": true,
            "actions": {
                "upload": upload,
                "verify": {"href": format!("{base}/api/lfs-stub/verify"), "header": {"Authorization": auth}},
            },
        }));
    }
    (
        [(header::CONTENT_TYPE, lfs_json)],
        axum::Json(json!({"transfer": "basic", "objects": objects})),
    )
        .into_response()
}

async fn lfs_put(
    State(state): State<Shared>,
    Path(oid): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Pre-signed storage URLs reject our Hub token, like S3 does.
    if headers.contains_key(header::AUTHORIZATION) {
        return error(
            StatusCode::BAD_REQUEST,
            "pre-signed URL: no Authorization header allowed",
        );
    }
    if sha256_hex(&body) != oid {
        return error(StatusCode::BAD_REQUEST, "content does not match oid");
    }
    state
        .lock()
        .expect("hub stub lock")
        .lfs_objects
        .insert(oid, body.to_vec());
    StatusCode::OK.into_response()
}

async fn lfs_put_part(
    State(state): State<Shared>,
    Path((oid, part)): Path<(String, u64)>,
    body: Bytes,
) -> Response {
    let etag = format!("\"{}\"", sha256_hex(&body));
    state
        .lock()
        .expect("hub stub lock")
        .lfs_parts
        .insert((oid, part), body.to_vec());
    (StatusCode::OK, [(header::ETAG, etag)]).into_response()
}

async fn lfs_complete(
    State(state): State<Shared>,
    Path(oid): Path<String>,
    body: Bytes,
) -> Response {
    let mut s = state.lock().expect("hub stub lock");
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "body is not JSON");
    };
    if req["oid"] != oid.as_str() {
        return error(StatusCode::BAD_REQUEST, "oid mismatch");
    }
    let mut content = Vec::new();
    for p in req["parts"].as_array().into_iter().flatten() {
        let (Some(n), Some(etag)) = (p["partNumber"].as_u64(), p["etag"].as_str()) else {
            return error(StatusCode::BAD_REQUEST, "parts need partNumber and etag");
        };
        let Some(bytes) = s.lfs_parts.get(&(oid.clone(), n)) else {
            return error(
                StatusCode::BAD_REQUEST,
                format!("part {n} was not uploaded"),
            );
        };
        if etag.trim_matches('"') != sha256_hex(bytes) {
            return error(StatusCode::BAD_REQUEST, format!("wrong etag for part {n}"));
        }
        content.extend_from_slice(bytes);
    }
    if sha256_hex(&content) != oid {
        return error(StatusCode::BAD_REQUEST, "assembled parts do not match oid");
    }
    s.lfs_objects.insert(oid, content);
    StatusCode::OK.into_response()
}

async fn lfs_verify(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let s = state.lock().expect("hub stub lock");
    if !authorised(&s, &headers) {
        return unauthorised();
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "body is not JSON");
    };
    let oid = req["oid"].as_str().unwrap_or_default();
    match s.lfs_objects.get(oid) {
        Some(b) if Some(b.len() as u64) == req["size"].as_u64() => StatusCode::OK.into_response(),
        _ => error(StatusCode::NOT_FOUND, "object not uploaded"),
    }
}

async fn commit(
    State(state): State<Shared>,
    Path((kind, owner, name, _rev)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = state.lock().expect("hub stub lock");
    if !authorised(&s, &headers) {
        return unauthorised();
    }
    let Some(kind) = kind_of(&kind) else {
        return error(StatusCode::NOT_FOUND, "unknown repo type");
    };
    let id = format!("{owner}/{name}");
    if !s.repos.contains_key(&(kind, id.clone())) {
        return error(StatusCode::NOT_FOUND, "Repository not found");
    }
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        != Some("application/x-ndjson")
    {
        return error(
            StatusCode::BAD_REQUEST,
            "Content-Type must be application/x-ndjson",
        );
    }
    let text = String::from_utf8_lossy(&body);
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header_line: Option<Value> = lines.next().and_then(|l| serde_json::from_str(l).ok());
    let Some(summary) = header_line
        .as_ref()
        .filter(|h| h["key"] == "header")
        .and_then(|h| h["value"]["summary"].as_str())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "first line must be the header with a summary",
        );
    };
    // Validate every operation before applying any, so a bad commit changes nothing.
    let mut writes = Vec::new();
    let mut deletes = Vec::new();
    for line in lines {
        let Ok(op) = serde_json::from_str::<Value>(line) else {
            return error(StatusCode::BAD_REQUEST, format!("line is not JSON: {line}"));
        };
        let v = &op["value"];
        let Some(path) = v["path"].as_str() else {
            return error(StatusCode::BAD_REQUEST, "operation without path");
        };
        match op["key"].as_str() {
            Some("file") => {
                if v["encoding"] != "base64" {
                    return error(StatusCode::BAD_REQUEST, "only base64 encoding");
                }
                let Some(Ok(content)) = v["content"].as_str().map(|c| BASE64.decode(c)) else {
                    return error(StatusCode::BAD_REQUEST, "content is not base64");
                };
                writes.push((
                    path.to_string(),
                    StoredFile {
                        content,
                        lfs: false,
                    },
                ));
            }
            Some("lfsFile") => {
                let oid = v["oid"].as_str().unwrap_or_default();
                let Some(content) = s.lfs_objects.get(oid) else {
                    return error(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!("LFS object {oid} for {path} was never uploaded"),
                    );
                };
                if v["size"].as_u64() != Some(content.len() as u64) || v["algo"] != "sha256" {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("bad size or algo for {path}"),
                    );
                }
                writes.push((
                    path.to_string(),
                    StoredFile {
                        content: content.clone(),
                        lfs: true,
                    },
                ));
            }
            Some("deletedFile") => deletes.push(path.to_string()),
            other => return error(StatusCode::BAD_REQUEST, format!("unknown key {other:?}")),
        }
    }
    let oid = {
        let mut h = Sha1::new();
        h.update(&body);
        h.update(s.repos[&(kind, id.clone())].commits.len().to_le_bytes());
        hex::encode(h.finalize())
    };
    let url = format!("{}/{}{id}/commit/{oid}", s.base_url, kind.url_prefix());
    let repo = s.repos.get_mut(&(kind, id)).expect("checked above");
    let paths: Vec<String> = writes.iter().map(|(p, _)| p.clone()).collect();
    for (path, file) in writes {
        repo.files.insert(path, file);
    }
    for path in deletes {
        repo.files.remove(&path);
    }
    repo.commits.push(StubCommit {
        oid: oid.clone(),
        summary: summary.to_string(),
        paths,
    });
    axum::Json(json!({"success": true, "commitOid": oid, "commitUrl": url})).into_response()
}
