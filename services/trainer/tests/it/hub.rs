//! The Hub side of the trainer — `--model` / `--dataset` as repo ids, `publish model` — against
//! sqlrft-hub's Hugging Face Hub stub, served over real HTTP on 127.0.0.1.

use crate::tiny::{self, Family};
use sqlrft_hub::stub::HubStub;
use sqlrft_hub::{HubClient, HubConfig, RepoType};
use sqlrft_trainer::hub::{resolve_dataset, resolve_model};

fn client(stub: &HubStub, token: Option<&str>, cache: &std::path::Path) -> HubClient {
    HubClient::new(HubConfig::new(
        stub.endpoint(),
        token.map(String::from),
        cache.to_path_buf(),
    ))
    .unwrap()
}

#[tokio::test]
async fn downloads_a_model_and_dataset_by_repo_id_with_the_token() {
    let stub = HubStub::start(Some("hf_test")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let served = dir.path().join("served");
    tiny::write_model(&served, Family::Qwen2, 3);
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
    ] {
        stub.add_file(
            RepoType::Model,
            "acme/tiny-qwen",
            f,
            &std::fs::read(served.join(f)).unwrap(),
            true,
        );
    }
    let dataset = dir.path().join("served.jsonl");
    tiny::write_dataset(&dataset, 2);
    stub.add_file(
        RepoType::Dataset,
        "acme/sql-rft",
        "train.jsonl",
        &std::fs::read(&dataset).unwrap(),
        true,
    );

    let hub = client(&stub, Some("hf_test"), &dir.path().join("cache"));
    let got = resolve_model("acme/tiny-qwen", &hub).await.unwrap();
    assert!(got.starts_with(dir.path().join("cache")));
    for f in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
    ] {
        assert_eq!(
            std::fs::read(got.join(f)).unwrap(),
            std::fs::read(served.join(f)).unwrap(),
            "{f}"
        );
    }
    let cfg = sqlrft_trainer::train::TrainConfig::default();
    sqlrft_trainer::train::load_cpu_backend(&got, &cfg).expect("the downloaded directory loads");
    let data = resolve_dataset("acme/sql-rft", &hub).await.unwrap();
    assert_eq!(sqlrft_trainer::data::load_jsonl(&data).unwrap().len(), 2);

    let anonymous = client(&stub, None, &dir.path().join("cache2"));
    let err = resolve_model("acme/tiny-qwen", &anonymous)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("HF_TOKEN"), "{err:#}");
    let err = resolve_dataset("acme/sql-rft:test.jsonl", &hub)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("test.jsonl"), "{err:#}");
    let err = resolve_model("acme/empty", &hub).await.unwrap_err();
    assert!(format!("{err:#}").contains("config.json"), "{err:#}");
}

#[tokio::test]
async fn a_missing_local_path_is_a_clear_error() {
    let stub = HubStub::start(None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let hub = client(&stub, None, dir.path());
    let err = resolve_model("./no/such/model/dir", &hub)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("neither a directory nor a Hub repo id"),
        "{err}"
    );
    let err = resolve_dataset("data/missing.jsonl", &hub)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("sqlrft build"), "{err}");
}

#[tokio::test]
async fn publishes_an_exported_model_directory_to_the_hub() {
    let stub = HubStub::start(Some("hf_write")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = HubClient::new(HubConfig::new(
        stub.endpoint(),
        Some("hf_write".into()),
        dir.path().join("cache"),
    ))
    .unwrap();
    let model = dir.path().join("model");
    tiny::write_model(&model, Family::Qwen2, 5);
    let card = sqlrft_trainer::card::CardInputs {
        dataset: Some("acme/sql-rft".into()),
        eval_report: None,
        license: "apache-2.0".into(),
    };

    let info =
        sqlrft_trainer::cli::publish_model_dir(&client, &model, "acme/qwen-sql", true, &card)
            .await
            .unwrap();
    assert!(info.commit_oid.is_some());
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert_eq!(
            stub.file(RepoType::Model, "acme/qwen-sql", f),
            Some(std::fs::read(model.join(f)).unwrap()),
            "{f}"
        );
    }
    let readme = String::from_utf8(
        stub.file(RepoType::Model, "acme/qwen-sql", "README.md")
            .unwrap(),
    )
    .unwrap();
    assert!(readme.contains("datasets:\n- acme/sql-rft"), "{readme}");
    assert!(readme.contains("## Training"), "{readme}");
    let again =
        sqlrft_trainer::cli::publish_model_dir(&client, &model, "acme/qwen-sql", true, &card)
            .await
            .unwrap();
    assert!(
        again.committed.is_empty(),
        "an unchanged model uploads nothing: {:?}",
        again.committed
    );

    let incomplete = dir.path().join("incomplete");
    std::fs::create_dir_all(&incomplete).unwrap();
    std::fs::copy(model.join("config.json"), incomplete.join("config.json")).unwrap();
    let err = sqlrft_trainer::cli::publish_model_dir(&client, &incomplete, "acme/x", false, &card)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("sqlrft train export"), "{err}");
}
