//! `secgroupctl`: the operator's command line for secgroupd's control socket.
//!
//! Exit status: 0 success, 1 the daemon refused (EC2 errors) or answered garbage,
//! 2 usage error, 3 cannot connect to the socket.

use anyhow::Context;
use clap::error::ErrorKind;
use clap::{ArgGroup, Args, CommandFactory, Parser, Subcommand};
use secgroupd::client::display::{groups_table, ports_text};
use secgroupd::client::{Client, ClientError, Response};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "secgroupctl",
    version,
    about = "Manage secgroupd's security groups"
)]
struct Cli {
    /// Control socket of the daemon.
    #[arg(
        long,
        global = true,
        env = "SECGROUPD_SOCKET",
        default_value = "/run/secgroupd/control.sock"
    )]
    socket: PathBuf,
    /// Account id to act as (the daemon's default owner if absent).
    #[arg(long, global = true, value_name = "ID")]
    owner: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a security group.
    CreateGroup {
        name: String,
        #[arg(long, value_name = "TEXT")]
        description: String,
    },
    /// Delete a security group (it must be unused).
    DeleteGroup { name: String },
    /// Grant ingress to a group.
    Authorize(PermissionArgs),
    /// Withdraw a grant, given exactly as it was authorized.
    Revoke(PermissionArgs),
    /// Show groups and their permissions (all of the owner's if none are named).
    Describe { names: Vec<String> },
    /// Put an instance's interface under the rules of its groups.
    RegisterInstance {
        id: String,
        /// Host-side interface (tap or veth) of the instance.
        #[arg(long, value_name = "IF")]
        interface: String,
        /// The instance's addresses.
        #[arg(long = "address", value_name = "ADDR", required = true, num_args = 1..)]
        addresses: Vec<String>,
        /// Groups of the instance, in order.
        #[arg(long = "group", value_name = "GROUP", required = true, num_args = 1..)]
        groups: Vec<String>,
    },
    /// Remove an instance; its interface is no longer filtered.
    DeregisterInstance { id: String },
    /// Send arbitrary parameters, e.g. `raw Action=DescribeSecurityGroups GroupName.1=web`;
    /// prints the XML answer.
    Raw {
        #[arg(required = true, value_name = "NAME=VALUE")]
        params: Vec<String>,
    },
}

/// A permission: a CIDR rule (`--protocol` … `--cidr`) or a source group.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("source").required(true).args(["cidr", "source_group"])))]
struct PermissionArgs {
    /// The group that receives the traffic.
    group: String,
    /// tcp, udp, icmp or icmpv6.
    #[arg(long, requires = "cidr")]
    protocol: Option<String>,
    /// One TCP/UDP port.
    #[arg(long, value_name = "N", conflicts_with_all = ["ports", "icmp_type", "icmp_code"])]
    port: Option<String>,
    /// A TCP/UDP port range.
    #[arg(long, value_name = "FROM-TO", conflicts_with_all = ["icmp_type", "icmp_code"])]
    ports: Option<String>,
    /// ICMP type, -1 (the default) for all.
    #[arg(long, value_name = "T", allow_negative_numbers = true)]
    icmp_type: Option<String>,
    /// ICMP code, -1 (the default) for all.
    #[arg(
        long,
        value_name = "C",
        allow_negative_numbers = true,
        requires = "icmp_type"
    )]
    icmp_code: Option<String>,
    /// Source network, e.g. 10.0.0.0/8.
    #[arg(long, requires = "protocol")]
    cidr: Option<String>,
    /// Allow all traffic from the members of this group.
    #[arg(long, value_name = "GROUP", conflicts_with_all = ["protocol", "port", "ports", "icmp_type", "icmp_code"])]
    source_group: Option<String>,
    /// Owner of the source group (default: --owner).
    #[arg(long, value_name = "ID", requires = "source_group")]
    source_owner: Option<String>,
}

/// A permission as the client sends it.
enum Permission {
    Cidr {
        protocol: String,
        from: i32,
        to: i32,
        cidr: String,
    },
    Pair {
        group: String,
        owner: String,
    },
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Permission::Cidr {
                protocol,
                from,
                to,
                cidr,
            } => write!(
                f,
                "{protocol} {} from {cidr}",
                ports_text(protocol, *from, *to)
            ),
            Permission::Pair { group, owner } => {
                write!(f, "all traffic from group {owner}/{group}")
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let client = Client::new(&cli.socket);
    let owner = cli.owner.as_deref();
    let result = rt.block_on(async {
        match &cli.command {
            Command::CreateGroup { name, description } => client
                .create_group(name, description, owner)
                .await
                .map(|_| format!("created security group {name}\n")),
            Command::DeleteGroup { name } => client
                .delete_group(name, owner)
                .await
                .map(|_| format!("deleted security group {name}\n")),
            Command::Authorize(args) => {
                let p = permission(args, owner);
                let done = match &p {
                    Permission::Cidr {
                        protocol,
                        from,
                        to,
                        cidr,
                    } => {
                        client
                            .authorize_cidr(&args.group, protocol, *from, *to, cidr, owner)
                            .await
                    }
                    Permission::Pair { group, owner: src } => {
                        client.authorize_pair(&args.group, group, src, owner).await
                    }
                };
                done.map(|_| format!("{}: authorized {p}\n", args.group))
            }
            Command::Revoke(args) => {
                let p = permission(args, owner);
                let done = match &p {
                    Permission::Cidr {
                        protocol,
                        from,
                        to,
                        cidr,
                    } => {
                        client
                            .revoke_cidr(&args.group, protocol, *from, *to, cidr, owner)
                            .await
                    }
                    Permission::Pair { group, owner: src } => {
                        client.revoke_pair(&args.group, group, src, owner).await
                    }
                };
                done.map(|_| format!("{}: revoked {p}\n", args.group))
            }
            Command::Describe { names } => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                client
                    .describe(&names, owner)
                    .await
                    .map(|g| groups_table(&g))
            }
            Command::RegisterInstance {
                id,
                interface,
                addresses,
                groups,
            } => {
                let addrs: Vec<&str> = addresses.iter().map(String::as_str).collect();
                let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
                client
                    .register_instance(id, interface, &addrs, &groups, owner)
                    .await
                    .map(|_| format!("registered instance {id} on {interface}\n"))
            }
            Command::DeregisterInstance { id } => client
                .deregister_instance(id, owner)
                .await
                .map(|_| format!("deregistered instance {id}\n")),
            Command::Raw { params } => raw(&client, params, owner).await,
        }
    });
    Ok(match result {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(e).context("writing to stdout");
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Err(e) => report(&e),
    })
}

/// Prints the failure to stderr; the exit status tells scripts what kind it was.
fn report(e: &ClientError) -> ExitCode {
    match e {
        ClientError::Api(f) => {
            for err in &f.errors {
                eprintln!("error: {}: {}", err.code, err.message);
            }
            ExitCode::from(1)
        }
        ClientError::Connect { .. } => {
            eprintln!("error: {e}");
            ExitCode::from(3)
        }
        other => {
            eprintln!("error: {other}");
            ExitCode::from(1)
        }
    }
}

/// Exits with status 2 and clap's usage message.
fn usage(kind: ErrorKind, message: impl std::fmt::Display) -> ! {
    Cli::command().error(kind, message).exit()
}

fn number(flag: &str, s: &str) -> i32 {
    s.trim().parse().unwrap_or_else(|_| {
        usage(
            ErrorKind::ValueValidation,
            format!("{flag}: {s:?} is not a number"),
        )
    })
}

/// The permission the flags describe; usage errors exit.
fn permission(a: &PermissionArgs, owner: Option<&str>) -> Permission {
    if let Some(group) = &a.source_group {
        let Some(src_owner) = a.source_owner.as_deref().or(owner) else {
            usage(
                ErrorKind::MissingRequiredArgument,
                "--source-group needs --source-owner (or --owner)",
            )
        };
        return Permission::Pair {
            group: group.clone(),
            owner: src_owner.to_string(),
        };
    }
    let protocol = a.protocol.clone().unwrap_or_default().to_ascii_lowercase();
    let cidr = a.cidr.clone().unwrap_or_default();
    let (from, to) = match protocol.as_str() {
        "tcp" | "udp" => match (&a.port, &a.ports) {
            (Some(p), None) => {
                let n = number("--port", p);
                (n, n)
            }
            (None, Some(r)) => match r.split_once('-') {
                Some((f, t)) => (number("--ports", f), number("--ports", t)),
                None => {
                    let n = number("--ports", r);
                    (n, n)
                }
            },
            _ => usage(
                ErrorKind::MissingRequiredArgument,
                format!("{protocol} needs --port N or --ports FROM-TO"),
            ),
        },
        "icmp" | "icmpv6" => {
            if a.port.is_some() || a.ports.is_some() {
                usage(
                    ErrorKind::ArgumentConflict,
                    format!("{protocol} has no ports: use --icmp-type and --icmp-code"),
                );
            }
            let t = a
                .icmp_type
                .as_deref()
                .map_or(-1, |s| number("--icmp-type", s));
            let c = a
                .icmp_code
                .as_deref()
                .map_or(-1, |s| number("--icmp-code", s));
            (t, c)
        }
        other => usage(
            ErrorKind::InvalidValue,
            format!("--protocol {other:?}: use tcp, udp, icmp or icmpv6"),
        ),
    };
    Permission::Cidr {
        protocol,
        from,
        to,
        cidr,
    }
}

/// `raw NAME=VALUE…`: the XML answer on success, the errors otherwise.
async fn raw(
    client: &Client,
    params: &[String],
    owner: Option<&str>,
) -> Result<String, ClientError> {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|p| {
            p.split_once('=').unwrap_or_else(|| {
                usage(ErrorKind::InvalidValue, format!("{p:?} is not NAME=VALUE"))
            })
        })
        .collect();
    if let Some(o) = owner
        && !pairs.iter().any(|(k, _)| *k == "OwnerId")
    {
        pairs.push(("OwnerId", o));
    }
    let answer = client.call_raw(&pairs).await?;
    if answer.status == 200 {
        let mut body = answer.body;
        if !body.ends_with('\n') {
            body.push('\n');
        }
        return Ok(body);
    }
    match answer.parse()? {
        Response::Err(f) => Err(ClientError::Api(f)),
        Response::Ok(_) => Err(ClientError::BadResponse {
            status: answer.status,
            reason: "a success document with an error status".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
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
}
