//! secgroupd: the daemon. Loads the persisted state, makes its nftables table match it,
//! and only then serves the control socket.

use anyhow::{Context, Result};
use clap::Parser;
use secgroupd::compile::{Options, compile, render::render};
use secgroupd::config::{Config, Mode};
use secgroupd::control::rlimit::raise_fd_limit;
use secgroupd::control::{ActionSink, Peer, ServeOptions, bind_control_socket, serve};
use secgroupd::model::Action;
use secgroupd::nft::monitor::{Monitor, Seen};
use secgroupd::nft::netlink::NetlinkBackend;
use secgroupd::reconcile::{self, Handle, Reconciler, ThreadWorker};
use secgroupd::reload::{LiveConfig, apply_access};
use secgroupd::sd_notify::{Notifier, watchdog_interval};
use secgroupd::store::{SqliteStore, Store};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
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

    let notifier = Arc::new(Notifier::from_env().context("opening $NOTIFY_SOCKET")?);
    // Each control connection holds a descriptor: let the connection cap, not EMFILE, be
    // the limit (plus headroom for the store, netlink and the runtime).
    let want = ServeOptions::DEFAULT_MAX_CONNECTIONS as u64 + 256;
    match raise_fd_limit(want) {
        Ok(n) if n < want => warn!(
            limit = n,
            wanted = want,
            "RLIMIT_NOFILE is below what the connection cap needs (LimitNOFILE=)"
        ),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "cannot raise RLIMIT_NOFILE"),
    }

    notifier.send("STATUS=making the kernel table match the persisted state");
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
    // Start-up builds large transient buffers (the first batch, the kernel dump); hand
    // that memory back to the system instead of keeping it as the process's high mark.
    // SAFETY: malloc_trim has no preconditions.
    unsafe { libc::malloc_trim(0) };
    info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "kernel table {} is in sync", config.table
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(serve_until_signal(
        &cli.config,
        config,
        reconciler,
        notifier,
    ))
}

async fn serve_until_signal(
    config_path: &Path,
    config: Config,
    mut reconciler: Reconciler,
    notifier: Arc<Notifier>,
) -> Result<()> {
    let opts = ServeOptions::new(config.owner_id.clone());
    reconciler.metrics = Some(opts.metrics.clone());
    let handle = reconcile::spawn(
        ThreadWorker::new(reconciler),
        Duration::from_millis(config.propagation_delay_ms),
    );
    watch_for_drift(&config.table, handle.clone())?;
    // Before READY=1: a reload (SIGHUP) may follow at once, and its default action is to
    // terminate.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let listener = bind_control_socket(&config.socket).context("binding the control socket")?;
    apply_access(&config, &opts.access).context("control socket access")?;
    info!(socket = %config.socket.display(), "ready");
    // The kernel matches the state (Reconciler::start) and the socket listens: connections
    // from now on queue in the backlog until the accept loop below takes them.
    notifier.send(&format!(
        "READY=1\nSTATUS=serving on {}",
        config.socket.display()
    ));

    let socket_path = config.socket.clone();
    let mut live = LiveConfig::new(config_path, config, opts.access.clone());
    let reload_notifier = notifier.clone();
    let reloads = tokio::spawn(async move {
        while hup.recv().await.is_some() {
            reload(&mut live, &reload_notifier);
        }
    });
    let watchdog = watchdog_interval().map(|every| {
        info!(
            interval_ms = every.as_millis() as u64,
            "systemd watchdog enabled"
        );
        tokio::spawn(watchdog(handle.clone(), every, notifier.clone()))
    });

    let stop_notifier = notifier.clone();
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => info!("SIGTERM: shutting down"),
            _ = int.recv() => info!("SIGINT: shutting down"),
        }
        stop_notifier.send("STOPPING=1\nSTATUS=finishing the requests in progress");
    };
    serve(listener, opts, handle, shutdown).await;
    reloads.abort();
    if let Some(w) = watchdog {
        w.abort();
    }
    let _ = std::fs::remove_file(&socket_path);
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

/// SIGHUP: re-read the configuration; a bad file is logged and the old one kept.
fn reload(live: &mut LiveConfig, notifier: &Notifier) {
    notifier.send("RELOADING=1\nSTATUS=reloading the configuration");
    match live.reload() {
        Ok(r) => {
            info!(
                applied = ?r.applied,
                needs_restart = ?r.needs_restart,
                "SIGHUP: configuration reloaded"
            );
            for key in &r.needs_restart {
                warn!(
                    key,
                    "SIGHUP: `{key}` changed; the new value takes effect only after a restart"
                );
            }
        }
        Err(e) => error!("SIGHUP: configuration not reloaded, the old one stays in force: {e}"),
    }
    notifier.send(&format!(
        "READY=1\nSTATUS=serving on {}",
        live.current().socket.display()
    ));
}

/// Sends `WATCHDOG=1` every `every` while the reconciler answers a `GetStatus` in time.
/// Any answer counts, an error too (the reconciler thread produced it), except the errors
/// that mean its queue or thread is gone.
async fn watchdog(handle: Handle, every: Duration, notifier: Arc<Notifier>) {
    // SAFETY: getpid has no preconditions.
    let me = Peer {
        uid: 0,
        gid: 0,
        pid: unsafe { libc::getpid() },
    };
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match tokio::time::timeout(every, handle.submit(me, Action::GetStatus)).await {
            Ok(Err(e))
                if e.0.iter().any(|e| {
                    e.message.contains("reconciler has stopped")
                        || e.message.contains("dropped the request")
                }) =>
            {
                error!("watchdog: the reconciler is gone ({e}); not notifying");
            }
            Ok(_) => notifier.send("WATCHDOG=1"),
            Err(_) => warn!(
                timeout_ms = every.as_millis() as u64,
                "watchdog: the reconciler did not answer in time; not notifying"
            ),
        }
    }
}
