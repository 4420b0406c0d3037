//! Layered configuration: built-in defaults < `sqlrft.toml` < environment < command-line flags.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::Value;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The config file read when `--config` is not given (in the working directory).
pub const DEFAULT_CONFIG_FILE: &str = "sqlrft.toml";

/// [`load`] for a network service: `PORT` (as Cloud Run and Heroku set it) also sets `port`,
/// and the merged settings must pass `validate`.
pub fn load_service<T, F, E>(
    section: &str,
    config_file: Option<&Path>,
    flags: &F,
    validate: impl FnOnce(&T) -> Result<(), E>,
) -> Result<T, E>
where
    T: DeserializeOwned + Serialize + Default,
    F: Serialize,
    E: From<ConfigError>,
{
    let config = load(section, config_file, &[("PORT", "port")], flags)?;
    validate(&config)?;
    Ok(config)
}

/// Loads section `section` (e.g. `mcp`) of the configuration into `T`.
///
/// Layers, later ones winning: `T::default()`, the `[section]` table of the TOML file
/// (`config_file`, or `./sqlrft.toml` if present), `extra_env` pairs (for conventional variables
/// such as Cloud Run's `PORT`), environment variables `SQLRFT_<SECTION>_<KEY>`, and finally
/// `flags` — a serializable struct whose unset options are skipped.
pub fn load<T, F>(
    section: &str,
    config_file: Option<&Path>,
    extra_env: &[(&str, &str)],
    flags: &F,
) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
    F: Serialize,
{
    load_with_env(section, config_file, extra_env, flags, process_env())
}

/// The process's environment variables, those that are not valid UTF-8 left out.
pub fn process_env() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os()
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
}

/// An environment from literal pairs, for the `*_with_env` functions (tests show layering
/// with it without touching the process's environment).
pub fn env_from(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// [`load`] with the environment given, so tests can show its layering without touching the
/// process's environment (which every test thread shares).
pub fn load_with_env<T, F>(
    section: &str,
    config_file: Option<&Path>,
    extra_env: &[(&str, &str)],
    flags: &F,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
    F: Serialize,
{
    merge(
        section,
        config_file,
        FileLayout::Table,
        extra_env,
        &T::default(),
        flags,
        env.into_iter(),
    )
}

/// [`load_with_env`] without flags, for settings that may also live in a file of their own:
/// a `config_file` given explicitly that has no `[section]` table holds the settings at its top
/// level (a standalone file such as the trainer's `configs/seed.toml`); otherwise the
/// `[section]` table of `config_file` (or `./sqlrft.toml`) is read, as for every other command.
pub fn load_table_or_file<T>(
    section: &str,
    config_file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError>
where
    T: DeserializeOwned + Serialize + Default,
{
    let layout = match config_file {
        Some(path) if path.is_file() && !has_table(path, section)? => FileLayout::Whole,
        _ => FileLayout::Table,
    };
    let no_flags = BTreeMap::<String, Value>::new();
    merge(
        section,
        config_file,
        layout,
        &[],
        &T::default(),
        &no_flags,
        env.into_iter(),
    )
}

/// Whether the TOML file at `path` has a top-level `[section]` table.
fn has_table(path: &Path, section: &str) -> Result<bool, ConfigError> {
    let tables: figment::value::Dict = Figment::from(Toml::file(path))
        .extract()
        .map_err(|err| ConfigError(format!("config file `{}`: {err}", path.display())))?;
    Ok(matches!(tables.get(section), Some(Value::Dict(..))))
}

/// How a config file holds a command's settings.
#[derive(Clone, Copy, PartialEq)]
enum FileLayout {
    /// In the `[section]` table (sqlrft.toml).
    Table,
    /// At the top level (a file of the command's settings only).
    Whole,
}

/// The one layering both [`load_with_env`] and [`Layered`] use: `defaults` < `[section]` of the
/// file < `extra_env` < `SQLRFT_<SECTION>_*` < `flags`.
fn merge<T: DeserializeOwned>(
    section: &str,
    config_file: Option<&Path>,
    layout: FileLayout,
    extra_env: &[(&str, &str)],
    defaults: &impl Serialize,
    flags: &impl Serialize,
    env: impl Iterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let file: Option<PathBuf> = match config_file {
        Some(path) if !path.is_file() => {
            return Err(ConfigError(format!(
                "config file `{}` does not exist; pass an existing TOML file to --config or omit it",
                path.display()
            )));
        }
        Some(path) => Some(path.to_path_buf()),
        None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
    };
    // An empty variable means unset: docker compose and Cloud Run pass `KEY=` for a setting left
    // unset, and `SQLRFT_MCP_TOKEN=` must not demand an empty bearer token.
    let env: BTreeMap<String, String> = env.filter(|(_, v)| !v.is_empty()).collect();
    let mut figment = Figment::from(Serialized::defaults(defaults));
    if let Some(file) = &file {
        figment = match layout {
            FileLayout::Table => figment.merge(Figment::from(Toml::file(file)).focus(section)),
            FileLayout::Whole => figment.merge(Toml::file(file)),
        };
    }
    for (variable, key) in extra_env {
        if let Some(value) = env.get(*variable) {
            figment = figment.merge(Serialized::default(key, env_value(value)));
        }
    }
    let prefix = format!("SQLRFT_{}_", section.to_ascii_uppercase());
    for (variable, value) in &env {
        let Some(key) = variable.strip_prefix(&prefix).filter(|k| !k.is_empty()) else {
            continue;
        };
        figment = figment.merge(Serialized::default(
            &key.to_ascii_lowercase(),
            env_value(value),
        ));
    }
    figment = figment.merge(Serialized::defaults(flags));
    // Lossy: an environment string becomes the number or boolean a field wants (`PORT=8080`).
    figment.extract_lossy().map_err(|err| {
        let source = file
            .as_ref()
            .map(|f| {
                format!(
                    " (from `{}`, environment `{prefix}*` or flags)",
                    f.display()
                )
            })
            .unwrap_or_else(|| format!(" (from environment `{prefix}*` or flags)"));
        ConfigError(format!(
            "invalid configuration for `{section}`{source}: {err}"
        ))
    })
}

/// An environment variable's value: a string (a token of digits stays a string; extraction turns
/// it into a number where a number is wanted), or a list or table when written as one (`[a, b]`).
fn env_value(text: &str) -> Value {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        text.parse()
            .expect("parsing an environment value is infallible")
    } else {
        Value::from(text.to_string())
    }
}

#[cfg(feature = "clap")]
pub use layered::{Layered, Section};

#[cfg(feature = "clap")]
mod layered {
    use std::collections::BTreeSet;
    use std::path::Path;

    use clap::parser::ValueSource;
    use figment::value::{Dict, Value};
    use serde::Serialize;
    use serde::de::DeserializeOwned;

    use super::{ConfigError, merge, process_env};

    /// A group of flags that reads its own table of sqlrft.toml and its own environment prefix.
    pub trait Section {
        /// The table and the prefix: `eval` reads `[eval]` and `SQLRFT_EVAL_*`.
        const SECTION: &'static str;

        /// Copies from `typed` what serde skips, so it comes through as parsed: flattened groups
        /// that layer over a table of their own (`--llm-*` over `[llm]`, `--hub-*` over
        /// `[hub]`) and `--config` itself.
        fn keep_unlayered(&mut self, typed: &Self) {
            let _ = typed;
        }
    }

    /// A command's own flags, parsed by clap with the defaults `--help` shows, layered the way
    /// every command's settings are: clap's default < `[section]` of sqlrft.toml (or
    /// `--config FILE`) < `SQLRFT_<SECTION>_<FLAG>` < what was typed on the command line.
    ///
    /// Flatten it into a command (`#[command(flatten)] settings: Layered<EvalArgs>`); it
    /// remembers which flags the user typed, so a default never hides the file or the
    /// environment. `T`'s serde field names must be its clap argument ids (the field names, for
    /// derived `Args`): the file's keys and the variables' suffixes are those names
    /// (`timeout_secs`, `SQLRFT_EVAL_TIMEOUT_SECS`). A group `T` flattens is `#[serde(skip)]`
    /// and handed back by [`Section::keep_unlayered`].
    /// (Shared flag groups whose defaults differ per command, like the serving flags, are
    /// all-`Option` instead and go through [`super::load`] with the command's own defaults.)
    #[derive(Debug, Clone)]
    pub struct Layered<T> {
        parsed: T,
        /// Argument ids whose value came from the command line (or a clap `env`).
        given: Option<BTreeSet<String>>,
    }

    impl<T> Layered<T> {
        /// Values set in code rather than parsed: every one counts as typed, so the file and the
        /// environment change nothing.
        pub fn new(values: T) -> Self {
            Layered {
                parsed: values,
                given: None,
            }
        }

        /// The values as clap parsed them, before the file and the environment are merged.
        pub fn parsed(&self) -> &T {
            &self.parsed
        }
    }

    impl<T: Section + Serialize + DeserializeOwned> Layered<T> {
        /// The merged settings (see [`Layered`]); `config_file` is `--config`, else
        /// `./sqlrft.toml` when present.
        pub fn resolve(&self, config_file: Option<&Path>) -> Result<T, ConfigError> {
            self.resolve_with_env(config_file, process_env())
        }

        /// [`resolve`](Self::resolve) with the environment given (for tests).
        pub fn resolve_with_env(
            &self,
            config_file: Option<&Path>,
            env: impl IntoIterator<Item = (String, String)>,
        ) -> Result<T, ConfigError> {
            let flags = Value::serialize(&self.parsed).map_err(|err| {
                ConfigError(format!(
                    "the `{}` flags could not be layered: {err}",
                    T::SECTION
                ))
            })?;
            let typed: Dict = match (flags, &self.given) {
                (Value::Dict(_, all), None) => all,
                (Value::Dict(_, all), Some(given)) => all
                    .into_iter()
                    .filter(|(key, _)| given.contains(key))
                    .collect(),
                (other, _) => {
                    return Err(ConfigError(format!(
                        "the `{}` flags serialize to {other:?}, not a table of settings",
                        T::SECTION
                    )));
                }
            };
            let mut resolved: T = merge(
                T::SECTION,
                config_file,
                super::FileLayout::Table,
                &[],
                &self.parsed,
                &typed,
                env.into_iter(),
            )?;
            resolved.keep_unlayered(&self.parsed);
            Ok(resolved)
        }
    }

    impl<T: clap::FromArgMatches> clap::FromArgMatches for Layered<T> {
        fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
            Self::from_arg_matches_mut(&mut matches.clone())
        }

        fn from_arg_matches_mut(matches: &mut clap::ArgMatches) -> Result<Self, clap::Error> {
            // Read before T takes the values out of `matches`.
            let given = matches
                .ids()
                .filter(|id| {
                    matches!(
                        matches.value_source(id.as_str()),
                        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                    )
                })
                .map(|id| id.as_str().to_string())
                .collect();
            Ok(Layered {
                parsed: T::from_arg_matches_mut(matches)?,
                given: Some(given),
            })
        }

        fn update_from_arg_matches(
            &mut self,
            matches: &clap::ArgMatches,
        ) -> Result<(), clap::Error> {
            *self = Self::from_arg_matches(matches)?;
            Ok(())
        }
    }

    impl<T: clap::Args> clap::Args for Layered<T> {
        fn group_id() -> Option<clap::Id> {
            T::group_id()
        }

        fn augment_args(command: clap::Command) -> clap::Command {
            T::augment_args(command)
        }

        fn augment_args_for_update(command: clap::Command) -> clap::Command {
            T::augment_args_for_update(command)
        }
    }
}

/// A configuration value that could not be read, with where it came from.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    struct Demo {
        port: u16,
        host: String,
        limit: u32,
    }

    #[derive(Serialize)]
    struct Flags {
        #[serde(skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    }

    #[test]
    fn layers_file_then_env_then_flags() {
        let dir = std::env::temp_dir().join(format!("sqlrft-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sqlrft.toml");
        std::fs::write(
            &file,
            "[demo]\nport = 1\nhost = \"file\"\nlimit = 5\n[other]\nport = 9\n",
        )
        .unwrap();
        let loaded: Demo = load("demo", Some(&file), &[], &Flags { limit: Some(7) }).unwrap();
        assert_eq!(
            loaded,
            Demo {
                port: 1,
                host: "file".into(),
                limit: 7
            }
        );
        let unset: Demo = load("demo", Some(&file), &[], &Flags { limit: None }).unwrap();
        assert_eq!(unset.limit, 5);
    }

    #[test]
    fn env_sits_between_the_file_and_the_flags() {
        let dir = std::env::temp_dir().join(format!("sqlrft-config-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sqlrft.toml");
        std::fs::write(&file, "[demo]\nport = 1\nhost = \"file\"\nlimit = 5\n").unwrap();
        let env = || {
            env_from(&[
                ("SQLRFT_DEMO_HOST", "env"),
                ("SQLRFT_DEMO_LIMIT", "6"),
                ("SQLRFT_OTHER_PORT", "9"),
                ("PORT", "2"),
            ])
        };
        let loaded: Demo =
            load_with_env("demo", Some(&file), &[], &Flags { limit: Some(7) }, env()).unwrap();
        assert_eq!(
            loaded,
            Demo {
                port: 1,
                host: "env".into(),
                limit: 7
            }
        );
        let conventional: Demo = load_with_env(
            "demo",
            Some(&file),
            &[("PORT", "port")],
            &Flags { limit: None },
            env(),
        )
        .unwrap();
        assert_eq!((conventional.port, conventional.limit), (2, 6));
        let digits: Demo = load_with_env(
            "demo",
            None,
            &[],
            &Flags { limit: None },
            [("SQLRFT_DEMO_HOST".to_string(), "12345".to_string())],
        )
        .unwrap();
        assert_eq!(digits.host, "12345", "a token of digits is still a string");
    }

    #[test]
    fn an_empty_variable_is_unset() {
        // docker compose and Cloud Run pass `KEY=` for a setting left unset.
        let env = env_from(&[
            ("SQLRFT_DEMO_PORT", ""),
            ("SQLRFT_DEMO_LIMIT", "3"),
            ("CONVENTIONAL_HOST", ""),
        ]);
        let loaded: Demo = load_with_env(
            "demo",
            None,
            &[("CONVENTIONAL_HOST", "host")],
            &Flags { limit: None },
            env,
        )
        .unwrap();
        assert_eq!(loaded.port, 0, "an empty variable leaves the default");
        assert_eq!(loaded.host, "", "an empty conventional variable too");
        assert_eq!(loaded.limit, 3, "a set variable still overrides");
    }

    #[test]
    fn missing_config_file_is_a_clear_error() {
        let err = load::<Demo, _>("demo", Some(Path::new("/no/such.toml")), &[], &()).unwrap_err();
        assert!(err.to_string().contains("/no/such.toml"), "{err}");
    }

    #[cfg(feature = "clap")]
    mod layered {
        use super::super::{Layered, Section, env_from as vars};
        use clap::Parser;
        use serde::{Deserialize, Serialize};

        #[derive(Debug, Clone, clap::Args, Serialize, Deserialize)]
        struct Knobs {
            /// A number with a default.
            #[arg(long, default_value_t = 1)]
            rows: u32,
            /// Another.
            #[arg(long, default_value_t = 2.5)]
            ratio: f64,
            /// A switch.
            #[arg(long)]
            fast: bool,
            /// Optional.
            #[arg(long)]
            name: Option<String>,
        }

        impl Section for Knobs {
            const SECTION: &'static str = "knobs";
        }

        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            knobs: Layered<Knobs>,
        }

        fn parse(line: &[&str]) -> Layered<Knobs> {
            Cli::try_parse_from(std::iter::once("x").chain(line.iter().copied()))
                .unwrap()
                .knobs
        }

        #[test]
        fn defaults_then_file_then_env_then_typed_flags() {
            let dir = tempfile_dir("layered");
            let file = dir.join("sqlrft.toml");
            std::fs::write(&file, "[knobs]\nrows = 10\nratio = 0.5\nname = \"file\"\n").unwrap();

            let defaults = parse(&[]).resolve_with_env(None, vars(&[])).unwrap();
            assert_eq!(
                (defaults.rows, defaults.ratio, defaults.fast),
                (1, 2.5, false)
            );
            assert_eq!(defaults.name, None);

            let from_file = parse(&[]).resolve_with_env(Some(&file), vars(&[])).unwrap();
            assert_eq!((from_file.rows, from_file.ratio), (10, 0.5));
            assert_eq!(from_file.name.as_deref(), Some("file"));

            let env = vars(&[("SQLRFT_KNOBS_ROWS", "20"), ("SQLRFT_KNOBS_FAST", "true")]);
            let from_env = parse(&[])
                .resolve_with_env(Some(&file), env.clone())
                .unwrap();
            assert_eq!(
                (from_env.rows, from_env.ratio, from_env.fast),
                (20, 0.5, true)
            );

            // A flag typed with its default value still wins: it was typed.
            let typed = parse(&["--rows", "1", "--name", "flag"])
                .resolve_with_env(Some(&file), env)
                .unwrap();
            assert_eq!((typed.rows, typed.ratio), (1, 0.5));
            assert_eq!(typed.name.as_deref(), Some("flag"));
        }

        #[test]
        fn values_set_in_code_ignore_the_file() {
            let dir = tempfile_dir("layered-code");
            let file = dir.join("sqlrft.toml");
            std::fs::write(&file, "[knobs]\nrows = 10\n").unwrap();
            let knobs = parse(&[]).parsed().clone();
            let resolved = Layered::new(knobs)
                .resolve_with_env(Some(&file), vars(&[("SQLRFT_KNOBS_ROWS", "3")]))
                .unwrap();
            assert_eq!(resolved.rows, 1);
        }

        #[test]
        fn a_bad_value_names_the_section() {
            let err = parse(&[])
                .resolve_with_env(None, vars(&[("SQLRFT_KNOBS_ROWS", "many")]))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("knobs") && err.contains("SQLRFT_KNOBS_"),
                "{err}"
            );
        }

        fn tempfile_dir(name: &str) -> std::path::PathBuf {
            let dir = std::env::temp_dir().join(format!("sqlrft-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            dir
        }
    }
}
