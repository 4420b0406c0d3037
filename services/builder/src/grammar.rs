//! The grammar-based query generator: SQL and its English question, built together from one
//! set of choices (tables, columns, filter values taken from the sandbox), so the question says
//! exactly what the SQL asks.
//!
//! Every ordered query breaks ties: after the keys the question names, it orders by every
//! remaining output column, so equal keys can only tie on identical rows.

use std::collections::BTreeMap;

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlrft_core::DuckType;

use crate::schema::{Column, Schema, Table, singular};

/// What the sandbox holds in one column: enough to pick filter values that match rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ColumnProfile {
    pub(crate) distinct_count: u64,
    pub(crate) null_count: u64,
    /// The most frequent non-NULL values, most frequent first.
    pub(crate) top_values: Vec<Value>,
    pub(crate) min: Option<Value>,
    pub(crate) max: Option<Value>,
}

/// Profiles of every column, by `(table, column)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Profiles {
    pub(crate) row_counts: BTreeMap<String, u64>,
    pub(crate) columns: BTreeMap<String, BTreeMap<String, ColumnProfile>>,
}

impl Profiles {
    pub(crate) fn column(&self, table: &str, column: &str) -> Option<&ColumnProfile> {
        self.columns.get(table)?.get(column)
    }
}

/// A generated query and the question it answers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    pub(crate) sql: String,
    pub(crate) question: String,
    /// The family of query shapes it came from (for the report).
    pub(crate) family: &'static str,
}

/// A WHERE condition and how the question says it.
struct Condition {
    sql: String,
    text: String,
}

impl Condition {
    fn new(sql: String, text: String) -> Self {
        Condition { sql, text }
    }
}

/// Draws candidate queries from a schema and the sandbox's column profiles.
pub(crate) struct Generator<'a> {
    schema: &'a Schema,
    profiles: &'a Profiles,
    rng: ChaCha8Rng,
}

/// A foreign-key edge usable for joins: child column → parent column (single-column keys).
struct Edge<'a> {
    child: &'a Table,
    child_column: &'a Column,
    parent: &'a Table,
    parent_column: &'a Column,
}

impl<'a> Generator<'a> {
    pub(crate) fn new(schema: &'a Schema, profiles: &'a Profiles, rng: ChaCha8Rng) -> Self {
        Self {
            schema,
            profiles,
            rng,
        }
    }

    /// Every query shape the grammar knows, simplest first.
    #[allow(clippy::type_complexity)]
    fn families() -> [(&'static str, fn(&mut Self) -> Option<Candidate>); 20] {
        [
            ("count_all", Self::count_all),
            ("count_where", Self::count_where),
            ("aggregate", Self::aggregate),
            ("distinct_values", Self::distinct_values),
            ("select_where", Self::select_where),
            ("top_by_measure", Self::top_by_measure),
            ("range_filter", Self::range_filter),
            ("group_count", Self::group_count),
            ("group_aggregate", Self::group_aggregate),
            ("join_filter", Self::join_filter),
            ("join_group_count", Self::join_group_count),
            ("group_having", Self::group_having),
            ("above_average", Self::above_average),
            ("in_subquery", Self::in_subquery),
            ("not_exists", Self::not_exists),
            ("set_operation", Self::set_operation),
            ("window_rank", Self::window_rank),
            ("cte_top_per_group", Self::cte_top_per_group),
            ("join_having_order", Self::join_having_order),
            ("two_join_group", Self::two_join_group),
        ]
    }

    /// One candidate from a family chosen at random (`None` when that family has nothing to
    /// work with in this schema).
    pub(crate) fn next_candidate(&mut self) -> Option<Candidate> {
        let families = Self::families();
        let (name, family) = *families.choose(&mut self.rng).expect("families");
        let mut candidate = family(self)?;
        candidate.family = name;
        Some(candidate)
    }

    // ---- choices -------------------------------------------------------------------------

    fn tables_with_rows(&self) -> Vec<&'a Table> {
        self.schema
            .tables
            .iter()
            .filter(|t| self.profiles.row_counts.get(&t.name).copied().unwrap_or(0) > 0)
            .collect()
    }

    fn table(&mut self) -> Option<&'a Table> {
        self.tables_with_rows().choose(&mut self.rng).copied()
    }

    fn is_key(table: &Table, column: &Column) -> bool {
        table.primary_key.contains(&column.name)
            || table.foreign_key_of(&column.name).is_some() && column.duck_type().is_numeric()
            || column.name.to_ascii_lowercase().ends_with("_id")
            || column.name.eq_ignore_ascii_case("id")
    }

    /// The column that names a row: `name`, `title`, `*_name`, else the first text column.
    fn label(&self, table: &'a Table) -> Option<&'a Column> {
        let text = |c: &&Column| c.duck_type() == DuckType::Varchar && !Self::is_key(table, c);
        table
            .columns
            .iter()
            .filter(text)
            .find(|c| {
                let n = c.name.to_ascii_lowercase();
                n == "name" || n == "title" || n.ends_with("_name")
            })
            .or_else(|| table.columns.iter().find(text))
    }

    /// Text columns with a few repeating values (country, type, status), never the label.
    fn categoricals(&self, table: &'a Table) -> Vec<&'a Column> {
        let rows = self
            .profiles
            .row_counts
            .get(&table.name)
            .copied()
            .unwrap_or(0);
        let label = self.label(table).map(|c| c.name.clone());
        table
            .columns
            .iter()
            .filter(|c| {
                let Some(p) = self.profiles.column(&table.name, &c.name) else {
                    return false;
                };
                c.duck_type() == DuckType::Varchar
                    && Some(&c.name) != label.as_ref()
                    && !table.primary_key.contains(&c.name)
                    && p.distinct_count >= 2
                    && (p.distinct_count <= 60 || p.distinct_count * 3 <= rows)
                    && !p.top_values.is_empty()
            })
            .collect()
    }

    /// Numeric columns that measure something (not keys).
    fn measures(&self, table: &'a Table) -> Vec<&'a Column> {
        table
            .columns
            .iter()
            .filter(|c| {
                c.duck_type().is_numeric()
                    && !Self::is_key(table, c)
                    && self
                        .profiles
                        .column(&table.name, &c.name)
                        .is_some_and(|p| p.distinct_count >= 2)
            })
            .collect()
    }

    fn edges(&self) -> Vec<Edge<'a>> {
        let mut edges = Vec::new();
        for child in &self.schema.tables {
            for fk in &child.foreign_keys {
                if fk.columns.len() != 1 || fk.references_table.eq_ignore_ascii_case(&child.name) {
                    continue;
                }
                let (Some(parent), Some(child_column)) = (
                    self.schema.table(&fk.references_table),
                    child.column(&fk.columns[0]),
                ) else {
                    continue;
                };
                let Some(parent_column) = parent.column(&fk.references_columns[0]) else {
                    continue;
                };
                let has_rows =
                    |t: &Table| self.profiles.row_counts.get(&t.name).copied().unwrap_or(0) > 0;
                if has_rows(child) && has_rows(parent) {
                    edges.push(Edge {
                        child,
                        child_column,
                        parent,
                        parent_column,
                    });
                }
            }
        }
        edges
    }

    fn edge(&mut self) -> Option<Edge<'a>> {
        let mut edges = self.edges();
        if edges.is_empty() {
            return None;
        }
        let i = self.rng.random_range(0..edges.len());
        Some(edges.swap_remove(i))
    }

    /// A frequent value of `column`, as a SQL literal and as English.
    fn value(&mut self, table: &Table, column: &Column) -> Option<(String, String)> {
        let profile = self.profiles.column(&table.name, &column.name)?;
        let top = &profile.top_values[..profile.top_values.len().min(8)];
        let value = top.choose(&mut self.rng)?;
        Some((literal(value, column), plain(value)))
    }

    /// A threshold inside the column's range (a frequent value, so it splits the rows).
    fn threshold(&mut self, table: &Table, column: &Column) -> Option<(String, String)> {
        let profile = self.profiles.column(&table.name, &column.name)?;
        // DECIMAL cells are decimal strings; they are thresholds too.
        let numbers: Vec<&Value> = profile
            .top_values
            .iter()
            .filter(|v| v.is_number() || v.as_str().is_some_and(|s| s.parse::<f64>().is_ok()))
            .collect();
        let value = numbers.choose(&mut self.rng)?;
        let text = value
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string());
        Some((literal(value, column), text))
    }

    /// One filter condition on `table` (qualified by `alias` when given): equality, inequality,
    /// IN, a numeric comparison, a prefix match or a NULL test, with its English.
    fn condition(&mut self, table: &'a Table, alias: Option<&str>) -> Option<Condition> {
        let q = |c: &Column| match alias {
            Some(a) => format!("{a}.{}", ident(&c.name)),
            None => ident(&c.name),
        };
        let categoricals = self.categoricals(table);
        let measures = self.measures(table);
        let kind = self.rng.random_range(0..10);
        match kind {
            0..=3 => {
                let c = self.pick(&categoricals)?;
                let (lit, text) = self.value(table, c)?;
                Some(Condition::new(
                    format!("{} = {lit}", q(c)),
                    format!("{} is {text}", phrase(&c.name)),
                ))
            }
            4 => {
                let c = self.pick(&categoricals)?;
                let (a, a_text) = self.value(table, c)?;
                let (b, b_text) = self.value(table, c)?;
                if a == b {
                    return None;
                }
                Some(Condition::new(
                    format!("{} IN ({a}, {b})", q(c)),
                    format!("{} is {a_text} or {b_text}", phrase(&c.name)),
                ))
            }
            5 => {
                let c = self.pick(&categoricals)?;
                let (lit, text) = self.value(table, c)?;
                Some(Condition::new(
                    format!("{} <> {lit}", q(c)),
                    format!("{} is not {text}", phrase(&c.name)),
                ))
            }
            6..=7 => {
                let m = self.pick(&measures)?;
                let (lit, text) = self.threshold(table, m)?;
                let (op, word) = *[
                    (">", "greater than"),
                    ("<", "less than"),
                    (">=", "at least"),
                    ("<=", "at most"),
                ]
                .choose(&mut self.rng)?;
                Some(Condition::new(
                    format!("{} {op} {lit}", q(m)),
                    format!("{} is {word} {text}", phrase(&m.name)),
                ))
            }
            8 => {
                let c = self.pick(&categoricals)?;
                let profile = self.profiles.column(&table.name, &c.name)?;
                let value = profile.top_values.choose(&mut self.rng)?.as_str()?;
                let prefix: String = value.chars().take(2).collect();
                if prefix.is_empty() || prefix.contains(['%', '_', '\\']) {
                    return None;
                }
                Some(Condition::new(
                    format!("{} LIKE '{}%'", q(c), prefix.replace('\'', "''")),
                    format!("{} starts with \"{prefix}\"", phrase(&c.name)),
                ))
            }
            _ => {
                let c = table
                    .columns
                    .iter()
                    .filter(|c| {
                        c.nullable
                            && self
                                .profiles
                                .column(&table.name, &c.name)
                                .is_some_and(|p| p.null_count > 0)
                    })
                    .collect::<Vec<_>>();
                let c = *c.choose(&mut self.rng)?;
                if self.rng.random_bool(0.5) {
                    Some(Condition::new(
                        format!("{} IS NULL", q(c)),
                        format!("{} is missing", phrase(&c.name)),
                    ))
                } else {
                    Some(Condition::new(
                        format!("{} IS NOT NULL", q(c)),
                        format!("{} is known", phrase(&c.name)),
                    ))
                }
            }
        }
    }

    /// One or two conditions (joined by AND, sometimes OR); retries a few shapes.
    fn conditions(&mut self, table: &'a Table, alias: Option<&str>) -> Option<Condition> {
        let first = (0..6).find_map(|_| self.condition(table, alias))?;
        if self.rng.random_bool(0.7) {
            return Some(first);
        }
        let Some(second) = (0..6).find_map(|_| self.condition(table, alias)) else {
            return Some(first);
        };
        if second.sql == first.sql {
            return Some(first);
        }
        let (op, word) = if self.rng.random_bool(0.75) {
            ("AND", "and")
        } else {
            ("OR", "or")
        };
        Some(Condition::new(
            format!("({}) {op} ({})", first.sql, second.sql),
            format!("{} {word} {}", first.text, second.text),
        ))
    }

    /// `first` plus up to `extra` other displayable columns of `table`.
    fn projection(&mut self, table: &'a Table, first: &'a Column, extra: usize) -> Vec<&'a Column> {
        let mut others: Vec<&'a Column> = table
            .columns
            .iter()
            .filter(|c| {
                c.name != first.name
                    && !Self::is_key(table, c)
                    && !matches!(
                        c.duck_type(),
                        DuckType::List(_)
                            | DuckType::Struct(_)
                            | DuckType::Map(..)
                            | DuckType::Blob
                    )
            })
            .collect();
        others.shuffle(&mut self.rng);
        let n = self.rng.random_range(0..=extra.min(others.len()));
        let mut columns = vec![first];
        columns.extend(others.into_iter().take(n));
        columns
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        items.choose(&mut self.rng).copied()
    }

    // ---- families ------------------------------------------------------------------------

    fn count_all(&mut self) -> Option<Candidate> {
        let t = self.table()?;
        Some(candidate(
            format!(
                "SELECT count(*) AS {} FROM {}",
                ident(&format!("{}_count", singular(&t.name))),
                ident(&t.name)
            ),
            format!("How many {} are there?", noun(&t.name)),
        ))
    }

    fn count_where(&mut self) -> Option<Candidate> {
        let t = self.table()?;
        let w = self.conditions(t, None)?;
        Some(candidate(
            format!(
                "SELECT count(*) AS {} FROM {} WHERE {}",
                ident(&format!("{}_count", singular(&t.name))),
                ident(&t.name),
                w.sql
            ),
            format!("How many {} are there whose {}?", noun(&t.name), w.text),
        ))
    }

    fn aggregate(&mut self) -> Option<Candidate> {
        let t = self.table()?;
        let m = self.pick(&self.measures(t))?;
        let agg = self.pick(&Aggregate::ALL)?;
        let filter = if self.rng.random_bool(0.6) {
            self.conditions(t, None)
        } else {
            None
        };
        let alias = ident(&format!("{}_{}", agg.alias(), m.name));
        match filter {
            Some(w) => Some(candidate(
                format!(
                    "SELECT {}({}) AS {alias} FROM {} WHERE {}",
                    agg.sql(),
                    ident(&m.name),
                    ident(&t.name),
                    w.sql
                ),
                format!(
                    "What is the {} {} of the {} whose {}?",
                    agg.word(),
                    phrase(&m.name),
                    noun(&t.name),
                    w.text
                ),
            )),
            None => Some(candidate(
                format!(
                    "SELECT {}({}) AS {alias} FROM {}",
                    agg.sql(),
                    ident(&m.name),
                    ident(&t.name)
                ),
                format!(
                    "What is the {} {} across all {}?",
                    agg.word(),
                    phrase(&m.name),
                    noun(&t.name)
                ),
            )),
        }
    }

    fn distinct_values(&mut self) -> Option<Candidate> {
        let t = self.table()?;
        let c = self.pick(&self.categoricals(t))?;
        Some(candidate(
            format!(
                "SELECT DISTINCT {0} FROM {1} WHERE {0} IS NOT NULL ORDER BY {0}",
                ident(&c.name),
                ident(&t.name)
            ),
            format!(
                "List the different {} values found among {}, in alphabetical order.",
                phrase(&c.name),
                noun(&t.name)
            ),
        ))
    }

    fn select_where(&mut self) -> Option<Candidate> {
        let t = self.table()?;
        let label = self.label(t)?;
        let columns = self.projection(t, label, 2);
        let w = self.conditions(t, None)?;
        let list = columns
            .iter()
            .map(|c| ident(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let ordered = self.rng.random_bool(0.5);
        let order = if ordered {
            format!(" ORDER BY {list}")
        } else {
            String::new()
        };
        let said = english_list(&columns.iter().map(|c| phrase(&c.name)).collect::<Vec<_>>());
        Some(candidate(
            format!(
                "SELECT {list} FROM {} WHERE {}{order}",
                ident(&t.name),
                w.sql
            ),
            format!(
                "Show the {said} of every {} whose {}{}.",
                singular(&t.name),
                w.text,
                if ordered {
                    format!(", sorted by {said}")
                } else {
                    String::new()
                }
            ),
        ))
    }

    fn top_by_measure(&mut self) -> Option<Candidate> {
        let t = self.table()?;
        let label = self.label(t)?;
        let m = self.pick(&self.measures(t))?;
        let k = self.rng.random_range(3..=10);
        let (dir, word) = if self.rng.random_bool(0.6) {
            ("DESC", "highest")
        } else {
            ("ASC", "lowest")
        };
        let filter = if self.rng.random_bool(0.4) {
            self.conditions(t, None)
        } else {
            None
        };
        let (where_sql, where_text) = match &filter {
            Some(w) => (
                format!(" AND {}", w.sql),
                format!(" among those whose {}", w.text),
            ),
            None => (String::new(), String::new()),
        };
        Some(candidate(
            format!(
                "SELECT {l}, {m} FROM {t} WHERE {m} IS NOT NULL{where_sql} ORDER BY {m} {dir}, {l} LIMIT {k}",
                l = ident(&label.name),
                m = ident(&m.name),
                t = ident(&t.name)
            ),
            format!(
                "Which {k} {} have the {word} {}{where_text}? Show each one's {} and {}, {word} first (ties broken by {}).",
                noun(&t.name),
                phrase(&m.name),
                phrase(&label.name),
                phrase(&m.name),
                phrase(&label.name)
            ),
        ))
    }

    fn range_filter(&mut self) -> Option<Candidate> {
        let t = self.table()?;
        let label = self.label(t)?;
        let m = self.pick(&self.measures(t))?;
        let (lo, lo_text) = self.threshold(t, m)?;
        let (hi, hi_text) = self.threshold(t, m)?;
        let (lo, hi, lo_text, hi_text) = if lo.parse::<f64>().ok()? <= hi.parse::<f64>().ok()? {
            (lo, hi, lo_text, hi_text)
        } else {
            (hi, lo, hi_text, lo_text)
        };
        Some(candidate(
            format!(
                "SELECT {l}, {m} FROM {t} WHERE {m} BETWEEN {lo} AND {hi} ORDER BY {m}, {l}",
                l = ident(&label.name),
                m = ident(&m.name),
                t = ident(&t.name)
            ),
            format!(
                "List the {} and {} of {} whose {} is between {lo_text} and {hi_text} inclusive, from smallest to largest {}, then by {}.",
                phrase(&label.name),
                phrase(&m.name),
                noun(&t.name),
                phrase(&m.name),
                phrase(&m.name),
                phrase(&label.name)
            ),
        ))
    }

    fn group_count(&mut self) -> Option<Candidate> {
        let t = self.table()?;
        let c = self.pick(&self.categoricals(t))?;
        let n = ident(&format!("{}_count", singular(&t.name)));
        let top = self
            .rng
            .random_bool(0.5)
            .then(|| self.rng.random_range(3..=10));
        let limit = top.map(|k| format!(" LIMIT {k}")).unwrap_or_default();
        let filter = if self.rng.random_bool(0.4) {
            self.conditions(t, None)
        } else {
            None
        };
        let (where_sql, where_text) = match &filter {
            Some(w) => (format!(" WHERE {}", w.sql), format!(" whose {}", w.text)),
            None => (String::new(), String::new()),
        };
        let question = match top {
            Some(k) => format!(
                "Which {k} {} values have the most {}{where_text}? Give each with its number of {}, most first, ties in alphabetical order.",
                phrase(&c.name),
                noun(&t.name),
                noun(&t.name)
            ),
            None => format!(
                "How many {}{where_text} are there for each {}? Order from the most to the fewest, ties alphabetically.",
                noun(&t.name),
                phrase(&c.name)
            ),
        };
        Some(candidate(
            format!(
                "SELECT {c}, count(*) AS {n} FROM {t}{where_sql} GROUP BY {c} ORDER BY {n} DESC, {c}{limit}",
                c = ident(&c.name),
                t = ident(&t.name)
            ),
            question,
        ))
    }

    fn group_aggregate(&mut self) -> Option<Candidate> {
        let t = self.table()?;
        let c = self.pick(&self.categoricals(t))?;
        let m = self.pick(&self.measures(t))?;
        let agg = self.pick(&Aggregate::ALL)?;
        let alias = ident(&format!("{}_{}", agg.alias(), m.name));
        Some(candidate(
            format!(
                "SELECT {c}, {}({m}) AS {alias} FROM {t} GROUP BY {c} ORDER BY {c}",
                agg.sql(),
                c = ident(&c.name),
                m = ident(&m.name),
                t = ident(&t.name)
            ),
            format!(
                "For each {} of {}, what is the {} {}? Sort by {}.",
                phrase(&c.name),
                noun(&t.name),
                agg.word(),
                phrase(&m.name),
                phrase(&c.name)
            ),
        ))
    }

    fn join_filter(&mut self) -> Option<Candidate> {
        let e = self.edge()?;
        let child_label = self
            .label(e.child)
            .or_else(|| self.pick(&self.measures(e.child)))?;
        let parent_label = self.label(e.parent)?;
        if child_label.name == e.child_column.name {
            return None;
        }
        let (w, on_parent) = if self.rng.random_bool(0.6) {
            (self.conditions(e.parent, Some("p"))?, true)
        } else {
            (self.conditions(e.child, Some("c"))?, false)
        };
        let whose = if on_parent {
            format!("for {} whose {}", noun(&e.parent.name), w.text)
        } else {
            format!("for {} whose {}", noun(&e.child.name), w.text)
        };
        Some(candidate(
            format!(
                "SELECT c.{cl} AS {cla}, p.{pl} AS {pla} FROM {child} AS c JOIN {parent} AS p ON c.{fk} = p.{pk} WHERE {w} ORDER BY {cla}, {pla}",
                cl = ident(&child_label.name),
                cla = ident(&format!("{}_{}", singular(&e.child.name), child_label.name)),
                pl = ident(&parent_label.name),
                pla = ident(&format!(
                    "{}_{}",
                    singular(&e.parent.name),
                    parent_label.name
                )),
                child = ident(&e.child.name),
                parent = ident(&e.parent.name),
                fk = ident(&e.child_column.name),
                pk = ident(&e.parent_column.name),
                w = w.sql,
            ),
            format!(
                "List each {} {} together with the {} of its {} (by {}), {whose}. Sort by the {} {}, then the {} {}.",
                singular(&e.child.name),
                phrase(&child_label.name),
                phrase(&parent_label.name),
                singular(&e.parent.name),
                phrase(&e.child_column.name),
                singular(&e.child.name),
                phrase(&child_label.name),
                singular(&e.parent.name),
                phrase(&parent_label.name),
            ),
        ))
    }

    fn join_group_count(&mut self) -> Option<Candidate> {
        let e = self.edge()?;
        let parent_label = self.label(e.parent)?;
        let k = self.rng.random_range(3..=10);
        let n = ident(&format!("{}_count", singular(&e.child.name)));
        Some(candidate(
            format!(
                "SELECT p.{pl}, count(*) AS {n} FROM {child} AS c JOIN {parent} AS p ON c.{fk} = p.{pk} GROUP BY p.{pl} ORDER BY {n} DESC, p.{pl} LIMIT {k}",
                pl = ident(&parent_label.name),
                child = ident(&e.child.name),
                parent = ident(&e.parent.name),
                fk = ident(&e.child_column.name),
                pk = ident(&e.parent_column.name),
            ),
            format!(
                "Which {k} {} {}s have the most {} (linked by {})? Show the {} and the number of {}, most first, ties alphabetically.",
                singular(&e.parent.name),
                phrase(&parent_label.name),
                noun(&e.child.name),
                phrase(&e.child_column.name),
                phrase(&parent_label.name),
                noun(&e.child.name),
            ),
        ))
    }

    fn group_having(&mut self) -> Option<Candidate> {
        let t = self.table()?;
        let c = self.pick(&self.categoricals(t))?;
        let rows = *self.profiles.row_counts.get(&t.name)?;
        let distinct = self
            .profiles
            .column(&t.name, &c.name)?
            .distinct_count
            .max(1);
        let at_least = (rows / distinct).max(2);
        let n = ident(&format!("{}_count", singular(&t.name)));
        Some(candidate(
            format!(
                "SELECT {c}, count(*) AS {n} FROM {t} GROUP BY {c} HAVING count(*) >= {at_least} ORDER BY {n} DESC, {c}",
                c = ident(&c.name),
                t = ident(&t.name)
            ),
            format!(
                "Which {} values appear in at least {at_least} {}? Give the number of {} for each, most first, ties alphabetically.",
                phrase(&c.name),
                noun(&t.name),
                noun(&t.name)
            ),
        ))
    }

    fn above_average(&mut self) -> Option<Candidate> {
        let t = self.table()?;
        let label = self.label(t)?;
        let m = self.pick(&self.measures(t))?;
        let (op, word) = if self.rng.random_bool(0.5) {
            (">", "above")
        } else {
            ("<", "below")
        };
        Some(candidate(
            format!(
                "SELECT {l}, {m} FROM {t} WHERE {m} {op} (SELECT avg({m}) FROM {t}) ORDER BY {m} DESC, {l}",
                l = ident(&label.name),
                m = ident(&m.name),
                t = ident(&t.name)
            ),
            format!(
                "Which {} have a {} {word} the average of all {}? Show the {} and {}, largest {} first, ties by {}.",
                noun(&t.name),
                phrase(&m.name),
                noun(&t.name),
                phrase(&label.name),
                phrase(&m.name),
                phrase(&m.name),
                phrase(&label.name),
            ),
        ))
    }

    fn in_subquery(&mut self) -> Option<Candidate> {
        let e = self.edge()?;
        let parent_label = self.label(e.parent)?;
        let w = self.conditions(e.child, None)?;
        let (not, word) = if self.rng.random_bool(0.75) {
            ("", "referenced")
        } else {
            ("NOT ", "never referenced")
        };
        Some(candidate(
            format!(
                "SELECT {pl} FROM {parent} WHERE {pk} {not}IN (SELECT {fk} FROM {child} WHERE {fk} IS NOT NULL AND ({w})) ORDER BY {pl}",
                pl = ident(&parent_label.name),
                parent = ident(&e.parent.name),
                pk = ident(&e.parent_column.name),
                fk = ident(&e.child_column.name),
                child = ident(&e.child.name),
                w = w.sql,
            ),
            format!(
                "List, alphabetically, the {}s of {} {word} (by {}) from any {} whose {}.",
                phrase(&parent_label.name),
                noun(&e.parent.name),
                phrase(&e.child_column.name),
                singular(&e.child.name),
                w.text,
            ),
        ))
    }

    fn not_exists(&mut self) -> Option<Candidate> {
        let e = self.edge()?;
        let parent_label = self.label(e.parent)?;
        Some(candidate(
            format!(
                "SELECT p.{pl} FROM {parent} AS p WHERE NOT EXISTS (SELECT 1 FROM {child} AS c WHERE c.{fk} = p.{pk}) ORDER BY p.{pl}",
                pl = ident(&parent_label.name),
                parent = ident(&e.parent.name),
                pk = ident(&e.parent_column.name),
                fk = ident(&e.child_column.name),
                child = ident(&e.child.name),
            ),
            format!(
                "Which {} have no {} pointing at them through {}? List their {}s alphabetically.",
                noun(&e.parent.name),
                noun(&e.child.name),
                phrase(&e.child_column.name),
                phrase(&parent_label.name),
            ),
        ))
    }

    fn set_operation(&mut self) -> Option<Candidate> {
        // Two tables sharing a text column name (airports.country, airlines.country).
        let tables = self.tables_with_rows();
        let mut pairs = Vec::new();
        for a in &tables {
            for b in &tables {
                if a.name >= b.name {
                    continue;
                }
                for c in self.categoricals(a) {
                    if let Some(other) = b.column(&c.name)
                        && other.duck_type() == c.duck_type()
                        && self.profiles.column(&b.name, &other.name).is_some()
                    {
                        pairs.push((*a, *b, c));
                    }
                }
            }
        }
        let (a, b, c) = self.pick(&pairs)?;
        let (a, b) = if self.rng.random_bool(0.5) {
            (a, b)
        } else {
            (b, a)
        };
        let (op, word) = *[
            ("INTERSECT", "appear both among {a} and among {b}"),
            ("EXCEPT", "appear among {a} but never among {b}"),
            ("UNION", "appear among {a} or among {b} (or both)"),
        ]
        .choose(&mut self.rng)?;
        let how = word
            .replace("{a}", &noun(&a.name))
            .replace("{b}", &noun(&b.name));
        Some(candidate(
            format!(
                "SELECT {c} FROM {a} WHERE {c} IS NOT NULL {op} SELECT {c} FROM {b} WHERE {c} IS NOT NULL ORDER BY {c}",
                c = ident(&c.name),
                a = ident(&a.name),
                b = ident(&b.name)
            ),
            format!(
                "Which {} values {how}? List them alphabetically.",
                phrase(&c.name)
            ),
        ))
    }

    fn window_rank(&mut self) -> Option<Candidate> {
        let t = self.table()?;
        let label = self.label(t)?;
        let m = self.pick(&self.measures(t))?;
        let w = self.conditions(t, None)?;
        let (dir, word) = if self.rng.random_bool(0.6) {
            ("DESC", "highest")
        } else {
            ("ASC", "lowest")
        };
        Some(candidate(
            format!(
                "SELECT {l}, {m}, rank() OVER (ORDER BY {m} {dir}) AS {r} FROM {t} WHERE ({w}) AND {m} IS NOT NULL ORDER BY {r}, {l}",
                l = ident(&label.name),
                m = ident(&m.name),
                r = ident(&format!("{}_rank", m.name)),
                t = ident(&t.name),
                w = w.sql,
            ),
            format!(
                "Rank the {} whose {} by {}, {word} first (equal values share a rank). Show {}, {} and the rank, ordered by rank then {}.",
                noun(&t.name),
                w.text,
                phrase(&m.name),
                phrase(&label.name),
                phrase(&m.name),
                phrase(&label.name),
            ),
        ))
    }

    fn cte_top_per_group(&mut self) -> Option<Candidate> {
        let t = self.table()?;
        let label = self.label(t)?;
        let c = self.pick(&self.categoricals(t))?;
        let m = self.pick(&self.measures(t))?;
        Some(candidate(
            format!(
                "WITH ranked AS (SELECT {c}, {l}, {m}, rank() OVER (PARTITION BY {c} ORDER BY {m} DESC) AS place_rank FROM {t} WHERE {m} IS NOT NULL AND {c} IS NOT NULL) SELECT {c}, {l}, {m} FROM ranked WHERE place_rank = 1 ORDER BY {c}, {l}",
                c = ident(&c.name),
                l = ident(&label.name),
                m = ident(&m.name),
                t = ident(&t.name),
            ),
            format!(
                "For every {} of {}, which {} has the highest {}? Show the {}, the {} and the {} (all of them when tied), sorted by {} then {}.",
                phrase(&c.name),
                noun(&t.name),
                singular(&t.name),
                phrase(&m.name),
                phrase(&c.name),
                phrase(&label.name),
                phrase(&m.name),
                phrase(&c.name),
                phrase(&label.name),
            ),
        ))
    }

    fn join_having_order(&mut self) -> Option<Candidate> {
        let e = self.edge()?;
        let parent_label = self.label(e.parent)?;
        let m = self.pick(&self.measures(e.child))?;
        let filter = self.pick(&self.categoricals(e.parent))?;
        let (lit, text) = self.value(e.parent, filter)?;
        let agg = self.pick(&Aggregate::ALL)?;
        let alias = ident(&format!("{}_{}", agg.alias(), m.name));
        Some(candidate(
            format!(
                "SELECT p.{pl}, {}(c.{m}) AS {alias}, count(*) AS {n} FROM {child} AS c JOIN {parent} AS p ON c.{fk} = p.{pk} WHERE p.{f} = {lit} GROUP BY p.{pl} HAVING count(*) > 1 ORDER BY {alias} DESC, p.{pl}",
                agg.sql(),
                pl = ident(&parent_label.name),
                m = ident(&m.name),
                n = ident(&format!("{}_count", singular(&e.child.name))),
                child = ident(&e.child.name),
                parent = ident(&e.parent.name),
                fk = ident(&e.child_column.name),
                pk = ident(&e.parent_column.name),
                f = ident(&filter.name),
            ),
            format!(
                "Among {} whose {} is {text}, consider those with more than one {} (linked by {}). For each {}, give the {} {} of its {} and how many there are, largest {} first, ties by {}.",
                noun(&e.parent.name),
                phrase(&filter.name),
                singular(&e.child.name),
                phrase(&e.child_column.name),
                phrase(&parent_label.name),
                agg.word(),
                phrase(&m.name),
                noun(&e.child.name),
                agg.word(),
                phrase(&parent_label.name),
            ),
        ))
    }

    fn two_join_group(&mut self) -> Option<Candidate> {
        // A child with two foreign keys: routes → airlines and routes → airports.
        let edges = self.edges();
        let mut pairs = Vec::new();
        for (i, a) in edges.iter().enumerate() {
            for b in edges.iter().skip(i + 1) {
                if a.child.name == b.child.name && a.child_column.name != b.child_column.name {
                    pairs.push((a, b));
                }
            }
        }
        let (a, b) = *pairs.choose(&mut self.rng)?;
        let a_label = self.label(a.parent)?;
        let b_filter = self.pick(&self.categoricals(b.parent))?;
        let (lit, text) = self.value(b.parent, b_filter)?;
        let n = ident(&format!("{}_count", singular(&a.child.name)));
        Some(candidate(
            format!(
                "SELECT x.{al}, count(*) AS {n} FROM {child} AS c JOIN {ap} AS x ON c.{afk} = x.{apk} JOIN {bp} AS y ON c.{bfk} = y.{bpk} WHERE y.{bf} = {lit} GROUP BY x.{al} ORDER BY {n} DESC, x.{al}",
                al = ident(&a_label.name),
                child = ident(&a.child.name),
                ap = ident(&a.parent.name),
                afk = ident(&a.child_column.name),
                apk = ident(&a.parent_column.name),
                bp = ident(&b.parent.name),
                bfk = ident(&b.child_column.name),
                bpk = ident(&b.parent_column.name),
                bf = ident(&b_filter.name),
            ),
            format!(
                "Counting only {} whose {} (by {}) has {} {text}, how many {} does each {} have? Show the {} {} and the count, most first, ties alphabetically.",
                noun(&a.child.name),
                singular(&b.parent.name),
                phrase(&b.child_column.name),
                phrase(&b_filter.name),
                noun(&a.child.name),
                singular(&a.parent.name),
                singular(&a.parent.name),
                phrase(&a_label.name),
            ),
        ))
    }
}

#[derive(Debug, Clone, Copy)]
enum Aggregate {
    Avg,
    Max,
    Min,
    Sum,
}

impl Aggregate {
    const ALL: [Aggregate; 4] = [
        Aggregate::Avg,
        Aggregate::Max,
        Aggregate::Min,
        Aggregate::Sum,
    ];
    fn sql(self) -> &'static str {
        match self {
            Aggregate::Avg => "avg",
            Aggregate::Max => "max",
            Aggregate::Min => "min",
            Aggregate::Sum => "sum",
        }
    }
    fn alias(self) -> &'static str {
        match self {
            Aggregate::Avg => "avg",
            Aggregate::Max => "max",
            Aggregate::Min => "min",
            Aggregate::Sum => "total",
        }
    }
    fn word(self) -> &'static str {
        match self {
            Aggregate::Avg => "average",
            Aggregate::Max => "highest",
            Aggregate::Min => "lowest",
            Aggregate::Sum => "total",
        }
    }
}

fn candidate(sql: String, question: String) -> Candidate {
    Candidate {
        sql,
        question,
        family: "",
    }
}

const RESERVED: &[&str] = &[
    "all",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "between",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "default",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "intersect",
    "into",
    "is",
    "join",
    "lateral",
    "leading",
    "limit",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "pivot",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "some",
    "symmetric",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "unpivot",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
    "qualify",
    "position",
    "user",
];

/// A SQL identifier, quoted when it is not a plain lowercase word or is reserved.
pub(crate) fn ident(name: &str) -> String {
    let plain = name
        .chars()
        .enumerate()
        .all(|(i, c)| c.is_ascii_lowercase() || c == '_' || (i > 0 && c.is_ascii_digit()));
    if plain && !name.is_empty() && !RESERVED.contains(&name) {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// A value as a SQL literal for `column`.
fn literal(value: &Value, column: &Column) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string().to_uppercase(),
        Value::String(s) if column.duck_type().is_numeric() => s.clone(),
        Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        other => format!("'{}'", other.to_string().replace('\'', "''")),
    }
}

/// A value as the question writes it.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

/// A column name as English: `source_airport_id` → `source airport id`, `iata` → `IATA code`.
pub(crate) fn phrase(column: &str) -> String {
    let lower = column.to_ascii_lowercase();
    let known = match lower.as_str() {
        "iata" => Some("IATA code"),
        "icao" => Some("ICAO code"),
        "tz_db" => Some("time zone name"),
        "dst" => Some("daylight-saving code"),
        "iso_code" => Some("ISO code"),
        "dafif_code" => Some("DAFIF code"),
        _ => None,
    };
    if let Some(text) = known {
        return text.to_string();
    }
    lower
        .split('_')
        .filter(|w| !w.is_empty())
        .map(|w| match w {
            "id" => "ID".to_string(),
            "iata" | "icao" | "iso" | "url" => w.to_ascii_uppercase(),
            _ => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `a`, `a and b`, `a, b and c`.
fn english_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// A table name as a plural English noun.
pub(crate) fn noun(table: &str) -> String {
    phrase(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::openflights;
    use rand::SeedableRng;
    use serde_json::json;

    fn profiles(schema: &Schema) -> Profiles {
        let mut profiles = Profiles::default();
        for table in &schema.tables {
            profiles.row_counts.insert(table.name.clone(), 100);
            let mut columns = BTreeMap::new();
            for column in &table.columns {
                let numeric = column.duck_type().is_numeric();
                let top: Vec<Value> = if numeric {
                    vec![json!(1), json!(5), json!(20)]
                } else {
                    vec![json!("Norway"), json!("O'Hare")]
                };
                columns.insert(
                    column.name.clone(),
                    ColumnProfile {
                        distinct_count: 10,
                        null_count: 0,
                        top_values: top,
                        min: None,
                        max: None,
                    },
                );
            }
            profiles.columns.insert(table.name.clone(), columns);
        }
        profiles
    }

    #[test]
    fn every_family_produces_something_on_openflights() {
        let mut schema = openflights();
        schema.infer_keys();
        let profiles = profiles(&schema);
        let mut seen = std::collections::BTreeSet::new();
        let mut generator = Generator::new(&schema, &profiles, ChaCha8Rng::seed_from_u64(1));
        for _ in 0..3000 {
            if let Some(c) = generator.next_candidate() {
                assert!(
                    c.sql.starts_with("SELECT") || c.sql.starts_with("WITH"),
                    "{}",
                    c.sql
                );
                assert!(
                    c.question.ends_with('?') || c.question.ends_with('.'),
                    "{}",
                    c.question
                );
                assert!(!c.question.contains('{'), "{}", c.question);
                seen.insert(c.family);
            }
        }
        let missing: Vec<_> = Generator::families()
            .into_iter()
            .map(|(name, _)| name)
            .filter(|f| !seen.contains(f))
            .collect();
        assert!(missing.is_empty(), "families never produced: {missing:?}");
    }

    #[test]
    fn literals_are_escaped_and_identifiers_quoted_when_needed() {
        let text = crate::schema::tests::column("city", "VARCHAR");
        assert_eq!(literal(&json!("O'Hare"), &text), "'O''Hare'");
        assert_eq!(ident("name"), "name");
        assert_eq!(ident("order"), "\"order\"");
        assert_eq!(ident("Weird Name"), "\"Weird Name\"");
        assert_eq!(phrase("source_airport_id"), "source airport ID");
        assert_eq!(phrase("iata"), "IATA code");
    }

    #[test]
    fn filter_values_come_from_the_profiles() {
        let mut schema = openflights();
        schema.infer_keys();
        let profiles = profiles(&schema);
        let known = ["Norway", "O'Hare"];
        let mut generator = Generator::new(&schema, &profiles, ChaCha8Rng::seed_from_u64(9));
        let mut checked = 0;
        for _ in 0..500 {
            let Some(c) = generator.count_where() else {
                continue;
            };
            // Every string literal is a profiled value, or a LIKE prefix of one.
            let mut rest = c.sql.as_str();
            while let Some(start) = rest.find('\'') {
                let mut end = start + 1;
                let bytes = rest.as_bytes();
                while end < bytes.len()
                    && !(bytes[end] == b'\'' && bytes.get(end + 1) != Some(&b'\''))
                {
                    end += if bytes[end] == b'\'' { 2 } else { 1 };
                }
                let literal = rest[start + 1..end].replace("''", "'");
                let ok = known.contains(&literal.as_str())
                    || literal
                        .strip_suffix('%')
                        .is_some_and(|p| known.iter().any(|k| k.starts_with(p)));
                assert!(ok, "{literal} in {}", c.sql);
                checked += 1;
                rest = &rest[end + 1..];
            }
        }
        assert!(checked > 0);
    }
}
