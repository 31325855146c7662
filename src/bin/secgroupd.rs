//! secgroupd: the daemon. Loads the persisted state, makes its nftables table match it,
//! and only then serves the control socket.

use anyhow::{Context, Result};
use clap::Parser;
use secgroupd::compile::{Options, compile, render::render};
use secgroupd::config::{Config, Mode};
use secgroupd::control::{ServeOptions, bind_control_socket, serve};
use secgroupd::nft::monitor::{Monitor, Seen};
use secgroupd::nft::netlink::NetlinkBackend;
use secgroupd::reconcile::{self, Reconciler, ThreadWorker};
use secgroupd::store::{SqliteStore, Store};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

/// EC2-style security groups enforced with nftables.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Configuration file (TOML).
    #[arg(long, short, default_value = "/etc/secgroupd/secgroupd.toml")]
    config: PathBuf,
    /// Validate the configuration and exit.
    #[arg(long)]
    check_config: bool,
    /// Print the nftables table the persisted state compiles to (as an `nft -f`
    /// script) and exit, without touching the kernel.
    #[arg(long)]
    print_plan: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SECGROUPD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("secgroupd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let config = Config::load(&cli.config)?;
    if cli.check_config {
        println!("{}: ok", cli.config.display());
        return Ok(());
    }
    if cli.print_plan {
        let state = SqliteStore::open(&config.state_dir)?.load()?;
        print!(
            "{}",
            render(&compile(&state, &Options::from_config(&config)))
        );
        return Ok(());
    }

    if config.mode == Mode::Bridged {
        check_bridge_netfilter()?;
    }
    let started = Instant::now();
    let store = SqliteStore::open(&config.state_dir)
        .with_context(|| format!("opening the state store in {}", config.state_dir.display()))?;
    let backend = NetlinkBackend::new().context("opening the netlink socket")?;
    // Blocks until the kernel table matches the persisted state: nothing is served
    // before enforcement is exactly what was acknowledged.
    let reconciler = Reconciler::start(
        Box::new(store),
        Box::new(backend),
        Options::from_config(&config),
    )
    .context("making the kernel table match the persisted state")?;
    info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "kernel table {} is in sync", config.table
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve_until_signal(config, reconciler))
}

async fn serve_until_signal(config: Config, reconciler: Reconciler) -> Result<()> {
    let handle = reconcile::spawn(
        ThreadWorker::new(reconciler),
        Duration::from_millis(config.propagation_delay_ms),
    );
    watch_for_drift(&config.table, handle.clone())?;
    let listener = bind_control_socket(&config.socket).context("binding the control socket")?;
    info!(socket = %config.socket.display(), "ready");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: shutting down"),
            _ = int.recv() => info!("SIGINT: shutting down"),
        }
    };
    serve(
        listener,
        ServeOptions::new(config.owner_id.clone()),
        handle,
        shutdown,
    )
    .await;
    let _ = std::fs::remove_file(&config.socket);
    info!("stopped; the kernel rules stay in place");
    Ok(())
}

/// Bridged mode relies on br_netfilter passing bridged IP traffic through the inet
/// hooks; without it nothing would be filtered. Refuse to start rather than fail open.
fn check_bridge_netfilter() -> Result<()> {
    for key in ["bridge-nf-call-iptables", "bridge-nf-call-ip6tables"] {
        let path = format!("/proc/sys/net/bridge/{key}");
        let value = std::fs::read_to_string(&path).map_err(|e| {
            anyhow::anyhow!(
                "mode = \"bridged\" needs br_netfilter, but {path} cannot be read ({e}): \
                 load the module (modprobe br_netfilter) and set net.bridge.{key}=1"
            )
        })?;
        if value.trim() != "1" {
            anyhow::bail!(
                "mode = \"bridged\" needs net.bridge.{key}=1 (it is {}): bridged traffic \
                 would not be filtered; refusing to start",
                value.trim()
            );
        }
    }
    Ok(())
}

/// Repairs secgroupd's tables when anything else changes them: a thread waits for
/// nftables events and asks the reconciler to re-read and repair.
fn watch_for_drift(table: &str, handle: reconcile::Handle) -> Result<()> {
    let mut monitor =
        Monitor::new(table, Duration::from_secs(1)).context("subscribing to nftables events")?;
    let rt = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("drift-monitor".into())
        .spawn(move || {
            loop {
                match monitor.wait() {
                    Ok(Seen::Nothing) => continue,
                    Ok(seen) => {
                        let t = Instant::now();
                        match rt.block_on(handle.resync()) {
                            Ok(repairs) if repairs.is_empty() => {}
                            Ok(repairs) => warn!(
                                cause = ?seen,
                                elapsed_ms = t.elapsed().as_millis() as u64,
                                "another program changed the table: repaired {} differences",
                                repairs.len()
                            ),
                            Err(e) => error!("repairing the table failed: {e}"),
                        }
                    }
                    Err(e) => {
                        error!("nftables event monitor failed: {e}; drift repair stopped");
                        return;
                    }
                }
            }
        })?;
    Ok(())
}
