//! `revoke-latency.svg`: revoke latency against table size, log-log, one line per method
//! (p50, with a whisker up to p99). Hand-written SVG: a plotting crate would be a heavy
//! dependency for one chart.

use super::results::{Report, RevokeCase};
use super::stats::{Samples, dur};
use std::fmt::Write as _;
use std::time::Duration;

const W: f64 = 760.0;
const H: f64 = 460.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

type Series = (&'static str, &'static str, fn(&RevokeCase) -> &Samples);

const SERIES: [Series; 6] = [
    ("secgroupd (kept-alive)", "#1b7837", |c| &c.keepalive),
    ("secgroupd (new connection)", "#5aae61", |c| &c.per_conn),
    ("daemon's kernel commit", "#9970ab", |c| &c.daemon_kernel),
    ("netlink floor", "#762a83", |c| &c.floor),
    ("nft delete rule process", "#d6604d", |c| &c.nft_delete),
    ("full nft -f reload", "#b2182b", |c| &c.reload),
];

/// The cases plotted: one member and groups of 1,000 where the run has them (the
/// group size is then the same across table sizes), else the first of each size.
fn plotted(r: &Report) -> Vec<&RevokeCase> {
    let min_members = r
        .cases
        .iter()
        .filter_map(|c| c.table.map(|t| t.members))
        .min()
        .unwrap_or(1);
    let mut out: Vec<&RevokeCase> = Vec::new();
    for c in &r.cases {
        let t = c.table.expect("case");
        if t.members != min_members {
            continue;
        }
        match out
            .iter_mut()
            .find(|o| o.table.expect("case").permissions == t.permissions)
        {
            Some(o) if t.group_size == 1_000 => *o = c,
            Some(_) => {}
            None => out.push(c),
        }
    }
    out.sort_by_key(|c| c.table.expect("case").permissions);
    out
}

pub fn revoke_latency(r: &Report) -> String {
    let cases = plotted(r);
    let secs = |d: Duration| d.as_secs_f64().max(1e-7);
    let all: Vec<f64> = cases
        .iter()
        .flat_map(|c| {
            SERIES
                .iter()
                .flat_map(move |(_, _, f)| [f(c).p50(), f(c).p99()])
        })
        .flatten()
        .map(secs)
        .collect();
    let lo = all.iter().cloned().fold(f64::MAX, f64::min).log10().floor();
    let hi = all.iter().cloned().fold(f64::MIN, f64::max).log10().ceil();
    let (lo, hi) = if all.is_empty() {
        (-5.0, 0.0)
    } else {
        (lo, hi.max(lo + 1.0))
    };
    let xs: Vec<f64> = cases
        .iter()
        .map(|c| (c.table.expect("case").permissions as f64).log10())
        .collect();
    let (xlo, xhi) = match (xs.first(), xs.last()) {
        (Some(a), Some(b)) if b > a => (a - 0.15, b + 0.15),
        (Some(a), _) => (a - 0.5, a + 0.5),
        _ => (2.0, 6.0),
    };
    let px = |x: f64| LEFT + (x - xlo) / (xhi - xlo) * (W - LEFT - RIGHT);
    let py = |s: f64| TOP + (hi - s.log10()) / (hi - lo) * (H - TOP - BOTTOM);

    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let members = cases
        .first()
        .map(|c| c.table.expect("case").members)
        .unwrap_or(1);
    let mut groups: Vec<usize> = cases
        .iter()
        .map(|c| c.table.expect("case").group_size)
        .collect();
    groups.dedup();
    let groups = groups
        .iter()
        .map(|g| g.to_string())
        .collect::<Vec<_>>()
        .join("/");
    let _ = writeln!(
        o,
        r#"<text x="{LEFT}" y="22" font-size="14" font-weight="bold">Revoke latency (p50, whisker to p99; {members} member interface(s), groups of {groups})</text>"#
    );
    // Decades on the y axis.
    let mut e = lo;
    while e <= hi + 1e-9 {
        let y = py(10f64.powf(e));
        let _ = writeln!(
            o,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            dur(Duration::from_secs_f64(10f64.powf(e)))
        );
        e += 1.0;
    }
    for (c, x) in cases.iter().zip(&xs) {
        let p = c.table.expect("case").permissions;
        let _ = writeln!(
            o,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{p}</text>"#,
            px(*x),
            H - BOTTOM + 18.0
        );
    }
    let _ = writeln!(
        o,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">permissions in the table</text>"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 16.0
    );
    let _ = writeln!(
        o,
        r#"<rect x="{LEFT}" y="{TOP}" width="{:.1}" height="{:.1}" fill="none" stroke="black"/>"#,
        W - LEFT - RIGHT,
        H - TOP - BOTTOM
    );
    for (i, (name, color, f)) in SERIES.iter().enumerate() {
        let pts: Vec<(f64, Samples)> = cases
            .iter()
            .zip(&xs)
            .filter(|(c, _)| !f(c).is_empty())
            .map(|(c, x)| (*x, f(c).clone()))
            .collect();
        let path: Vec<String> = pts
            .iter()
            .filter_map(|(x, s)| Some(format!("{:.1},{:.1}", px(*x), py(secs(s.p50()?)))))
            .collect();
        if path.len() > 1 {
            let _ = writeln!(
                o,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                path.join(" ")
            );
        }
        for (x, s) in &pts {
            if let (Some(a), Some(b)) = (s.p50(), s.p99()) {
                let (cx, y50, y99) = (px(*x), py(secs(a)), py(secs(b)));
                let _ = writeln!(
                    o,
                    r#"<line x1="{cx:.1}" x2="{cx:.1}" y1="{y50:.1}" y2="{y99:.1}" stroke="{color}"/><circle cx="{cx:.1}" cy="{y50:.1}" r="3.5" fill="{color}"/>"#
                );
            }
        }
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let lx = W - RIGHT + 15.0;
        let _ = writeln!(
            o,
            r#"<line x1="{lx}" x2="{:.1}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{name}</text>"#,
            lx + 20.0,
            lx + 26.0,
            ly + 4.0
        );
    }
    let _ = writeln!(o, "</svg>");
    o
}
