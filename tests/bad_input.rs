//! Malformed requests against the real daemon: each is answered with its exact HTTP status
//! and EC2 error code, and nothing changes: neither the nftables table (`nft -j list
//! table`) nor what DescribeSecurityGroups shows.
//!
//! Covers encoding (invalid UTF-8 raw and escaped, bad escapes), sizes (huge values, too
//! many parameters, bodies and heads over 64 KiB), structure (repeats, `.N` gaps, leading
//! zeros), numbers (overflow, range, order), CIDRs and families, stray whitespace, empty
//! values, unknown parameters and actions, over-long names, HTTP methods, paths, content
//! types, and request smuggling (Content-Length with Transfer-Encoding, conflicting
//! Content-Lengths).

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_secgroupd");

/// What a request must be answered with.
struct Case {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    /// The first EC2 error code.
    code: &'static str,
}

fn get(name: &'static str, query: &str, status: u16, code: &'static str) -> Case {
    Case {
        name,
        request: format!("GET /?{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .into_bytes(),
        status,
        code,
    }
}

fn post_bytes(name: &'static str, body: &[u8], status: u16, code: &'static str) -> Case {
    let mut request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    Case {
        name,
        request,
        status,
        code,
    }
}

fn post(name: &'static str, body: &str, status: u16, code: &'static str) -> Case {
    post_bytes(name, body.as_bytes(), status, code)
}

fn raw(name: &'static str, request: &[u8], status: u16, code: &'static str) -> Case {
    Case {
        name,
        request: request.to_vec(),
        status,
        code,
    }
}

const AUTH: &str = "Action=AuthorizeSecurityGroupIngress&GroupName=web";
const IPV: &str = "InvalidParameterValue";

fn auth(extra: &str) -> String {
    format!("{AUTH}&{extra}")
}

fn cases() -> Vec<Case> {
    let many: String = (0..3000).map(|i| format!("P{i}=1&")).collect();
    let long_group = "g".repeat(256);
    let long_desc = "d".repeat(60_000);
    let huge_body = "x".repeat(70_000);
    let huge_header = format!(
        "GET /?Action=DescribeSecurityGroups HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(70_000)
    );
    vec![
        // Encoding.
        get("escaped invalid UTF-8 value", "Action=CreateSecurityGroup&GroupName=%ff%fe&GroupDescription=d", 400, IPV),
        get("escaped invalid UTF-8 name", "Action=DescribeSecurityGroups&%c3%28=1", 400, IPV),
        get("overlong UTF-8 encoding", "Action=CreateSecurityGroup&GroupName=%c0%af&GroupDescription=d", 400, IPV),
        get("UTF-16 surrogate in UTF-8", "Action=CreateSecurityGroup&GroupName=%ed%a0%80&GroupDescription=d", 400, IPV),
        post_bytes("raw invalid UTF-8 in a body", b"Action=CreateSecurityGroup&GroupName=\xff\xfe&GroupDescription=d", 400, IPV),
        raw("raw invalid UTF-8 in the target", b"GET /?Action=DescribeSecurityGroups&GroupName.1=\xff HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400, IPV),
        get("truncated percent escape", "Action=CreateSecurityGroup&GroupName=web%2&GroupDescription=d", 400, IPV),
        get("non-hex percent escape", "Action=CreateSecurityGroup&GroupName=%zzweb&GroupDescription=d", 400, IPV),
        // Sizes.
        post("huge value", &format!("Action=CreateSecurityGroup&GroupName=big&GroupDescription={long_desc}"), 400, IPV),
        post("3000 parameters", &format!("Action=DescribeSecurityGroups&{many}"), 400, IPV),
        post("body over 64 KiB", &format!("Action=CreateSecurityGroup&GroupName=big&GroupDescription={huge_body}"), 413, "RequestLimitExceeded"),
        raw("declared body over 64 KiB", b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000000\r\n\r\nAction=", 413, "RequestLimitExceeded"),
        raw("head over 64 KiB", huge_header.as_bytes(), 431, "RequestLimitExceeded"),
        // Structure.
        get("repeated parameter", "Action=CreateSecurityGroup&GroupName=a&GroupName=b&GroupDescription=d", 400, IPV),
        get("repeated Action", "Action=CreateSecurityGroup&Action=DeleteSecurityGroup&GroupName=a&GroupDescription=d", 400, IPV),
        raw("parameter in both query and body", b"POST /?GroupName=a HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 57\r\n\r\nAction=CreateSecurityGroup&GroupName=b&GroupDescription=d", 400, IPV),
        get("gap in .N", "Action=DescribeSecurityGroups&GroupName.1=web&GroupName.3=db", 400, IPV),
        get(".N not starting at 1", "Action=DescribeSecurityGroups&GroupName.2=web", 400, IPV),
        get(".N with a leading zero", "Action=DescribeSecurityGroups&GroupName.01=web", 400, IPV),
        get(".0", "Action=DescribeSecurityGroups&GroupName.0=web", 400, IPV),
        get(".N overflowing", "Action=DescribeSecurityGroups&GroupName.99999999999999999999999=web", 400, IPV),
        get("gap in IpAddress.N", "Action=RegisterInstance&InstanceId=i-9&Interface=tap9&IpAddress.2=10.9.9.9&GroupName.1=web", 400, IPV),
        // Numbers.
        get("port overflowing u64", &auth("IpProtocol=tcp&FromPort=99999999999999999999999&ToPort=80&CidrIp=0.0.0.0/0"), 400, IPV),
        get("port 65536", &auth("IpProtocol=tcp&FromPort=80&ToPort=65536&CidrIp=0.0.0.0/0"), 400, IPV),
        get("port -2", &auth("IpProtocol=udp&FromPort=-2&ToPort=80&CidrIp=0.0.0.0/0"), 400, IPV),
        get("port in hex", &auth("IpProtocol=tcp&FromPort=0x50&ToPort=80&CidrIp=0.0.0.0/0"), 400, IPV),
        get("FromPort above ToPort", &auth("IpProtocol=tcp&FromPort=90&ToPort=80&CidrIp=0.0.0.0/0"), 400, IPV),
        get("ICMP type -1 with a code", &auth("IpProtocol=icmp&FromPort=-1&ToPort=3&CidrIp=0.0.0.0/0"), 400, IPV),
        get("ICMP type 256", &auth("IpProtocol=icmp&FromPort=256&ToPort=0&CidrIp=0.0.0.0/0"), 400, IPV),
        // Addresses.
        get("prefix /33", &auth("IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=10.0.0.0/33"), 400, IPV),
        get("IPv6 prefix /129", &auth("IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=%3A%3A/129"), 400, IPV),
        get("host bits set", &auth("IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=10.1.2.3/8"), 400, IPV),
        get("::/0 with icmp", &auth("IpProtocol=icmp&FromPort=-1&ToPort=-1&CidrIp=%3A%3A/0"), 400, IPV),
        get("0.0.0.0/0 with icmpv6", &auth("IpProtocol=icmpv6&FromPort=-1&ToPort=-1&CidrIp=0.0.0.0/0"), 400, IPV),
        get("CIDR without a prefix", &auth("IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=10.0.0.0"), 400, IPV),
        get("bad instance address", "Action=RegisterInstance&InstanceId=i-9&Interface=tap9&IpAddress.1=999.1.1.1&GroupName.1=web", 400, IPV),
        // Whitespace and empty values.
        get("leading space in a name", "Action=CreateSecurityGroup&GroupName=+web2&GroupDescription=d", 400, IPV),
        get("trailing space in a port", &auth("IpProtocol=tcp&FromPort=80+&ToPort=80&CidrIp=0.0.0.0/0"), 400, IPV),
        get("tab in a CIDR", &auth("IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0%09"), 400, IPV),
        get("space in the protocol", &auth("IpProtocol=tcp+&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0"), 400, IPV),
        get("empty group name", "Action=CreateSecurityGroup&GroupName=&GroupDescription=d", 400, IPV),
        get("empty port", &auth("IpProtocol=tcp&FromPort=&ToPort=80&CidrIp=0.0.0.0/0"), 400, IPV),
        get("empty Action", "Action=&GroupName=web", 400, "InvalidAction"),
        get("no parameters at all", "", 400, "MissingParameter"),
        // Unknown things.
        get("unknown parameter", "Action=DescribeSecurityGroups&Filter.1.Name=x", 400, "UnknownParameter"),
        get("parameter of another action", "Action=DeleteSecurityGroup&GroupName=web&GroupDescription=d", 400, "UnknownParameter"),
        get("unknown action", "Action=RunInstances&ImageId=ami-1", 400, "InvalidAction"),
        get("action in the wrong case", "Action=describesecuritygroups", 400, "InvalidAction"),
        get("mixed permission kinds", &auth("IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0&SourceSecurityGroupName=web&SourceSecurityGroupOwnerId=000000000000"), 400, "InvalidParameterCombination"),
        get("incomplete permission", &auth("IpProtocol=tcp&FromPort=80"), 400, "MissingParameter"),
        get("malformed owner id", "Action=DescribeSecurityGroups&OwnerId=12345", 400, IPV),
        // Over-long names.
        get("interface name of 16 characters", "Action=RegisterInstance&InstanceId=i-9&Interface=tap0123456789abc&IpAddress.1=10.9.9.9&GroupName.1=web", 400, IPV),
        get("interface name with a slash", "Action=RegisterInstance&InstanceId=i-9&Interface=tap%2F1&IpAddress.1=10.9.9.9&GroupName.1=web", 400, IPV),
        get("group name of 256 characters", &format!("Action=CreateSecurityGroup&GroupName={long_group}&GroupDescription=d"), 400, IPV),
        get("instance id of 256 characters", &format!("Action=DeregisterInstance&InstanceId={}", "i".repeat(256)), 400, "InvalidInstanceID.Malformed"),
        // Valid requests that must change nothing either.
        get("revoke of what was never granted", "Action=RevokeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=81&ToPort=81&CidrIp=0.0.0.0/0", 400, "InvalidPermission.NotFound"),
        get("revoke in a missing group", "Action=RevokeSecurityGroupIngress&GroupName=nope&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0", 400, "InvalidGroup.NotFound"),
        get("duplicate grant", &auth("IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0"), 400, "InvalidPermission.Duplicate"),
        // HTTP.
        raw("PUT", b"PUT /?Action=DescribeSecurityGroups HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 405, "InvalidAction"),
        raw("DELETE", b"DELETE /?Action=DeleteSecurityGroup&GroupName=web HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405, "InvalidAction"),
        raw("wrong path", b"GET /2007-03-01/?Action=DeleteSecurityGroup&GroupName=web HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404, "InvalidAction"),
        raw("JSON body", b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 34\r\n\r\n{\"Action\":\"DeleteSecurityGroup\"}..", 415, IPV),
        raw("form in Latin-1", b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded; charset=iso-8859-1\r\nContent-Length: 40\r\n\r\nAction=DeleteSecurityGroup&GroupName=web", 415, IPV),
        raw("body without a type", b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 40\r\n\r\nAction=DeleteSecurityGroup&GroupName=web", 415, IPV),
        raw("GET with a body", b"GET /?Action=DescribeSecurityGroups HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 40\r\n\r\nAction=DeleteSecurityGroup&GroupName=web", 400, IPV),
        raw("not HTTP at all", b"DELETE EVERYTHING\r\n\r\n", 400, IPV),
        raw("NUL in a header", b"GET /?Action=DescribeSecurityGroups HTTP/1.1\r\nHost: x\0y\r\nConnection: close\r\n\r\n", 400, IPV),
        // Smuggling.
        raw("conflicting Content-Lengths", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 40\r\nContent-Length: 5\r\n\r\nAction=DeleteSecurityGroup&GroupName=web", 400, IPV),
        raw("non-numeric Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 4O\r\n\r\nAction=DeleteSecurityGroup&GroupName=web", 400, IPV),
        raw("Transfer-Encoding other than chunked", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: gzip\r\n\r\nAction=DeleteSecurityGroup&GroupName=web", 400, IPV),
        raw("Transfer-Encoding in HTTP/1.0", b"POST / HTTP/1.0\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n28\r\nAction=DeleteSecurityGroup&GroupName=web\r\n0\r\n\r\n", 400, IPV),
        // Content-Length says the body holds a delete; chunked framing (which wins) says the
        // body is empty and what follows is a second request. Neither is executed: the
        // empty body has no Action, and the connection is closed after the answer.
        raw("Content-Length with Transfer-Encoding", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 45\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /?Action=DeleteSecurityGroup&GroupName=db HTTP/1.1\r\nHost: x\r\n\r\n", 400, "MissingParameter"),
        raw("Transfer-Encoding before Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nContent-Length: 45\r\n\r\n0\r\n\r\nGET /?Action=DeleteSecurityGroup&GroupName=db HTTP/1.1\r\nHost: x\r\n\r\n", 400, "MissingParameter"),
    ]
}

/// Sends the raw bytes, reads until EOF; (status, first code, number of responses).
fn exchange(d: &Daemon, request: &[u8]) -> (u16, String, usize) {
    let mut s = UnixStream::connect(d.socket_path()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before reading everything (too large): fine.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let code = text
        .split("<Code>")
        .nth(1)
        .and_then(|s| s.split("</Code>").next())
        .unwrap_or("(none)")
        .to_string();
    (status, code, text.matches("HTTP/1.1 ").count())
}

/// What must not change: the kernel table and the API's view.
fn snapshot(d: &Daemon, ns: &Netns) -> (serde_json::Value, String) {
    let describe = d.get("/?Action=DescribeSecurityGroups").expect("describe");
    assert_eq!(describe.status, 200, "{}", describe.body);
    // The request id differs on every answer.
    let body = describe
        .body
        .split("<requestId>")
        .next()
        .unwrap_or("")
        .to_string()
        + describe.body.split("</requestId>").nth(1).unwrap_or("");
    (nft_json(ns, d.table()), body)
}

#[test]
fn malformed_requests_get_exact_codes_and_change_nothing() {
    if !netns_or_skip() {
        return;
    }
    let host = Netns::new("badin");
    let d = Daemon::start(BIN, &host, DaemonOptions::default());
    for q in [
        "Action=CreateSecurityGroup&GroupName=web&GroupDescription=w",
        "Action=CreateSecurityGroup&GroupName=db&GroupDescription=d",
        "Action=AuthorizeSecurityGroupIngress&GroupName=web&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0/0",
        "Action=AuthorizeSecurityGroupIngress&GroupName=db&SourceSecurityGroupName=web&SourceSecurityGroupOwnerId=000000000000",
        "Action=RegisterInstance&InstanceId=i-1&Interface=tap1&IpAddress.1=10.1.1.2&GroupName.1=web",
    ] {
        let r = d.get(&format!("/?{q}")).expect("setup");
        assert_eq!(r.status, 200, "{q}: {}", r.body);
    }
    let before = snapshot(&d, &host);
    assert!(
        before.1.contains("<groupName>db</groupName>"),
        "{}",
        before.1
    );

    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for c in &cases {
        let (status, code, responses) = exchange(&d, &c.request);
        if (status, code.as_str()) != (c.status, c.code) {
            failures.push(format!(
                "{}: got {status} {code}, want {} {}",
                c.name, c.status, c.code
            ));
        }
        if responses != 1 {
            failures.push(format!(
                "{}: {responses} responses on one connection",
                c.name
            ));
        }
        if snapshot(&d, &host) != before {
            failures.push(format!("{}: the state changed", c.name));
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n"),
        d.log()
    );
    eprintln!(
        "{} malformed requests refused, nothing changed",
        cases.len()
    );
}
