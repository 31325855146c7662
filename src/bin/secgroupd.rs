//! secgroupd: the daemon. Loads the persisted state, makes its nftables table match it,
//! and only then serves the control socket.

use anyhow::{Context, Result};
use clap::Parser;
use secgroupd::compile::{compile, render::render};
use secgroupd::config::Config;
use secgroupd::control::rlimit::raise_fd_limit;
use secgroupd::control::{ActionSink, Peer, ServeOptions, bind_control_socket, serve};
use secgroupd::model::Action;
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
        print!("{}", render(&compile(&state, &config.table)));
        return Ok(());
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
    let reconciler = Reconciler::start(Box::new(store), Box::new(backend), &config.table)
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
    reconciler: Reconciler,
    notifier: Arc<Notifier>,
) -> Result<()> {
    let handle = reconcile::spawn(
        ThreadWorker::new(reconciler),
        Duration::from_millis(config.propagation_delay_ms),
    );
    // Before READY=1: a reload (SIGHUP) may follow at once, and its default action is to
    // terminate.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let listener = bind_control_socket(&config.socket).context("binding the control socket")?;
    let opts = ServeOptions::new(config.owner_id.clone());
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
