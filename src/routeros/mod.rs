//! MikroTik RouterOS API: our own client (the third-party Rust crates are AGPL
//! or immature), the session-selection rules for month-boundary disconnects, and
//! a server double for tests and benches.
//!
//! - [`codec`]: words, sentences, replies.
//! - [`client`]: blocking client, login (plain and pre-6.43 MD5), pipelining.
//! - [`uptime`]: uptime parsing and which sessions started before a boundary.
//! - [`double`]: an in-process RouterOS API server with fault injection.
//!
//! The operations below are what the module needs: drop one user's session when
//! an RFC 5176 Disconnect-Request failed, and drop every session that started
//! before the month boundary with one login and few commands per NAS.

pub mod client;
pub mod codec;
#[cfg(any(test, feature = "doubles"))]
pub mod double;
mod tls;
pub mod uptime;

pub use client::{Client, ConnectOptions, Error, LoginMethod, RemoveReport, TlsOptions, TlsVerify};
pub use codec::Command;
pub use uptime::{parse_uptime, sessions_to_remove, ActiveSession, SessionTable};

/// The firewall address list redirected users' addresses go into.
pub const ADDRESS_LIST: &str = "/ip/firewall/address-list";

/// Properties we read from the active tables.
fn proplist(table: SessionTable) -> [&'static str; 4] {
    [".id", table.user_key(), "address", "uptime"]
}

/// All rows of one active table. Rows that can't be understood are skipped
/// (and logged): one odd row must not stop the others from being handled.
pub fn list_active(client: &mut Client, table: SessionTable) -> Result<Vec<ActiveSession>, Error> {
    let rows = client.print(table.path(), &proplist(table), &[])?;
    Ok(rows_to_sessions(table, &rows))
}

fn rows_to_sessions(
    table: SessionTable,
    rows: &[std::collections::HashMap<String, String>],
) -> Vec<ActiveSession> {
    rows.iter()
        .filter_map(|row| match ActiveSession::from_row(table, row) {
            Ok(s) => Some(s),
            Err(e) => {
                log::warn!(
                    "routeros: skipping {} row {:?}: {e}",
                    table.path(),
                    row.get(".id")
                );
                None
            }
        })
        .collect()
}

/// Active sessions of `user` in both tables; if `address` is given only
/// sessions with that address (a user who already reconnected elsewhere keeps
/// the new session). A table the router lacks (trap) counts as empty.
pub fn find_user_sessions(
    client: &mut Client,
    user: &str,
    address: Option<&str>,
) -> Result<Vec<ActiveSession>, Error> {
    let mut found = Vec::new();
    for table in SessionTable::ALL {
        let mut queries = vec![(table.user_key(), user)];
        if let Some(a) = address {
            queries.push(("address", a));
        }
        let rows = match client.print(table.path(), &proplist(table), &queries) {
            Ok(rows) => rows,
            Err(e @ Error::Trap { .. }) => {
                log::debug!(
                    "routeros: {} unavailable on {}: {e}",
                    table.path(),
                    client.peer()
                );
                continue;
            }
            Err(e) => return Err(e),
        };
        // Filter again: the query is a hint to the router, the rule is ours.
        found.extend(rows_to_sessions(table, &rows).into_iter().filter(|s| {
            s.user == user && address.map_or(true, |a| s.address.as_deref() == Some(a))
        }));
    }
    Ok(found)
}

/// Removes `user`'s sessions (see [`find_user_sessions`]); returns how many
/// are gone now (removed, or vanished by themselves meanwhile).
pub fn disconnect_user(
    client: &mut Client,
    user: &str,
    address: Option<&str>,
) -> Result<usize, Error> {
    let sessions = find_user_sessions(client, user, address)?;
    let mut gone = 0;
    for table in SessionTable::ALL {
        let ids: Vec<String> = sessions
            .iter()
            .filter(|s| s.table == table)
            .map(|s| s.id.clone())
            .collect();
        if ids.is_empty() {
            continue;
        }
        let report = client.remove_many(table.path(), &ids)?;
        log::debug!(
            "routeros: {} user {user:?}: removed {:?}, already gone {:?}, failed {:?}",
            table.path(),
            report.removed,
            report.already_gone,
            report.failed
        );
        if let Some((id, msg)) = report.failed.first() {
            return Err(Error::Trap {
                category: None,
                message: format!("remove {id}: {msg}"),
            });
        }
        gone += report.removed.len() + report.already_gone.len();
    }
    Ok(gone)
}

/// Result of [`disconnect_started_before`] on one router.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkReport {
    /// Rows read from both tables.
    pub seen: usize,
    /// Rows that started before the boundary.
    pub selected: usize,
    pub removed: usize,
    pub already_gone: usize,
    /// (table path, id, router message)
    pub failed: Vec<(String, String, String)>,
    /// (table path, router message) for tables the router refused to print.
    pub unavailable: Vec<(String, String)>,
    /// Command sentences sent, prints included.
    pub commands: usize,
}

/// Month-boundary sweep on a logged-in client: print both active tables and
/// remove every session that started before `boundary_unix`.
pub fn disconnect_started_before(
    client: &mut Client,
    now_unix: i64,
    boundary_unix: i64,
) -> Result<BulkReport, Error> {
    let mut report = BulkReport::default();
    for table in SessionTable::ALL {
        report.commands += 1;
        let active = match list_active(client, table) {
            Ok(a) => a,
            Err(Error::Trap { message, .. }) => {
                log::debug!(
                    "routeros: {} unavailable on {}: {message}",
                    table.path(),
                    client.peer()
                );
                report.unavailable.push((table.path().to_string(), message));
                continue;
            }
            Err(e) => return Err(e),
        };
        report.seen += active.len();
        let ids = sessions_to_remove(&active, now_unix, boundary_unix);
        report.selected += ids.len();
        let r = client.remove_many(table.path(), &ids)?;
        report.commands += r.commands;
        report.removed += r.removed.len();
        report.already_gone += r.already_gone.len();
        report.failed.extend(
            r.failed
                .into_iter()
                .map(|(id, msg)| (table.path().to_string(), id, msg)),
        );
    }
    log::debug!("routeros: sweep of {}: {report:?}", client.peer());
    Ok(report)
}
