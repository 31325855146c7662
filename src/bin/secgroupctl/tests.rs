//! Flag parsing of secgroupctl, without a daemon (tests/control_socket.rs runs it against
//! a server).

use super::*;

#[test]
fn cli_is_well_formed() {
    Cli::command().debug_assert();
}

#[test]
fn permission_flags() {
    let parse = |args: &[&str]| {
        let cli = Cli::try_parse_from(args.iter().copied()).unwrap();
        match cli.command {
            Command::Authorize(a) => permission(&a, cli.owner.as_deref()).to_string(),
            _ => unreachable!(),
        }
    };
    assert_eq!(
        parse(&[
            "x",
            "authorize",
            "web",
            "--protocol",
            "tcp",
            "--port",
            "22",
            "--cidr",
            "10.0.0.0/8"
        ]),
        "tcp 22 from 10.0.0.0/8"
    );
    assert_eq!(
        parse(&[
            "x",
            "authorize",
            "web",
            "--protocol",
            "udp",
            "--ports",
            "53-54",
            "--cidr",
            "::/0"
        ]),
        "udp 53-54 from ::/0"
    );
    assert_eq!(
        parse(&[
            "x",
            "authorize",
            "web",
            "--protocol",
            "icmp",
            "--icmp-type",
            "8",
            "--cidr",
            "0.0.0.0/0"
        ]),
        "icmp type 8 from 0.0.0.0/0"
    );
    assert_eq!(
        parse(&[
            "x",
            "authorize",
            "web",
            "--protocol",
            "icmp",
            "--icmp-type",
            "-1",
            "--cidr",
            "0.0.0.0/0"
        ]),
        "icmp all types from 0.0.0.0/0"
    );
    assert_eq!(
        parse(&[
            "x",
            "--owner",
            "111111111111",
            "authorize",
            "web",
            "--source-group",
            "lb"
        ]),
        "all traffic from group 111111111111/lb"
    );
    for bad in [
        &["x", "authorize", "web"][..],
        &["x", "authorize", "web", "--cidr", "10.0.0.0/8"],
        &[
            "x",
            "authorize",
            "web",
            "--protocol",
            "tcp",
            "--port",
            "1",
            "--cidr",
            "10.0.0.0/8",
            "--source-group",
            "g",
        ],
        &[
            "x",
            "authorize",
            "web",
            "--protocol",
            "tcp",
            "--port",
            "1",
            "--ports",
            "1-2",
            "--cidr",
            "10.0.0.0/8",
        ],
        &[
            "x",
            "authorize",
            "web",
            "--source-group",
            "g",
            "--port",
            "1",
        ],
    ] {
        assert!(Cli::try_parse_from(bad.iter().copied()).is_err(), "{bad:?}");
    }
}

#[test]
fn explain_flags() {
    let parse = |args: &[&str]| {
        let mut all = vec!["x", "explain", "--instance", "i-1", "--source", "10.0.0.9"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|cli| match cli.command {
            Command::Explain(a) => (a.protocol, a.port, a.icmp_type, a.icmp_code),
            _ => unreachable!(),
        })
    };
    assert_eq!(
        parse(&["--protocol", "tcp", "--port", "80"]).unwrap(),
        ("tcp".to_string(), Some(80), None, None)
    );
    assert_eq!(
        parse(&["--protocol", "icmp", "--icmp-type", "8", "--icmp-code", "0"]).unwrap(),
        ("icmp".to_string(), None, Some(8), Some(0))
    );
    for bad in [
        &["--protocol", "tcp"][..],
        &["--protocol", "tcp", "--port", "80", "--icmp-type", "8"],
        &["--protocol", "icmp", "--icmp-code", "0"],
        &["--protocol", "tcp", "--port", "70000"],
        &["--protocol", "icmp", "--icmp-type", "256"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
    // `icmp --port` passes clap: check_probe refuses it (tests/control_socket.rs).
}
