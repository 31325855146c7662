//! The machine a run measured, printed with every table: numbers mean little without it.

use std::process::Command;

#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub kernel: String,
    pub nft: String,
    /// UTC, ISO 8601.
    pub date: String,
    /// `/proc/loadavg` (1, 5, 15 min) at the start and at the end: how busy the shared
    /// machine was.
    pub load_start: String,
    pub load_end: String,
}

impl Machine {
    pub fn probe() -> Machine {
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu: cpu_model(),
            kernel: read_trim("/proc/sys/kernel/osrelease"),
            nft: output(&["nft", "--version"]),
            date: output(&["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"]),
            load_start: load(),
            load_end: String::new(),
        }
    }

    pub fn finish(&mut self) {
        self.load_end = load();
    }

    /// One line for the Markdown and the text report.
    pub fn line(&self) -> String {
        format!(
            "{} × {}, Linux {}, {}, {}; load average {} at start, {} at end",
            self.nproc, self.cpu, self.kernel, self.nft, self.date, self.load_start, self.load_end
        )
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn load() -> String {
    read_trim("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn output(args: &[&str]) -> String {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
