//! secgroupd-bench: measures secgroupd's revoke path end to end and against what it
//! replaces (an `nft` process per change, a full `nft -f` reload, the bare netlink
//! batch), its throughput, start-up and memory, and what filtering costs the data path.
//!
//! Everything runs in network namespaces it creates and deletes (also on panic and on
//! SIGINT/SIGTERM); the root namespace's ruleset is never touched. Needs root.
//! See README.md, section "Benchmark".

mod bench;

use anyhow::{Context, Result, bail};
use bench::results::Report;
use bench::sizes::Sizes;
use bench::{Env, cleanup, csv, datapath, lifecycle, machine::Machine, report, revoke, svg};
use clap::{Parser, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

/// Benchmarks secgroupd in throwaway network namespaces (needs root).
#[derive(Parser, Debug)]
#[command(about)]
struct Cli {
    /// Smoke test for CI: tiny tables and few samples; checks that every part works
    /// (every request answered 200, every series has samples), not the numbers.
    #[arg(long)]
    quick: bool,
    /// Where results.md, results.csv, samples.csv and revoke-latency.svg go.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// The secgroupd binary. Default: the one next to this binary (under `cargo run`,
    /// rebuilt first with the same profile).
    #[arg(long, env = "SECGROUPD_BIN")]
    daemon: Option<PathBuf>,
    /// Parts to run: `revoke` is (a) latency, (b) baselines, (c) throughput and
    /// (d) start-up; `datapath` is (e); `lifecycle` is (f), the compute agent's calls.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "revoke,datapath,lifecycle"
    )]
    only: Vec<Part>,
    /// Only the tables of these sizes, e.g. `--permissions 1000,10000` (parts (c) and the
    /// window row run only if their table is among them).
    #[arg(long, value_delimiter = ',')]
    permissions: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    Revoke,
    Datapath,
    Lifecycle,
}

fn main() -> ExitCode {
    // First, before any thread exists: the signal thread's mask must be inherited.
    if let Err(e) = cleanup::install_signal_thread() {
        eprintln!("secgroupd-bench: cannot set up signal handling: {e}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    let outcome = run(&cli);
    cleanup::remove_everything();
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("secgroupd-bench: some checks failed (see above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("secgroupd-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<bool> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("needs root: it creates network namespaces and nftables tables in them");
    }
    cleanup::remove_stale_netns();
    let bin = daemon_binary(cli)?;
    let mut sizes = if cli.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if !cli.permissions.is_empty() {
        sizes
            .cases
            .retain(|t| cli.permissions.contains(&t.permissions));
    }
    let env = Env {
        bin,
        table: "secgroupd".into(),
        sizes,
    };
    std::fs::create_dir_all(&cli.out).with_context(|| format!("creating {}", cli.out.display()))?;

    let mut report = Report {
        machine: Machine::probe(),
        quick: cli.quick,
        ..Report::default()
    };
    println!("secgroupd-bench: {}", report.machine.line());
    println!("daemon: {}", env.bin.display());
    let t0 = Instant::now();
    if cli.only.contains(&Part::Revoke) {
        for &t in &env.sizes.cases {
            if let Err(e) = revoke::run_case(&env, t, &mut report) {
                report.fail(format!(
                    "table of {} permissions in groups of {}, {} members: {e:#}",
                    t.permissions, t.group_size, t.members
                ));
            }
        }
    }
    if cli.only.contains(&Part::Datapath)
        && let Err(e) = datapath::run(&env, &mut report)
    {
        report.fail(format!("data path: {e:#}"));
    }
    if cli.only.contains(&Part::Lifecycle)
        && let Err(e) = lifecycle::run(&env, &mut report)
    {
        report.fail(format!("instance lifecycle: {e:#}"));
    }
    if report.cases.is_empty() && report.datapath.is_empty() && report.lifecycle.is_none() {
        report.fail("nothing was measured");
    }
    report.elapsed = t0.elapsed();
    report.machine.finish();

    let md = report::markdown(&report);
    println!("\n{md}");
    let write = |name: &str, text: &str| -> Result<()> {
        let p = cli.out.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
    };
    write("results.md", &md)?;
    write("results.csv", &csv::results(&report))?;
    write("samples.csv", &csv::samples(&report))?;
    if !report.cases.is_empty() {
        write("revoke-latency.svg", &svg::revoke_latency(&report))?;
    }
    println!("written to {}/", cli.out.display());
    Ok(report.failures.is_empty())
}

/// The daemon to measure. Under `cargo run`, which builds only the bench binary, the
/// daemon is rebuilt first with the same profile, so a stale one is never measured.
fn daemon_binary(cli: &Cli) -> Result<PathBuf> {
    if let Some(p) = &cli.daemon {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe().context("locating this binary")?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    if let Ok(cargo) = std::env::var("CARGO") {
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--bin", "secgroupd"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(profile) => {
                cmd.args(["--profile", profile]);
            }
        }
        let status = cmd.status().context("running cargo build")?;
        if !status.success() {
            bail!("building secgroupd failed ({status})");
        }
    }
    let p = dir.join("secgroupd");
    if !p.exists() {
        bail!(
            "{} not found: build it with `cargo build --release --bins` (`make bench` does), \
             or pass --daemon PATH",
            p.display()
        );
    }
    Ok(p)
}
