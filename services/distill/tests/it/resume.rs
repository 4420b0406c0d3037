use std::collections::HashMap;

use sqlrft_distill::run_distill;
use sqlrft_llm::simulated::LlmStub;

use crate::*;

// Killing a real `sqlrft distill` process mid-run is tested with the binary, in cli/tests/it.

#[tokio::test]
async fn rerun_of_a_finished_job_asks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let llm = LlmStub::start(teacher(HashMap::new())).await.unwrap();
    let output = dir.path().join("done.jsonl");
    let flags = local_flags(&llm.base_url(), &output, dir.path());
    run_distill(distill_args(&flags)).await.unwrap();
    let first = std::fs::read(&output).unwrap();
    let asked = llm.request_count();
    let again = run_distill(distill_args(&flags)).await.unwrap();
    assert_eq!(llm.request_count(), asked);
    assert_eq!(std::fs::read(&output).unwrap(), first);
    assert_eq!(again.kept, kept_indexes().len());
}
