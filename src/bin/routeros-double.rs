//! Runs the RouterOS API server double (see `rlm_rust::routeros::double`) for
//! tests against independent clients and for manual experiments.
//!
//! Prints `PORT <n>` on stdout, serves until stdin closes, then prints the final
//! tables and counters as one JSON line.

use std::io::{BufRead, Write};
use std::time::Duration;

use clap::Parser;
use rlm_rust::routeros::double::{DoubleConfig, Faults, LoginMode, RouterOsDouble};
use rlm_rust::routeros::SessionTable;

#[derive(Parser)]
#[command(about = "RouterOS API server double on 127.0.0.1 (ephemeral port)")]
struct Args {
    #[arg(long, default_value = "admin")]
    user: String,
    #[arg(long, env = "ROUTEROS_DOUBLE_PASSWORD", default_value = "secret")]
    password: String,
    /// Pre-6.43 MD5 challenge login instead of plain login.
    #[arg(long)]
    md5: bool,
    /// Delay of every reply, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Old firmware: `remove` with several ids traps.
    #[arg(long)]
    multi_remove_traps: bool,
    /// PPP session `name,address,uptime` (repeatable).
    #[arg(long)]
    ppp: Vec<String>,
    /// Hotspot session `user,address,uptime` (repeatable).
    #[arg(long)]
    hotspot: Vec<String>,
}

fn seed(d: &RouterOsDouble, table: SessionTable, specs: &[String]) -> Result<(), String> {
    for spec in specs {
        let parts: Vec<&str> = spec.splitn(3, ',').collect();
        let [user, address, uptime] = parts[..] else {
            return Err(format!("session {spec:?}: expected user,address,uptime"));
        };
        d.add_session(table, user, address, uptime);
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    let d = RouterOsDouble::start(DoubleConfig {
        user: args.user,
        password: args.password,
        login_mode: if args.md5 {
            LoginMode::Md5Challenge
        } else {
            LoginMode::Plain
        },
        faults: Faults {
            latency: Duration::from_millis(args.latency_ms),
            multi_remove_traps: args.multi_remove_traps,
            ..Faults::default()
        },
    })
    .unwrap_or_else(|e| {
        eprintln!("routeros-double: cannot listen: {e}");
        std::process::exit(1);
    });
    for (table, specs) in [
        (SessionTable::Ppp, &args.ppp),
        (SessionTable::Hotspot, &args.hotspot),
    ] {
        if let Err(e) = seed(&d, table, specs) {
            eprintln!("routeros-double: {e}");
            std::process::exit(2);
        }
    }
    let mut out = std::io::stdout();
    let _ = writeln!(out, "PORT {}", d.port());
    let _ = out.flush();
    // Serve until the parent closes our stdin.
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
    let c = d.counters();
    let state = serde_json::json!({
        "ppp": d.rows(SessionTable::Ppp.path()),
        "hotspot": d.rows(SessionTable::Hotspot.path()),
        "counters": {
            "connections": c.connections,
            "logins_ok": c.logins_ok,
            "logins_failed": c.logins_failed,
            "commands": c.commands,
            "prints": c.prints,
            "remove_commands": c.remove_commands,
            "removed_ids": c.removed_ids,
        },
    });
    let _ = writeln!(out, "{state}");
}
