//! `pfs lab up|status|down`.

use super::{DEFAULT_NAME, Lab, LabError, UpOutcome};
use crate::usage::bad;

/// `pfs lab` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum LabCommand {
    /// Make the lab (two namespaces, a veth pair); idempotent.
    Up(NameArgs),
    /// Show the lab's namespaces, interfaces and addresses.
    Status(StatusArgs),
    /// Remove the lab (XDP programs, pfs* nftables tables, veth, namespaces).
    Down(NameArgs),
}

/// `--name` alone.
#[derive(Debug, clap::Args)]
pub struct NameArgs {
    /// Lab name, [a-z0-9]{1,8}.
    #[arg(long, default_value = DEFAULT_NAME)]
    pub name: String,
}

/// Arguments of `pfs lab status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Lab name, [a-z0-9]{1,8}.
    #[arg(long, default_value = DEFAULT_NAME)]
    pub name: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn lift(e: LabError) -> anyhow::Error {
    if e.is_usage() {
        bad(e)
    } else {
        anyhow::Error::new(e)
    }
}

/// Runs a `pfs lab` subcommand.
pub fn run(cmd: &LabCommand) -> anyhow::Result<()> {
    match cmd {
        LabCommand::Up(a) => {
            let (lab, outcome) = Lab::up_with_outcome(&a.name).map_err(lift)?;
            let what = match outcome {
                UpOutcome::Created => "created".to_string(),
                UpOutcome::AlreadyUp => "already up".to_string(),
                UpOutcome::Replaced(why) => format!("replaced a stale lab ({why})"),
            };
            println!(
                "lab {}: {what}: {} {}/{} <-> {} {}/{} mtu {}",
                lab.name(),
                lab.ns_a(),
                lab.veth_a(),
                lab.addr_a(),
                lab.ns_b(),
                lab.veth_b(),
                lab.addr_b(),
                lab.mtu()
            );
            Ok(())
        }
        LabCommand::Down(a) => {
            Lab::down(&a.name).map_err(lift)?;
            println!("lab {}: down", a.name);
            Ok(())
        }
        LabCommand::Status(a) => {
            let st = Lab::status(&a.name).map_err(lift)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&st)?);
                return Ok(());
            }
            println!(
                "lab {}: {} (state file {}, made by pid {}{}, created_unix {})",
                st.name,
                st.state,
                st.state_file.display(),
                st.pid,
                if st.pid_alive { ", alive" } else { "" },
                st.created_unix
            );
            for p in &st.problems {
                println!("  problem: {p}");
            }
            for ns in &st.namespaces {
                if !ns.exists {
                    println!("  {}: missing", ns.name);
                    continue;
                }
                println!("  {}:", ns.name);
                for i in &ns.interfaces {
                    let addrs: Vec<String> = i
                        .addrs
                        .iter()
                        .map(|a| format!("{}/{}", a.local, a.prefixlen))
                        .collect();
                    let xdp = match &i.xdp {
                        Some(x) => format!(
                            " xdp mode {} prog {}",
                            x.mode,
                            x.prog_id.map_or("-".to_string(), |p| p.to_string())
                        ),
                        None => String::new(),
                    };
                    println!(
                        "    {} {} mtu {}{} {}",
                        i.ifname,
                        if i.admin_up { "up" } else { "down" },
                        i.mtu,
                        xdp,
                        addrs.join(" ")
                    );
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::UsageError;

    fn is_usage(e: &anyhow::Error) -> bool {
        e.downcast_ref::<UsageError>().is_some()
    }

    #[test]
    fn bad_names_and_missing_labs_are_usage_errors_naming_them() {
        for cmd in [
            LabCommand::Up(NameArgs { name: "BAD".into() }),
            LabCommand::Down(NameArgs { name: "x-y".into() }),
            LabCommand::Status(StatusArgs {
                name: "123456789".into(),
                json: true,
            }),
        ] {
            let e = run(&cmd).unwrap_err();
            assert!(is_usage(&e), "{e}");
            assert!(e.to_string().contains("is invalid"), "{e}");
        }
        // No state file and no namespaces of this name: "does not exist", exit 2.
        let e = run(&LabCommand::Status(StatusArgs {
            name: "zqnone7".into(),
            json: false,
        }))
        .unwrap_err();
        assert!(is_usage(&e), "{e}");
        assert!(e.to_string().contains("\"zqnone7\" does not exist"), "{e}");
    }
}
