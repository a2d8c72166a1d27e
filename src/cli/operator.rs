//! `operator`: the console's operators (`rlm-rust serve`), and `serve` itself.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;

use chrono_tz::Tz;
use clap::{Args, Subcommand};

use super::format::{local_time, table, Align};
use super::{Cli, CliError};
use crate::console::auth;
use crate::periods;
use crate::store::Role;

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Add an operator; the password is read from standard input (asked twice on a
    /// terminal), never from the command line.
    Add(OperatorAddArgs),
    /// List operators and their roles.
    List,
    /// Set a new password (from standard input); logs the operator's sessions out.
    Passwd { name: String },
    /// Change an operator's role; logs their sessions out.
    Role {
        name: String,
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// Remove an operator and their sessions.
    Remove { name: String },
}

#[derive(Debug, Args)]
pub struct OperatorAddArgs {
    pub name: String,
    /// admin (everything) or viewer (every screen, no change).
    #[arg(long, default_value = "admin", value_parser = parse_role)]
    pub role: Role,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port of the console.
    #[arg(long, default_value = "127.0.0.1:8088", value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Serve /metrics on this address instead (then not on --listen).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<SocketAddr>,
    /// A file holding a bearer token /metrics requires (not world-readable).
    #[arg(long, value_name = "FILE")]
    pub metrics_token_file: Option<PathBuf>,
    /// Hours a login lasts.
    #[arg(long, default_value_t = 12, value_name = "H")]
    pub session_hours: u32,
    /// Leave the session cookie without the Secure flag: for plain HTTP to a
    /// non-loopback address (behind HTTPS, or on 127.0.0.1, leave it off).
    #[arg(long)]
    pub insecure_cookie: bool,
}

fn read_password(name: &str) -> Result<String, CliError> {
    let stdin = std::io::stdin();
    let password = if stdin.is_terminal() {
        let a = rpassword::prompt_password(format!("password for {name}: "))
            .map_err(|e| CliError::Input(format!("cannot read the password: {e}")))?;
        let b = rpassword::prompt_password("again: ")
            .map_err(|e| CliError::Input(format!("cannot read the password: {e}")))?;
        if a != b {
            return Err(CliError::Input("the passwords differ".into()));
        }
        a
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::Input(format!("cannot read the password: {e}")))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.chars().count() < auth::MIN_PASSWORD {
        return Err(CliError::Input(format!(
            "a password has at least {} characters",
            auth::MIN_PASSWORD
        )));
    }
    Ok(password)
}

fn hash(password: &str) -> Result<String, CliError> {
    auth::hash_password(password).map_err(|e| CliError::Input(format!("cannot hash: {e}")))
}

pub fn run_operator(cli: &Cli, cmd: &OperatorCommand, tz: Tz) -> Result<String, CliError> {
    let now = periods::now();
    let valid = |n: &str| auth::valid_name(n).map_err(CliError::Input);
    let done = |what: String, name: &str| -> Result<String, CliError> {
        if cli.json {
            super::capping::json_out(&serde_json::json!({ "operator": name, "done": what }))
        } else {
            Ok(format!("{what} {name}\n"))
        }
    };
    match cmd {
        OperatorCommand::Add(a) => {
            valid(&a.name)?;
            let admin = super::open_admin(cli)?;
            if admin.operator_get(&a.name)?.is_some() {
                return Err(CliError::Input(format!(
                    "operator {} exists (change it with `operator passwd` or `operator role`)",
                    a.name
                )));
            }
            let h = hash(&read_password(&a.name)?)?;
            if !admin.operator_add(&a.name, &h, a.role, now)? {
                return Err(CliError::Input(format!("operator {} exists", a.name)));
            }
            done(format!("added {}", a.role.as_str()), &a.name)
        }
        OperatorCommand::List => {
            let rows = super::open_reader(cli)?.operator_list()?;
            if cli.json {
                return super::capping::json_out(&serde_json::json!({ "operators": rows }));
            }
            if rows.is_empty() {
                return Ok("no operators (add one with `rlm-rust operator add NAME`)\n".into());
            }
            let body: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.name.clone(),
                        r.role.as_str().into(),
                        local_time(r.created, tz),
                        local_time(r.updated, tz),
                    ]
                })
                .collect();
            Ok(table(
                &[
                    ("NAME", Align::Left),
                    ("ROLE", Align::Left),
                    ("CREATED", Align::Left),
                    ("UPDATED", Align::Left),
                ],
                &body,
            ))
        }
        OperatorCommand::Passwd { name } => {
            let admin = super::open_admin(cli)?;
            if admin.operator_get(name)?.is_none() {
                return Err(CliError::Input(format!("no operator {name:?}")));
            }
            let h = hash(&read_password(name)?)?;
            admin.operator_update(name, Some(&h), None, now)?;
            done("new password for".into(), name)
        }
        OperatorCommand::Role { name, role } => {
            if !super::open_admin(cli)?.operator_update(name, None, Some(*role), now)? {
                return Err(CliError::Input(format!("no operator {name:?}")));
            }
            done(format!("role {} for", role.as_str()), name)
        }
        OperatorCommand::Remove { name } => {
            if !super::open_admin(cli)?.operator_remove(name)? {
                return Err(CliError::Input(format!("no operator {name:?}")));
            }
            done("removed".into(), name)
        }
    }
}

pub fn run_serve(cli: &Cli, a: &ServeArgs, tz: Tz) -> Result<String, CliError> {
    if crate::store::DbLocation::parse(&cli.db)
        .ok()
        .and_then(|l| l.path().map(|p| !p.exists()))
        == Some(true)
    {
        return Err(CliError::NoDatabase {
            path: cli.db.clone(),
        });
    }
    let metrics_token = match &a.metrics_token_file {
        None => None,
        Some(f) => {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(f).map_err(|e| {
                CliError::Input(format!("--metrics-token-file {}: {e}", f.display()))
            })?;
            if meta.permissions().mode() & 0o004 != 0 {
                return Err(CliError::Input(format!(
                    "--metrics-token-file {} is readable by every user: chmod o-r it",
                    f.display()
                )));
            }
            let t = std::fs::read_to_string(f).map_err(|e| {
                CliError::Input(format!("--metrics-token-file {}: {e}", f.display()))
            })?;
            let t = t.trim().to_string();
            if t.is_empty() {
                return Err(CliError::Input(format!(
                    "--metrics-token-file {} is empty",
                    f.display()
                )));
            }
            Some(t)
        }
    };
    if a.session_hours == 0 {
        return Err(CliError::Input("--session-hours must be at least 1".into()));
    }
    crate::console::serve(crate::console::Options {
        db: cli.db.clone(),
        tz,
        listen: a.listen,
        metrics_listen: a.metrics_listen,
        metrics_token,
        session_secs: i64::from(a.session_hours) * 3600,
        secure_cookie: !a.insecure_cookie,
    })
    .map_err(CliError::Input)?;
    Ok(String::new())
}
