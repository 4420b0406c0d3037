//! The query set: candidates (from the grammar or an LLM) are parsed by DuckDB, bound against
//! the sandbox, classified, deduplicated with literals masked, and accepted while their
//! complexity class has quota left.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlrft_core::dataset::Complexity;
use sqlrft_duck::duckdb::Connection;

use crate::analysis::analyse;
use crate::fingerprint::fingerprint;
use crate::records::{Origin, QueryItem};

/// Shares of each complexity class in the query set, in percent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mix(pub BTreeMap<Complexity, f64>);

impl Default for Mix {
    /// More medium and hard than easy: easy queries teach little once learned.
    fn default() -> Self {
        Mix([
            (Complexity::Easy, 25.0),
            (Complexity::Medium, 30.0),
            (Complexity::Hard, 25.0),
            (Complexity::Extra, 20.0),
        ]
        .into())
    }
}

impl FromStr for Mix {
    type Err = String;
    /// `easy=25,medium=30,hard=25,extra=20` (unnamed classes get 0).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut mix = BTreeMap::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (class, share) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected class=percent, e.g. easy=25"))?;
            let class: Complexity = class.parse()?;
            let share: f64 = share
                .trim()
                .trim_end_matches('%')
                .parse()
                .map_err(|_| format!("`{part}`: the share must be a number"))?;
            if share < 0.0 {
                return Err(format!("`{part}`: the share must not be negative"));
            }
            mix.insert(class, share);
        }
        if mix.values().sum::<f64>() <= 0.0 {
            return Err("the mix must give some class a positive share".into());
        }
        Ok(Mix(mix))
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(c, s)| format!("{c}={s}")).collect();
        f.write_str(&parts.join(","))
    }
}

impl Mix {
    /// Per-class quotas summing to `total` (largest remainders get the leftovers).
    pub(crate) fn quotas(&self, total: usize) -> BTreeMap<Complexity, usize> {
        let sum: f64 = self.0.values().sum();
        let mut quotas = BTreeMap::new();
        let mut remainders = Vec::new();
        for class in Complexity::ALL {
            let exact = total as f64 * self.0.get(&class).copied().unwrap_or(0.0) / sum;
            quotas.insert(class, exact.floor() as usize);
            remainders.push((exact - exact.floor(), class));
        }
        let mut left = total - quotas.values().sum::<usize>();
        remainders.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, class) in remainders {
            if left == 0 {
                break;
            }
            if self.0.get(&class).copied().unwrap_or(0.0) > 0.0 {
                *quotas.get_mut(&class).expect("class") += 1;
                left -= 1;
            }
        }
        quotas
    }
}

/// What happened to candidates, for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct QueryStats {
    pub(crate) candidates: usize,
    pub(crate) accepted: usize,
    pub(crate) duplicates: usize,
    /// Not a single SELECT, or DuckDB could not parse or bind it.
    pub(crate) invalid: usize,
    /// Its class was already full.
    pub(crate) over_quota: usize,
    pub(crate) quotas: BTreeMap<Complexity, usize>,
    pub(crate) per_class: BTreeMap<Complexity, usize>,
    pub(crate) per_family: BTreeMap<String, usize>,
    /// A few invalid candidates with DuckDB's message, to see what goes wrong.
    #[serde(default)]
    pub(crate) invalid_examples: Vec<(String, String)>,
}

/// What became of one offered candidate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Offer {
    Accepted,
    Duplicate,
    Invalid(String),
    OverQuota,
}

/// Accepts candidates into the query set.
pub(crate) struct Acceptor<'c> {
    conn: &'c Connection,
    quotas: BTreeMap<Complexity, usize>,
    /// Accept beyond a class's quota (used to top up when some class cannot be filled).
    pub(crate) overflow: bool,
    total: usize,
    seen: HashSet<String>,
    pub(crate) accepted: Vec<QueryItem>,
    pub(crate) stats: QueryStats,
}

impl<'c> Acceptor<'c> {
    /// `conn` is a read-only connection to the sandbox (queries are bound, not run).
    pub(crate) fn new(conn: &'c Connection, total: usize, mix: &Mix) -> Self {
        let quotas = mix.quotas(total);
        Acceptor {
            conn,
            quotas: quotas.clone(),
            overflow: false,
            total,
            seen: HashSet::new(),
            accepted: Vec::new(),
            stats: QueryStats {
                quotas,
                ..QueryStats::default()
            },
        }
    }

    pub(crate) fn full(&self) -> bool {
        self.accepted.len() >= self.total
    }

    /// True when every class has reached its quota (or the total is reached).
    pub(crate) fn quotas_met(&self) -> bool {
        self.full()
            || self
                .quotas
                .iter()
                .all(|(c, q)| self.stats.per_class.get(c).copied().unwrap_or(0) >= *q)
    }

    pub(crate) fn offer(
        &mut self,
        sql: &str,
        origin: Origin,
        family: Option<&str>,
        template_question: Option<&str>,
    ) -> Offer {
        self.stats.candidates += 1;
        let sql = sql.trim().trim_end_matches(';').trim();
        let print = fingerprint(sql);
        if self.seen.contains(&print) {
            self.stats.duplicates += 1;
            return Offer::Duplicate;
        }
        let ast = match sqlrft_duck::parse_select(self.conn, sql) {
            Ok(ast) => ast,
            Err(e) => return self.invalid(sql, e.to_string()),
        };
        // Binding catches unknown tables and columns without running anything.
        if let Err(e) = self.conn.prepare(sql) {
            return self.invalid(sql, e.to_string());
        }
        let shape = analyse(&ast);
        let class_count = self
            .stats
            .per_class
            .get(&shape.complexity)
            .copied()
            .unwrap_or(0);
        if self.full()
            || (!self.overflow
                && class_count >= self.quotas.get(&shape.complexity).copied().unwrap_or(0))
        {
            self.stats.over_quota += 1;
            return Offer::OverQuota;
        }
        self.seen.insert(print.clone());
        *self.stats.per_class.entry(shape.complexity).or_default() += 1;
        if let Some(family) = family {
            *self.stats.per_family.entry(family.to_string()).or_default() += 1;
        }
        self.stats.accepted += 1;
        self.accepted.push(QueryItem {
            id: format!("q{print}"),
            sql: sql.to_string(),
            complexity: shape.complexity,
            tags: shape.tags,
            tables: shape.tables,
            ordered: shape.ordered,
            origin,
            family: family.map(str::to_string),
            template_question: template_question.map(str::to_string),
        });
        Offer::Accepted
    }

    fn invalid(&mut self, sql: &str, message: String) -> Offer {
        self.stats.invalid += 1;
        if self.stats.invalid_examples.len() < 5 {
            self.stats
                .invalid_examples
                .push((sql.to_string(), message.clone()));
        }
        Offer::Invalid(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_sum_to_the_total() {
        let mix = Mix::default();
        for total in [0, 1, 7, 100, 999] {
            let quotas = mix.quotas(total);
            assert_eq!(quotas.values().sum::<usize>(), total, "{total}");
        }
        assert_eq!(mix.quotas(100)[&Complexity::Medium], 30);
    }

    #[test]
    fn mix_parses_and_rejects_nonsense() {
        let mix: Mix = "easy=50, extra=50%".parse().unwrap();
        let quotas = mix.quotas(10);
        assert_eq!(
            (
                quotas[&Complexity::Easy],
                quotas[&Complexity::Medium],
                quotas[&Complexity::Extra]
            ),
            (5, 0, 5)
        );
        assert!("easy".parse::<Mix>().is_err());
        assert!("simple=3".parse::<Mix>().is_err());
        assert!("easy=0".parse::<Mix>().is_err());
        assert_eq!(mix.to_string().parse::<Mix>().unwrap(), mix);
    }
}
