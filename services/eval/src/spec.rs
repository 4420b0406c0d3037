//! `--model NAME=SPEC`: which model answers, and where it runs.
//!
//! ```text
//! base=fireworks:accounts/fireworks/models/qwen2p5-7b-instruct
//! big=openai:gpt-4o-mini,price=0.15/0.6
//! rft=vllm:my-rft@http://gpu-box:8000/v1,key=VLLM_KEY,rps=5
//! tiny=local:models/qwen-sql            (a Hugging Face directory, run by sqlrft's own engine)
//! ```
//!
//! An endpoint is `PROVIDER:MODEL[@BASE_URL]` (providers: openai, vllm, groq, huggingface/hf,
//! fireworks), followed by comma-separated options: `key=ENV_VAR` (the API key's variable, else
//! the provider's), `price=IN/OUT` (dollars per million tokens), `rps=N` (requests per second),
//! `concurrency=N`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlrft_llm::{Pricing, Provider};

/// One `--model` argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Name in the report and of the journal file.
    pub name: String,
    /// Where it runs.
    pub target: Target,
    /// Per-model concurrency, overriding `--concurrency`.
    pub concurrency: Option<usize>,
    /// Per-model request rate, overriding `--rps`.
    pub rps: Option<f64>,
    /// Dollars per million tokens, for the cost column.
    pub pricing: Option<Pricing>,
}

/// Where a model runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// An OpenAI-compatible chat-completions endpoint.
    Endpoint {
        /// Endpoint family (default base URL and key variable).
        provider: Provider,
        /// Model id sent with every request.
        model: String,
        /// Overrides the provider's base URL.
        base_url: Option<String>,
        /// Environment variable holding the API key (`None`: the provider's default).
        api_key_env: Option<String>,
    },
    /// A Hugging Face model directory run greedily by the trainer's model code.
    Local {
        /// The model directory.
        dir: PathBuf,
    },
}

impl ModelSpec {
    /// What the spec says, without secrets: for the report and the journal's fingerprint.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::Endpoint {
                provider,
                model,
                base_url,
                ..
            } => match base_url {
                Some(url) => format!("{provider}:{model}@{url}"),
                None => format!("{provider}:{model}"),
            },
            Target::Local { dir } => format!("local:{}", dir.display()),
        }
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.describe())
    }
}

const FORMS: &str = "expected NAME=PROVIDER:MODEL[@BASE_URL][,key=ENV][,price=IN/OUT][,rps=N][,concurrency=N] \
     or NAME=local:DIR (e.g. base=fireworks:accounts/fireworks/models/qwen2p5-7b-instruct)";

impl FromStr for ModelSpec {
    type Err = String;

    fn from_str(arg: &str) -> Result<Self, Self::Err> {
        let (name, spec) = arg
            .split_once('=')
            .ok_or_else(|| format!("`{arg}`: no NAME= part; {FORMS}"))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "`{arg}`: the name `{name}` must be letters, digits, `-`, `_` or `.` (it names a file)"
            ));
        }
        let (kind, rest) = spec
            .split_once(':')
            .ok_or_else(|| format!("`{arg}`: no PROVIDER: or local: prefix; {FORMS}"))?;
        let mut out = ModelSpec {
            name: name.to_string(),
            target: Target::Local {
                dir: PathBuf::new(),
            },
            concurrency: None,
            rps: None,
            pricing: None,
        };
        if kind.eq_ignore_ascii_case("local") {
            if rest.trim().is_empty() {
                return Err(format!("`{arg}`: local: needs a model directory"));
            }
            out.target = Target::Local {
                dir: PathBuf::from(rest.trim()),
            };
            return Ok(out);
        }
        let provider: Provider = kind.parse().map_err(|e| format!("`{arg}`: {e}"))?;
        let mut parts = rest.split(',');
        let head = parts.next().unwrap_or_default().trim();
        let (model, base_url) = match head.split_once('@') {
            Some((model, url)) => (model, Some(url.trim().to_string())),
            None => (head, None),
        };
        if model.trim().is_empty() {
            return Err(format!("`{arg}`: no model id after `{kind}:`; {FORMS}"));
        }
        if let Some(url) = &base_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "`{arg}`: the base URL `{url}` must start with http:// or https://"
            ));
        }
        let mut api_key_env = None;
        for option in parts {
            let (key, value) = option
                .split_once('=')
                .ok_or_else(|| format!("`{arg}`: option `{option}` is not KEY=VALUE"))?;
            let value = value.trim();
            match key.trim() {
                "key" => api_key_env = Some(value.to_string()),
                "price" => {
                    let (i, o) = value.split_once('/').ok_or_else(|| {
                        format!("`{arg}`: price is IN/OUT dollars per million tokens, e.g. 0.2/0.6")
                    })?;
                    let number = |s: &str| {
                        s.trim()
                            .parse::<f64>()
                            .ok()
                            .filter(|v| v.is_finite() && *v >= 0.0)
                            .ok_or_else(|| format!("`{arg}`: price `{s}` is not a price"))
                    };
                    out.pricing = Some(Pricing {
                        input_per_million: number(i)?,
                        output_per_million: number(o)?,
                    });
                }
                "rps" => {
                    out.rps = Some(
                        value
                            .parse::<f64>()
                            .ok()
                            .filter(|v| v.is_finite() && *v > 0.0)
                            .ok_or_else(|| format!("`{arg}`: rps must be a positive number"))?,
                    )
                }
                "concurrency" => {
                    out.concurrency = Some(
                        value
                            .parse::<usize>()
                            .ok()
                            .filter(|v| *v > 0)
                            .ok_or_else(|| format!("`{arg}`: concurrency must be at least 1"))?,
                    )
                }
                other => {
                    return Err(format!(
                        "`{arg}`: unknown option `{other}`; options are key, price, rps, concurrency"
                    ));
                }
            }
        }
        out.target = Target::Endpoint {
            provider,
            model: model.trim().to_string(),
            base_url,
            api_key_env,
        };
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_specs_parse_with_options() {
        let s: ModelSpec =
            "rft=vllm:my/model@http://gpu:8000/v1,key=K,price=0.2/0.6,rps=5,concurrency=4"
                .parse()
                .unwrap();
        assert_eq!(s.name, "rft");
        assert_eq!(
            s.target,
            Target::Endpoint {
                provider: Provider::Vllm,
                model: "my/model".into(),
                base_url: Some("http://gpu:8000/v1".into()),
                api_key_env: Some("K".into()),
            }
        );
        assert_eq!(s.rps, Some(5.0));
        assert_eq!(s.concurrency, Some(4));
        assert_eq!(s.pricing.unwrap().output_per_million, 0.6);
        assert_eq!(s.describe(), "vllm:my/model@http://gpu:8000/v1");
        let f: ModelSpec = "base=Fireworks:accounts/fireworks/models/qwen2p5-7b-instruct"
            .parse()
            .unwrap();
        assert!(matches!(
            f.target,
            Target::Endpoint {
                provider: Provider::Fireworks,
                ..
            }
        ));
    }

    #[test]
    fn local_specs_name_a_directory() {
        let s: ModelSpec = "tiny=local:models/q".parse().unwrap();
        assert_eq!(
            s.target,
            Target::Local {
                dir: "models/q".into()
            }
        );
    }

    #[test]
    fn bad_specs_say_what_is_expected() {
        for (arg, needle) in [
            ("gpt-4o", "NAME="),
            ("a b=openai:x", "name"),
            ("m=openai", "prefix"),
            ("m=nosuch:x", "unknown provider"),
            ("m=openai:", "no model id"),
            ("m=vllm:x@localhost:8000", "http://"),
            ("m=openai:x,price=3", "IN/OUT"),
            ("m=openai:x,colour=red", "unknown option"),
            ("m=openai:x,rps=0", "positive"),
        ] {
            let err = arg.parse::<ModelSpec>().unwrap_err();
            assert!(err.contains(needle), "{arg}: {err}");
        }
    }
}
