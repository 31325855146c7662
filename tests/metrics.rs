//! `GET /metrics`: Prometheus text that moves with the requests served, gauges from the
//! reconciler's GetStatus answer (here a mock's), readers only.

mod control_support;

use control_support::*;
use std::collections::BTreeMap;

/// `series → value` of a Prometheus text exposition; checks every line's shape.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("not `series value`: {line:?}"));
        assert!(
            series.starts_with("secgroupd_"),
            "unexpected series {series:?}"
        );
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(
            out.insert(series.to_string(), v).is_none(),
            "duplicate {series}"
        );
    }
    out
}

async fn scrape(server: &Server) -> BTreeMap<String, f64> {
    let r = get(&server.path, "/metrics").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse(&r.body)
}

fn requests(m: &BTreeMap<String, f64>, action: &str, code: &str) -> f64 {
    m.get(&format!(
        "secgroupd_requests_total{{action=\"{action}\",code=\"{code}\"}}"
    ))
    .copied()
    .unwrap_or(0.0)
}

const REVOKE_80: &str = "/?Action=RevokeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0";
const REVOKE_9: &str = "/?Action=RevokeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=9&ToPort=9&CidrIp=0.0.0.0/0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_histograms_and_gauges_move() {
    let server = Server::start(|_| {}).await;
    let before = scrape(&server).await;
    assert_eq!(before["secgroupd_status_up"], 1.0);
    assert_eq!(before["secgroupd_groups"], 3.0);
    assert_eq!(before["secgroupd_rules"], 21.0);
    assert_eq!(before["secgroupd_set_elements"], 4.0);
    assert_eq!(before["secgroupd_revoke_seconds_count"], 0.0);
    assert_eq!(before["secgroupd_drift_repairs_total"], 0.0);
    assert!(before.contains_key("secgroupd_store_commit_seconds_bucket{le=\"0.0001\"}"));
    assert!(before.contains_key("secgroupd_commit_actions_bucket{le=\"+Inf\"}"));

    for _ in 0..3 {
        let r = get(
            &server.path,
            "/?Action=CreateSecurityGroup&GroupName=a&GroupDescription=d",
        )
        .await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(get(&server.path, REVOKE_80).await.status, 200);
    assert_eq!(get(&server.path, REVOKE_80).await.status, 200);
    assert_eq!(get(&server.path, REVOKE_9).await.status, 400);
    assert_eq!(get(&server.path, "/?Action=Nope").await.status, 400);
    assert_eq!(
        get(&server.path, "/?Action=CreateSecurityGroup")
            .await
            .status,
        400
    );
    assert_eq!(get(&server.path, "/elsewhere").await.status, 404);
    // The reconciler's owner records commits and repairs through the same registry.
    server.opts.metrics.record_commit(
        5,
        std::time::Duration::from_millis(3),
        std::time::Duration::from_micros(200),
    );
    server.opts.metrics.record_drift_repair(2);

    let after = scrape(&server).await;
    assert_eq!(requests(&after, "CreateSecurityGroup", "ok"), 3.0);
    assert_eq!(requests(&after, "RevokeSecurityGroupIngress", "ok"), 2.0);
    assert_eq!(
        requests(
            &after,
            "RevokeSecurityGroupIngress",
            "InvalidPermission.NotFound"
        ),
        1.0
    );
    assert_eq!(requests(&after, "unknown", "InvalidAction"), 2.0); // Nope and the 404
    assert_eq!(
        requests(&after, "CreateSecurityGroup", "MissingParameter"),
        0.0,
        "an unparsed request has no action label"
    );
    assert_eq!(requests(&after, "unknown", "MissingParameter"), 1.0);
    assert_eq!(requests(&after, "metrics", "ok"), 1.0, "the first scrape");
    // Only successful revokes are timed; each took well under a second.
    assert_eq!(after["secgroupd_revoke_seconds_count"], 2.0);
    assert_eq!(after["secgroupd_revoke_seconds_bucket{le=\"1\"}"], 2.0);
    assert!(after["secgroupd_revoke_seconds_sum"] > 0.0);
    assert_eq!(after["secgroupd_commit_actions_bucket{le=\"4\"}"], 0.0);
    assert_eq!(after["secgroupd_commit_actions_bucket{le=\"8\"}"], 1.0);
    assert_eq!(after["secgroupd_store_commit_seconds_count"], 1.0);
    assert_eq!(after["secgroupd_drift_repairs_total"], 2.0);
    // Buckets are cumulative.
    let buckets: Vec<f64> = after
        .iter()
        .filter(|(k, _)| k.starts_with("secgroupd_revoke_seconds_bucket"))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(buckets.len(), 14);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_get_is_allowed() {
    let server = Server::start(|_| {}).await;
    let r = raw_http(
        &server.path,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    assert_eq!(r.codes(), ["InvalidAction"]);
    server.stop().await;
}
