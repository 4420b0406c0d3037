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
    let env: BTreeMap<String, String> = env.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(file) = &file {
        figment = figment.merge(Figment::from(Toml::file(file)).focus(section));
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
            [
                ("SQLRFT_DEMO_HOST", "env"),
                ("SQLRFT_DEMO_LIMIT", "6"),
                ("SQLRFT_OTHER_PORT", "9"),
                ("PORT", "2"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
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
        let env = [
            ("SQLRFT_DEMO_PORT", ""),
            ("SQLRFT_DEMO_LIMIT", "3"),
            ("CONVENTIONAL_HOST", ""),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
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
}
