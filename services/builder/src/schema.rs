//! The schema model (`schema.json`): tables, columns, types, nullability and keys, declared or
//! inferred from column names. It is everything the builder knows about production.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sqlrft_core::DuckType;

/// A database's structure, without a single data row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Name the dataset records carry in their `db` field.
    pub name: String,
    /// Where the schema came from (a path or `ddl:<file>`), for the report.
    #[serde(default)]
    pub source: String,
    /// Its tables, in catalog order.
    pub tables: Vec<Table>,
}

/// One table: its columns and keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Table name as the database spells it.
    pub name: String,
    /// Columns in declaration order.
    pub columns: Vec<Column>,
    /// Primary-key columns; empty when there is none.
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// How the primary key is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key_origin: Option<KeyOrigin>,
    /// References to other tables, declared or inferred.
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKey>,
}

/// One column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Column name as the database spells it.
    pub name: String,
    /// DuckDB type name (`INTEGER`, `VARCHAR`, `DECIMAL(10,2)`, …).
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether NULL is allowed.
    pub nullable: bool,
}

impl Column {
    pub(crate) fn duck_type(&self) -> DuckType {
        DuckType::parse(&self.data_type)
    }
}

/// `columns` of one table refer to `references_columns` of `references_table`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// The referring columns.
    pub columns: Vec<String>,
    /// The table referred to.
    pub references_table: String,
    /// Its columns, in the same order as `columns`.
    pub references_columns: Vec<String>,
    /// Declared, or guessed from names.
    pub origin: KeyOrigin,
}

/// Whether a key was declared in the database or guessed from names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyOrigin {
    /// Declared in the database's catalog or DDL.
    Declared,
    /// Guessed from names (`airline_id` → `airlines.airline_id`); not enforced anywhere.
    Inferred,
}

impl Schema {
    /// The table named `name` (case-insensitive).
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// Adds primary and foreign keys guessed from names where none are declared, marked
    /// [`KeyOrigin::Inferred`].
    ///
    /// - A table without a primary key gets one when it has a column `id` or `<singular>_id`
    ///   (`airports.airport_id`) of an integer type.
    /// - A column `<x>_id` or `<prefix>_<x>_id` references the table named `<x>`'s plural (or
    ///   `<x>` itself) on its single-column primary key (`routes.source_airport_id` →
    ///   `airports.airport_id`).
    /// - A text column named after another table in the singular references that table's text
    ///   `name` column (`airports.country` → `countries.name`).
    pub(crate) fn infer_keys(&mut self) {
        for table in &mut self.tables {
            if !table.primary_key.is_empty() {
                continue;
            }
            let singular = singular(&table.name);
            let candidate = table.columns.iter().find(|c| {
                let name = c.name.to_ascii_lowercase();
                (name == "id" || name == format!("{singular}_id"))
                    && matches!(c.duck_type(), DuckType::Integer(_))
            });
            if let Some(column) = candidate {
                table.primary_key = vec![column.name.clone()];
                table.primary_key_origin = Some(KeyOrigin::Inferred);
            }
        }

        // (table, singular, (single-column primary key, numeric?), text `name` column)
        type Target = (String, String, Option<(String, bool)>, Option<String>);
        let targets: Vec<Target> = self
            .tables
            .iter()
            .map(|t| {
                let pk = (t.primary_key.len() == 1).then(|| {
                    let numeric = t
                        .column(&t.primary_key[0])
                        .is_some_and(|c| c.duck_type().is_numeric());
                    (t.primary_key[0].clone(), numeric)
                });
                let name_column = t
                    .columns
                    .iter()
                    .find(|c| {
                        c.name.eq_ignore_ascii_case("name") && c.duck_type() == DuckType::Varchar
                    })
                    .map(|c| c.name.clone());
                (t.name.clone(), singular(&t.name), pk, name_column)
            })
            .collect();

        for table in &mut self.tables {
            let covered: BTreeSet<String> = table
                .foreign_keys
                .iter()
                .flat_map(|fk| fk.columns.iter().map(|c| c.to_ascii_lowercase()))
                .collect();
            let mut inferred = Vec::new();
            for column in &table.columns {
                let lower = column.name.to_ascii_lowercase();
                if covered.contains(&lower) || table.primary_key == [column.name.clone()] {
                    continue;
                }
                let ty = column.duck_type();
                // The tutorial's pandas load turns integer ids with NULLs into DOUBLE, so any
                // numeric id may reference a numeric key.
                if let Some(stem) = lower.strip_suffix("_id") {
                    let target = targets.iter().find(|(name, singular, pk, _)| {
                        pk.as_ref()
                            .is_some_and(|(_, numeric)| *numeric == ty.is_numeric())
                            && !name.eq_ignore_ascii_case(&table.name)
                            && (stem == singular
                                || stem == name.to_ascii_lowercase()
                                || stem.ends_with(&format!("_{singular}")))
                    });
                    if let Some((name, _, Some((pk, _)), _)) = target {
                        inferred.push(ForeignKey {
                            columns: vec![column.name.clone()],
                            references_table: name.clone(),
                            references_columns: vec![pk.clone()],
                            origin: KeyOrigin::Inferred,
                        });
                    }
                    continue;
                }
                // `routes.airline` beside `routes.airline_id` is a denormalised code of the
                // row `airline_id` already references, not a second reference by name.
                let beside_id = table
                    .columns
                    .iter()
                    .any(|c| c.name.eq_ignore_ascii_case(&format!("{lower}_id")));
                if ty == DuckType::Varchar && !beside_id {
                    let target = targets.iter().find(|(name, singular, _, name_column)| {
                        name_column.is_some()
                            && !name.eq_ignore_ascii_case(&table.name)
                            && lower == *singular
                    });
                    if let Some((name, _, _, Some(name_column))) = target {
                        inferred.push(ForeignKey {
                            columns: vec![column.name.clone()],
                            references_table: name.clone(),
                            references_columns: vec![name_column.clone()],
                            origin: KeyOrigin::Inferred,
                        });
                    }
                }
            }
            table.foreign_keys.extend(inferred);
        }
    }

    /// Tables ordered so that every table comes after the tables it references (cycles and
    /// self-references are broken by keeping the original order).
    pub(crate) fn tables_parents_first(&self) -> Vec<&Table> {
        let mut placed: Vec<&Table> = Vec::new();
        let mut remaining: Vec<&Table> = self.tables.iter().collect();
        while !remaining.is_empty() {
            let ready = remaining.iter().position(|t| {
                t.foreign_keys.iter().all(|fk| {
                    fk.references_table.eq_ignore_ascii_case(&t.name)
                        || placed
                            .iter()
                            .any(|p| p.name.eq_ignore_ascii_case(&fk.references_table))
                        || self.table(&fk.references_table).is_none()
                })
            });
            // A cycle: take the first remaining table; its back-references become NULL or
            // point at rows generated so far.
            let index = ready.unwrap_or(0);
            placed.push(remaining.remove(index));
        }
        placed
    }

    /// The schema as the prompts show it: one markdown table per database table, with keys.
    pub(crate) fn to_prompt_text(&self) -> String {
        let mut out = String::new();
        for table in &self.tables {
            out.push_str(&format!("Table `{}`\n\n", table.name));
            out.push_str("| column | type | nullable | key |\n|---|---|---|---|\n");
            for column in &table.columns {
                let mut keys = Vec::new();
                if table.primary_key.contains(&column.name) {
                    keys.push("primary key".to_string());
                }
                for fk in &table.foreign_keys {
                    if let Some(i) = fk.columns.iter().position(|c| c == &column.name) {
                        keys.push(format!(
                            "references {}.{}",
                            fk.references_table, fk.references_columns[i]
                        ));
                    }
                }
                out.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    column.name,
                    column.data_type,
                    if column.nullable { "yes" } else { "no" },
                    keys.join(", ")
                ));
            }
            out.push('\n');
        }
        out.trim_end().to_string()
    }

    /// Checks that names are unique and keys point at columns that exist.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.tables.is_empty() {
            return Err("the schema has no tables".into());
        }
        let mut seen = BTreeMap::new();
        for table in &self.tables {
            if seen.insert(table.name.to_ascii_lowercase(), ()).is_some() {
                return Err(format!("table `{}` appears twice", table.name));
            }
            if table.columns.is_empty() {
                return Err(format!("table `{}` has no columns", table.name));
            }
            let has = |t: &Table, c: &str| t.columns.iter().any(|x| x.name.eq_ignore_ascii_case(c));
            for key in &table.primary_key {
                if !has(table, key) {
                    return Err(format!(
                        "primary key of `{}` names unknown column `{key}`",
                        table.name
                    ));
                }
            }
            for fk in &table.foreign_keys {
                let Some(parent) = self.table(&fk.references_table) else {
                    return Err(format!(
                        "foreign key of `{}` references unknown table `{}`",
                        table.name, fk.references_table
                    ));
                };
                if fk.columns.len() != fk.references_columns.len()
                    || fk.columns.iter().any(|c| !has(table, c))
                    || fk.references_columns.iter().any(|c| !has(parent, c))
                {
                    return Err(format!(
                        "foreign key `{}({})` → `{}({})` names unknown columns",
                        table.name,
                        fk.columns.join(", "),
                        fk.references_table,
                        fk.references_columns.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Table {
    /// The column named `name` (case-insensitive).
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The foreign key whose single column is `column`, if any.
    pub fn foreign_key_of(&self, column: &str) -> Option<&ForeignKey> {
        self.foreign_keys
            .iter()
            .find(|fk| fk.columns.len() == 1 && fk.columns[0].eq_ignore_ascii_case(column))
    }
}

/// `countries` → `country`, `airlines` → `airline`, `addresses` → `address`, `data` → `data`.
pub(crate) fn singular(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if let Some(stem) = lower.strip_suffix("ies") {
        return format!("{stem}y");
    }
    for suffix in ["sses", "xes", "ches", "shes"] {
        if lower.ends_with(suffix) {
            return lower[..lower.len() - 2].to_string();
        }
    }
    if lower.ends_with('s') && !lower.ends_with("ss") && lower.len() > 1 {
        return lower[..lower.len() - 1].to_string();
    }
    lower
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn column(name: &str, ty: &str) -> Column {
        Column {
            name: name.into(),
            data_type: ty.into(),
            nullable: true,
        }
    }

    pub(crate) fn table(name: &str, columns: &[(&str, &str)]) -> Table {
        Table {
            name: name.into(),
            columns: columns.iter().map(|(n, t)| column(n, t)).collect(),
            primary_key: vec![],
            primary_key_origin: None,
            foreign_keys: vec![],
        }
    }

    /// The OpenFlights tables as the tutorial's pandas load types them: no keys declared.
    pub(crate) fn openflights() -> Schema {
        Schema {
            name: "openflights".into(),
            source: "test".into(),
            tables: vec![
                table(
                    "airports",
                    &[
                        ("airport_id", "BIGINT"),
                        ("name", "VARCHAR"),
                        ("city", "VARCHAR"),
                        ("country", "VARCHAR"),
                        ("iata", "VARCHAR"),
                        ("icao", "VARCHAR"),
                        ("latitude", "DOUBLE"),
                        ("longitude", "DOUBLE"),
                        ("altitude", "BIGINT"),
                        ("timezone", "DOUBLE"),
                        ("dst", "VARCHAR"),
                        ("tz_db", "VARCHAR"),
                        ("type", "VARCHAR"),
                        ("source", "VARCHAR"),
                    ],
                ),
                table(
                    "airlines",
                    &[
                        ("airline_id", "BIGINT"),
                        ("name", "VARCHAR"),
                        ("alias", "VARCHAR"),
                        ("iata", "VARCHAR"),
                        ("icao", "VARCHAR"),
                        ("callsign", "VARCHAR"),
                        ("country", "VARCHAR"),
                        ("active", "VARCHAR"),
                    ],
                ),
                table(
                    "routes",
                    &[
                        ("airline", "VARCHAR"),
                        ("airline_id", "DOUBLE"),
                        ("source_airport", "VARCHAR"),
                        ("source_airport_id", "DOUBLE"),
                        ("destination_airport", "VARCHAR"),
                        ("destination_airport_id", "DOUBLE"),
                        ("codeshare", "VARCHAR"),
                        ("stops", "BIGINT"),
                        ("equipment", "VARCHAR"),
                    ],
                ),
                table(
                    "countries",
                    &[
                        ("name", "VARCHAR"),
                        ("iso_code", "VARCHAR"),
                        ("dafif_code", "VARCHAR"),
                    ],
                ),
                table(
                    "planes",
                    &[
                        ("name", "VARCHAR"),
                        ("iata", "VARCHAR"),
                        ("icao", "VARCHAR"),
                    ],
                ),
            ],
        }
    }

    #[test]
    fn singular_handles_common_plurals() {
        assert_eq!(singular("countries"), "country");
        assert_eq!(singular("airlines"), "airline");
        assert_eq!(singular("addresses"), "address");
        assert_eq!(singular("boxes"), "box");
        assert_eq!(singular("status"), "statu");
        assert_eq!(singular("class"), "class");
    }

    #[test]
    fn infers_openflights_keys_from_names() {
        let mut schema = openflights();
        schema.infer_keys();
        let airports = schema.table("airports").unwrap();
        assert_eq!(airports.primary_key, vec!["airport_id"]);
        assert_eq!(airports.primary_key_origin, Some(KeyOrigin::Inferred));
        assert!(schema.table("countries").unwrap().primary_key.is_empty());

        let routes = schema.table("routes").unwrap();
        let target = |c: &str| {
            routes
                .foreign_key_of(c)
                .map(|fk| format!("{}.{}", fk.references_table, fk.references_columns[0]))
        };
        // DOUBLE in the tutorial's load (pandas turns NULL-holding integers into floats).
        assert_eq!(target("airline_id").as_deref(), Some("airlines.airline_id"));
        assert_eq!(
            target("destination_airport_id").as_deref(),
            Some("airports.airport_id")
        );
        assert_eq!(target("source_airport"), None);
        assert_eq!(
            target("airline"),
            None,
            "a code beside airline_id, not a name reference"
        );
        assert_eq!(
            target("country"),
            None,
            "routes has no country column at all"
        );
        let airlines = schema.table("airlines").unwrap();
        let fk = airlines.foreign_key_of("country").unwrap();
        assert_eq!(
            (
                fk.references_table.as_str(),
                fk.references_columns[0].as_str()
            ),
            ("countries", "name")
        );
        assert_eq!(fk.origin, KeyOrigin::Inferred);
        schema.validate().unwrap();
    }

    #[test]
    fn infers_prefixed_id_references() {
        let mut schema = Schema {
            name: "t".into(),
            source: String::new(),
            tables: vec![
                table(
                    "airports",
                    &[("airport_id", "INTEGER"), ("name", "VARCHAR")],
                ),
                table(
                    "routes",
                    &[
                        ("route_id", "INTEGER"),
                        ("source_airport_id", "INTEGER"),
                        ("destination_airport_id", "INTEGER"),
                    ],
                ),
            ],
        };
        schema.infer_keys();
        let routes = schema.table("routes").unwrap();
        assert_eq!(routes.primary_key, vec!["route_id"]);
        for column in ["source_airport_id", "destination_airport_id"] {
            let fk = routes.foreign_key_of(column).unwrap();
            assert_eq!(fk.references_table, "airports");
            assert_eq!(fk.references_columns, vec!["airport_id"]);
        }
    }

    #[test]
    fn declared_keys_are_kept() {
        let mut schema = Schema {
            name: "t".into(),
            source: String::new(),
            tables: vec![
                Table {
                    primary_key: vec!["code".into()],
                    primary_key_origin: Some(KeyOrigin::Declared),
                    ..table(
                        "airlines",
                        &[("code", "VARCHAR"), ("airline_id", "INTEGER")],
                    )
                },
                Table {
                    foreign_keys: vec![ForeignKey {
                        columns: vec!["airline_id".into()],
                        references_table: "airlines".into(),
                        references_columns: vec!["code".into()],
                        origin: KeyOrigin::Declared,
                    }],
                    ..table("routes", &[("airline_id", "INTEGER")])
                },
            ],
        };
        schema.infer_keys();
        let routes = schema.table("routes").unwrap();
        assert_eq!(routes.foreign_keys.len(), 1);
        assert_eq!(routes.foreign_keys[0].origin, KeyOrigin::Declared);
        assert_eq!(schema.table("airlines").unwrap().primary_key, vec!["code"]);
    }

    #[test]
    fn parents_come_first() {
        let mut schema = openflights();
        for t in &mut schema.tables {
            for c in &mut t.columns {
                if c.name.ends_with("_id") {
                    c.data_type = "INTEGER".into();
                }
            }
        }
        schema.infer_keys();
        let order: Vec<&str> = schema
            .tables_parents_first()
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        let pos = |n: &str| order.iter().position(|x| *x == n).unwrap();
        assert!(pos("routes") > pos("airports") && pos("routes") > pos("airlines"));
        assert!(pos("airports") > pos("countries"));
        assert_eq!(order.len(), 5);
    }

    #[test]
    fn validate_names_the_bad_key() {
        let mut schema = openflights();
        schema.tables[0].primary_key = vec!["nope".into()];
        let error = schema.validate().unwrap_err();
        assert!(
            error.contains("nope") && error.contains("airports"),
            "{error}"
        );
    }

    #[test]
    fn prompt_text_lists_every_column_and_key() {
        let mut schema = openflights();
        schema.infer_keys();
        let text = schema.to_prompt_text();
        for table in &schema.tables {
            for column in &table.columns {
                assert!(text.contains(&format!("| {} |", column.name)));
            }
        }
        assert!(text.contains("references countries.name"));
    }
}
