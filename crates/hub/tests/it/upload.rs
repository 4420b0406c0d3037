use axum::http::Method;
use sqlrft_hub::stub::HubStub;
use sqlrft_hub::{CommitFile, RepoType, publish_model_dir};

use crate::{TOKEN, client};

const REPO: &str = "alice/sql-cot";

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn create_repo_is_idempotent_and_keeps_privacy() {
    let stub = HubStub::start(Some(TOKEN)).await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let hub = client(&stub, Some(TOKEN), cache.path());
    assert!(
        hub.create_repo(RepoType::Dataset, REPO, true)
            .await
            .unwrap()
    );
    assert!(
        !hub.create_repo(RepoType::Dataset, REPO, true)
            .await
            .unwrap()
    );
    assert_eq!(stub.repo_count(), 1);
    assert_eq!(stub.repo_private(RepoType::Dataset, REPO), Some(true));
}

#[tokio::test]
async fn writes_need_a_token() {
    let stub = HubStub::start(Some(TOKEN)).await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let err = client(&stub, None, cache.path())
        .create_repo(RepoType::Dataset, REPO, false)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(err.to_string().contains("HF_TOKEN"), "{err}");
    assert_eq!(stub.repo_count(), 0);
}

#[tokio::test]
async fn small_files_are_committed_inline() {
    let stub = HubStub::start(Some(TOKEN)).await.unwrap();
    let cache = tempfile::tempdir().unwrap();
    let hub = client(&stub, Some(TOKEN), cache.path());
    hub.create_repo(RepoType::Dataset, REPO, false)
        .await
        .unwrap();
    let card = b"---\nlicense: apache-2.0\n---\n# SQL CoT\n".to_vec();
    let rows = b"{\"a\":1}\n{\"a\":2}\n".to_vec();
    let info = hub
        .commit(
            RepoType::Dataset,
            REPO,
            "main",
            "Add data",
            &[
                CommitFile::from_bytes("README.md", card.clone()),
                CommitFile::from_bytes("data/train.jsonl", rows.clone()),
            ],
        )
        .await
        .unwrap();
    assert!(info.commit_oid.is_some());
    assert!(info.lfs.is_empty());
    assert_eq!(stub.file(RepoType::Dataset, REPO, "README.md"), Some(card));
    assert_eq!(
        stub.file(RepoType::Dataset, REPO, "data/train.jsonl"),
        Some(rows)
    );
    assert_eq!(
        stub.is_lfs(RepoType::Dataset, REPO, "data/train.jsonl"),
        Some(false)
    );
    assert_eq!(stub.commits(RepoType::Dataset, REPO)[0].summary, "Add data");
    assert_eq!(stub.count(Method::POST, "/info/lfs/objects/batch"), 0);
}

#[tokio::test]
async fn large_files_go_through_lfs_basic_upload() {
    let stub = HubStub::start(Some(TOKEN)).await.unwrap();
    stub.set_lfs_threshold(4096);
    let dir = tempfile::tempdir().unwrap();
    let big = pseudo_random(50_000, 1);
    let local = dir.path().join("train.jsonl");
    std::fs::write(&local, &big).unwrap();
    let hub = client(&stub, Some(TOKEN), dir.path());
    hub.create_repo(RepoType::Dataset, REPO, false)
        .await
        .unwrap();
    let info = hub
        .commit(
            RepoType::Dataset,
            REPO,
            "main",
            "Add big",
            &[CommitFile::from_path("data/train.jsonl", &local)],
        )
        .await
        .unwrap();
    assert_eq!(info.lfs, vec!["data/train.jsonl"]);
    assert_eq!(
        stub.file(RepoType::Dataset, REPO, "data/train.jsonl"),
        Some(big)
    );
    assert_eq!(
        stub.is_lfs(RepoType::Dataset, REPO, "data/train.jsonl"),
        Some(true)
    );
    assert_eq!(stub.count(Method::PUT, "/lfs-stub/upload/"), 1);
    assert_eq!(stub.count(Method::POST, "/lfs-stub/verify"), 1);
}

#[tokio::test]
async fn very_large_files_use_multipart_lfs_upload() {
    let stub = HubStub::start(Some(TOKEN)).await.unwrap();
    stub.set_lfs_threshold(1024);
    stub.set_multipart_chunk(Some(20_000));
    let dir = tempfile::tempdir().unwrap();
    let big = pseudo_random(50_001, 2);
    let local = dir.path().join("model.safetensors");
    std::fs::write(&local, &big).unwrap();
    let hub = client(&stub, Some(TOKEN), dir.path());
    hub.create_repo(RepoType::Model, REPO, false).await.unwrap();
    hub.commit(
        RepoType::Model,
        REPO,
        "main",
        "weights",
        &[CommitFile::from_path("model.safetensors", &local)],
    )
    .await
    .unwrap();
    assert_eq!(stub.count(Method::PUT, "/lfs-stub/part/"), 3);
    assert_eq!(
        stub.file(RepoType::Model, REPO, "model.safetensors"),
        Some(big)
    );
}

#[tokio::test]
async fn lfs_upload_survives_transient_errors() {
    let stub = HubStub::start(Some(TOKEN)).await.unwrap();
    stub.set_lfs_threshold(1024);
    stub.fail_next("/info/lfs/objects/batch", 500, 1);
    stub.rate_limit_next("/lfs-stub/upload/", "0", 1);
    stub.fail_next("/commit/", 503, 1);
    let dir = tempfile::tempdir().unwrap();
    let big = pseudo_random(10_000, 3);
    let hub = client(&stub, Some(TOKEN), dir.path());
    hub.create_repo(RepoType::Dataset, REPO, false)
        .await
        .unwrap();
    hub.commit(
        RepoType::Dataset,
        REPO,
        "main",
        "x",
        &[CommitFile::from_bytes("d.bin", big.clone())],
    )
    .await
    .unwrap();
    assert_eq!(stub.file(RepoType::Dataset, REPO, "d.bin"), Some(big));
    assert_eq!(
        stub.commits(RepoType::Dataset, REPO).len(),
        1,
        "a retried commit lands once"
    );
}

#[tokio::test]
async fn republishing_updates_in_place_and_skips_unchanged_files() {
    let stub = HubStub::start(Some(TOKEN)).await.unwrap();
    stub.set_lfs_threshold(2048);
    let dir = tempfile::tempdir().unwrap();
    let hub = client(&stub, Some(TOKEN), dir.path());
    let files = |rows: &[u8], big: &[u8]| {
        vec![
            CommitFile::from_bytes("data/train.jsonl", rows.to_vec()),
            CommitFile::from_bytes("data/big.bin", big.to_vec()),
        ]
    };
    let big = pseudo_random(9000, 4);
    hub.create_repo(RepoType::Dataset, REPO, false)
        .await
        .unwrap();
    hub.commit(
        RepoType::Dataset,
        REPO,
        "main",
        "v1",
        &files(b"{\"a\":1}\n", &big),
    )
    .await
    .unwrap();
    let paths = stub.paths(RepoType::Dataset, REPO);

    // Same content again: nothing to commit, nothing uploaded.
    let again = hub
        .commit(
            RepoType::Dataset,
            REPO,
            "main",
            "v1 again",
            &files(b"{\"a\":1}\n", &big),
        )
        .await
        .unwrap();
    assert_eq!(again.commit_oid, None);
    assert_eq!(again.unchanged.len(), 2);
    assert_eq!(stub.commits(RepoType::Dataset, REPO).len(), 1);
    assert_eq!(stub.count(Method::PUT, "/lfs-stub/upload/"), 1);

    // Changed rows: one new commit touching only that file; paths not duplicated.
    let v2 = hub
        .commit(
            RepoType::Dataset,
            REPO,
            "main",
            "v2",
            &files(b"{\"a\":2}\n", &big),
        )
        .await
        .unwrap();
    assert_eq!(v2.committed, vec!["data/train.jsonl"]);
    assert_eq!(stub.paths(RepoType::Dataset, REPO), paths);
    assert_eq!(
        stub.file(RepoType::Dataset, REPO, "data/train.jsonl")
            .unwrap(),
        b"{\"a\":2}\n"
    );
    assert_eq!(stub.commits(RepoType::Dataset, REPO).len(), 2);
}

#[tokio::test]
async fn publish_model_dir_uploads_the_directory_as_a_model_repo() {
    let stub = HubStub::start(Some(TOKEN)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("out");
    std::fs::create_dir_all(model.join("tokenizer")).unwrap();
    std::fs::write(model.join("config.json"), b"{\"model_type\":\"qwen2\"}").unwrap();
    std::fs::write(model.join("tokenizer/tokenizer.json"), b"{}").unwrap();
    let weights = pseudo_random(30_000, 5);
    std::fs::write(model.join("model.safetensors"), &weights).unwrap();
    std::fs::write(model.join(".DS_Store"), b"junk").unwrap();
    let hub = client(&stub, Some(TOKEN), dir.path());
    let info = publish_model_dir(&hub, "alice/sql-qwen", &model, true, "Upload model")
        .await
        .unwrap();
    assert_eq!(info.lfs, vec!["model.safetensors"]);
    assert_eq!(
        stub.paths(RepoType::Model, "alice/sql-qwen"),
        vec![
            "config.json",
            "model.safetensors",
            "tokenizer/tokenizer.json"
        ]
    );
    assert_eq!(
        stub.repo_private(RepoType::Model, "alice/sql-qwen"),
        Some(true)
    );
    assert_eq!(
        stub.file(RepoType::Model, "alice/sql-qwen", "model.safetensors"),
        Some(weights)
    );
    // And the downloaded copy round-trips through the cache.
    let back = hub
        .download(RepoType::Model, "alice/sql-qwen", "main", "config.json")
        .await
        .unwrap();
    assert_eq!(std::fs::read(back).unwrap(), b"{\"model_type\":\"qwen2\"}");
}

#[tokio::test]
async fn publishing_a_missing_directory_names_it() {
    let stub = HubStub::start(Some(TOKEN)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hub = client(&stub, Some(TOKEN), dir.path());
    let err = publish_model_dir(&hub, "alice/m", &dir.path().join("nope"), false, "x")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}
