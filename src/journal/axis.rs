//! The chart's linear axes: plotters' own f64 axis, but with its key points
//! (where the ticks and their labels go) found without `log` and `pow`.
//!
//! Why it exists: plotters finds the key points of an f64 range with
//! `10f64.powf(size.log(10.0).floor())`, the only two calls that make both
//! binaries load libm.so.6 at every start (laptop-upsd keeps its pages all
//! day; every apccontrol event pays for loading it, issue 17). The starting
//! power of ten is found here by multiplying and dividing by ten instead;
//! the rest of the search is plotters' algorithm as it is, so the ticks,
//! labels and the mapping to pixels are the ones plotters draws (the tests
//! compare them with plotters' own f64 axis).

use std::ops::Range;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;

/// A linear f64 axis from `start` to `end`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Linear {
    start: f64,
    end: f64,
}

impl From<Range<f64>> for Linear {
    fn from(range: Range<f64>) -> Linear {
        Linear {
            start: range.start,
            end: range.end,
        }
    }
}

impl Linear {
    /// Plotters' own axis over the same range: it maps values to pixels
    /// and formats labels (neither needs libm).
    fn plotters(&self) -> RangedCoordf64 {
        RangedCoordf64::from(self.start..self.end)
    }
}

impl Ranged for Linear {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.plotters().map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        key_points((self.start, self.end), hint.max_num_points())
    }

    fn range(&self) -> Range<f64> {
        self.start..self.end
    }
}

impl ValueFormatter<f64> for Linear {
    fn format(value: &f64) -> String {
        <RangedCoordf64 as ValueFormatter<f64>>::format(value)
    }
}

/// The largest power of ten not above `size` (a positive, finite number),
/// as exact as f64 allows: what plotters computes as
/// `10f64.powf(size.log(10.0).floor())`.
fn power_of_ten_below(size: f64) -> f64 {
    // 10^k is exact in f64 up to k = 22; 1 / 10^k is then the nearest f64.
    let mut power = 1.0f64;
    if size >= 1.0 {
        while power * 10.0 <= size && (power * 10.0).is_finite() {
            power *= 10.0;
        }
        power
    } else {
        let mut inverse = 1.0f64;
        while 1.0 / inverse > size && inverse < 1e300 {
            inverse *= 10.0;
        }
        power / inverse
    }
}

/// `a` modulo `b` rounded towards minus infinity, as plotters takes it.
fn rem_euclid(a: f64, b: f64) -> f64 {
    let ret = if b > 0.0 {
        a - (a / b).floor() * b
    } else {
        a - (a / b).ceil() * b
    };
    if (ret - b).abs() < f64::EPSILON {
        0.0
    } else {
        ret
    }
}

/// At most `max_points` round values in `range` (steps of 1, 2 or 5 times
/// a power of ten): plotters' `compute_f64_key_points` (plotters 0.3.7,
/// MIT), with the starting power of ten from [`power_of_ten_below`].
fn key_points(range: (f64, f64), max_points: usize) -> Vec<f64> {
    if max_points == 0 {
        return vec![];
    }
    if range.0.is_nan() || range.1.is_nan() || !(range.1 - range.0).is_finite() {
        return vec![];
    }
    let range = (range.0.min(range.1), range.1.max(range.0));
    if (range.0 - range.1).abs() < f64::EPSILON {
        return vec![range.0];
    }

    let mut scale = power_of_ten_below(range.1 - range.0);
    // Key points are rounded to a tenth of the scale, so that none reads
    // 1.00000000001.
    let mut value_granularity = scale / 10.0;
    // The scale must give no more points than asked for.
    if 1 + ((range.1 - range.0) / scale).floor() as usize > max_points {
        scale *= 10.0;
        value_granularity *= 10.0;
    }

    'outer: loop {
        let old_scale = scale;
        for nxt in [2.0, 5.0, 10.0] {
            let mut new_left = range.0 - rem_euclid(range.0, old_scale / nxt);
            if new_left < range.0 {
                new_left += old_scale / nxt;
            }
            let new_right = range.1 - rem_euclid(range.1, old_scale / nxt);
            let npoints = 1.0 + ((new_right - new_left) / old_scale * nxt);
            if npoints.round() as usize > max_points {
                break 'outer;
            }
            scale = old_scale / nxt;
        }
        scale = old_scale / 10.0;
        value_granularity /= 10.0;
    }

    let mut points = vec![];
    // A base and an offset, so that a left far from zero cannot make
    // (left + scale) - left == 0 and loop for ever.
    let left = {
        let mut value = range.0 - rem_euclid(range.0, scale);
        if value < range.0 {
            value += scale;
        }
        value
    };
    let left_base = (left / value_granularity).floor() * value_granularity;
    let mut left_relative = left - left_base;
    let right = range.1 - rem_euclid(range.1, scale);
    while (right - left_relative - left_base) >= -f64::EPSILON {
        let new_left_relative = (left_relative / value_granularity).round() * value_granularity;
        if new_left_relative < 0.0 {
            left_relative += value_granularity;
        }
        points.push(left_relative + left_base);
        left_relative += scale;
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plotters' own key points (the test binary may load libm).
    fn plotters_points(range: Range<f64>, max_points: usize) -> Vec<f64> {
        RangedCoordf64::from(range).key_points(max_points)
    }

    #[test]
    fn power_of_ten_below_is_exact() {
        for (size, power) in [
            (1.0, 1.0),
            (9.99, 1.0),
            (10.0, 10.0),
            (99.0, 10.0),
            (100.0, 100.0),
            (1000.0, 1000.0),
            (1.02e6, 1e6),
            (0.5, 0.1),
            (0.1, 0.1),
            (0.099, 0.01),
            (3.3e-7, 1e-7),
        ] {
            assert_eq!(power_of_ten_below(size), power, "{size}");
        }
    }

    #[test]
    fn same_key_points_as_plotters_on_the_charts_ranges() {
        // The ranges the chart draws: minutes (1.02 and up, span * 1.02),
        // charge 0..100, runtime 1.1 and up (top * 1.1), and a few others.
        let mut ends = vec![
            100.0, 1000.0, 1e4, 1e5, 1e6, 1.1, 1.02, 0.3, 0.07, 1234.5, 2.5e7,
        ];
        for span in [
            1.0, 1.5, 2.0, 3.3, 7.0, 10.0, 15.0, 42.0, 90.0, 300.0, 2880.0,
        ] {
            ends.push(span * 1.02);
            ends.push(span * 1.1);
            ends.push(span);
        }
        for minute in 1..400 {
            ends.push(f64::from(minute) * 0.37 * 1.02);
        }
        for end in ends {
            // The mesh asks for 11 labels and 110 light lines per axis.
            // Not 1 point: see below.
            for max_points in [0, 2, 3, 5, 8, 10, 11, 12, 20, 50, 100, 110, 200, 500] {
                assert_eq!(
                    key_points((0.0, end), max_points),
                    plotters_points(0.0..end, max_points),
                    "0..{end}, at most {max_points} points"
                );
            }
        }
    }

    #[test]
    fn one_point_where_plotters_misses_the_power_of_ten() {
        // ln(1e6) / ln(10) is 5.999999999999999, so plotters starts at 1e5
        // and gives two points where one was asked for; the exact power
        // keeps to the one. The chart asks for 11 or 110.
        assert_eq!(plotters_points(0.0..1e6, 1), [0.0, 1e6]);
        assert_eq!(key_points((0.0, 1e6), 1), [0.0]);
        assert_eq!(key_points((0.0, 100.0), 1), plotters_points(0.0..100.0, 1));
    }

    #[test]
    fn same_key_points_as_plotters_off_zero() {
        for (start, end) in [
            (3.0, 17.5),
            (-5.0, 5.0),
            (0.25, 0.75),
            (99.0, 1000.0),
            (7.0, 7.0),
        ] {
            for max_points in [1, 4, 10, 50] {
                assert_eq!(
                    key_points((start, end), max_points),
                    plotters_points(start..end, max_points),
                    "{start}..{end}, at most {max_points} points"
                );
            }
        }
    }

    #[test]
    fn maps_and_formats_like_plotters() {
        let ours = Linear::from(0.0..153.0);
        let theirs = RangedCoordf64::from(0.0..153.0);
        for v in [0.0, 1.0, 76.5, 152.9, 153.0] {
            assert_eq!(ours.map(&v, (10, 900)), theirs.map(&v, (10, 900)));
            assert_eq!(ours.map(&v, (470, 20)), theirs.map(&v, (470, 20)));
        }
        assert_eq!(ours.range(), 0.0..153.0);
        assert_eq!(Linear::format(&20.0), "20.0");
        assert_eq!(Linear::format(&0.5), "0.5");
    }

    #[test]
    fn no_points_for_a_useless_range() {
        assert!(key_points((0.0, f64::NAN), 10).is_empty());
        assert!(key_points((0.0, f64::INFINITY), 10).is_empty());
        assert!(key_points((0.0, 10.0), 0).is_empty());
    }
}
