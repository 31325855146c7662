//! `secgroupctl`: the operator's command line for secgroupd's control socket.
//!
//! Exit status: 0 success (for `explain`, admitted or not), 1 the daemon refused (EC2
//! errors) or answered garbage, 2 usage error, 3 cannot connect to the socket.

use anyhow::Context;
use clap::error::ErrorKind;
use clap::{ArgGroup, Args, CommandFactory, Parser, Subcommand};
use secgroupd::client::display::{
    explanation_text, groups_table, overlap_text, permission_text, status_table,
};
use secgroupd::client::{Client, ClientError, PermissionView, Response};
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
    /// Add members that live on other hosts to a group, by address: permissions that
    /// name the group as source admit them.
    AddMembers {
        group: String,
        #[arg(long = "address", value_name = "ADDR", required = true, num_args = 1..)]
        addresses: Vec<String>,
    },
    /// Remove members that live on other hosts from a group.
    RemoveMembers {
        group: String,
        #[arg(long = "address", value_name = "ADDR", required = true, num_args = 1..)]
        addresses: Vec<String>,
    },
    /// Replace an instance's groups in one step.
    ModifyInstanceGroups {
        id: String,
        /// The new groups, in order.
        #[arg(long = "group", value_name = "GROUP", required = true, num_args = 1..)]
        groups: Vec<String>,
    },
    /// Show the daemon's figures: state size, last commit, configuration.
    Status,
    /// Tell which permission admits a packet to an instance (exit 0 either way).
    Explain(ExplainArgs),
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

/// A packet to explain: TCP/UDP to a port, or ICMP of a type (and code).
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("target").required(true).args(["port", "icmp_type"])))]
struct ExplainArgs {
    /// The instance the packet goes to.
    #[arg(long, value_name = "ID")]
    instance: String,
    /// The packet's source address.
    #[arg(long, value_name = "IP")]
    source: String,
    /// tcp, udp, icmp or icmpv6.
    #[arg(long)]
    protocol: String,
    /// TCP/UDP destination port.
    #[arg(long, value_name = "N", conflicts_with_all = ["icmp_type", "icmp_code"])]
    port: Option<u16>,
    /// ICMP type.
    #[arg(long, value_name = "T")]
    icmp_type: Option<u8>,
    /// ICMP code (0 if absent).
    #[arg(long, value_name = "C", requires = "icmp_type")]
    icmp_code: Option<u8>,
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
        let view = match self {
            Permission::Cidr {
                protocol,
                from,
                to,
                cidr,
            } => PermissionView::Cidr {
                protocol: protocol.clone(),
                from: *from,
                to: *to,
                cidr: cidr.clone(),
            },
            Permission::Pair { group, owner } => PermissionView::AllFromGroup {
                owner: owner.clone(),
                group: group.clone(),
            },
        };
        f.write_str(&permission_text(&view))
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
                done.map(|overlaps| {
                    // On stderr, so that a script reading stdout sees only the confirmation.
                    for o in &overlaps {
                        eprintln!("warning: {}", overlap_text(o));
                    }
                    format!("{}: revoked {p}\n", args.group)
                })
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
            Command::AddMembers { group, addresses } => {
                let addrs: Vec<&str> = addresses.iter().map(String::as_str).collect();
                client
                    .add_group_members(group, &addrs, owner)
                    .await
                    .map(|_| format!("{group}: added remote members {}\n", addrs.join(", ")))
            }
            Command::RemoveMembers { group, addresses } => {
                let addrs: Vec<&str> = addresses.iter().map(String::as_str).collect();
                client
                    .remove_group_members(group, &addrs, owner)
                    .await
                    .map(|_| format!("{group}: removed remote members {}\n", addrs.join(", ")))
            }
            Command::ModifyInstanceGroups { id, groups } => {
                let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
                client
                    .modify_instance_groups(id, &groups, owner)
                    .await
                    .map(|_| format!("instance {id} is now in groups {}\n", groups.join(", ")))
            }
            Command::Status => client.status().await.map(|s| status_table(&s)),
            Command::Explain(a) => {
                check_probe(a);
                client
                    .explain(
                        &a.instance,
                        &a.source,
                        &a.protocol.to_ascii_lowercase(),
                        a.port,
                        a.icmp_type,
                        a.icmp_code,
                    )
                    .await
                    .map(|e| explanation_text(&e))
            }
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

/// The probe's flags must fit its protocol (clap checks the rest); usage errors exit.
fn check_probe(a: &ExplainArgs) {
    match a.protocol.to_ascii_lowercase().as_str() {
        "tcp" | "udp" if a.port.is_none() => usage(
            ErrorKind::MissingRequiredArgument,
            format!("{} needs --port N", a.protocol),
        ),
        "icmp" | "icmpv6" if a.icmp_type.is_none() => usage(
            ErrorKind::MissingRequiredArgument,
            format!("{} needs --icmp-type T (and --icmp-code C)", a.protocol),
        ),
        "tcp" | "udp" | "icmp" | "icmpv6" => {}
        other => usage(
            ErrorKind::InvalidValue,
            format!("--protocol {other:?}: use tcp, udp, icmp or icmpv6"),
        ),
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

// A crate root finds its modules beside it, in src/bin/, where Cargo would take a
// tests.rs for another binary: hence the path.
#[cfg(test)]
#[path = "secgroupctl/tests.rs"]
mod tests;
