//! Server-rendered SVG charts: pure functions from samples to an inline
//! `<svg class="chart">` string, with axes, grid, tick labels, a `<title>`
//! tooltip on every drawn point, gaps where data is missing and events as
//! dashed vertical markers. No scripts, no third-party libraries.
//!
//! Values are exact decimals; they become `f64` only for coordinates. Long
//! series are thinned for drawing to at most [`MAX_DRAWN`] points: lines keep
//! the minimum and maximum of each time bucket, bars add up their bucket.
//! Every piece of text put into the SVG goes through [`escape`].

use std::fmt::Write;

use jiff::SignedDuration;
use jiff::civil::DateTime;
use rust_decimal::prelude::ToPrimitive;
use telegaz_domain::Decimal;

/// The most data points (circles or bars) one chart draws.
pub(crate) const MAX_DRAWN: usize = 1500;
/// The most event markers one chart draws.
pub(crate) const MAX_MARKERS: usize = 300;

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 18.0;
const BOTTOM: f64 = 30.0;
const TARGET_Y_TICKS: f64 = 5.0;
const MAX_X_TICKS: i64 = 8;

/// One value at one (local) time; `None` where it is missing.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub t: DateTime,
    pub v: Option<Decimal>,
}

/// Something that happened at a time (an event-log row), drawn as a marker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Marker {
    pub t: DateTime,
    pub label: String,
}

/// What a chart shows besides its samples.
#[derive(Debug, Clone)]
pub(crate) struct Frame<'a> {
    /// The `id` of the `<svg>` element.
    pub id: &'a str,
    /// A label for people (the SVG's `<title>` and `aria-label`).
    pub title: &'a str,
    /// The unit printed after values in tooltips.
    pub unit: &'a str,
    /// The time axis: from..to (local time).
    pub from: DateTime,
    pub to: DateTime,
    /// The spacing of the samples (an hour); two samples further apart than
    /// this have a gap between them.
    pub step: SignedDuration,
    /// The text shown when there is nothing to draw.
    pub no_data: &'a str,
    pub markers: &'a [Marker],
}

/// Escape text for XML content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A line chart (pressure, temperature): a polyline per run of consecutive
/// samples and a circle per drawn point.
pub(crate) fn line_chart(frame: &Frame<'_>, samples: &[Sample]) -> String {
    let x = XScale::new(frame);
    let mut segments = segments(&x, frame.step, samples);
    let total: usize = segments.iter().map(Vec::len).sum();
    if total == 0 {
        return empty(frame);
    }
    if total > MAX_DRAWN {
        segments = thin_lines(&segments, x.span / (MAX_DRAWN / 2 - 1) as f64);
    }
    let (lo, hi) = bounds(segments.iter().flatten().map(|p| p.f));
    let y = YScale::new(lo, hi);
    let drawn: usize = segments.iter().map(Vec::len).sum();
    let r = if drawn > 300 { 1.2 } else { 2.5 };
    let mut body = String::new();
    for seg in &segments {
        polyline(&mut body, &x, &y, seg);
    }
    for p in segments.iter().flatten() {
        circle(&mut body, &x, &y, p, r, frame.unit);
    }
    finish(frame, &x, &y, &body)
}

/// A bar chart (hourly consumption): a bar per sample, ending at its time and
/// `step` wide; long ranges add up consecutive samples into wider bars.
pub(crate) fn bar_chart(frame: &Frame<'_>, samples: &[Sample]) -> String {
    let x = XScale::new(frame);
    let step = secs(frame.step).max(1.0);
    let mut bars: Vec<Bar> = in_range(&x, samples)
        .map(|(s, t, v)| Bar {
            start: s - step,
            end: s,
            t,
            t_end: t,
            v,
        })
        .collect();
    if bars.is_empty() {
        return empty(frame);
    }
    if bars.len() > MAX_DRAWN {
        let per = (x.span / step / MAX_DRAWN as f64).ceil().max(1.0);
        bars = sum_bars(&bars, per * step);
    }
    let (lo, hi) = bounds(
        bars.iter()
            .map(|b| b.v.to_f64().unwrap_or(0.0))
            .chain([0.0]),
    );
    let y = YScale::new(lo, hi);
    let mut body = String::new();
    for b in &bars {
        bar(&mut body, &x, &y, b, frame.unit);
    }
    finish(frame, &x, &y, &body)
}

/// A drawn point: seconds from the start of the axis, time, value.
#[derive(Debug, Clone, Copy)]
struct Pt {
    s: f64,
    t: DateTime,
    v: Decimal,
    f: f64,
}

#[derive(Debug, Clone, Copy)]
struct Bar {
    start: f64,
    end: f64,
    t: DateTime,
    t_end: DateTime,
    v: Decimal,
}

fn secs(d: SignedDuration) -> f64 {
    d.as_secs_f64()
}

/// The time axis.
struct XScale {
    from: DateTime,
    to: DateTime,
    /// Seconds from `from` to `to` (at least one).
    span: f64,
}

impl XScale {
    fn new(frame: &Frame<'_>) -> XScale {
        let span = secs(frame.to.duration_since(frame.from));
        if span >= 1.0 {
            XScale {
                from: frame.from,
                to: frame.to,
                span,
            }
        } else {
            let step = frame.step.max(SignedDuration::from_secs(1));
            XScale {
                from: frame.from,
                to: frame.from.saturating_add(step),
                span: secs(step),
            }
        }
    }

    fn secs_of(&self, t: DateTime) -> f64 {
        secs(t.duration_since(self.from))
    }

    fn px(&self, s: f64) -> f64 {
        LEFT + (s / self.span).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
    }
}

/// The value axis, with rounded ticks.
struct YScale {
    lo: f64,
    hi: f64,
    step: f64,
}

impl YScale {
    fn new(lo: f64, hi: f64) -> YScale {
        let (lo, hi) = if hi - lo > f64::EPSILON * hi.abs().max(1.0) {
            (lo, hi)
        } else {
            let pad = (lo.abs() * 0.05).max(1.0);
            (lo - pad, hi + pad)
        };
        let step = nice_step((hi - lo) / TARGET_Y_TICKS);
        YScale {
            lo: (lo / step).floor() * step,
            hi: (hi / step).ceil() * step,
            step,
        }
    }

    fn px(&self, v: f64) -> f64 {
        let frac = (v - self.lo) / (self.hi - self.lo);
        HEIGHT - BOTTOM - frac.clamp(0.0, 1.0) * (HEIGHT - TOP - BOTTOM)
    }

    fn ticks(&self) -> Vec<f64> {
        let n = ((self.hi - self.lo) / self.step).round().clamp(1.0, 20.0) as usize;
        (0..=n).map(|i| self.lo + i as f64 * self.step).collect()
    }

    fn label(&self, v: f64) -> String {
        let decimals = if self.step >= 1.0 {
            0
        } else {
            (-self.step.log10()).ceil().clamp(0.0, 6.0) as usize
        };
        // `+ 0.0` turns a negative zero into zero.
        format!("{:.*}", decimals, v + 0.0)
    }
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
pub(crate) fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// The samples with a value inside the axis, in time order.
fn in_range<'a>(
    x: &'a XScale,
    samples: &'a [Sample],
) -> impl Iterator<Item = (f64, DateTime, Decimal)> + 'a {
    let mut sorted: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t >= x.from && s.t <= x.to)
        .collect();
    sorted.sort_by_key(|s| s.t);
    sorted
        .into_iter()
        .filter_map(|s| s.v.map(|v| (x.secs_of(s.t), s.t, v)))
}

/// Runs of samples with values, broken where a value is missing or two
/// samples are more than `step` apart.
fn segments(x: &XScale, step: SignedDuration, samples: &[Sample]) -> Vec<Vec<Pt>> {
    let mut sorted: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t >= x.from && s.t <= x.to)
        .collect();
    sorted.sort_by_key(|s| s.t);
    let gap = secs(step) + 0.5;
    let mut out: Vec<Vec<Pt>> = Vec::new();
    let mut current: Vec<Pt> = Vec::new();
    for s in sorted {
        let Some(v) = s.v else {
            flush(&mut out, &mut current);
            continue;
        };
        let p = Pt {
            s: x.secs_of(s.t),
            t: s.t,
            v,
            f: v.to_f64().unwrap_or(0.0),
        };
        if current.last().is_some_and(|last| p.s - last.s > gap) {
            flush(&mut out, &mut current);
        }
        current.push(p);
    }
    flush(&mut out, &mut current);
    out
}

fn flush(out: &mut Vec<Vec<Pt>>, current: &mut Vec<Pt>) {
    if !current.is_empty() {
        out.push(std::mem::take(current));
    }
}

/// Thin line segments to the minimum and maximum of each bucket of `width`
/// seconds. Gaps narrower than a bucket cannot be seen and are closed, so a
/// bucket never holds points of two segments: at most two points a bucket.
fn thin_lines(segments: &[Vec<Pt>], width: f64) -> Vec<Vec<Pt>> {
    let width = width.max(1.0);
    let mut merged: Vec<Vec<Pt>> = Vec::new();
    for seg in segments {
        match merged.last_mut() {
            Some(last)
                if last
                    .last()
                    .zip(seg.first())
                    .is_some_and(|(a, b)| b.s - a.s <= width) =>
            {
                last.extend_from_slice(seg);
            }
            _ => merged.push(seg.clone()),
        }
    }
    merged
        .iter()
        .map(|seg| {
            let mut out = Vec::new();
            let mut bucket: Vec<Pt> = Vec::new();
            for p in seg {
                if bucket
                    .first()
                    .is_some_and(|b| (b.s / width).floor() != (p.s / width).floor())
                {
                    min_max(&mut out, &bucket);
                    bucket.clear();
                }
                bucket.push(*p);
            }
            min_max(&mut out, &bucket);
            out
        })
        .collect()
}

/// The lowest and the highest point of a bucket, in time order.
fn min_max(out: &mut Vec<Pt>, bucket: &[Pt]) {
    let lowest = bucket.iter().min_by(|a, b| a.v.cmp(&b.v));
    let highest = bucket.iter().max_by(|a, b| a.v.cmp(&b.v));
    match (lowest, highest) {
        (Some(a), Some(b)) if a.s == b.s => out.push(*a),
        (Some(a), Some(b)) if a.s < b.s => out.extend([*a, *b]),
        (Some(a), Some(b)) => out.extend([*b, *a]),
        _ => {}
    }
}

/// Add up bars into buckets of `width` seconds (from the start of the axis).
fn sum_bars(bars: &[Bar], width: f64) -> Vec<Bar> {
    let mut out: Vec<Bar> = Vec::new();
    for b in bars {
        let index = (b.start.max(0.0) / width).floor();
        let start = index * width;
        match out.last_mut() {
            Some(last) if last.start == start => {
                last.v = last.v.saturating_add(b.v);
                last.t_end = b.t_end;
            }
            _ => out.push(Bar {
                start,
                end: start + width,
                t: b.t,
                t_end: b.t_end,
                v: b.v,
            }),
        }
    }
    out
}

fn fmt_t(t: DateTime) -> String {
    t.strftime("%Y-%m-%d %H:%M").to_string()
}

fn polyline(out: &mut String, x: &XScale, y: &YScale, seg: &[Pt]) {
    if seg.len() < 2 {
        return;
    }
    out.push_str("<polyline class=\"series\" points=\"");
    for (i, p) in seg.iter().enumerate() {
        let sep = if i == 0 { "" } else { " " };
        let _ = write!(out, "{sep}{:.1},{:.1}", x.px(p.s), y.px(p.f));
    }
    out.push_str("\"/>\n");
}

fn circle(out: &mut String, x: &XScale, y: &YScale, p: &Pt, r: f64, unit: &str) {
    let _ = writeln!(
        out,
        "<circle class=\"pt\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"{r}\" data-t=\"{}\" data-v=\"{}\"><title>{} — {} {}</title></circle>",
        x.px(p.s),
        y.px(p.f),
        p.t,
        p.v,
        fmt_t(p.t),
        p.v,
        escape(unit)
    );
}

fn bar(out: &mut String, x: &XScale, y: &YScale, b: &Bar, unit: &str) {
    let (x0, x1) = (x.px(b.start), x.px(b.end));
    let w = ((x1 - x0) * 0.85).max(0.5);
    let v = b.v.to_f64().unwrap_or(0.0);
    let (ya, yb) = (y.px(v), y.px(0.0));
    let when = if b.t == b.t_end {
        fmt_t(b.t)
    } else {
        format!("{} … {}", fmt_t(b.t), fmt_t(b.t_end))
    };
    let _ = writeln!(
        out,
        "<rect class=\"pt bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" data-t=\"{}\" data-v=\"{}\"><title>{} — {} {}</title></rect>",
        x0 + (x1 - x0 - w) / 2.0,
        ya.min(yb),
        (ya - yb).abs().max(0.5),
        b.t_end,
        b.v,
        when,
        b.v,
        escape(unit)
    );
}

/// The opening tag and the title of a chart.
fn open(frame: &Frame<'_>) -> String {
    let title = escape(frame.title);
    format!(
        "<svg class=\"chart\" id=\"{}\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{title}\">\n<title>{title}</title>\n",
        escape(frame.id)
    )
}

fn empty(frame: &Frame<'_>) -> String {
    let mut out = open(frame);
    let _ = write!(
        out,
        "<text class=\"empty\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n</svg>",
        WIDTH / 2.0,
        HEIGHT / 2.0,
        escape(frame.no_data)
    );
    out
}

fn finish(frame: &Frame<'_>, x: &XScale, y: &YScale, body: &str) -> String {
    let mut out = open(frame);
    out.push_str("<g class=\"grid\">\n");
    y_axis(&mut out, y);
    x_axis(&mut out, x, frame.step);
    out.push_str("</g>\n");
    let _ = writeln!(
        out,
        "<text class=\"unit\" x=\"{LEFT}\" y=\"{}\">{}</text>",
        TOP - 6.0,
        escape(frame.unit)
    );
    out.push_str(body);
    markers(&mut out, x, frame.markers);
    out.push_str("</svg>");
    out
}

fn y_axis(out: &mut String, y: &YScale) {
    for v in y.ticks() {
        let py = y.px(v);
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{py:.1}\" y2=\"{py:.1}\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 4.0,
            py + 4.0,
            y.label(v)
        );
    }
}

/// Tick spacing in hours: the first that gives at most [`MAX_X_TICKS`] ticks.
fn x_tick_hours(span_secs: f64, step: SignedDuration) -> i64 {
    const CANDIDATES: [i64; 13] = [1, 2, 3, 6, 12, 24, 48, 72, 168, 336, 720, 1464, 2208];
    let min_hours = (secs(step) / 3600.0).ceil().max(1.0) as i64;
    CANDIDATES
        .into_iter()
        .filter(|h| *h >= min_hours)
        .find(|h| span_secs / (*h as f64 * 3600.0) <= MAX_X_TICKS as f64)
        .unwrap_or(8760)
}

fn x_axis(out: &mut String, x: &XScale, step: SignedDuration) {
    let hours = x_tick_hours(x.span, step);
    let format = if hours < 24 {
        "%d.%m %H:%M"
    } else if x.span > 180.0 * 86400.0 {
        "%d.%m.%y"
    } else {
        "%d.%m"
    };
    let base = x.from.date().to_datetime(jiff::civil::Time::midnight());
    let tick = SignedDuration::from_hours(hours);
    let bottom = HEIGHT - BOTTOM;
    let mut t = base;
    for _ in 0..=(MAX_X_TICKS + 26) {
        if t > x.to {
            break;
        }
        if t >= x.from {
            let px = x.px(x.secs_of(t));
            let _ = writeln!(
                out,
                "<line x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{TOP}\" y2=\"{bottom}\"/><text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                bottom + 14.0,
                t.strftime(format)
            );
        }
        let Ok(next) = t.checked_add(tick) else {
            break;
        };
        t = next;
    }
    let _ = writeln!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{bottom}\" y2=\"{bottom}\"/>",
        WIDTH - RIGHT
    );
}

fn markers(out: &mut String, x: &XScale, markers: &[Marker]) {
    let bottom = HEIGHT - BOTTOM;
    for m in markers
        .iter()
        .filter(|m| m.t >= x.from && m.t <= x.to)
        .take(MAX_MARKERS)
    {
        let px = x.px(x.secs_of(m.t));
        let _ = writeln!(
            out,
            "<g class=\"event\"><title>{}</title><line x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{TOP}\" y2=\"{bottom}\"/></g>",
            escape(&m.label)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dt(s: &str) -> DateTime {
        s.parse().unwrap_or_else(|e| unreachable!("{s}: {e}"))
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap_or_else(|e| unreachable!("{s}: {e}"))
    }

    fn frame<'a>(from: &str, to: &str, markers: &'a [Marker]) -> Frame<'a> {
        Frame {
            id: "c",
            title: "Давление, кПа",
            unit: "кПа",
            from: dt(from),
            to: dt(to),
            step: SignedDuration::from_hours(1),
            no_data: "нет данных",
            markers,
        }
    }

    /// `n` hourly samples from 2026-01-01 01:00 with values from `f`.
    fn hourly(n: i64, f: impl Fn(i64) -> Option<Decimal>) -> Vec<Sample> {
        let start = dt("2026-01-01T00:00");
        (1..=n)
            .map(|i| Sample {
                t: start.saturating_add(SignedDuration::from_hours(i)),
                v: f(i),
            })
            .collect()
    }

    fn count(svg: &str, what: &str) -> usize {
        svg.matches(what).count()
    }

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(escape("&\"'"), "&amp;&quot;&#39;");
        assert_eq!(escape("кПа"), "кПа");
    }

    #[test]
    fn every_value_is_a_point_with_a_tooltip() {
        let samples = hourly(24, |i| Some(Decimal::from(100 + i)));
        let svg = line_chart(
            &frame("2026-01-01T00:00", "2026-01-02T00:00", &[]),
            &samples,
        );
        assert!(svg.starts_with("<svg class=\"chart\""));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(count(&svg, "class=\"pt\""), 24);
        assert_eq!(count(&svg, "<polyline"), 1);
        assert!(svg.contains("data-t=\"2026-01-01T05:00:00\" data-v=\"105\""));
        assert!(svg.contains("<title>2026-01-01 05:00 — 105 кПа</title>"));
        let bars = bar_chart(
            &frame("2026-01-01T00:00", "2026-01-02T00:00", &[]),
            &samples,
        );
        assert_eq!(count(&bars, "class=\"pt bar\""), 24);
    }

    #[test]
    fn missing_hours_break_the_line() {
        // Hour 5 has no value, hours 10 and 11 are absent altogether.
        let samples: Vec<Sample> = hourly(20, |i| (i != 5).then(|| Decimal::from(i)))
            .into_iter()
            .filter(|s| s.t.hour() != 10 && s.t.hour() != 11)
            .collect();
        let f = frame("2026-01-01T00:00", "2026-01-02T00:00", &[]);
        let svg = line_chart(&f, &samples);
        assert_eq!(count(&svg, "class=\"pt\""), 17);
        assert_eq!(count(&svg, "<polyline"), 3);
        let bars = bar_chart(&f, &samples);
        assert_eq!(count(&bars, "class=\"pt bar\""), 17);
    }

    #[test]
    fn a_single_point_is_drawn_without_a_line() {
        let samples = hourly(1, |_| Some(dec("104.5110")));
        let svg = line_chart(
            &frame("2026-01-01T00:00", "2026-01-02T00:00", &[]),
            &samples,
        );
        assert_eq!(count(&svg, "class=\"pt\""), 1);
        assert_eq!(count(&svg, "<polyline"), 0);
        assert!(svg.contains("data-v=\"104.5110\""));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn constant_values_do_not_divide_by_zero() {
        for v in ["0", "104.5", "-3"] {
            let samples = hourly(10, |_| Some(dec(v)));
            let f = frame("2026-01-01T00:00", "2026-01-02T00:00", &[]);
            for svg in [line_chart(&f, &samples), bar_chart(&f, &samples)] {
                assert_eq!(count(&svg, "class=\"pt"), 10, "{v}");
                assert!(!svg.contains("NaN") && !svg.contains("inf"), "{v}: {svg}");
            }
        }
    }

    #[test]
    fn a_zero_length_axis_is_widened() {
        let samples = hourly(1, |_| Some(dec("1")));
        let svg = line_chart(
            &frame("2026-01-01T01:00", "2026-01-01T01:00", &[]),
            &samples,
        );
        assert_eq!(count(&svg, "class=\"pt\""), 1);
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn empty_series_say_so() {
        let f = frame("2026-01-01T00:00", "2026-01-02T00:00", &[]);
        for svg in [
            line_chart(&f, &[]),
            bar_chart(&f, &hourly(5, |_| None)),
            line_chart(&f, &hourly(5, |_| None)),
        ] {
            assert!(svg.contains("нет данных"));
            assert_eq!(count(&svg, "class=\"pt"), 0);
            assert!(svg.ends_with("</svg>"));
        }
    }

    #[test]
    fn samples_outside_the_axis_are_left_out() {
        let samples = hourly(48, |i| Some(Decimal::from(i)));
        let svg = line_chart(
            &frame("2026-01-01T00:00", "2026-01-02T00:00", &[]),
            &samples,
        );
        assert_eq!(count(&svg, "class=\"pt\""), 24);
    }

    #[test]
    fn events_are_dashed_markers_with_escaped_titles() {
        let markers = [
            Marker {
                t: dt("2026-01-01T05:30"),
                label: "0x8104 <b>&\"'".into(),
            },
            Marker {
                t: dt("2026-02-01T05:30"),
                label: "outside".into(),
            },
        ];
        let samples = hourly(24, |i| Some(Decimal::from(i)));
        let svg = line_chart(
            &frame("2026-01-01T00:00", "2026-01-02T00:00", &markers),
            &samples,
        );
        assert_eq!(count(&svg, "class=\"event\""), 1);
        assert!(svg.contains("<title>0x8104 &lt;b&gt;&amp;&quot;&#39;</title>"));
        assert!(!svg.contains("outside"));
    }

    #[test]
    fn titles_and_units_are_escaped() {
        let mut f = frame("2026-01-01T00:00", "2026-01-02T00:00", &[]);
        f.title = "<script>alert(1)</script>";
        f.unit = "<i>";
        let svg = bar_chart(&f, &hourly(3, |_| Some(dec("1"))));
        assert!(!svg.contains("<script>") && !svg.contains("<i>"));
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        let empty = line_chart(&f, &[]);
        assert!(!empty.contains("<script>"));
    }

    #[test]
    fn a_year_of_hours_is_thinned_and_keeps_extremes() {
        let n = 8760;
        let samples = hourly(n, |i| {
            if i == 4000 {
                Some(dec("999.5"))
            } else if i % 1000 == 0 {
                None
            } else {
                Some(Decimal::from(i % 24))
            }
        });
        let f = frame("2026-01-01T00:00", "2027-01-01T00:00", &[]);
        let started = std::time::Instant::now();
        let svg = line_chart(&f, &samples);
        let bars = bar_chart(&f, &samples);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let points = count(&svg, "class=\"pt\"");
        assert!(points > 700 && points <= MAX_DRAWN, "{points}");
        assert!(svg.contains("data-v=\"999.5\""), "the peak survives");
        let drawn = count(&bars, "class=\"pt bar\"");
        assert!(drawn > 700 && drawn <= MAX_DRAWN, "{drawn}");
        // Bars add up: the total stays the same.
        let total: Decimal = bars
            .split("data-v=\"")
            .skip(1)
            .filter_map(|p| p.split('"').next())
            .map(dec)
            .sum();
        let expected: Decimal = samples.iter().filter_map(|s| s.v).sum();
        assert_eq!(total, expected);
    }

    #[test]
    fn alternating_gaps_stay_within_the_bound() {
        let samples = hourly(8760, |i| (i % 2 == 0).then(|| Decimal::from(i)));
        let f = frame("2026-01-01T00:00", "2027-01-01T00:00", &[]);
        let points = count(&line_chart(&f, &samples), "class=\"pt\"");
        assert!(points <= MAX_DRAWN, "{points}");
    }

    #[test]
    fn ticks_are_round() {
        assert_eq!(nice_step(0.23), 0.5);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(1.5), 2.0);
        assert_eq!(nice_step(0.0), 1.0);
        let y = YScale::new(103.97, 104.65);
        assert!((y.step - 0.2).abs() < 1e-9, "{}", y.step);
        assert_eq!(y.label(104.0), "104.0");
        let svg = line_chart(
            &frame("2026-01-01T00:00", "2026-01-08T00:00", &[]),
            &hourly(100, |i| Some(Decimal::from(i))),
        );
        assert!(svg.contains(">02.01<"), "daily ticks for a week");
    }
}
