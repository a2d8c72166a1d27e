//! `policy` and `user`: product policies kept in the store and which user has which.
//!
//! One `--<field>` option per entry of [`FIELDS`] (generated, so a new field is a
//! new option), plus `--set FIELD=VALUE` for any field by name or attribute.

use chrono_tz::Tz;
use clap::{Arg, ArgMatches, Args, Subcommand};

use super::capping::{json_out, open_writer};
use super::format::{cell, local_time, rfc3339, table, Align};
use super::{open_reader, Cli, CliError};
use crate::periods;
use crate::policies::dictionary::Dictionary;
use crate::policies::fields::lookup;
use crate::policies::validate::{check_dictionary, parse_custom_attr};
use crate::policies::{validate_def, ValueKind, FIELDS};
use crate::store::{CustomAttrRow, PolicyDef, PolicyStats, Reader};

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Every policy: name, users assigned, fields set, description.
    List,
    /// One policy: every field (with its unit), custom attributes, users.
    Show(PolicyName),
    /// Create a policy.
    Add(PolicyAddArgs),
    /// Change a policy: given fields replace, --unset removes, attributes append.
    Set(PolicySetArgs),
    /// Delete a policy (refused while users have it).
    Remove(PolicyName),
    /// The rate modulation curves: a table of f(x) per curve, or with --policy the
    /// policy's rates at 0/25/50/75/100 % of its maximum traffic; --svg FILE draws them.
    Curves(CurvesArgs),
}

#[derive(Debug, Args)]
pub struct CurvesArgs {
    /// Write an SVG chart of the six curves to FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<std::path::PathBuf>,
    /// The rates of this policy's modulation (as when active).
    #[arg(long, value_name = "NAME")]
    pub policy: Option<String>,
}

#[derive(Debug, Args)]
pub struct PolicyName {
    /// The policy's name.
    pub name: String,
}

/// Values of a definition, shared by `add` and `set`.
#[derive(Debug, Args)]
pub struct DefArgs {
    /// What the policy is for ("" removes it).
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    #[command(flatten)]
    pub fields: FieldArgs,
    /// Any field by name or Rust-Policy-* attribute (repeatable).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub set: Vec<String>,
    /// A custom check attribute, e.g. 'NAS-Port-Type == Wireless-802.11' (repeatable).
    #[arg(long, value_name = "'ATTR OP VALUE'")]
    pub check: Vec<String>,
    /// A custom reply attribute, e.g. 'Filter-Id := gold' (repeatable).
    #[arg(long, value_name = "'ATTR OP VALUE'")]
    pub reply: Vec<String>,
    /// The freeRADIUS dictionary custom attributes are checked against (default: the
    /// server's, /usr/share/freeradius/dictionary then /etc/freeradius/3.0/dictionary).
    #[arg(long, value_name = "PATH")]
    pub dictionary: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct PolicyAddArgs {
    /// The new policy's name.
    pub name: String,
    #[command(flatten)]
    pub def: DefArgs,
}

#[derive(Debug, Args)]
pub struct PolicySetArgs {
    /// The policy to change.
    pub name: String,
    #[command(flatten)]
    pub def: DefArgs,
    /// Remove a field (repeatable); applied before the new values.
    #[arg(long, value_name = "FIELD")]
    pub unset: Vec<String>,
    /// Remove every custom check attribute (before adding --check ones).
    #[arg(long)]
    pub clear_check: bool,
    /// Remove every custom reply attribute (before adding --reply ones).
    #[arg(long)]
    pub clear_reply: bool,
}

/// The `--<field> VALUE` options, one per [`FIELDS`] entry, in FIELDS order.
#[derive(Debug, Clone, Default)]
pub struct FieldArgs {
    pub values: Vec<(&'static str, String)>,
}

fn value_name(kind: ValueKind) -> &'static str {
    match kind {
        ValueKind::Count => "N",
        ValueKind::Rate => "RATE",
        ValueKind::Schedule => "SCHEDULE",
        ValueKind::Text => "TEXT",
        ValueKind::Choice(_) => "WORD",
    }
}

impl clap::FromArgMatches for FieldArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = FieldArgs::default();
        args.update_from_arg_matches(m)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        for d in FIELDS {
            if let Some(v) = m.get_one::<String>(d.name) {
                self.values.retain(|(f, _)| *f != d.name);
                self.values.push((d.name, v.clone()));
            }
        }
        Ok(())
    }
}

impl Args for FieldArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        FIELDS.iter().fold(cmd, |cmd, d| {
            let unit = if d.unit.is_empty() {
                String::new()
            } else {
                format!(" [{}]", d.unit)
            };
            cmd.arg(
                Arg::new(d.name)
                    .long(d.name)
                    .value_name(value_name(d.kind))
                    .value_parser(clap::value_parser!(String))
                    .help(format!("{}{unit}", d.help))
                    .help_heading("Policy fields"),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Assign a policy to a user (the devices seen start over), or --unassign.
    Policy(UserPolicyArgs),
    /// A user's state, services, policy and the devices seen since it was assigned.
    Show(UserShowArgs),
    /// Users the module keeps a state for, filtered by state.
    List(super::states::UserListArgs),
    /// Voluntary block (own_disabled): logins refused, open sessions disconnected.
    Block(UserShowArgs),
    /// End the voluntary block (own_disabled_cancel).
    Unblock(UserShowArgs),
    /// Delete the user (user_del): sessions disconnected, services ended, logins refused.
    Delete(UserShowArgs),
    /// Bring a deleted user back (user_add).
    Add(UserShowArgs),
    /// Disconnect the user's open sessions (user_disconnect).
    Disconnect(UserShowArgs),
    /// Set the operator's rate (Mikrotik-Rate-Limit; user_rate_set), or --clear it.
    Rate(UserRateArgs),
}

#[derive(Debug, Args)]
pub struct UserRateArgs {
    /// The username (User-Name), as raw bytes.
    #[arg(value_parser = crate::cli::user_arg())]
    pub user: String,
    /// e.g. 10M/20M (rx/tx as RouterOS writes it).
    #[arg(required_unless_present = "clear", conflicts_with = "clear")]
    pub rate: Option<String>,
    #[arg(long)]
    pub clear: bool,
}

#[derive(Debug, Args)]
pub struct UserPolicyArgs {
    /// The username (User-Name), as raw bytes.
    #[arg(value_parser = crate::cli::user_arg())]
    pub user: String,
    /// The policy to assign.
    #[arg(required_unless_present = "unassign", conflicts_with = "unassign")]
    pub policy: Option<String>,
    /// Remove the user's policy.
    #[arg(long)]
    pub unassign: bool,
}

#[derive(Debug, Args)]
pub struct UserShowArgs {
    /// The username (User-Name), as raw bytes.
    #[arg(value_parser = crate::cli::user_arg())]
    pub user: String,
}

/// The new field values of `args`: named options first, then `--set`, by field
/// name; a field given twice is an error.
fn new_values(args: &DefArgs) -> Result<Vec<(&'static str, String)>, CliError> {
    // Outer spaces are never meant (a quoted shell value); the rules see what is stored.
    let mut out: Vec<(&'static str, String)> = args
        .fields
        .values
        .iter()
        .map(|(f, v)| (*f, v.trim().to_string()))
        .collect();
    for s in &args.set {
        let Some((f, v)) = s.split_once('=') else {
            return Err(CliError::Input(format!(
                "--set {s:?}: expected FIELD=VALUE"
            )));
        };
        let d = lookup(f.trim()).ok_or_else(|| {
            CliError::Input(format!(
                "unknown policy field {:?} (value {v:?}); known fields: {}",
                f.trim(),
                FIELDS.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
            ))
        })?;
        if out.iter().any(|(n, _)| *n == d.name) {
            return Err(CliError::Input(format!(
                "{}: given twice (value {v:?})",
                d.name
            )));
        }
        out.push((d.name, v.trim().to_string()));
    }
    Ok(out)
}

fn attrs(lines: &[String]) -> Result<Vec<CustomAttrRow>, CliError> {
    lines
        .iter()
        .map(|l| parse_custom_attr(l).map_err(CliError::Input))
        .collect()
}

/// Puts field values in [`FIELDS`] order.
fn sort_fields(def: &mut PolicyDef) {
    def.fields.sort_by_key(|(f, _)| {
        FIELDS
            .iter()
            .position(|d| d.name == f)
            .unwrap_or(usize::MAX)
    });
}

fn description(d: &Option<String>) -> Option<String> {
    d.as_ref().filter(|s| !s.is_empty()).cloned()
}

pub fn run_policy(cli: &Cli, cmd: &PolicyCommand, tz: Tz) -> Result<String, CliError> {
    match cmd {
        PolicyCommand::List => {
            let reader = open_reader(cli)?;
            let defs = reader.policy_list()?;
            let stats = reader.policy_stats()?;
            if cli.json {
                let list: Vec<_> = defs
                    .iter()
                    .map(|d| policy_json(d, stats_of(&stats, &d.name), tz))
                    .collect();
                return json_out(&serde_json::json!({ "policies": list }));
            }
            Ok(list_table(&defs, &stats))
        }
        PolicyCommand::Show(a) => {
            let reader = open_reader(cli)?;
            show(cli, &reader, &a.name, tz, "")
        }
        PolicyCommand::Add(a) => {
            let store = open_writer(cli, tz)?;
            if store.policy_get(&a.name)?.is_some() {
                return Err(CliError::Input(format!(
                    "policy {:?} exists; change it with `rlm-rust policy set`",
                    a.name
                )));
            }
            let mut def = PolicyDef {
                name: a.name.clone(),
                description: description(&a.def.description),
                fields: new_values(&a.def)?
                    .into_iter()
                    .map(|(f, v)| (f.to_string(), v))
                    .collect(),
                check: attrs(&a.def.check)?,
                reply: attrs(&a.def.reply)?,
            };
            sort_fields(&mut def);
            validate(&def, &a.def)?;
            store.policy_put(def)?;
            show(cli, &store, &a.name, tz, "added ")
        }
        PolicyCommand::Set(a) => {
            let store = open_writer(cli, tz)?;
            let Some(mut def) = store.policy_get(&a.name)? else {
                return Err(no_policy(&a.name));
            };
            for f in &a.unset {
                let d = lookup(f).ok_or_else(|| {
                    CliError::Input(format!("--unset {f:?}: unknown policy field"))
                })?;
                def.fields.retain(|(n, _)| n != d.name);
            }
            for (f, v) in new_values(&a.def)? {
                match def.fields.iter_mut().find(|(n, _)| n == f) {
                    Some(slot) => slot.1 = v,
                    None => def.fields.push((f.to_string(), v)),
                }
            }
            sort_fields(&mut def);
            if a.def.description.is_some() {
                def.description = description(&a.def.description);
            }
            if a.clear_check {
                def.check.clear();
            }
            if a.clear_reply {
                def.reply.clear();
            }
            def.check.extend(attrs(&a.def.check)?);
            def.reply.extend(attrs(&a.def.reply)?);
            validate(&def, &a.def)?;
            store.policy_put(def)?;
            show(cli, &store, &a.name, tz, "changed ")
        }
        PolicyCommand::Curves(a) => curves(cli, a),
        PolicyCommand::Remove(a) => {
            let store = open_writer(cli, tz)?;
            if !store.policy_remove(&a.name)? {
                return Err(no_policy(&a.name));
            }
            if cli.json {
                return json_out(&serde_json::json!({ "removed": a.name }));
            }
            Ok(format!("removed policy {}\n", cell(&a.name)))
        }
    }
}

/// The definition's own rules, then its custom attributes against the freeRADIUS
/// dictionaries (a misspelt attribute or a value of the wrong type is refused).
fn validate(def: &PolicyDef, args: &DefArgs) -> Result<(), CliError> {
    validate_def(def).map_err(CliError::Input)?;
    if def.check.is_empty() && def.reply.is_empty() {
        return Ok(());
    }
    let dict = match &args.dictionary {
        Some(p) => Dictionary::load(p),
        None => Dictionary::system(),
    }
    .map_err(|e| {
        CliError::Input(format!(
            "cannot read the freeRADIUS dictionary to check custom attributes: {e} \
             (give one with --dictionary PATH)"
        ))
    })?;
    check_dictionary(def, &dict).map_err(CliError::Input)
}

const PERCENTS: [u64; 5] = [0, 25, 50, 75, 100];

fn curves(cli: &Cli, a: &CurvesArgs) -> Result<String, CliError> {
    use crate::policies::curves::{self, Curve};
    use crate::policies::modulation::{rates, Traffic, TrafficKind};
    let mut out = String::new();
    if let Some(path) = &a.svg {
        std::fs::write(path, curves::svg(&Curve::ALL, 800, 450))
            .map_err(|e| CliError::Input(format!("cannot write {}: {e}", path.display())))?;
        out.push_str(&format!("wrote {}\n", path.display()));
    }
    let Some(name) = &a.policy else {
        if a.svg.is_some() && !cli.json {
            return Ok(out);
        }
        // f(x) in % of the span between minimum and maximum rate.
        let f = |c: Curve, pct: u64| curves::rate(c, 10_000, 0, pct, 100) / 100;
        if cli.json {
            let list: Vec<_> = Curve::ALL
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "curve": c.name(),
                        "percent_of_span": PERCENTS.iter().map(|p| f(*c, *p)).collect::<Vec<_>>(),
                    })
                })
                .collect();
            return json_out(&serde_json::json!({ "traffic_percent": PERCENTS, "curves": list }));
        }
        let mut headers = vec![("curve", Align::Left)];
        let labels: Vec<String> = PERCENTS.iter().map(|p| format!("{p}%")).collect();
        headers.extend(labels.iter().map(|l| (l.as_str(), Align::Right)));
        let rows: Vec<Vec<String>> = Curve::ALL
            .iter()
            .map(|c| {
                let mut r = vec![c.name().to_string()];
                r.extend(PERCENTS.iter().map(|p| format!("{}%", f(*c, *p))));
                r
            })
            .collect();
        out.push_str("rate between minimum (0%) and maximum (100%), by traffic used:\n");
        out.push_str(&table(&headers, &rows));
        return Ok(out);
    };
    let reader = open_reader(cli)?;
    let def = reader.policy_get(name)?.ok_or_else(|| no_policy(name))?;
    let (raw, check, reply) = crate::policies::parts(&def);
    let mut p = crate::policies::Policy::parse(&raw, check, reply)
        .map_err(|e| CliError::Input(e.to_string()))?;
    let Some(m) = p.modulation.as_mut() else {
        return Err(CliError::Input(format!(
            "policy {name:?} does not modulate (set --modulation)"
        )));
    };
    // The table shows the active rates, whatever the hour.
    (m.activate, m.deactivate) = (0, 0);
    let m = *m;
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    for pct in PERCENTS {
        let of = |max: u64| max / 100 * pct + max % 100 * pct / 100;
        let t = match m.traffic {
            TrafficKind::Total => Traffic {
                down: of(m.max_total),
                up: 0,
            },
            TrafficKind::Separate => Traffic {
                down: of(m.max_down),
                up: of(m.max_up),
            },
            TrafficKind::Down => Traffic {
                down: of(m.max_down),
                up: 0,
            },
            TrafficKind::Up => Traffic {
                down: 0,
                up: of(m.max_up),
            },
        };
        let r = rates(&p, t, 0, chrono_tz::UTC).expect("modulation needs a rate");
        let mb = |b: u64| (b >> 20).to_string();
        json_rows.push(serde_json::json!({
            "traffic_percent": pct, "down_mb": t.down >> 20, "up_mb": t.up >> 20,
            "rate_down": r.down, "rate_up": r.up, "mikrotik_rate_limit": r.mikrotik(),
        }));
        rows.push(vec![
            format!("{pct}%"),
            mb(t.down),
            mb(t.up),
            crate::policies::rates::format_rate(r.down),
            crate::policies::rates::format_rate(r.up),
            r.mikrotik(),
        ]);
    }
    if cli.json {
        return json_out(
            &serde_json::json!({ "policy": name, "curve": m.curve.name(), "rates": json_rows }),
        );
    }
    out.push_str(&format!(
        "policy {}: curve {}, traffic {:?}\n",
        cell(name),
        m.curve,
        m.traffic
    ));
    out.push_str(&table(
        &[
            ("traffic", Align::Right),
            ("down MB", Align::Right),
            ("up MB", Align::Right),
            ("rate down", Align::Right),
            ("rate up", Align::Right),
            ("Mikrotik-Rate-Limit", Align::Left),
        ],
        &rows,
    ));
    Ok(out)
}

fn no_policy(name: &str) -> CliError {
    CliError::Input(format!(
        "no policy named {name:?} (see `rlm-rust policy list`)"
    ))
}

fn stats_of<'a>(stats: &'a [PolicyStats], name: &str) -> Option<&'a PolicyStats> {
    stats.iter().find(|s| s.name == name)
}

fn policy_json(def: &PolicyDef, stats: Option<&PolicyStats>, tz: Tz) -> serde_json::Value {
    let fields: serde_json::Map<String, serde_json::Value> = def
        .fields
        .iter()
        .map(|(f, v)| (f.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::json!({
        "name": def.name,
        "description": def.description,
        "users": stats.map_or(0, |s| s.users),
        "created": stats.map(|s| s.created),
        "created_local": stats.and_then(|s| rfc3339(s.created, tz)),
        "updated": stats.map(|s| s.updated),
        "updated_local": stats.and_then(|s| rfc3339(s.updated, tz)),
        "fields": fields,
        "check": def.check,
        "reply": def.reply,
    })
}

fn show(cli: &Cli, reader: &Reader, name: &str, tz: Tz, verb: &str) -> Result<String, CliError> {
    let def = reader.policy_get(name)?.ok_or_else(|| no_policy(name))?;
    let stats = reader.policy_stats()?;
    let st = stats_of(&stats, name);
    if cli.json {
        let mut v = policy_json(&def, st, tz);
        let all: Vec<_> = FIELDS
            .iter()
            .map(|d| {
                serde_json::json!({
                    "field": d.name,
                    "attribute": d.attribute,
                    "kind": d.kind,
                    "unit": d.unit,
                    "value": def.field(d.name),
                })
            })
            .collect();
        v["all_fields"] = serde_json::Value::Array(all);
        return json_out(&serde_json::json!({ "policy": v }));
    }
    let mut out = format!("{verb}policy {}", cell(&def.name));
    if let Some(d) = &def.description {
        out.push_str(&format!(" — {}", cell(d)));
    }
    out.push('\n');
    if let Some(s) = st {
        out.push_str(&format!(
            "users: {}  created: {}  updated: {}\n",
            s.users,
            local_time(s.created, tz),
            local_time(s.updated, tz)
        ));
    }
    out.push('\n');
    let body: Vec<Vec<String>> = FIELDS
        .iter()
        .map(|d| {
            vec![
                d.name.to_string(),
                def.field(d.name).map_or("-".to_string(), cell),
                d.unit.to_string(),
                d.attribute.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            ("FIELD", Align::Left),
            ("VALUE", Align::Left),
            ("UNIT", Align::Left),
            ("CONTROL ATTRIBUTE", Align::Left),
        ],
        &body,
    ));
    for (title, list) in [("check", &def.check), ("reply", &def.reply)] {
        out.push_str(&format!("\n{title} attributes:"));
        if list.is_empty() {
            out.push_str(" none\n");
            continue;
        }
        out.push('\n');
        for a in list.iter() {
            out.push_str(&format!("  {} {} {:?}\n", a.attribute, a.op, a.value));
        }
    }
    Ok(out)
}

/// `field=value, ...`, values with spaces or commas quoted.
fn fields_summary(def: &PolicyDef) -> String {
    if def.fields.is_empty() {
        return "-".to_string();
    }
    def.fields
        .iter()
        .map(|(f, v)| {
            if v.contains([' ', ',']) || v.is_empty() {
                format!("{f}={v:?}")
            } else {
                format!("{f}={}", cell(v))
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn list_table(defs: &[PolicyDef], stats: &[PolicyStats]) -> String {
    if defs.is_empty() {
        return "no policies (add one with `rlm-rust policy add NAME ...`)\n".to_string();
    }
    let body: Vec<Vec<String>> = defs
        .iter()
        .map(|d| {
            vec![
                cell(&d.name),
                stats_of(stats, &d.name).map_or(0, |s| s.users).to_string(),
                fields_summary(d),
                format!("{}/{}", d.check.len(), d.reply.len()),
                d.description.as_deref().map_or("-".to_string(), cell),
            ]
        })
        .collect();
    table(
        &[
            ("NAME", Align::Left),
            ("USERS", Align::Right),
            ("FIELDS", Align::Left),
            ("CHECK/REPLY", Align::Right),
            ("DESCRIPTION", Align::Left),
        ],
        &body,
    )
}

pub fn run_user(cli: &Cli, cmd: &UserCommand, tz: Tz) -> Result<String, CliError> {
    use super::states::{run_user_rate, run_user_state, UserAction};
    match cmd {
        UserCommand::List(a) => super::states::run_user_list(cli, a, tz),
        UserCommand::Block(a) => run_user_state(cli, &a.user, UserAction::Block),
        UserCommand::Unblock(a) => run_user_state(cli, &a.user, UserAction::Unblock),
        UserCommand::Delete(a) => run_user_state(cli, &a.user, UserAction::Delete),
        UserCommand::Add(a) => run_user_state(cli, &a.user, UserAction::Add),
        UserCommand::Disconnect(a) => run_user_state(cli, &a.user, UserAction::Disconnect),
        UserCommand::Rate(a) => run_user_rate(cli, &a.user, a.rate.as_deref().filter(|_| !a.clear)),
        UserCommand::Policy(a) => {
            let store = open_writer(cli, tz)?;
            let now = periods::now();
            let policy = if a.unassign {
                None
            } else {
                a.policy.as_deref()
            };
            let previous = store.policy_assign(&a.user, policy, now)?;
            let tariff = super::states::tariff_changed(cli, &a.user, policy, now)?;
            let rate_note = match tariff.as_ref().and_then(|o| o.state.rate.clone()) {
                Some(r) if tariff.as_ref().is_some_and(|o| !o.actions.is_empty()) => {
                    format!("; rate {r} sent to the open sessions (CoA)")
                }
                _ => String::new(),
            };
            if cli.json {
                return json_out(&serde_json::json!({
                    "username": a.user,
                    "policy": policy,
                    "previous": previous,
                    "assigned_at": policy.map(|_| now),
                    "assigned_at_local": policy.and_then(|_| rfc3339(now, tz)),
                }));
            }
            let was = previous.map_or(String::new(), |p| format!(" (was {})", cell(&p)));
            Ok(match policy {
                Some(p) => format!(
                    "assigned policy {} to {}{was}; devices seen start over{rate_note}\n",
                    cell(p),
                    cell(&a.user)
                ),
                None => format!("unassigned the policy of {}{was}\n", cell(&a.user)),
            })
        }
        UserCommand::Show(a) => {
            let reader = open_reader(cli)?;
            let now = periods::now();
            let view = reader.login_counts(&a.user, None, now, 0)?;
            let devices = reader.user_devices(&a.user)?;
            let policy = view.policy.as_ref().map(|p| p.name.as_str());
            let max_devices = view.policy.as_ref().and_then(|p| p.field("max-devices"));
            let (state_json, state_text) = super::states::user_state(&reader, &a.user, tz)?;
            if cli.json {
                let devs: Vec<_> = devices
                    .iter()
                    .map(|d| {
                        serde_json::json!({
                            "calling_station_id": d.calling_station_id,
                            "first_seen": d.first_seen,
                            "first_seen_local": rfc3339(d.first_seen, tz),
                        })
                    })
                    .collect();
                return json_out(&serde_json::json!({
                    "username": a.user,
                    "policy": policy,
                    "assigned_at": view.assigned_at,
                    "assigned_at_local": view.assigned_at.and_then(|t| rfc3339(t, tz)),
                    "devices_seen": devices.len(),
                    "max_devices": max_devices,
                    "devices": devs,
                    "open_sessions": view.open_sessions,
                    "state": state_json,
                }));
            }
            let mut out = format!("user {}\n{state_text}", cell(&a.user));
            match (policy, view.assigned_at) {
                (Some(p), Some(at)) => out.push_str(&format!(
                    "policy: {} (assigned {})\n",
                    cell(p),
                    local_time(at, tz)
                )),
                _ => out.push_str("policy: none\n"),
            }
            let of = max_devices
                .filter(|m| *m != "0")
                .map_or(String::new(), |m| format!(" of {}", cell(m)));
            out.push_str(&format!(
                "devices seen: {}{of}\nopen sessions: {}\n",
                devices.len(),
                view.open_sessions
            ));
            if !devices.is_empty() {
                out.push('\n');
                let body: Vec<Vec<String>> = devices
                    .iter()
                    .map(|d| vec![cell(&d.calling_station_id), local_time(d.first_seen, tz)])
                    .collect();
                out.push_str(&table(
                    &[
                        ("CALLING-STATION-ID", Align::Left),
                        ("FIRST-SEEN", Align::Left),
                    ],
                    &body,
                ));
            }
            Ok(out)
        }
    }
}
