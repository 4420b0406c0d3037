//! What a query is, read from DuckDB's own parse tree (`json_serialize_sql`): its Spider
//! hardness class, feature tags, the tables it reads, whether its outermost query is ordered,
//! and what makes its result depend on more than the data (LIMIT without ORDER BY, random(),
//! now()).

use std::collections::BTreeSet;

use serde_json::Value;
use sqlrft_core::dataset::{Complexity, QueryTag};

/// Everything the builder needs to know about one parsed query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueryShape {
    pub(crate) complexity: Complexity,
    pub(crate) tags: Vec<QueryTag>,
    pub(crate) tables: Vec<String>,
    pub(crate) ordered: bool,
    pub(crate) limit_without_order: bool,
    /// Volatile functions the query calls (`random`, `now`, …).
    pub(crate) volatile: Vec<String>,
}

const AGGREGATES: &[&str] = &[
    "count",
    "count_star",
    "sum",
    "avg",
    "mean",
    "min",
    "max",
    "median",
    "mode",
    "string_agg",
    "group_concat",
    "list",
    "array_agg",
    "stddev",
    "stddev_samp",
    "stddev_pop",
    "variance",
    "var_samp",
    "var_pop",
    "approx_count_distinct",
    "any_value",
    "first",
    "last",
    "arg_max",
    "arg_min",
    "argmax",
    "argmin",
    "max_by",
    "min_by",
    "bool_and",
    "bool_or",
    "product",
    "quantile",
    "quantile_cont",
    "quantile_disc",
    "approx_quantile",
    "histogram",
    "entropy",
    "kurtosis",
    "skewness",
    "corr",
    "covar_pop",
    "covar_samp",
    "regr_slope",
    "fsum",
    "sumkahan",
    "bit_and",
    "bit_or",
    "bit_xor",
    "favg",
    "listagg",
];

const VOLATILE: &[&str] = &[
    "random",
    "setseed",
    "now",
    "current_date",
    "current_time",
    "current_timestamp",
    "today",
    "get_current_time",
    "get_current_timestamp",
    "transaction_timestamp",
    "localtime",
    "localtimestamp",
    "gen_random_uuid",
    "uuid",
    "uuidv4",
    "uuidv7",
    "current_localtime",
    "current_localtimestamp",
];

/// Analyses a parse tree returned by `sqlrft_duck::parse_select`.
pub(crate) fn analyse(ast: &Value) -> QueryShape {
    let root = &ast["statements"][0]["node"];
    let mut walk = Walk::default();
    walk.node(root, 0);

    let outer = outer_select(root);
    let modifiers = root["modifiers"].as_array().cloned().unwrap_or_default();
    let has_modifier = |name: &str| modifiers.iter().any(|m| m["type"].as_str() == Some(name));
    // The same rule the reward engine and distill use to decide whether row order matters.
    let ordered = sqlrft_duck::outermost_order_by(ast);
    let limited = has_modifier("LIMIT_MODIFIER") || has_modifier("LIMIT_PERCENT_MODIFIER");

    // Spider's components, on the outermost SELECT.
    let (mut component1, mut others) = (0u32, 0u32);
    if let Some(select) = outer {
        let where_clause = &select["where_clause"];
        let where_present = !where_clause.is_null();
        let group_count = select["group_expressions"].as_array().map_or(0, Vec::len);
        let joins = count_joins(&select["from_table"]);
        component1 += u32::from(where_present)
            + u32::from(group_count > 0)
            + u32::from(ordered)
            + u32::from(limited);
        component1 += joins as u32;
        let mut disjunctions = 0;
        let mut likes = 0;
        let mut conditions = 0;
        condition_counts(where_clause, &mut conditions, &mut disjunctions, &mut likes);
        condition_counts(&select["having"], &mut 0, &mut disjunctions, &mut likes);
        component1 += u32::from(disjunctions > 0) + u32::from(likes > 0);

        let select_list = select["select_list"].as_array().map_or(0, Vec::len);
        let mut aggregates = 0;
        for part in [&select["select_list"], &select["having"], where_clause] {
            count_aggregates(part, &mut aggregates);
        }
        for m in &modifiers {
            count_aggregates(&m["orders"], &mut aggregates);
        }
        others = u32::from(aggregates > 1)
            + u32::from(select_list > 1)
            + u32::from(conditions > 1)
            + u32::from(group_count > 1);
    } else {
        // A set operation at the top: count ORDER BY / LIMIT on it.
        component1 += u32::from(ordered) + u32::from(limited);
    }
    let component2 = walk.subqueries + walk.set_operations + walk.ctes + walk.windows.min(1);

    let complexity = if component1 <= 1 && others == 0 && component2 == 0 {
        Complexity::Easy
    } else if (others <= 2 && component1 <= 1 && component2 == 0)
        || (component1 <= 2 && others < 2 && component2 == 0)
    {
        Complexity::Medium
    } else if (others > 2 && component1 <= 2 && component2 == 0)
        || (component1 > 2 && component1 <= 3 && others <= 2 && component2 == 0)
        || (component1 <= 1 && others == 0 && component2 <= 1)
    {
        Complexity::Hard
    } else {
        Complexity::Extra
    };

    let mut tags = BTreeSet::new();
    if walk.wheres > 0 {
        tags.insert(QueryTag::Filter);
    }
    if walk.joins > 0 || walk.tables.len() > 1 && walk.subqueries == 0 && walk.set_operations == 0 {
        tags.insert(QueryTag::Join);
    }
    if walk.aggregates > 0 {
        tags.insert(QueryTag::Aggregate);
    }
    if walk.group_bys > 0 {
        tags.insert(QueryTag::GroupBy);
    }
    if walk.havings > 0 {
        tags.insert(QueryTag::Having);
    }
    if walk.subqueries > 0 {
        tags.insert(QueryTag::Subquery);
    }
    if walk.set_operations > 0 {
        tags.insert(QueryTag::SetOp);
    }
    if walk.windows > 0 {
        tags.insert(QueryTag::Window);
    }
    if walk.ctes > 0 {
        tags.insert(QueryTag::Cte);
    }
    if ordered {
        tags.insert(QueryTag::OrderBy);
    }
    if limited {
        tags.insert(QueryTag::Limit);
    }
    if walk.distincts > 0 {
        tags.insert(QueryTag::Distinct);
    }
    let cte_names = walk.cte_names.clone();
    QueryShape {
        complexity,
        tags: tags.into_iter().collect(),
        tables: walk
            .tables
            .into_iter()
            .filter(|t| !cte_names.contains(t))
            .collect(),
        ordered,
        limit_without_order: walk.limit_without_order,
        volatile: walk.volatile.into_iter().collect(),
    }
}

/// The outermost SELECT node, unless the query is a set operation at the top.
fn outer_select(node: &Value) -> Option<&Value> {
    (node["type"].as_str() == Some("SELECT_NODE")).then_some(node)
}

fn count_joins(table: &Value) -> usize {
    match table["type"].as_str() {
        Some("JOIN") => 1 + count_joins(&table["left"]) + count_joins(&table["right"]),
        _ => 0,
    }
}

fn condition_counts(
    expr: &Value,
    conditions: &mut usize,
    disjunctions: &mut usize,
    likes: &mut usize,
) {
    if expr.is_null() {
        return;
    }
    match expr["type"].as_str() {
        Some("CONJUNCTION_AND") => {
            for child in expr["children"].as_array().into_iter().flatten() {
                condition_counts(child, conditions, disjunctions, likes);
            }
            return;
        }
        Some("CONJUNCTION_OR") => {
            *disjunctions += 1;
            for child in expr["children"].as_array().into_iter().flatten() {
                condition_counts(child, conditions, &mut 0, likes);
            }
            *conditions += 1;
            return;
        }
        _ => {}
    }
    *conditions += 1;
    visit(expr, &mut |v| {
        if let Some(name) = v["function_name"].as_str()
            && matches!(
                name,
                "~~" | "!~~"
                    | "~~*"
                    | "!~~*"
                    | "like"
                    | "ilike"
                    | "not_like"
                    | "not_ilike"
                    | "like_escape"
            )
        {
            *likes += 1;
        }
    });
}

fn count_aggregates(expr: &Value, count: &mut usize) {
    visit(expr, &mut |v| {
        if v["class"].as_str() == Some("FUNCTION")
            && v["function_name"]
                .as_str()
                .is_some_and(|n| AGGREGATES.contains(&n.to_ascii_lowercase().as_str()))
        {
            *count += 1;
        }
        // A subquery's aggregates are its own.
    });
}

/// Visits every JSON object under `value`, not descending into subqueries.
fn visit(value: &Value, f: &mut impl FnMut(&Value)) {
    match value {
        Value::Object(map) => {
            f(value);
            for (key, child) in map {
                if key == "subquery" {
                    continue;
                }
                visit(child, f);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| visit(i, f)),
        _ => {}
    }
}

#[derive(Default)]
struct Walk {
    tables: BTreeSet<String>,
    cte_names: BTreeSet<String>,
    joins: u32,
    wheres: u32,
    aggregates: u32,
    group_bys: u32,
    havings: u32,
    subqueries: u32,
    set_operations: u32,
    windows: u32,
    ctes: u32,
    distincts: u32,
    limit_without_order: bool,
    volatile: BTreeSet<String>,
}

impl Walk {
    /// A query node (SELECT, set operation, …) at nesting `depth`.
    fn node(&mut self, node: &Value, depth: u32) {
        if let Some(map) = node["cte_map"]["map"].as_array() {
            for entry in map {
                self.ctes += 1;
                if let Some(name) = entry["key"].as_str() {
                    self.cte_names.insert(name.to_string());
                }
                self.node(&entry["value"]["query"]["node"], depth + 1);
            }
        }
        let modifiers = node["modifiers"].as_array().cloned().unwrap_or_default();
        let has = |name: &str| modifiers.iter().any(|m| m["type"].as_str() == Some(name));
        if (has("LIMIT_MODIFIER") || has("LIMIT_PERCENT_MODIFIER")) && !has("ORDER_MODIFIER") {
            self.limit_without_order = true;
        }
        if has("DISTINCT_MODIFIER") {
            self.distincts += 1;
        }
        for m in &modifiers {
            self.expression(m, depth);
        }
        match node["type"].as_str() {
            Some("SELECT_NODE") => {
                if !node["where_clause"].is_null() {
                    self.wheres += 1;
                }
                if node["group_expressions"]
                    .as_array()
                    .is_some_and(|g| !g.is_empty())
                {
                    self.group_bys += 1;
                }
                if !node["having"].is_null() {
                    self.havings += 1;
                }
                if !node["qualify"].is_null() {
                    self.wheres += 1;
                }
                self.table_ref(&node["from_table"], depth);
                for key in [
                    "select_list",
                    "where_clause",
                    "group_expressions",
                    "having",
                    "qualify",
                ] {
                    self.expression(&node[key], depth);
                }
            }
            Some("SET_OPERATION_NODE") => {
                self.set_operations += 1;
                for key in ["left", "right"] {
                    if !node[key].is_null() {
                        self.node(&node[key], depth + 1);
                    }
                }
                for child in node["children"].as_array().into_iter().flatten() {
                    self.node(child, depth + 1);
                }
            }
            Some("RECURSIVE_CTE_NODE") | Some("CTE_NODE") => {
                for key in ["left", "right", "query", "child"] {
                    if !node[key].is_null() {
                        self.node(&node[key], depth + 1);
                    }
                }
            }
            _ => {}
        }
    }

    fn table_ref(&mut self, table: &Value, depth: u32) {
        match table["type"].as_str() {
            Some("BASE_TABLE") => {
                if let Some(name) = table["table_name"].as_str() {
                    self.tables.insert(name.to_string());
                }
            }
            Some("JOIN") => {
                self.joins += 1;
                self.table_ref(&table["left"], depth);
                self.table_ref(&table["right"], depth);
                self.expression(&table["condition"], depth);
            }
            Some("SUBQUERY") => {
                self.subqueries += 1;
                self.node(&table["subquery"]["node"], depth + 1);
            }
            _ => {}
        }
    }

    fn expression(&mut self, expr: &Value, depth: u32) {
        match expr {
            Value::Array(items) => items.iter().for_each(|i| self.expression(i, depth)),
            Value::Object(map) => {
                match map.get("class").and_then(Value::as_str) {
                    Some("SUBQUERY") => {
                        self.subqueries += 1;
                        self.node(&expr["subquery"]["node"], depth + 1);
                        self.expression(&expr["child"], depth);
                        return;
                    }
                    Some("WINDOW") => self.windows += 1,
                    Some("FUNCTION") => {
                        let name = expr["function_name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_ascii_lowercase();
                        if AGGREGATES.contains(&name.as_str()) {
                            self.aggregates += 1;
                        }
                        if VOLATILE.contains(&name.as_str()) {
                            self.volatile.insert(name);
                        }
                    }
                    _ => {}
                }
                if let Some(kind) = map.get("type").and_then(Value::as_str)
                    && kind.starts_with("WINDOW_")
                    && map.get("class").and_then(Value::as_str) == Some("WINDOW")
                {
                    // Window aggregates (sum(x) OVER …) are windows, not aggregates.
                }
                for (key, child) in map {
                    if key == "subquery" {
                        continue;
                    }
                    if matches!(child, Value::Object(_) | Value::Array(_)) {
                        self.expression(child, depth);
                    }
                }
            }
            _ => {}
        }
    }
}
