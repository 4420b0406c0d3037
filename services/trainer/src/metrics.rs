//! Per-step training metrics: appended to `metrics.jsonl` and drawn as a training-curve PNG.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Mean and standard deviation of one named reward over a generation batch (missing scores
/// left out).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RewardStats {
    /// Mean score.
    pub mean: f64,
    /// Standard deviation of the scores.
    pub std: f64,
    /// Fraction of completions whose score was invalid (infrastructure failure).
    pub invalid_fraction: f64,
}

/// What one optimizer step reports, named like TRL's logs where TRL has the quantity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Optimizer steps taken, this one included.
    pub step: u64,
    /// Passes over the dataset completed.
    pub epoch: u64,
    /// Learning rate used by this step.
    pub lr: f64,
    /// The step's GRPO loss.
    pub loss: f64,
    /// Weighted reward: mean and std over the generation batch.
    pub reward: f64,
    /// Standard deviation of the weighted reward.
    pub reward_std: f64,
    /// Each named reward's statistics.
    pub rewards: BTreeMap<String, RewardStats>,
    /// Means of the sub-scores reward functions report, as `reward/metric`.
    #[serde(default)]
    pub reward_metrics: BTreeMap<String, f64>,
    /// Mean k3 KL to the reference over completion tokens (0 when beta = 0).
    pub kl: f64,
    /// Fraction of tokens clipped at 1 - ε (negative advantage).
    pub clip_ratio_low: f64,
    /// Fraction of tokens clipped at 1 + ε_high (positive advantage).
    pub clip_ratio_high: f64,
    /// Fraction clipped either way.
    pub clip_ratio_region: f64,
    /// Mean per-token entropy of the policy over completion tokens.
    pub entropy: f64,
    /// Mean completion length in tokens.
    pub completion_length_mean: f64,
    /// Longest completion in tokens.
    pub completion_length_max: f64,
    /// Fraction of completions cut at the token limit.
    pub truncated_fraction: f64,
    /// Fraction of groups whose rewards were all equal (no learning signal).
    pub frac_reward_zero_std: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Sampled plus scored tokens per second of wall time for this step's generation round.
    pub tokens_per_second: f64,
    /// Wall time since the run (or resume) started.
    pub elapsed_seconds: f64,
    /// Mean |trainer − generator| log-prob of the completion tokens, when a generator server
    /// sampled them with importance correction on (the two engines' mismatch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling_logp_difference: Option<f64>,
    /// Mean truncated importance weight applied to those tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importance_sampling_ratio: Option<f64>,
    /// Where the batch came from, when a rollout worker made it (`--rollouts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutMetrics>,
}

/// How a batch pulled from a rollout worker reached the update.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RolloutMetrics {
    /// The batch's id (`<worker>/<sequence>`): each is trained on once.
    pub batch: String,
    /// The worker that made the batch.
    pub worker: String,
    /// Optimizer steps between the policy that sampled the batch and the one it trained.
    pub policy_lag: u64,
    /// Batches left in that worker's buffer after this one was taken.
    pub buffer_depth: u32,
    /// Seconds the trainer waited for a batch before this step.
    pub wait_seconds: f64,
    /// Completion tokens per second of the worker's generation round.
    pub generation_tokens_per_second: f64,
    /// Groups of the round left out because a reward could not be computed.
    pub dropped_invalid_groups: u32,
    /// Stale batches that worker has dropped since it started.
    pub dropped_stale_batches: u64,
}

/// Appends one JSON line per step.
pub fn append_jsonl(path: &Path, m: &StepMetrics) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("could not open metrics file `{}`", path.display()))?;
    writeln!(f, "{}", serde_json::to_string(m)?)?;
    Ok(())
}

/// Reads a metrics JSONL back (skipping lines that do not parse, e.g. a torn last line).
pub fn read_jsonl(path: &Path) -> Result<Vec<StepMetrics>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read `{}`", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Keeps the metrics of steps `<= step` (a resumed run rewrites what came after its checkpoint).
pub fn truncate_jsonl(path: &Path, step: u64) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let kept: Vec<StepMetrics> = read_jsonl(path)?
        .into_iter()
        .filter(|m| m.step <= step)
        .collect();
    let text: String = kept
        .iter()
        .map(|m| serde_json::to_string(m).map(|s| s + "\n"))
        .collect::<Result<_, _>>()?;
    Ok(sqlrft_files::write(path, text)?)
}

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Registers a system font for plot labels; false when none is found (the plot is then drawn
/// without text).
pub fn register_font() -> bool {
    static FONT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FONT.get_or_init(|| {
        for p in FONT_PATHS {
            if let Ok(bytes) = std::fs::read(p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font(
                    "sans-serif",
                    plotters::style::FontStyle::Normal,
                    bytes,
                )
                .is_ok()
                {
                    return true;
                }
            }
        }
        false
    })
}

/// One chart of a curve image: a line and an optional (low, high) band.
struct Panel {
    name: &'static str,
    points: Vec<(f64, f64)>,
    band: Option<Vec<(f64, f64, f64)>>,
    color: plotters::style::RGBColor,
}

/// The value axis for a series from `lo` to `hi`: 5% either side, and for a flat series a span
/// its tick labels can tell apart (a width of 2e-6 around 0 printed as `0.0 … -0.0`).
fn value_axis(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let span = hi - lo;
    let pad = if span > 1e-9 * hi.abs().max(lo.abs()).max(1.0) {
        span * 0.05
    } else {
        (hi.abs() * 0.1).max(0.5)
    };
    lo - pad..hi + pad
}

/// The finite `(step, value)` points of one metric.
fn series<T>(history: &[T], point: impl Fn(&T) -> (u64, f64)) -> Vec<(f64, f64)> {
    history
        .iter()
        .map(|m| {
            let (step, value) = point(m);
            (step as f64, value)
        })
        .filter(|(_, y)| y.is_finite())
        .collect()
}

/// Draws reward (mean ± std) and loss against step into a PNG.
pub fn plot_png(path: &Path, history: &[StepMetrics]) -> Result<()> {
    use plotters::prelude::*;
    let reward_band: Vec<(f64, f64, f64)> = history
        .iter()
        .map(|m| {
            (
                m.step as f64,
                m.reward - m.reward_std,
                m.reward + m.reward_std,
            )
        })
        .collect();
    plot_panels(
        path,
        vec![
            Panel {
                name: "reward",
                points: series(history, |m| (m.step, m.reward)),
                band: Some(reward_band),
                color: BLUE,
            },
            Panel {
                name: "loss",
                points: series(history, |m| (m.step, m.loss)),
                band: None,
                color: RED,
            },
        ],
    )
}

/// Draws an SFT run's loss against step into a PNG.
pub fn plot_loss_png(path: &Path, history: &[crate::sft::SftMetrics]) -> Result<()> {
    plot_panels(
        path,
        vec![Panel {
            name: "loss",
            points: series(history, |m| (m.step, m.loss)),
            band: None,
            color: plotters::style::RED,
        }],
    )
}

/// Draws `panels` one above the other, 350 pixels each, against step; nothing for no steps.
fn plot_panels(path: &Path, panels: Vec<Panel>) -> Result<()> {
    use plotters::prelude::*;
    if panels.iter().all(|p| p.points.is_empty()) {
        return Ok(());
    }
    let steps = panels
        .iter()
        .flat_map(|p| p.points.iter().map(|(step, _)| *step))
        .fold(1.0, f64::max);
    let labels = register_font();
    let root = BitMapBackend::new(path, (1000, 350 * panels.len() as u32)).into_drawing_area();
    root.fill(&WHITE)
        .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    let areas = root.split_evenly((panels.len(), 1));
    for (
        area,
        Panel {
            name,
            points,
            band,
            color,
        },
    ) in areas.iter().zip(panels)
    {
        let mut lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let mut hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        if let Some(b) = &band {
            lo = b
                .iter()
                .map(|p| p.1)
                .filter(|v| v.is_finite())
                .fold(lo, f64::min);
            hi = b
                .iter()
                .map(|p| p.2)
                .filter(|v| v.is_finite())
                .fold(hi, f64::max);
        }
        if !lo.is_finite() || !hi.is_finite() {
            continue;
        }
        let mut builder = ChartBuilder::on(area);
        builder
            .margin(10)
            .x_label_area_size(if labels { 30 } else { 0 })
            .y_label_area_size(if labels { 60 } else { 0 });
        if labels {
            builder.caption(name, ("sans-serif", 22));
        }
        let mut chart = builder
            .build_cartesian_2d(0.0..steps, value_axis(lo, hi))
            .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        let mut mesh = chart.configure_mesh();
        if !labels {
            mesh.disable_x_axis().disable_y_axis();
        }
        mesh.x_desc("step")
            .draw()
            .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        if let Some(b) = band {
            let poly: Vec<(f64, f64)> = b
                .iter()
                .map(|p| (p.0, p.2))
                .chain(b.iter().rev().map(|p| (p.0, p.1)))
                .collect();
            chart
                .draw_series(std::iter::once(Polygon::new(poly, color.mix(0.15))))
                .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
        }
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| anyhow::anyhow!("plot: {e}"))?;
    }
    root.present()
        .map_err(|e| anyhow::anyhow!("could not write plot `{}`: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_series_gets_an_axis_its_labels_can_tell_apart() {
        for flat in [0.0, 1.0, -3.0, 250.0] {
            let axis = value_axis(flat, flat);
            assert!(axis.contains(&flat), "{flat}: {axis:?}");
            assert!(
                axis.end - axis.start >= 0.2 * flat.abs().max(1.0),
                "{flat}: {axis:?}"
            );
        }
        let axis = value_axis(0.2, 0.8);
        assert!((axis.start - 0.17).abs() < 1e-12 && (axis.end - 0.83).abs() < 1e-12);
    }

    #[test]
    fn jsonl_round_trips_and_truncates_after_a_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        for step in 1..=3 {
            append_jsonl(
                &path,
                &StepMetrics {
                    step,
                    reward: step as f64,
                    ..Default::default()
                },
            )
            .unwrap();
        }
        truncate_jsonl(&path, 2).unwrap();
        let back = read_jsonl(&path).unwrap();
        assert_eq!(back.iter().map(|m| m.step).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn plot_writes_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("curve.png");
        let h: Vec<StepMetrics> = (1..=20)
            .map(|s| StepMetrics {
                step: s,
                reward: (s as f64).sqrt(),
                reward_std: 0.3,
                loss: 1.0 / s as f64,
                ..Default::default()
            })
            .collect();
        plot_png(&path, &h).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }

    #[test]
    fn the_sft_loss_plot_is_one_panel_high() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.png");
        let h: Vec<crate::sft::SftMetrics> = (1..=5)
            .map(|step| crate::sft::SftMetrics {
                step,
                epoch: 0,
                lr: 1e-5,
                loss: 2.0 / step as f64,
                grad_norm: 1.0,
                num_tokens: 10,
                elapsed_seconds: 0.0,
            })
            .collect();
        plot_loss_png(&path, &h).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        // The IHDR chunk's height, big-endian at bytes 20..24.
        let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!(height, 350);
        plot_loss_png(&dir.path().join("none.png"), &[]).unwrap();
        assert!(!dir.path().join("none.png").exists(), "no steps, no image");
    }
}
