//! `accuracy.png`: execution accuracy per model with 95% Wilson intervals, for all items and
//! for each complexity class.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::summary::{Accuracy, Summary};

/// Colours for up to eight models (then they repeat), distinguishable in print.
const PALETTE: [RGBColor; 8] = [
    RGBColor(87, 117, 144),
    RGBColor(243, 114, 44),
    RGBColor(67, 170, 139),
    RGBColor(249, 199, 79),
    RGBColor(144, 190, 109),
    RGBColor(249, 65, 68),
    RGBColor(39, 125, 161),
    RGBColor(150, 111, 214),
];

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 560;

/// Draws the chart into the PNG file `path`.
pub fn accuracy_png(summary: &Summary, path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    draw(&root, summary).map_err(|e| anyhow!("could not draw the accuracy chart: {e}"))?;
    root.present().map_err(|e| {
        anyhow!(
            "could not write the accuracy chart `{}`: {e}",
            path.display()
        )
    })
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn draw(root: &Area<'_>, summary: &Summary) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    let labels = sqlrft_trainer::metrics::register_font();
    // Groups: every item, then each complexity class.
    let mut groups: Vec<(String, Vec<Option<Accuracy>>)> = vec![(
        "all items".to_string(),
        summary.models.iter().map(|m| m.accuracy).collect(),
    )];
    for slice in &summary.by_complexity {
        groups.push((
            format!("{} (n={})", slice.name, slice.items),
            summary
                .models
                .iter()
                .map(|m| slice.models.get(&m.name).copied().flatten())
                .collect(),
        ));
    }
    let models = summary.models.len().max(1);
    let mut builder = ChartBuilder::on(root);
    builder
        .margin(16)
        .margin_bottom(48)
        .y_label_area_size(if labels { 56 } else { 0 });
    if labels {
        builder.caption(
            "Execution accuracy (bars) with 95% Wilson intervals (whiskers)",
            ("sans-serif", 22),
        );
    }
    let mut chart = builder.build_cartesian_2d(0.0..groups.len() as f64, 0.0..112.0)?;
    let percent = |v: &f64| {
        if *v <= 100.0 {
            format!("{v:.0}%")
        } else {
            String::new()
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh()
        .disable_x_axis()
        .y_labels(12)
        .y_label_formatter(&percent)
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225));
    if !labels {
        mesh.disable_y_axis();
    }
    mesh.draw()?;

    let slot = 0.8 / models as f64;
    for (mi, model) in summary.models.iter().enumerate() {
        let colour = PALETTE[mi % PALETTE.len()];
        let bars: Vec<(f64, Accuracy)> = groups
            .iter()
            .enumerate()
            .filter_map(|(gi, (_, accs))| accs[mi].map(|a| (gi as f64 + 0.1 + slot * mi as f64, a)))
            .collect();
        chart
            .draw_series(bars.iter().map(|(x, a)| {
                Rectangle::new(
                    [
                        (*x + slot * 0.08, 0.0),
                        (*x + slot * 0.92, 100.0 * a.accuracy),
                    ],
                    colour.filled(),
                )
            }))?
            .label(model.name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
        let whisker = BLACK.stroke_width(2);
        for (x, a) in &bars {
            let mid = x + slot / 2.0;
            let cap = slot * 0.18;
            let (lo, hi) = (100.0 * a.ci_low, 100.0 * a.ci_high);
            chart.draw_series([
                PathElement::new(vec![(mid, lo), (mid, hi)], whisker),
                PathElement::new(vec![(mid - cap, lo), (mid + cap, lo)], whisker),
                PathElement::new(vec![(mid - cap, hi), (mid + cap, hi)], whisker),
            ])?;
            if labels {
                let style = ("sans-serif", 14)
                    .into_text_style(root)
                    .pos(Pos::new(HPos::Center, VPos::Bottom));
                chart.draw_series(std::iter::once(Text::new(
                    format!("{:.1}%", 100.0 * a.accuracy),
                    (mid, hi + 1.5),
                    style,
                )))?;
            }
        }
    }
    if labels {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 16))
            .draw()?;
        let style = ("sans-serif", 17)
            .into_text_style(root)
            .pos(Pos::new(HPos::Center, VPos::Top));
        for (gi, (name, _)) in groups.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(gi as f64 + 0.5, 0.0));
            root.draw(&Text::new(name.clone(), (px, py + 10), style.clone()))?;
        }
        for (mi, model) in summary.models.iter().enumerate() {
            if model.accuracy.is_none() {
                let (px, py) = chart.backend_coord(&(0.1 + slot * (mi as f64 + 0.5), 0.0));
                let note = ("sans-serif", 13)
                    .into_text_style(root)
                    .pos(Pos::new(HPos::Center, VPos::Bottom));
                root.draw(&Text::new("no answers", (px, py - 6), note))?;
            }
        }
    }
    Ok(())
}
