//! How much of everything a run does: the full matrix, and `--quick`, a smoke test that
//! only proves every part works (tiny tables, few samples).

use super::workload::Table;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Sizes {
    /// Tables of parts (a), (b) and (d).
    pub cases: Vec<Table>,
    /// Revokes timed per table on a kept-alive connection, and with one connection each.
    pub keepalive_samples: usize,
    pub per_conn_samples: usize,
    /// Revokes of distinct grants back to back (no re-grant in between), at most this
    /// many (fewer if the group is smaller).
    pub burst_samples: usize,
    /// The kept-alive series stops early once it has `min_samples` and ran for
    /// `sample_budget`; the new-connection one at half of the one and a third of the other.
    pub min_samples: usize,
    pub sample_budget: Duration,
    /// `nft delete rule` processes, interleaved with the kept-alive samples: at least
    /// `nft_min`, more while within `nft_budget`, at most `nft_max`.
    pub nft_min: usize,
    pub nft_max: usize,
    pub nft_budget: Duration,
    /// Bare netlink deletes, one after each kept-alive sample (at most this many).
    pub floor_samples: usize,
    /// Full `nft -f` reloads: at least `reload_min`, more while within `reload_budget`.
    pub reload_min: usize,
    pub reload_budget: Duration,
    /// The table that also gets the propagation-window row, and its samples.
    pub window_case: Table,
    pub window_delay_ms: u64,
    pub window_samples: usize,
    /// Part (c): on this table (after its (a)/(b)), this many revokes per window setting.
    pub throughput_case: Table,
    pub throughput_revokes: usize,
    pub throughput_clients: usize,
    pub throughput_delays_ms: Vec<u64>,
    /// Part (f): instances registered and deregistered, remote members of the group, and
    /// member changes timed.
    pub lifecycle_instances: usize,
    pub lifecycle_remote: usize,
    pub lifecycle_samples: usize,
    /// Part (e).
    pub datapath_permissions: Vec<usize>,
    pub datapath_seconds: f64,
    pub datapath_rr: usize,
    pub datapath_crr: usize,
}

/// Group sizes of the full matrix; a size larger than the table is left out.
const GROUP_SIZES: [usize; 3] = [10, 1_000, 100_000];
const PERMISSIONS: [usize; 3] = [1_000, 10_000, 100_000];
const MEMBERS: [usize; 2] = [1, 1_000];

impl Sizes {
    pub fn full() -> Sizes {
        let mut cases = Vec::new();
        for permissions in PERMISSIONS {
            for group_size in GROUP_SIZES.into_iter().filter(|g| *g <= permissions) {
                for members in MEMBERS {
                    cases.push(Table {
                        permissions,
                        group_size,
                        members,
                    });
                }
            }
        }
        Sizes {
            cases,
            keepalive_samples: 500,
            per_conn_samples: 200,
            burst_samples: 100,
            min_samples: 100,
            sample_budget: Duration::from_secs(15),
            nft_min: 10,
            nft_max: 100,
            nft_budget: Duration::from_secs(6),
            floor_samples: 500,
            reload_min: 2,
            reload_budget: Duration::from_secs(5),
            window_case: Table {
                permissions: 10_000,
                group_size: 1_000,
                members: 1,
            },
            window_delay_ms: 10,
            window_samples: 100,
            throughput_case: Table {
                permissions: 100_000,
                group_size: 1_000,
                members: 1,
            },
            throughput_revokes: 20_000,
            throughput_clients: 16,
            throughput_delays_ms: vec![0, 10],
            lifecycle_instances: 200,
            lifecycle_remote: 10_000,
            lifecycle_samples: 200,
            datapath_permissions: vec![10, 10_000],
            datapath_seconds: 5.0,
            datapath_rr: 2_000,
            datapath_crr: 1_000,
        }
    }

    pub fn quick() -> Sizes {
        let t = Table {
            permissions: 400,
            group_size: 10,
            members: 2,
        };
        Sizes {
            cases: vec![t],
            keepalive_samples: 20,
            per_conn_samples: 5,
            burst_samples: 5,
            min_samples: 20,
            sample_budget: Duration::MAX,
            nft_min: 3,
            nft_max: 3,
            nft_budget: Duration::ZERO,
            floor_samples: 10,
            reload_min: 2,
            reload_budget: Duration::ZERO,
            window_case: t,
            window_delay_ms: 10,
            window_samples: 10,
            throughput_case: t,
            throughput_revokes: 160,
            throughput_clients: 16,
            throughput_delays_ms: vec![0, 10],
            lifecycle_instances: 5,
            lifecycle_remote: 100,
            lifecycle_samples: 5,
            datapath_permissions: vec![10, 100],
            datapath_seconds: 1.0,
            datapath_rr: 200,
            datapath_crr: 50,
        }
    }
}
