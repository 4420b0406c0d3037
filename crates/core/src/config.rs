//! Layered configuration: built-in defaults < `sqlrft.toml` < environment < command-line flags.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
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
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(file) = &file {
        figment = figment.merge(Figment::from(Toml::file(file)).focus(section));
    }
    for (variable, key) in extra_env {
        if let Some(value) = std::env::var(variable).ok().filter(|v| !v.is_empty()) {
            // Parsed as figment's Env provider parses: `PORT=8080` is a number, not a string.
            let value: figment::value::Value = value.parse().unwrap_or_else(|e| match e {});
            figment = figment.merge(Serialized::default(key, value));
        }
    }
    let prefix = format!("SQLRFT_{}_", section.to_ascii_uppercase());
    // An empty variable means unset (docker compose and Cloud Run pass `KEY=` for an unset
    // setting): without this, `SQLRFT_MCP_TOKEN=` would demand an empty bearer token.
    let set: std::collections::HashSet<String> = std::env::vars()
        .filter(|(name, value)| name.starts_with(&prefix) && !value.is_empty())
        .map(|(name, _)| name[prefix.len()..].to_ascii_lowercase())
        .collect();
    figment = figment
        .merge(
            Env::prefixed(&prefix)
                .lowercase(true)
                .filter(move |key| set.contains(&key.as_str().to_ascii_lowercase())),
        )
        .merge(Serialized::defaults(flags));
    figment.extract().map_err(|err| {
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
    fn an_empty_variable_is_unset() {
        // A section no other test reads, so setting its variables cannot race another test.
        // SAFETY: this test binary runs no C code that reads the environment concurrently.
        unsafe {
            std::env::set_var("SQLRFT_EMPTYVARS_PORT", "");
            std::env::set_var("SQLRFT_EMPTYVARS_LIMIT", "3");
            std::env::set_var("SQLRFT_TEST_CONVENTIONAL_EMPTY", "");
            std::env::set_var("SQLRFT_TEST_CONVENTIONAL_PORT", "8081");
        }
        // Read as a value, an empty PORT would fail to parse as a number.
        let loaded: Demo = load(
            "emptyvars",
            None,
            &[("SQLRFT_TEST_CONVENTIONAL_EMPTY", "host")],
            &Flags { limit: None },
        )
        .unwrap();
        assert_eq!(loaded.port, 0, "an empty variable leaves the default");
        assert_eq!(loaded.host, "", "an empty conventional variable too");
        assert_eq!(loaded.limit, 3, "a set variable still overrides");
        // A conventional variable such as Cloud Run's PORT is a number, as the env layer reads it.
        let port: Demo = load(
            "emptyvars",
            None,
            &[("SQLRFT_TEST_CONVENTIONAL_PORT", "port")],
            &Flags { limit: None },
        )
        .unwrap();
        assert_eq!(port.port, 8081);
    }

    #[test]
    fn missing_config_file_is_a_clear_error() {
        let err = load::<Demo, _>("demo", Some(Path::new("/no/such.toml")), &[], &()).unwrap_err();
        assert!(err.to_string().contains("/no/such.toml"), "{err}");
    }
}
