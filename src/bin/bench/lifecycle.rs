//! Part (f): what the compute agent does all day, timed request to answer on one
//! kept-alive connection (`propagation_delay_ms = 0`, state on disk as in (a)):
//!
//! - `RegisterInstance` of N instances, each with an IPv4 and an IPv6 address and two
//!   groups (`web`, and `db`, which admits `web` by group pair, so every registration
//!   also adds the instance's addresses to member sets), then `DeregisterInstance` of each;
//! - with M remote members of `web` (`AddGroupMembers`, untimed) plus N local ones,
//!   `RemoveGroupMembers` of one remote address and `AddGroupMembers` of it again, each
//!   timed: a member set of M + N changes by one element.

use super::Env;
use super::cleanup::WorkDir;
use super::daemon::{Daemon, Settings};
use super::http::Conn;
use super::netns::Netns;
use super::results::{Lifecycle, Report};
use super::stats::Samples;
use anyhow::{Result, bail};
use secgroupd::client::encode_form as form;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Remote members added per request while building the group (untimed).
const CHUNK: usize = 1_000;

fn v4(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from_be_bytes([10, 80, 0, 1]) + i as u32)
}

fn v6(i: usize) -> Ipv6Addr {
    Ipv6Addr::from(0xfd00_0080_0000_0000_0000_0000_0000_0001u128 + i as u128)
}

/// Remote member `i`: 100.64.0.0/10 onwards, away from the local instances.
fn remote(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from_be_bytes([100, 64, 0, 1]) + i as u32)
}

/// Sends one request, which must be answered 200; returns its latency.
fn call(conn: &mut Conn, pairs: &[(&str, &str)]) -> Result<Duration> {
    let body = form(pairs);
    let t0 = Instant::now();
    let r = conn.post(&body)?;
    let elapsed = t0.elapsed();
    if r.status != 200 {
        bail!("{}: {} {}", pairs[0].1, r.status, r.error_code());
    }
    Ok(elapsed)
}

fn register(conn: &mut Conn, i: usize) -> Result<Duration> {
    let (id, ifname) = (format!("i-lc{i:05}"), format!("lc{i}"));
    let (a4, a6) = (v4(i).to_string(), v6(i).to_string());
    call(
        conn,
        &[
            ("Action", "RegisterInstance"),
            ("InstanceId", &id),
            ("Interface", &ifname),
            ("IpAddress.1", &a4),
            ("IpAddress.2", &a6),
            ("GroupName.1", "web"),
            ("GroupName.2", "db"),
        ],
    )
}

fn members(conn: &mut Conn, action: &str, addrs: &[Ipv4Addr]) -> Result<Duration> {
    let names: Vec<String> = (1..=addrs.len())
        .map(|n| format!("IpAddress.{n}"))
        .collect();
    let values: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let mut pairs = vec![("Action", action), ("GroupName", "web")];
    pairs.extend(
        names
            .iter()
            .map(String::as_str)
            .zip(values.iter().map(String::as_str)),
    );
    call(conn, &pairs)
}

pub fn run(env: &Env, report: &mut Report) -> Result<()> {
    let s = &env.sizes;
    let (n, m) = (s.lifecycle_instances, s.lifecycle_remote);
    println!("\n== instance lifecycle: {n} instances, {m} remote members");
    let ns = Netns::new("lifecycle")?;
    let work = WorkDir::new("lifecycle")?;
    let mut d = Daemon::new(&env.bin, &ns, work.path());
    d.start(&Settings {
        table: env.table.clone(),
        propagation_delay_ms: 0,
        established_on_revoke: "cut",
    })?;
    let mut conn = Conn::connect(&d.socket())?;
    for g in ["web", "db"] {
        call(
            &mut conn,
            &[
                ("Action", "CreateSecurityGroup"),
                ("GroupName", g),
                ("GroupDescription", "secgroupd-bench"),
            ],
        )?;
    }
    call(
        &mut conn,
        &[
            ("Action", "AuthorizeSecurityGroupIngress"),
            ("GroupName", "db"),
            ("SourceSecurityGroupName", "web"),
            ("SourceSecurityGroupOwnerId", super::workload::OWNER),
        ],
    )?;

    let mut reg = Vec::with_capacity(n);
    for i in 0..n {
        reg.push(register(&mut conn, i)?);
    }
    let mut dereg = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("i-lc{i:05}");
        dereg.push(call(
            &mut conn,
            &[("Action", "DeregisterInstance"), ("InstanceId", &id)],
        )?);
    }

    let all: Vec<Ipv4Addr> = (0..m).map(remote).collect();
    for chunk in all.chunks(CHUNK) {
        members(&mut conn, "AddGroupMembers", chunk)?;
    }
    for i in 0..n {
        register(&mut conn, i)?;
    }
    let (mut remove, mut add) = (Vec::new(), Vec::new());
    for j in 0..s.lifecycle_samples {
        let a = [remote(j * m / s.lifecycle_samples.max(1))];
        remove.push(members(&mut conn, "RemoveGroupMembers", &a)?);
        add.push(members(&mut conn, "AddGroupMembers", &a)?);
    }
    d.stop()?;

    let l = Lifecycle {
        instances: n,
        remote: m,
        register: Samples::new(reg),
        deregister: Samples::new(dereg),
        remove_member: Samples::new(remove),
        add_member: Samples::new(add),
    };
    println!(
        "   register {}, deregister {}; one of {} members: remove {}, add {}",
        l.register.summary(),
        l.deregister.summary(),
        m + n,
        l.remove_member.summary(),
        l.add_member.summary()
    );
    for (what, samples) in l.series() {
        report.expect_samples(what, samples);
    }
    report.lifecycle = Some(l);
    Ok(())
}
