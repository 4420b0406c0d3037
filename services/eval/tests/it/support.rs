//! A dataset and sandbox built by `sqlrft quickstart` (once per test binary), the reward
//! service on it, and plans that point at an LLM stub.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use sqlrft_eval::{EndpointSettings, EvalPlan, ModelSpec, Sampling, ScoreWith, Selection, Target};
use sqlrft_llm::Provider;

/// One test item as the stub sees it.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub question: String,
    pub gold_sql: String,
}

/// The quickstart's sandbox and a test set whose questions are unique (the stub tells items
/// apart by their question).
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub sandbox: PathBuf,
    pub test: PathBuf,
    pub items: Vec<Item>,
}

impl Fixture {
    pub fn item(&self, question: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.question == question)
    }
}

/// Built on first use and shared read-only by every test of the binary.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // Each #[tokio::test] has its own runtime; the build gets one of its own.
        std::thread::spawn(build_fixture)
            .join()
            .expect("the fixture builds")
    })
}

fn build_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let built = runtime
        .block_on(sqlrft_builder::run_quickstart(
            &sqlrft_builder::QuickstartArgs {
                out: dir.path().join("quickstart"),
                queries: 60,
                seed: 11,
            },
        ))
        .expect("quickstart builds");
    let text = std::fs::read_to_string(&built.test).expect("test.jsonl");
    let mut seen = HashSet::new();
    let mut lines = Vec::new();
    let mut items = Vec::new();
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).expect("a JSON record");
        let question = record["messages"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str())
            .expect("a user message")
            .to_string();
        if !seen.insert(question.clone()) {
            continue;
        }
        items.push(Item {
            id: record["id"].as_str().expect("an id").to_string(),
            question,
            gold_sql: record["sql"].as_str().expect("gold SQL").to_string(),
        });
        lines.push(line.to_string());
    }
    assert!(
        items.len() >= 8,
        "the quickstart kept only {} test items",
        items.len()
    );
    let test = dir.path().join("test.jsonl");
    std::fs::write(&test, lines.join("\n") + "\n").expect("write test set");
    Fixture {
        sandbox: built.sandbox,
        test,
        items,
        _dir: dir,
    }
}

/// A completion in the distillation format around `sql`.
pub fn answer(sql: &str) -> String {
    format!("<think>look at the schema</think><sql>{sql}</sql>")
}

/// `name=vllm:model@base_url`.
pub fn endpoint(name: &str, model: &str, base_url: &str) -> ModelSpec {
    ModelSpec {
        name: name.into(),
        target: Target::Endpoint {
            provider: Provider::Vllm,
            model: model.into(),
            base_url: Some(base_url.into()),
            api_key_env: None,
        },
        concurrency: None,
        rps: None,
        pricing: None,
    }
}

/// A plan over the fixture, scored in process, with fast retries.
pub fn plan(out: &Path, models: Vec<ModelSpec>) -> EvalPlan {
    let fixture = fixture();
    plan_on(&fixture.test, &fixture.sandbox, out, models)
}

/// A plan over `dataset`, scored in process on `sandbox`, with fast retries.
pub fn plan_on(dataset: &Path, sandbox: &Path, out: &Path, models: Vec<ModelSpec>) -> EvalPlan {
    EvalPlan {
        dataset: dataset.to_path_buf(),
        score_with: ScoreWith::Db(sandbox.to_path_buf()),
        models,
        out: out.to_path_buf(),
        sampling: Sampling {
            samples: 1,
            temperature: 0.0,
            max_tokens: 256,
            seed: 0,
        },
        endpoint: EndpointSettings {
            concurrency: 4,
            retries: 3,
            timeout: Duration::from_secs(20),
            backoff_base: Duration::from_millis(10),
            token_limit_field: None,
        },
        rps: None,
        selection: Selection::default(),
        fresh: false,
        progress: false,
    }
}

/// The reward service on the fixture's sandbox; the one place tests start it.
pub async fn reward_service() -> sqlrft_reward_service::RunningServer {
    sqlrft_reward_service::start(sqlrft_reward_service::RewardConfig {
        db: Some(fixture().sandbox.clone()),
        port: 0,
        ..Default::default()
    })
    .await
    .expect("the reward service starts")
}

/// A local port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}
