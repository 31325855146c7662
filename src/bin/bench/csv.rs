//! The run's CSV: `results.csv` (one number per row, with its unit) and `samples.csv`
//! (every latency sample of parts (a) and (b)), for plotting and re-analysis.

use super::report::ratios;
use super::results::Report;
use super::stats::{Samples, us};
use std::fmt::Write as _;

/// `results.csv`: part, permissions, group_size, members, setting, metric, value, unit.
pub fn results(r: &Report) -> String {
    let mut o = String::from("part,permissions,group_size,members,setting,metric,value,unit\n");
    let mut row = |part: &str,
                   t: Option<super::workload::Table>,
                   setting: &str,
                   metric: &str,
                   value: String,
                   unit: &str| {
        let (p, g, m) = t.map_or((String::new(), String::new(), String::new()), |t| {
            (
                t.permissions.to_string(),
                t.group_size.to_string(),
                t.members.to_string(),
            )
        });
        let _ = writeln!(o, "{part},{p},{g},{m},{setting},{metric},{value},{unit}");
    };
    let lat = |row: &mut dyn FnMut(&str, &str, String, &str), name: &str, s: &Samples| {
        row(name, "p50", us(s.p50()), "us");
        row(name, "p99", us(s.p99()), "us");
        row(name, "samples", s.len().to_string(), "count");
    };
    for c in &r.cases {
        let t = c.table;
        let mut a = |metric: &str, stat: &str, v: String, unit: &str| {
            row(
                "revoke",
                t,
                "delay_ms=0",
                &format!("{metric}_{stat}"),
                v,
                unit,
            )
        };
        lat(&mut a, "secgroupd_keepalive", &c.keepalive);
        lat(&mut a, "secgroupd_new_connection", &c.per_conn);
        lat(&mut a, "secgroupd_authorize", &c.authorize);
        lat(&mut a, "secgroupd_back_to_back", &c.burst);
        lat(&mut a, "daemon_store", &c.daemon_store);
        lat(&mut a, "daemon_kernel", &c.daemon_kernel);
        lat(&mut a, "nft_delete_process", &c.nft_delete);
        lat(&mut a, "full_reload", &c.reload);
        lat(&mut a, "netlink_floor", &c.floor);
        let q = ratios(c);
        let f = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_default();
        row(
            "revoke",
            t,
            "delay_ms=0",
            "ratio_nft_vs_secgroupd",
            f(q.vs_nft),
            "x",
        );
        row(
            "revoke",
            t,
            "delay_ms=0",
            "ratio_reload_vs_secgroupd",
            f(q.vs_reload),
            "x",
        );
        row(
            "revoke",
            t,
            "delay_ms=0",
            "ratio_daemon_kernel_vs_floor",
            f(q.kernel_vs_floor),
            "x",
        );
        row(
            "revoke",
            t,
            "",
            "kernel_rules",
            c.kernel.rules.to_string(),
            "count",
        );
        row(
            "revoke",
            t,
            "",
            "kernel_chains",
            c.kernel.chains.to_string(),
            "count",
        );
        row(
            "revoke",
            t,
            "",
            "kernel_set_elements",
            c.kernel.set_elements.to_string(),
            "count",
        );
        row(
            "revoke",
            t,
            "",
            "reload_script",
            c.reload_script_bytes.to_string(),
            "bytes",
        );
        if let Some(win) = &c.window {
            let setting = format!("delay_ms={}", win.delay_ms);
            row(
                "window",
                t,
                &setting,
                "secgroupd_keepalive_p50",
                us(win.keepalive.p50()),
                "us",
            );
            row(
                "window",
                t,
                &setting,
                "secgroupd_keepalive_p99",
                us(win.keepalive.p99()),
                "us",
            );
            row(
                "window",
                t,
                &setting,
                "daemon_kernel_p50",
                us(win.daemon_kernel.p50()),
                "us",
            );
        }
        row("startup", t, "", "state_build", us(Some(c.populate)), "us");
        row(
            "startup",
            t,
            "",
            "start_empty_table",
            us(c.start_empty),
            "us",
        );
        row(
            "startup",
            t,
            "",
            "restart_table_present",
            us(c.start_present),
            "us",
        );
        row(
            "startup",
            t,
            "",
            "vmrss_ready",
            c.mem_ready.rss_kib.to_string(),
            "KiB",
        );
        row(
            "startup",
            t,
            "",
            "vmrss_after",
            c.mem_after.rss_kib.to_string(),
            "KiB",
        );
        row(
            "startup",
            t,
            "",
            "vmhwm_after",
            c.mem_after.hwm_kib.to_string(),
            "KiB",
        );
    }
    for tp in &r.throughput {
        let s = format!("delay_ms={}", tp.delay_ms);
        row(
            "throughput",
            tp.table,
            &s,
            "revokes",
            tp.revokes.to_string(),
            "count",
        );
        row(
            "throughput",
            tp.table,
            &s,
            "clients",
            tp.clients.to_string(),
            "count",
        );
        row(
            "throughput",
            tp.table,
            &s,
            "rules_before",
            tp.rules_before.to_string(),
            "count",
        );
        row("throughput", tp.table, &s, "wall", us(Some(tp.wall)), "us");
        row(
            "throughput",
            tp.table,
            &s,
            "revokes_per_second",
            format!("{:.1}", tp.per_second()),
            "1/s",
        );
        row(
            "throughput",
            tp.table,
            &s,
            "latency_p50",
            us(tp.latency.p50()),
            "us",
        );
        row(
            "throughput",
            tp.table,
            &s,
            "latency_p99",
            us(tp.latency.p99()),
            "us",
        );
        row(
            "throughput",
            tp.table,
            &s,
            "commits",
            tp.commits.to_string(),
            "count",
        );
    }
    if let Some(l) = &r.lifecycle {
        let setting = format!("instances={};remote_members={}", l.instances, l.remote);
        for (what, s) in l.series() {
            row(
                "lifecycle",
                None,
                &setting,
                &format!("{what}_p50"),
                us(s.p50()),
                "us",
            );
            row(
                "lifecycle",
                None,
                &setting,
                &format!("{what}_p99"),
                us(s.p99()),
                "us",
            );
        }
    }
    for d in &r.datapath {
        let s = d.label().replace(',', ";");
        row(
            "datapath",
            None,
            &s,
            "tcp_throughput",
            format!("{:.0}", d.bits_per_second),
            "bit/s",
        );
        row(
            "datapath",
            None,
            &s,
            "tcp_seconds",
            format!("{:.2}", d.seconds),
            "s",
        );
        row(
            "datapath",
            None,
            &s,
            "rr_established_p50",
            us(d.rr.p50()),
            "us",
        );
        row(
            "datapath",
            None,
            &s,
            "rr_established_p99",
            us(d.rr.p99()),
            "us",
        );
        row(
            "datapath",
            None,
            &s,
            "rr_new_connection_p50",
            us(d.crr.p50()),
            "us",
        );
        row(
            "datapath",
            None,
            &s,
            "rr_new_connection_p99",
            us(d.crr.p99()),
            "us",
        );
    }
    o
}

/// `samples.csv`: every latency sample of parts (a) and (b), sorted (rank 0 = fastest).
pub fn samples(r: &Report) -> String {
    let mut o = String::from("permissions,group_size,members,series,rank,microseconds\n");
    for c in &r.cases {
        let t = c.table.expect("case");
        let mut series: Vec<(&str, &Samples)> = vec![
            ("secgroupd_keepalive", &c.keepalive),
            ("secgroupd_new_connection", &c.per_conn),
            ("secgroupd_authorize", &c.authorize),
            ("secgroupd_back_to_back", &c.burst),
            ("daemon_store", &c.daemon_store),
            ("daemon_kernel", &c.daemon_kernel),
            ("nft_delete_process", &c.nft_delete),
            ("full_reload", &c.reload),
            ("netlink_floor", &c.floor),
        ];
        if let Some(w) = &c.window {
            series.push(("secgroupd_keepalive_window", &w.keepalive));
        }
        for (name, s) in series {
            for (i, d) in s.all().iter().enumerate() {
                let _ = writeln!(
                    o,
                    "{},{},{},{name},{i},{:.1}",
                    t.permissions,
                    t.group_size,
                    t.members,
                    d.as_secs_f64() * 1e6
                );
            }
        }
    }
    o
}
