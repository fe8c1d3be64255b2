//! The charts: `overload.svg` (goodput and p99 latency of the 200s against offered load, one
//! line per server) and `admission.svg` (the p99 of the 200s and the `503`s per load of the
//! admission scenario, one line per server) and `adaptive.svg` (the adaptive scenario's
//! concurrency limit and p99 of the 200s over time, one line per load).

use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use super::adaptive::Adaptive;
use super::admission::{self, Admission};
use super::overload::{Overload, OPPONENTS};
use super::report::label;
use super::{Context, Result};

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 480;
const COLORS: [RGBColor; 3] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
];

pub(crate) fn draw(overload: &Overload, path: &Path) -> Result<()> {
    render(path, |p| draw_svg(overload, p))
}

fn draw_svg(
    overload: &Overload,
    path: &Path,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    // Per server: its name, colour, and (offered, goodput, p99 of the 200s) per load.
    type Points = Vec<(f64, f64, Option<f64>)>;
    let series: Vec<(&str, RGBColor, Points)> = OPPONENTS
        .iter()
        .zip(COLORS)
        .map(|(opponent, color)| {
            let points = overload
                .series(*opponent)
                .iter()
                .map(|run| (f64::from(run.offered_rps), run.goodput(), run.ok_p99_ms()))
                .collect();
            (label(opponent.name()), color, points)
        })
        .collect();
    let max_x = series
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|p| p.0))
        .fold(overload.capacity_rps * 3.0, f64::max)
        * 1.05;
    let max_goodput = series
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|p| p.1))
        .fold(overload.capacity_rps, f64::max)
        * 1.2;
    let latencies = series
        .iter()
        .flat_map(|(_, _, points)| points.iter().filter_map(|p| p.2));
    let (min_p99, max_p99) =
        latencies.fold((10.0_f64, 200.0_f64), |(lo, hi), p| (lo.min(p), hi.max(p)));

    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(WIDTH / 2);

    let mut goodput = panel(&left, "Goodput (200 responses/s)")
        .build_cartesian_2d(0.0..max_x, 0.0..max_goodput)?;
    goodput
        .configure_mesh()
        .x_desc("offered load (requests/s)")
        .y_desc("goodput (requests/s)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    let capacity = overload.capacity_rps;
    goodput
        .draw_series(LineSeries::new(
            [(0.0, 0.0), (capacity, capacity), (max_x, capacity)],
            BLACK.mix(0.4).stroke_width(1),
        ))?
        .label(format!("ideal: min(offered, capacity {capacity:.0}/s)"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.4)));
    for (name, color, points) in &series {
        plot(
            &mut goodput,
            name,
            *color,
            points.iter().map(|p| (p.0, p.1)).collect(),
        )?;
    }
    legend(&mut goodput, SeriesLabelPosition::LowerRight)?;

    let mut latency = panel(&right, "p99 latency of the 200s (log scale)")
        .build_cartesian_2d(0.0..max_x, (min_p99 * 0.8..max_p99 * 6.0).log_scale())?;
    latency
        .configure_mesh()
        .x_desc("offered load (requests/s)")
        .y_desc("p99 (ms)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    let target = overload.ok_p99_target_ms();
    latency
        .draw_series(LineSeries::new(
            [(0.0, target), (max_x, target)],
            BLACK.mix(0.4).stroke_width(1),
        ))?
        .label(format!("intralb's target ({target:.0} ms)"))
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.mix(0.4)));
    for (name, color, points) in &series {
        let line = points.iter().filter_map(|p| Some((p.0, p.2?))).collect();
        plot(&mut latency, name, *color, line)?;
    }
    legend(&mut latency, SeriesLabelPosition::UpperLeft)?;
    root.present()?;
    Ok(())
}

/// `admission.svg`.
pub(crate) fn draw_admission(admission: &Admission, path: &Path) -> Result<()> {
    render(path, |p| draw_admission_svg(admission, p))
}

fn draw_admission_svg(
    admission: &Admission,
    path: &Path,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let shapes = admission::Shape::ALL;
    let colors = [COLORS[0], COLORS[1], COLORS[2], RGBColor(148, 103, 189)];
    // Per server: its name, colour, and (load index, p99 of the 200s, 503/s) per load.
    type Points = Vec<(f64, Option<f64>, f64)>;
    let series: Vec<(&str, RGBColor, Points)> = admission::OPPONENTS
        .iter()
        .zip(colors)
        .map(|(opponent, color)| {
            let points = shapes
                .iter()
                .enumerate()
                .filter_map(|(index, shape)| {
                    let run = admission.run(*opponent, *shape)?;
                    Some((index as f64, run.report.normal.ok_p99_ms, run.shed_per_s()))
                })
                .collect();
            (label(opponent.name()), color, points)
        })
        .collect();
    let max_x = shapes.len() as f64 - 0.5;
    let max_p99 = series
        .iter()
        .flat_map(|(_, _, points)| points.iter().filter_map(|p| p.1))
        .fold(100.0_f64, f64::max);
    let max_shed = series
        .iter()
        .flat_map(|(_, _, points)| points.iter().map(|p| p.2))
        .fold(100.0_f64, f64::max)
        * 1.2;
    let load = |x: &f64| {
        let index = x.round();
        if (x - index).abs() > 0.01 || index < 0.0 {
            return String::new();
        }
        shapes
            .get(index as usize)
            .map_or(String::new(), |shape| shape.short_label().to_owned())
    };

    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(WIDTH / 2);
    let mut latency = panel(&left, "p99 latency of the 200s (log scale)")
        .build_cartesian_2d(-0.5..max_x, (10.0..max_p99 * 3.0).log_scale())?;
    latency
        .configure_mesh()
        .x_labels(shapes.len() * 2 + 1)
        .x_label_formatter(&load)
        .y_desc("p99 (ms)")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for (name, color, points) in &series {
        let line = points.iter().filter_map(|p| Some((p.0, p.1?))).collect();
        plot(&mut latency, name, *color, line)?;
    }
    legend(&mut latency, SeriesLabelPosition::UpperLeft)?;

    let mut shed =
        panel(&right, "503 answers per second").build_cartesian_2d(-0.5..max_x, 0.0..max_shed)?;
    shed.configure_mesh()
        .x_labels(shapes.len() * 2 + 1)
        .x_label_formatter(&load)
        .y_desc("503/s")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for (name, color, points) in &series {
        plot(
            &mut shed,
            name,
            *color,
            points.iter().map(|p| (p.0, p.2)).collect(),
        )?;
    }
    root.present()?;
    Ok(())
}

/// `adaptive.svg`.
pub(crate) fn draw_adaptive(adaptive: &Adaptive, path: &Path) -> Result<()> {
    render(path, |p| draw_adaptive_svg(adaptive, p))
}

fn draw_adaptive_svg(
    adaptive: &Adaptive,
    path: &Path,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let colors = [
        COLORS[0],
        COLORS[1],
        COLORS[2],
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(140, 86, 75),
    ];
    let runs: Vec<_> = adaptive.runs.iter().zip(colors).collect();
    let end = runs
        .iter()
        .flat_map(|(run, _)| run.limits.last().map(|(t, _)| *t))
        .fold(1.0_f64, f64::max);
    let most_limit = runs
        .iter()
        .flat_map(|(run, _)| run.limits.iter().map(|(_, limit)| *limit as f64))
        .fold(16.0_f64, f64::max);
    let most_p99 = runs
        .iter()
        .flat_map(|(run, _)| run.report.normal_ok_p99_by_second.iter().flatten())
        .fold(100.0_f64, |most, p99| most.max(*p99));
    let name = |run: &super::adaptive::Run| {
        format!(
            "{}, {}",
            run.shape.label(),
            if run.adaptive {
                "adaptive"
            } else {
                "fixed 256"
            }
        )
    };

    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(WIDTH / 2);
    let mut limit = panel(&left, "Concurrency limit (log scale)")
        .build_cartesian_2d(0.0..end, (1.0..most_limit * 2.0).log_scale())?;
    limit
        .configure_mesh()
        .x_desc("seconds since the load started")
        .y_desc("limit")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for (run, color) in runs.iter().filter(|(run, _)| run.adaptive) {
        let line = run
            .limits
            .iter()
            .map(|(t, limit)| (*t, *limit as f64))
            .collect();
        plot(&mut limit, &name(run), *color, line)?;
    }
    legend(&mut limit, SeriesLabelPosition::UpperRight)?;

    let mut latency = panel(&right, "p99 of the 200s by second (log scale)")
        .build_cartesian_2d(0.0..end, (10.0..most_p99 * 3.0).log_scale())?;
    latency
        .configure_mesh()
        .x_desc("seconds since the load started")
        .y_desc("p99 (ms)")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for (run, color) in &runs {
        let line = run
            .report
            .normal_ok_p99_by_second
            .iter()
            .enumerate()
            .filter_map(|(second, p99)| Some((second as f64 + 0.5, (*p99)?)))
            .collect();
        plot(&mut latency, &name(run), *color, line)?;
    }
    legend(&mut latency, SeriesLabelPosition::UpperRight)?;
    root.present()?;
    Ok(())
}

/// Draws a chart to `path`, naming the file in the error.
fn render(
    path: &Path,
    draw: impl FnOnce(&Path) -> std::result::Result<(), Box<dyn std::error::Error>>,
) -> Result<()> {
    draw(path).context(format_args!("drawing {}", path.display()))
}

/// A chart's frame: its caption, margins and label areas (every chart here is drawn alike).
fn panel<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
) -> ChartBuilder<'a, 'b, DB> {
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60);
    builder
}

/// One server's line, with a dot per point and a legend entry.
fn plot<'a, DB, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    name: &str,
    color: RGBColor,
    line: Vec<(f64, f64)>,
) -> std::result::Result<(), Box<dyn std::error::Error>>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    Y: Ranged<ValueType = f64>,
{
    chart
        .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
        .label(name)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    chart.draw_series(line.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
    Ok(())
}

/// The legend, at `position`.
fn legend<'a, DB, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    position: SeriesLabelPosition,
) -> std::result::Result<(), Box<dyn std::error::Error>>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}
