//! ARCHITECTURE.md's dependency graph is the one cargo builds: every workspace crate's line in
//! the "Dependency graph" block lists exactly its normal dependencies on our own crates, and only
//! `sqlrft-duck` links DuckDB.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

type Graph = BTreeMap<String, BTreeSet<String>>;

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ sits in the workspace root")
}

/// Our crates and, for each, the workspace crates it depends on (normal dependencies, optional
/// ones included: a feature may turn them on), plus whether it depends on `duckdb` itself.
fn cargo_graph() -> (Graph, BTreeSet<String>) {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let packages = metadata["packages"].as_array().expect("packages array");
    let ours: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let mut graph = Graph::new();
    let mut duckdb_users = BTreeSet::new();
    for package in packages {
        let name = package["name"].as_str().unwrap().to_string();
        let mut deps = BTreeSet::new();
        for dep in package["dependencies"].as_array().unwrap() {
            let dep_name = dep["name"].as_str().unwrap();
            // Dev and build dependencies do not shape the product's layering.
            if !dep["kind"].is_null() {
                continue;
            }
            if dep_name == "duckdb" {
                duckdb_users.insert(name.clone());
            }
            if ours.contains(dep_name) && dep_name != name {
                deps.insert(dep_name.to_string());
            }
        }
        graph.insert(name, deps);
    }
    (graph, duckdb_users)
}

/// The block after the "## Dependency graph" heading: `crate -> dep, dep` per line (`-` for none).
fn documented_graph() -> Graph {
    let text =
        std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let section = text
        .split("## Dependency graph")
        .nth(1)
        .expect("ARCHITECTURE.md has a `## Dependency graph` section");
    let block = section
        .split("```")
        .nth(1)
        .expect("the section holds a fenced block");
    block
        .lines()
        .filter(|line| line.contains("->"))
        .map(|line| {
            let (name, deps) = line.split_once("->").unwrap();
            let deps = deps
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty() && *d != "-")
                .map(str::to_string)
                .collect();
            (name.trim().to_string(), deps)
        })
        .collect()
}

#[test]
fn architecture_md_dependency_graph_matches_cargo_metadata() {
    let (actual, _) = cargo_graph();
    let documented = documented_graph();
    let mut problems = Vec::new();
    for (name, deps) in &actual {
        match documented.get(name) {
            None => problems.push(format!(
                "{name} is missing from ARCHITECTURE.md (cargo: {deps:?})"
            )),
            Some(doc) if doc != deps => problems.push(format!(
                "{name}: ARCHITECTURE.md says {doc:?}, cargo says {deps:?}"
            )),
            Some(_) => {}
        }
    }
    for name in documented.keys().filter(|n| !actual.contains_key(*n)) {
        problems.push(format!(
            "ARCHITECTURE.md lists {name}, which is not a workspace crate"
        ));
    }
    assert!(
        problems.is_empty(),
        "update ARCHITECTURE.md's dependency graph:\n{}",
        problems.join("\n")
    );
}

#[test]
fn only_the_duck_crate_links_duckdb() {
    let (_, duckdb_users) = cargo_graph();
    assert_eq!(duckdb_users, BTreeSet::from(["sqlrft-duck".to_string()]));
}
