use axum::http::Method;
use sqlrft_hub::RepoType;
use sqlrft_hub::stub::HubStub;

use crate::{TOKEN, client};

const REPO: &str = "gretel/sql";

fn jsonl(rows: usize) -> Vec<u8> {
    (0..rows)
        .map(|i| format!("{{\"id\": {i}, \"sql\": \"SELECT {i}\"}}\n"))
        .collect::<String>()
        .into_bytes()
}

#[tokio::test]
async fn lists_files_recursively_with_sizes() {
    let stub = HubStub::start(Some(TOKEN)).await.unwrap();
    stub.set_lfs_threshold(1000);
    let small = jsonl(3);
    let large = jsonl(100);
    stub.add_file(RepoType::Dataset, REPO, "README.md", b"# card", false);
    stub.add_file(RepoType::Dataset, REPO, "data/train.jsonl", &large, false);
    stub.add_file(RepoType::Dataset, REPO, "data/test.jsonl", &small, false);
    let cache = tempfile::tempdir().unwrap();
    let files = client(&stub, Some(TOKEN), cache.path())
        .list_files(RepoType::Dataset, REPO, "main")
        .await
        .unwrap();
    let got: Vec<(&str, u64, bool)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.size, f.lfs.is_some()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("README.md", 6, false),
            ("data/test.jsonl", small.len() as u64, false),
            ("data/train.jsonl", large.len() as u64, true),
        ]
    );
}

#[tokio::test]
async fn download_caches_and_the_second_call_is_a_hit() {
    let stub = HubStub::start(None).await.unwrap();
    stub.set_lfs_threshold(1000);
    let regular = jsonl(3);
    let lfs = jsonl(200);
    stub.add_file(RepoType::Dataset, REPO, "small.jsonl", &regular, false);
    stub.add_file(RepoType::Dataset, REPO, "data/big.jsonl", &lfs, false);
    let cache = tempfile::tempdir().unwrap();
    let hub = client(&stub, None, cache.path());
    for (path, content) in [("small.jsonl", &regular), ("data/big.jsonl", &lfs)] {
        let local = hub
            .download(RepoType::Dataset, REPO, "main", path)
            .await
            .unwrap();
        assert!(local.starts_with(cache.path()));
        assert_eq!(&std::fs::read(&local).unwrap(), content, "{path}");
    }
    // One content GET per file (the LFS one redirected to its object).
    let gets = stub.count(Method::GET, "/resolve/") + stub.count(Method::GET, "/lfs-stub/object/");
    assert_eq!(gets, 2 + 1);
    for path in ["small.jsonl", "data/big.jsonl"] {
        hub.download(RepoType::Dataset, REPO, "main", path)
            .await
            .unwrap();
    }
    let gets_after =
        stub.count(Method::GET, "/resolve/") + stub.count(Method::GET, "/lfs-stub/object/");
    assert_eq!(gets_after, gets, "cached files must not be fetched again");
    // No temp files are left beside the cached ones.
    let leftovers: Vec<_> = walk(cache.path())
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn changed_remote_file_is_downloaded_again() {
    let stub = HubStub::start(None).await.unwrap();
    stub.add_file(RepoType::Dataset, REPO, "a.jsonl", &jsonl(2), false);
    let cache = tempfile::tempdir().unwrap();
    let hub = client(&stub, None, cache.path());
    hub.download(RepoType::Dataset, REPO, "main", "a.jsonl")
        .await
        .unwrap();
    let updated = jsonl(5);
    stub.add_file(RepoType::Dataset, REPO, "a.jsonl", &updated, false);
    let local = hub
        .download(RepoType::Dataset, REPO, "main", "a.jsonl")
        .await
        .unwrap();
    assert_eq!(std::fs::read(local).unwrap(), updated);
}

#[tokio::test]
async fn rate_limits_and_server_errors_are_retried() {
    let stub = HubStub::start(None).await.unwrap();
    stub.add_file(RepoType::Dataset, REPO, "a.jsonl", &jsonl(2), false);
    stub.rate_limit_next("/tree/", "0", 1);
    stub.fail_next("/resolve/", 503, 2);
    let cache = tempfile::tempdir().unwrap();
    let hub = client(&stub, None, cache.path());
    let files = hub
        .list_files(RepoType::Dataset, REPO, "main")
        .await
        .unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(stub.count(Method::GET, "/tree/"), 2);
    let local = hub
        .download(RepoType::Dataset, REPO, "main", "a.jsonl")
        .await
        .unwrap();
    assert_eq!(std::fs::read(local).unwrap(), jsonl(2));
}

#[tokio::test]
async fn persistent_server_errors_give_up_with_the_status() {
    let stub = HubStub::start(None).await.unwrap();
    stub.add_file(RepoType::Dataset, REPO, "a.jsonl", b"x", false);
    stub.fail_next("/tree/", 502, 100);
    let cache = tempfile::tempdir().unwrap();
    let err = client(&stub, None, cache.path())
        .list_files(RepoType::Dataset, REPO, "main")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(502), "{err}");
    assert!(
        err.to_string().contains("gave up after 4 attempts"),
        "{err}"
    );
    assert_eq!(stub.count(Method::GET, "/tree/"), 4);
}

#[tokio::test]
async fn private_repo_without_token_is_401_with_a_hint() {
    let stub = HubStub::start(Some(TOKEN)).await.unwrap();
    stub.add_file(RepoType::Dataset, REPO, "a.jsonl", b"x", true);
    let cache = tempfile::tempdir().unwrap();
    let err = client(&stub, None, cache.path())
        .download(RepoType::Dataset, REPO, "main", "a.jsonl")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(err.to_string().contains("HF_TOKEN"), "{err}");
    let ok = client(&stub, Some(TOKEN), cache.path())
        .download(RepoType::Dataset, REPO, "main", "a.jsonl")
        .await
        .unwrap();
    assert_eq!(std::fs::read(ok).unwrap(), b"x");
}

#[tokio::test]
async fn missing_file_is_404_naming_the_path() {
    let stub = HubStub::start(None).await.unwrap();
    stub.add_file(RepoType::Dataset, REPO, "a.jsonl", b"x", false);
    let cache = tempfile::tempdir().unwrap();
    let err = client(&stub, None, cache.path())
        .download(RepoType::Dataset, REPO, "main", "nope.parquet")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(err.to_string().contains("nope.parquet"), "{err}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn downloads_use_the_huggingface_hub_cache_layout() {
    let stub = HubStub::start(None).await.unwrap();
    stub.set_lfs_threshold(1000);
    let lfs = jsonl(200);
    stub.add_file(RepoType::Dataset, REPO, "data/big.jsonl", &lfs, false);
    stub.add_file(RepoType::Model, "alice/m", "config.json", b"{}", false);
    let cache = tempfile::tempdir().unwrap();
    let hub = client(&stub, None, cache.path());
    let local = hub
        .download(RepoType::Dataset, REPO, "main", "data/big.jsonl")
        .await
        .unwrap();
    let repo = cache.path().join("datasets--gretel--sql");
    let commit = std::fs::read_to_string(repo.join("refs/main")).unwrap();
    assert_eq!(commit.len(), 40, "a commit hash: {commit}");
    assert_eq!(
        local,
        repo.join("snapshots").join(&commit).join("data/big.jsonl")
    );
    // The snapshot is a relative link to the blob named by the content's hash (its ETag).
    let target = std::fs::read_link(&local).unwrap();
    let sha256 = hex_sha256(&lfs);
    assert_eq!(target, std::path::Path::new("../../../blobs").join(&sha256));
    assert_eq!(
        std::fs::read(repo.join("blobs").join(&sha256)).unwrap(),
        lfs
    );

    let model = hub
        .download(RepoType::Model, "alice/m", "main", "config.json")
        .await
        .unwrap();
    assert!(
        model.starts_with(cache.path().join("models--alice--m/snapshots")),
        "{}",
        model.display()
    );
}

#[tokio::test]
async fn offline_reads_the_cache_and_names_what_is_missing() {
    let stub = HubStub::start(None).await.unwrap();
    stub.add_file(RepoType::Dataset, REPO, "a.jsonl", &jsonl(2), false);
    let cache = tempfile::tempdir().unwrap();
    let online = client(&stub, None, cache.path());
    let fetched = online
        .download(RepoType::Dataset, REPO, "main", "a.jsonl")
        .await
        .unwrap();
    let requests = stub.requests().len();

    let mut config = online.config().clone();
    config.offline = true;
    let offline = sqlrft_hub::HubClient::new(config).unwrap();
    let cached = offline
        .download(RepoType::Dataset, REPO, "main", "a.jsonl")
        .await
        .unwrap();
    assert_eq!(cached, fetched);
    assert_eq!(
        stub.requests().len(),
        requests,
        "offline must not touch the network"
    );

    let err = offline
        .download(RepoType::Dataset, REPO, "main", "b.jsonl")
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("b.jsonl") && message.contains("HF_HUB_OFFLINE"),
        "{message}"
    );
    assert_eq!(stub.requests().len(), requests);
}

#[tokio::test]
async fn python_huggingface_hub_finds_what_we_cached() {
    let Some(python) = python_with("huggingface_hub") else {
        return;
    };
    let stub = HubStub::start(None).await.unwrap();
    stub.set_lfs_threshold(1000);
    let content = jsonl(100);
    stub.add_file(RepoType::Dataset, REPO, "data/train.jsonl", &content, false);
    let cache = tempfile::tempdir().unwrap();
    client(&stub, None, cache.path())
        .download(RepoType::Dataset, REPO, "main", "data/train.jsonl")
        .await
        .unwrap();
    drop(stub); // Python must not need the network.
    let script = format!(
        "from huggingface_hub import hf_hub_download\n\
         print(open(hf_hub_download({REPO:?}, 'data/train.jsonl', repo_type='dataset', \
         cache_dir={:?}, local_files_only=True)).read(), end='')",
        cache.path().display().to_string()
    );
    let output = std::process::Command::new(python)
        .args(["-c", &script])
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(output.stdout, content);
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `$SQLRFT_PYTHON` (else `python3`) when it imports `module`; else prints why the test skips.
fn python_with(module: &str) -> Option<std::path::PathBuf> {
    let python = std::env::var_os("SQLRFT_PYTHON")
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "python3".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "SKIPPED: `{}` cannot import {module}; set SQLRFT_PYTHON to a Python that has it",
            python.display()
        );
    }
    ok.then_some(python)
}
