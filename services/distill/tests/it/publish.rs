use sqlrft_distill::{PublishDatasetArgs, run_publish_dataset};
use sqlrft_hub::HubArgs;
use sqlrft_hub::RepoType;
use sqlrft_hub::stub::HubStub;

use crate::*;

fn publish_args(
    hub: &HubStub,
    files: Vec<std::path::PathBuf>,
    token: Option<&str>,
) -> PublishDatasetArgs {
    PublishDatasetArgs {
        repo_id: "alice/cot".into(),
        private: false,
        files,
        path_in_repo: "data".into(),
        teacher_model: Some("teacher-70b".into()),
        source_dataset: Some("gretelai/synthetic_text_to_sql".into()),
        license: "apache-2.0".into(),
        message: None,
        out_dir: None,
        hub: HubArgs {
            endpoint: Some(hub.endpoint()),
            token: token.map(str::to_string),
            cache: None,
        },
    }
}

#[tokio::test]
async fn publishing_twice_updates_and_never_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubStub::start(Some(TOKEN)).await.unwrap();
    let train = dir.path().join("train.jsonl");
    let test = dir.path().join("test.jsonl");
    std::fs::write(
        &train,
        "{\"id\":\"a\",\"valid\":true}\n{\"id\":\"b\",\"valid\":false}\n",
    )
    .unwrap();
    std::fs::write(&test, "{\"id\":\"c\",\"valid\":true}\n").unwrap();
    let files = vec![train.clone(), test.clone()];

    let first = run_publish_dataset(publish_args(&hub, files.clone(), Some(TOKEN)))
        .await
        .unwrap();
    assert!(first.commit_oid.is_some());
    let paths = hub.paths(RepoType::Dataset, "alice/cot");
    assert_eq!(
        paths,
        vec![
            "README.md",
            "data/test-00000-of-00001.parquet",
            "data/test.jsonl",
            "data/train-00000-of-00001.parquet",
            "data/train.jsonl"
        ]
    );
    // The Parquet copy holds the JSONL's rows; the card and it are kept locally too.
    let parquet = hub
        .file(
            RepoType::Dataset,
            "alice/cot",
            "data/train-00000-of-00001.parquet",
        )
        .unwrap();
    let local = dir
        .path()
        .join("hf-dataset/data/train-00000-of-00001.parquet");
    assert_eq!(std::fs::read(&local).unwrap(), parquet);
    let conn = sqlrft_duck::duckdb::Connection::open_in_memory().unwrap();
    let ids: String = conn
        .query_row(
            "SELECT string_agg(id || ':' || valid, ',' ORDER BY id) FROM read_parquet(?)",
            [local.to_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ids, "a:true,b:false");
    let card = String::from_utf8(
        hub.file(RepoType::Dataset, "alice/cot", "README.md")
            .unwrap(),
    )
    .unwrap();
    assert!(
        card.contains("- split: test\n    path:\n    - data/test-00000-of-00001.parquet"),
        "{card}"
    );
    assert!(
        card.contains("| train | `data/train.jsonl` | 2 | 1 | 1 | 0 |"),
        "{card}"
    );

    // Same files again: nothing new.
    let second = run_publish_dataset(publish_args(&hub, files.clone(), Some(TOKEN)))
        .await
        .unwrap();
    assert_eq!(second.commit_oid, None);
    assert_eq!(hub.commits(RepoType::Dataset, "alice/cot").len(), 1);
    assert_eq!(hub.repo_count(), 1);

    // Changed rows: one more commit, same paths, new content.
    std::fs::write(&train, "{\"id\":\"a\",\"valid\":true}\n").unwrap();
    let third = run_publish_dataset(publish_args(&hub, files, Some(TOKEN)))
        .await
        .unwrap();
    assert!(third.committed.contains(&"data/train.jsonl".to_string()));
    assert!(
        third
            .committed
            .contains(&"data/train-00000-of-00001.parquet".to_string())
    );
    assert!(!third.committed.contains(&"data/test.jsonl".to_string()));
    assert!(
        !third
            .committed
            .contains(&"data/test-00000-of-00001.parquet".to_string())
    );
    assert_eq!(hub.paths(RepoType::Dataset, "alice/cot"), paths);
    assert_eq!(
        hub.file(RepoType::Dataset, "alice/cot", "data/train.jsonl")
            .unwrap(),
        std::fs::read(&train).unwrap()
    );
    assert_eq!(hub.commits(RepoType::Dataset, "alice/cot").len(), 2);
}

#[tokio::test]
async fn large_outputs_are_published_through_lfs() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubStub::start(Some(TOKEN)).await.unwrap();
    hub.set_lfs_threshold(64 * 1024);
    let big = dir.path().join("train.jsonl");
    let line = format!("{{\"id\":\"x\",\"generation\":\"{}\"}}\n", "y".repeat(1000));
    std::fs::write(&big, line.repeat(200)).unwrap();
    let info = run_publish_dataset(publish_args(&hub, vec![big.clone()], Some(TOKEN)))
        .await
        .unwrap();
    // The JSONL for its size; the Parquet copy, being binary, always (as the Hub decides).
    assert_eq!(
        info.lfs,
        vec!["data/train.jsonl", "data/train-00000-of-00001.parquet"]
    );
    assert_eq!(
        hub.is_lfs(RepoType::Dataset, "alice/cot", "data/train.jsonl"),
        Some(true)
    );
    assert_eq!(
        hub.file(RepoType::Dataset, "alice/cot", "data/train.jsonl")
            .unwrap(),
        std::fs::read(&big).unwrap()
    );
}

#[tokio::test]
async fn publishing_without_a_token_says_to_set_hf_token() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubStub::start(Some(TOKEN)).await.unwrap();
    let f = dir.path().join("train.jsonl");
    std::fs::write(&f, "{\"id\":\"a\"}\n").unwrap();
    let err = format!(
        "{:#}",
        run_publish_dataset(publish_args(&hub, vec![f], None))
            .await
            .unwrap_err()
    );
    assert!(err.contains("HF_TOKEN"), "{err}");
}

#[tokio::test]
async fn publishing_a_missing_file_names_it() {
    let hub = HubStub::start(Some(TOKEN)).await.unwrap();
    let err = run_publish_dataset(publish_args(
        &hub,
        vec!["/nope/x.jsonl".into()],
        Some(TOKEN),
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("/nope/x.jsonl"), "{err}");
}
