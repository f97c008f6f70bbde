//! The chart of one outage, as SVG: the charge (left axis, percent) and the
//! runtime estimate where known (right axis, minutes) over the time of day,
//! with every event marked by a vertical line and labelled.
//!
//! Drawn with plotters' SVG backend (a kept plotting crate, not markup of
//! our own), on axes of [`Linear`], which need no libm. Only `apccontrol --report --svg`, the post-outage mail and the
//! demo draw charts; no event run does. Pure apart from the text it returns.

use chrono::{DateTime, FixedOffset};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::Linear;
use super::outage::Outage;

/// The chart's size in pixels.
pub(crate) const SIZE: (u32, u32) = (960, 480);

/// Why the chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChartError {
    /// The outage has no record with a time.
    #[error("the outage has no dated record to draw")]
    Empty,
    /// The plotting library failed.
    #[error("cannot draw the chart: {0}")]
    Draw(String),
}

fn draw_error<E: std::fmt::Display>(e: E) -> ChartError {
    ChartError::Draw(e.to_string())
}

/// Red for what shuts the machine down, green for the power's return,
/// grey for the rest.
fn event_color(event: &str) -> RGBColor {
    match event {
        "failing" | "timeout" | "loadlimit" | "runlimit" | "doshutdown" | "doreboot"
        | "emergency" | "remotedown" | "killpower" => RGBColor(200, 30, 30),
        "offbattery" | "mainsback" => RGBColor(20, 140, 40),
        _ => RGBColor(110, 110, 110),
    }
}

/// Minutes from `start` to `at`.
fn minutes(start: &DateTime<FixedOffset>, at: &DateTime<FixedOffset>) -> f64 {
    (*at - *start).num_milliseconds() as f64 / 60_000.0
}

/// The outage as an SVG document.
pub(crate) fn svg(outage: &Outage) -> Result<String, ChartError> {
    let start = outage.start().ok_or(ChartError::Empty)?;
    let last = outage.last().unwrap_or(start);
    let span = minutes(&start, &last).max(1.0);
    let charges: Vec<(f64, f64)> = outage
        .charges()
        .iter()
        .map(|(at, c)| (minutes(&start, at), c.clamp(0.0, 100.0)))
        .collect();
    let runtimes: Vec<(f64, f64)> = outage
        .runtimes()
        .iter()
        .map(|(at, m)| (minutes(&start, at), m.max(0.0)))
        .collect();
    let runtime_top = runtimes
        .iter()
        .map(|(_, m)| *m)
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.1;
    let events: Vec<(f64, String)> = outage
        .events()
        .iter()
        .filter_map(|step| Some((minutes(&start, &step.at()?), step.event.clone())))
        .collect();

    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(draw_error)?;
        let caption = format!(
            "Outage of {} ({} on battery)",
            start.format("%Y-%m-%d %H:%M"),
            outage
                .on_battery_secs()
                .map_or_else(|| "time unknown".to_string(), super::report::duration_text)
        );
        let x_end = span * 1.02;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .right_y_label_area_size(if runtimes.is_empty() { 0 } else { 50 })
            .build_cartesian_2d(Linear::from(0.0..x_end), Linear::from(0.0..100.0))
            .map_err(draw_error)?
            .set_secondary_coord(Linear::from(0.0..x_end), Linear::from(0.0..runtime_top));
        let format = if span < 10.0 { "%H:%M:%S" } else { "%H:%M" };
        let clock = |m: &f64| {
            let at = start + chrono::Duration::milliseconds((m * 60_000.0) as i64);
            at.format(format).to_string()
        };
        chart
            .configure_mesh()
            .x_desc("time of day")
            .y_desc("charge (%)")
            .x_label_formatter(&clock)
            .light_line_style(WHITE)
            .draw()
            .map_err(draw_error)?;
        if !runtimes.is_empty() {
            chart
                .configure_secondary_axes()
                .y_desc("runtime estimate (min)")
                .draw()
                .map_err(draw_error)?;
        }
        // Events first, so the series are drawn over their lines.
        let mut last_label: Option<(f64, usize)> = None;
        for (x, name) in &events {
            let color = event_color(name);
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(*x, 0.0), (*x, 100.0)],
                    ShapeStyle::from(&color).stroke_width(1),
                )))
                .map_err(draw_error)?;
            // Labels of events close together are stacked, not overlaid;
            // in the right part they stand left of their line.
            let row = match last_label {
                Some((lx, row)) if (x - lx).abs() < span / 12.0 => (row + 1) % 8,
                _ => 0,
            };
            last_label = Some((*x, row));
            let anchor = if *x > span * 0.7 {
                Pos::new(HPos::Right, VPos::Top)
            } else {
                Pos::new(HPos::Left, VPos::Top)
            };
            let style = ("sans-serif", 13).into_font().color(&color).pos(anchor);
            chart
                .draw_series(std::iter::once(Text::new(
                    format!(" {name} "),
                    (*x, 99.0 - 5.0 * row as f64),
                    style,
                )))
                .map_err(draw_error)?;
        }
        if !charges.is_empty() {
            chart
                .draw_series(LineSeries::new(
                    charges.iter().copied(),
                    BLUE.stroke_width(2),
                ))
                .map_err(draw_error)?
                .label("charge (%)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
        }
        if !runtimes.is_empty() {
            let orange = RGBColor(230, 120, 0);
            chart
                .draw_secondary_series(LineSeries::new(
                    runtimes.iter().copied(),
                    orange.stroke_width(2),
                ))
                .map_err(draw_error)?
                .label("runtime estimate (min)")
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], orange.stroke_width(2))
                });
        }
        if !charges.is_empty() || !runtimes.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(draw_error)?;
        }
        root.present().map_err(draw_error)?;
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::super::outage::outages;
    use super::super::record::{Decision, Entry, Reading, Record, Writer};
    use super::*;

    #[test]
    fn draws_the_series_and_labels_the_events() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-22T14:00:00+01:00").unwrap();
        let mut records = Vec::new();
        for (secs, event) in [(0, "powerout"), (6, "onbattery"), (900, "loadlimit")] {
            records.push(Record::new(
                Writer::LaptopUpsd,
                &(t0 + chrono::Duration::seconds(secs)),
                None,
                Entry::Decision(Decision {
                    event: event.into(),
                    reason: "r".into(),
                    reading: None,
                }),
            ));
        }
        for n in 0..90 {
            records.push(Record::new(
                Writer::LaptopUpsd,
                &(t0 + chrono::Duration::seconds(n * 10)),
                None,
                Entry::Reading(Reading {
                    on_battery: true,
                    charge: Some(100.0 - n as f64 * 0.5),
                    runtime_min: Some(150.0 - n as f64),
                    ..Reading::default()
                }),
            ));
        }
        let found = outages(&records);
        let svg = svg(&found[0]).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        for label in [
            "powerout",
            "onbattery",
            "loadlimit",
            "charge (%)",
            "runtime estimate (min)",
        ] {
            assert!(svg.contains(label), "{label} missing");
        }
        assert!(svg.matches("<polyline").count() >= 2);
    }
}
