//! Splitting a source between n workers: item `x` belongs to shard `hash(x.id) mod n`, so
//! shards are disjoint, together complete, and independent of row order and worker timing.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::bail;

/// Worker `index` of `count`; `i/n` in flags, files and the environment alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based worker index.
    pub index: usize,
    /// Number of workers.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    /// `i/n` with `0 <= i < n`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || format!("invalid shard `{s}`: expected `i/n` with 0 <= i < n, e.g. `0/4`");
        let (i, n) = s.split_once('/').ok_or_else(err)?;
        let index: usize = i.trim().parse().map_err(|_| err())?;
        let count: usize = n.trim().parse().map_err(|_| err())?;
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl serde::Serialize for Shard {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Shard {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Shard {
    /// Whether the item with this shard key is this worker's.
    pub fn owns(&self, key: u64) -> bool {
        key % self.count as u64 == self.index as u64
    }

    /// The shard from job-runner variables: Cloud Run Jobs set `CLOUD_RUN_TASK_INDEX` and
    /// `CLOUD_RUN_TASK_COUNT`; Kubernetes indexed Jobs set `JOB_COMPLETION_INDEX`, with the
    /// count given by `count` (`--shard-count`, or `SQLRFT_SHARD_COUNT` in the manifest).
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        count: Option<usize>,
    ) -> anyhow::Result<Option<Shard>> {
        let parse = |name: &str| -> anyhow::Result<Option<usize>> {
            match var(name) {
                None => Ok(None),
                Some(v) => match v.trim().parse() {
                    Ok(n) => Ok(Some(n)),
                    Err(_) => bail!("environment variable {name}=`{v}` is not a number"),
                },
            }
        };
        let (index, count) = if let Some(index) = parse("CLOUD_RUN_TASK_INDEX")? {
            (index, count.or(parse("CLOUD_RUN_TASK_COUNT")?))
        } else if let Some(index) = parse("JOB_COMPLETION_INDEX")? {
            (index, count)
        } else {
            return Ok(None);
        };
        let Some(count) = count else {
            bail!(
                "JOB_COMPLETION_INDEX is set but the number of shards is not: pass --shard-count \
                 (or set SQLRFT_SHARD_COUNT) to the Job's `completions`"
            );
        };
        if count <= 1 {
            return Ok(None);
        }
        Ok(Some(
            format!("{index}/{count}")
                .parse()
                .map_err(anyhow::Error::msg)?,
        ))
    }

    /// `out.jsonl` → `out.shard-00002-of-00008.jsonl`.
    pub fn output_path(&self, output: &Path) -> PathBuf {
        let stem = output
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "distill".into());
        let ext = output
            .extension()
            .map(|e| e.to_string_lossy().to_string())
            .unwrap_or_else(|| "jsonl".into());
        output.with_file_name(format!(
            "{stem}.shard-{:05}-of-{:05}.{ext}",
            self.index, self.count
        ))
    }

    /// The shard of a file named by [`output_path`](Self::output_path) for `output`.
    pub fn of_path(output: &Path, candidate: &Path) -> Option<Shard> {
        let stem = output.file_stem()?.to_string_lossy().to_string();
        let ext = output
            .extension()
            .map(|e| e.to_string_lossy().to_string())
            .unwrap_or_else(|| "jsonl".into());
        let name = candidate.file_name()?.to_string_lossy().to_string();
        let middle = name
            .strip_prefix(&format!("{stem}.shard-"))?
            .strip_suffix(&format!(".{ext}"))?;
        let (i, n) = middle.split_once("-of-")?;
        let shard = Shard {
            index: i.parse().ok()?,
            count: n.parse().ok()?,
        };
        (shard.index < shard.count && shard.output_path(output) == candidate).then_some(shard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn parses_and_rejects_shards() {
        assert_eq!("2/5".parse(), Ok(Shard { index: 2, count: 5 }));
        for bad in ["5/5", "1/0", "x/2", "3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn every_key_has_exactly_one_owner() {
        let shards: Vec<Shard> = (0..7).map(|i| Shard { index: i, count: 7 }).collect();
        for key in (0..1000u64).map(|k| k.wrapping_mul(0x9E37_79B9_7F4A_7C15)) {
            assert_eq!(shards.iter().filter(|s| s.owns(key)).count(), 1);
        }
    }

    #[test]
    fn cloud_run_and_k8s_variables_are_read() {
        let s = Shard::from_env(
            env(&[("CLOUD_RUN_TASK_INDEX", "3"), ("CLOUD_RUN_TASK_COUNT", "4")]),
            None,
        )
        .unwrap();
        assert_eq!(s, Some(Shard { index: 3, count: 4 }));
        let s = Shard::from_env(env(&[("JOB_COMPLETION_INDEX", "1")]), Some(2)).unwrap();
        assert_eq!(s, Some(Shard { index: 1, count: 2 }));
        let err = Shard::from_env(env(&[("JOB_COMPLETION_INDEX", "1")]), None).unwrap_err();
        assert!(err.to_string().contains("--shard-count"));
        assert_eq!(Shard::from_env(env(&[]), Some(3)).unwrap(), None);
        // A single task is no sharding at all.
        let one = Shard::from_env(
            env(&[("CLOUD_RUN_TASK_INDEX", "0"), ("CLOUD_RUN_TASK_COUNT", "1")]),
            None,
        );
        assert_eq!(one.unwrap(), None);
    }

    #[test]
    fn shard_paths_round_trip() {
        let out = Path::new("/data/cot.jsonl");
        let s = Shard { index: 2, count: 8 };
        let p = s.output_path(out);
        assert_eq!(p, Path::new("/data/cot.shard-00002-of-00008.jsonl"));
        assert_eq!(Shard::of_path(out, &p), Some(s));
        assert_eq!(Shard::of_path(out, Path::new("/data/cot.jsonl")), None);
        assert_eq!(
            Shard::of_path(
                out,
                Path::new("/data/cot.shard-00002-of-00008.dropped.jsonl")
            ),
            None
        );
    }
}
