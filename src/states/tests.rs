use super::*;
use Event::*;

/// A state by its flags: deleted, logged in, redirected, blocked.
fn st(flags: &str) -> Subscriber {
    Subscriber {
        deleted: flags.contains('D'),
        logged_in: flags.contains('L'),
        redirected: flags.contains('R'),
        blocked: flags.contains('B'),
        ..Subscriber::default()
    }
}

fn flags(s: &Subscriber) -> String {
    let mut f = String::new();
    for (on, c) in [
        (s.deleted, 'D'),
        (s.logged_in, 'L'),
        (s.redirected, 'R'),
        (s.blocked, 'B'),
    ] {
        if on {
            f.push(c);
        }
    }
    f
}

fn login() -> Input {
    Input::Login {
        rate: None,
        base_rate: None,
    }
}

fn dis(why: &str) -> Action {
    Action::DisconnectSessions(why.into())
}

type Row<'a> = (Option<&'a str>, Input, &'a str, Vec<Event>, Vec<Action>);

/// The whole table: state (None = never seen) × input → new state, events, actions.
#[test]
fn state_table() {
    use Action as A;
    let off = |s: &str| Input::ServiceOff {
        service: s.into(),
        reason: EndReason::Timeout,
        rate_after: None,
    };
    #[rustfmt::skip]
    let table: Vec<Row> = vec![
        // never seen: the first input creates the user
        (None, login(), "L", vec![UserAdd, UserAuth], vec![]),
        (None, Input::Add, "", vec![UserAdd], vec![]),
        (None, Input::Logout, "", vec![], vec![]),
        (None, Input::Delete, "D", vec![UserDel], vec![dis("user deleted"), A::EndServices(EndReason::Operator)]),
        (None, Input::Block, "B", vec![UserAdd, OwnDisabled], vec![dis("blocked by its owner")]),
        // add
        (Some(""), Input::Add, "", vec![], vec![]),
        (Some("D"), Input::Add, "", vec![UserAdd], vec![]),
        // delete
        (Some("LR"), Input::Delete, "DL", vec![UserDel], vec![dis("user deleted"), A::EndServices(EndReason::Operator), A::Unredirect]),
        (Some("D"), Input::Delete, "D", vec![], vec![]),
        // login
        (Some(""), login(), "L", vec![UserAuth], vec![]),
        (Some("L"), login(), "L", vec![], vec![]),
        (Some("R"), login(), "LR", vec![UserAuth], vec![A::Redirect]),
        (Some("B"), login(), "B", vec![], vec![dis("user blocked")]),
        (Some("D"), login(), "D", vec![], vec![dis("user deleted")]),
        // logout
        (Some("L"), Input::Logout, "", vec![UserDisconnect], vec![A::EndServices(EndReason::Logout)]),
        (Some("LR"), Input::Logout, "R", vec![UserDisconnect], vec![A::EndServices(EndReason::Logout), A::Unredirect]),
        (Some(""), Input::Logout, "", vec![], vec![]),
        // the operator's disconnect: the Stop logs the user out
        (Some("L"), Input::Disconnect, "L", vec![UserDisconnect], vec![dis("operator disconnect")]),
        (Some(""), Input::Disconnect, "", vec![], vec![dis("operator disconnect")]),
        // capping
        (Some("L"), Input::LimitReached, "LR", vec![UserRedirect], vec![A::Redirect]),
        (Some("LR"), Input::LimitReached, "LR", vec![], vec![]),
        (Some("D"), Input::LimitReached, "D", vec![], vec![]),
        (Some("LR"), Input::LimitCleared, "L", vec![UserRedirectCancel], vec![A::Unredirect]),
        (Some("L"), Input::LimitCleared, "L", vec![], vec![]),
        // voluntary block
        (Some("L"), Input::Block, "LB", vec![OwnDisabled], vec![dis("blocked by its owner")]),
        (Some("B"), Input::Block, "B", vec![], vec![]),
        (Some("D"), Input::Block, "D", vec![], vec![]),
        (Some("B"), Input::Unblock, "", vec![OwnDisabledCancel], vec![]),
        (Some(""), Input::Unblock, "", vec![], vec![]),
        // services
        (Some("L"), Input::ServiceOn { service: "turbo".into(), rate_after: None }, "L",
            vec![ServiceActivated], vec![A::ServiceCoa { service: "turbo".into(), on: true }]),
        (Some("B"), Input::ServiceOn { service: "turbo".into(), rate_after: None }, "B", vec![], vec![]),
        (Some("L"), off("turbo"), "L", vec![ServiceDeactivated], vec![A::ServiceCoa { service: "turbo".into(), on: false }]),
        (Some(""), Input::ServiceOff { service: "turbo".into(), reason: EndReason::Logout, rate_after: None }, "",
            vec![ServiceDeactivated], vec![]),
    ];
    for (before, input, after, events, actions) in table {
        let b = before.map(st);
        let o = transition(b.as_ref(), &input);
        let got: Vec<Event> = o.events.iter().map(|e| e.event).collect();
        assert_eq!(flags(&o.state), after, "{before:?} {input:?}: state");
        assert_eq!(got, events, "{before:?} {input:?}: events");
        assert_eq!(o.actions, actions, "{before:?} {input:?}: actions");
    }
}

#[test]
fn rates_follow_services_and_the_operator() {
    let mut s = st("L");
    s.base_rate = Some("2M/2M".into());
    s.rate = Some("2M/2M".into());
    // The operator's rate: a user_rate_set and a CoA.
    let o = transition(
        Some(&s),
        &Input::RateOverride {
            rate: Some("5M/5M".into()),
            rate_after: effective_rate(None, Some("5M/5M"), s.base_rate.as_deref()),
        },
    );
    assert_eq!(o.state.rate.as_deref(), Some("5M/5M"));
    assert_eq!(o.state.rate_override.as_deref(), Some("5M/5M"));
    assert_eq!(o.events[0].event, UserRateSet);
    assert_eq!(o.events[0].old.as_deref(), Some("2M/2M"));
    assert_eq!(o.events[0].new.as_deref(), Some("5M/5M"));
    assert_eq!(o.actions, [Action::SendRate("5M/5M".into())]);
    // The same rate again: nothing.
    let again = transition(
        Some(&o.state),
        &Input::RateOverride {
            rate: Some("5M/5M".into()),
            rate_after: Some("5M/5M".into()),
        },
    );
    assert!(again.events.is_empty() && again.actions.is_empty());
    // Turbo: the service's CoA carries the rate, so no separate rate CoA.
    let on = transition(
        Some(&o.state),
        &Input::ServiceOn {
            service: "turbo".into(),
            rate_after: Some("50M/50M".into()),
        },
    );
    let names: Vec<Event> = on.events.iter().map(|e| e.event).collect();
    assert_eq!(names, [ServiceActivated, UserRateSet]);
    assert_eq!(on.actions.len(), 1);
    assert_eq!(on.state.rate.as_deref(), Some("50M/50M"));
    // Offline, an override is only stored.
    let off = transition(
        Some(&st("")),
        &Input::RateOverride {
            rate: Some("1M/1M".into()),
            rate_after: Some("1M/1M".into()),
        },
    );
    assert!(off.events.is_empty() && off.actions.is_empty());
    assert_eq!(off.state.rate_override.as_deref(), Some("1M/1M"));
    // Logout forgets the current rate, not the base.
    let out = transition(Some(&on.state), &Input::Logout);
    assert_eq!(out.state.rate, None);
    assert_eq!(out.state.base_rate.as_deref(), Some("2M/2M"));
    // A new tariff: the login rate changes, and with it the rate of an open session.
    let t = transition(
        Some(&st("L")),
        &Input::Tariff {
            base_rate: Some("4M/8M".into()),
            rate_after: Some("4M/8M".into()),
        },
    );
    assert_eq!(t.state.base_rate.as_deref(), Some("4M/8M"));
    assert_eq!(t.events[0].event, UserRateSet);
    assert_eq!(t.actions, [Action::SendRate("4M/8M".into())]);
    let offline = transition(
        Some(&st("")),
        &Input::Tariff {
            base_rate: Some("4M/8M".into()),
            rate_after: Some("4M/8M".into()),
        },
    );
    assert!(offline.events.is_empty() && offline.actions.is_empty());
    assert_eq!(offline.state.base_rate.as_deref(), Some("4M/8M"));
    assert_eq!(effective_rate(Some(""), None, Some("1M")), None);
    assert_eq!(
        effective_rate(None, None, Some("1M")).as_deref(),
        Some("1M")
    );
}

#[test]
fn event_names_round_trip() {
    for e in Event::ALL {
        assert_eq!(Event::parse(e.as_str()), Some(e));
    }
    assert_eq!(Event::parse("nope"), None);
}

fn session(nas: &str, family: NasFamily, ip: Option<&str>, list: Option<&str>) -> OpenSession {
    OpenSession {
        nas_ip: nas.into(),
        session_key: format!("k-{nas}"),
        acct_session_id: "a".into(),
        framed_ip: ip.map(str::to_string),
        start_time: 1,
        output_octets: 0,
        family,
        redirect_list: list.map(str::to_string),
    }
}

#[test]
fn plans_per_nas_family() {
    let sessions = [
        session(
            "127.0.0.2",
            NasFamily::Mikrotik,
            Some("100.64.0.9"),
            Some("over"),
        ),
        session("127.0.0.3", NasFamily::Juniper, Some("100.64.0.8"), None),
        session("127.0.0.4", NasFamily::Cisco, None, None),
        session("127.0.0.5", NasFamily::Other, Some("100.64.0.7"), None),
    ];
    let turbo = Service {
        name: "turbo".into(),
        timeout: 60,
        volume_mb: 0,
        rate_limit: Some("50M/50M".into()),
        nas_service: None,
        description: None,
    };
    let lookup = |n: &str| (n == "turbo").then(|| turbo.clone());
    let kinds = |p: &Plan| -> Vec<(String, NasActionKind)> {
        p.nas_actions
            .iter()
            .map(|a| (a.session.nas_ip.clone(), a.kind))
            .collect()
    };
    let on = plan(
        "bob",
        &[Action::ServiceCoa {
            service: "turbo".into(),
            on: true,
        }],
        &sessions,
        &[],
        &lookup,
        None,
    );
    assert_eq!(
        kinds(&on),
        [
            ("127.0.0.2".into(), NasActionKind::ServiceOn),
            ("127.0.0.3".into(), NasActionKind::ServiceOn),
            ("127.0.0.4".into(), NasActionKind::ServiceOn),
        ]
    );
    assert!(on.nas_actions.iter().all(|a| !a.disconnect_on_failure));
    // Off without a base rate: the MikroTik has nothing to be told.
    let off = plan(
        "bob",
        &[Action::ServiceCoa {
            service: "turbo".into(),
            on: false,
        }],
        &sessions,
        &[],
        &lookup,
        None,
    );
    assert_eq!(off.nas_actions.len(), 2);
    assert!(off.nas_actions.iter().all(|a| a.disconnect_on_failure));
    let off = plan(
        "bob",
        &[Action::ServiceCoa {
            service: "turbo".into(),
            on: false,
        }],
        &sessions,
        &[],
        &lookup,
        Some("2M/2M"),
    );
    assert_eq!(off.nas_actions[0].rate_limit.as_deref(), Some("2M/2M"));
    // Redirect: only sessions with an address on a NAS with a redirect list.
    let r = plan("bob", &[Action::Redirect], &sessions, &[], &lookup, None);
    assert_eq!(kinds(&r), [("127.0.0.2".into(), NasActionKind::Redirect)]);
    let c = plan(
        "bob",
        &[Action::Unredirect],
        &[],
        &sessions[..1],
        &lookup,
        None,
    );
    assert_eq!(
        kinds(&c),
        [("127.0.0.2".into(), NasActionKind::RedirectCancel)]
    );
    // Rates only to MikroTiks; disconnects to every session.
    let rate = plan(
        "bob",
        &[Action::SendRate("5M/5M".into())],
        &sessions,
        &[],
        &lookup,
        None,
    );
    assert_eq!(kinds(&rate), [("127.0.0.2".into(), NasActionKind::Rate)]);
    let d = plan(
        "bob",
        &[dis("x"), Action::EndServices(EndReason::Operator)],
        &sessions,
        &[],
        &lookup,
        None,
    );
    assert_eq!(d.disconnects.len(), 4);
    assert_eq!(d.end_services, Some(EndReason::Operator));
    // An unknown service plans nothing.
    let none = plan(
        "bob",
        &[Action::ServiceCoa {
            service: "gone".into(),
            on: true,
        }],
        &sessions,
        &[],
        &lookup,
        None,
    );
    assert!(none.nas_actions.is_empty());
}

/// Random input sequences keep the table's invariants (a deterministic xorshift, so
/// a failure names its seed).
#[test]
fn random_sequences_keep_the_invariants() {
    let inputs = |r: u64| -> Input {
        let rate = |k: u64| (k % 3 != 0).then(|| format!("{}M/{}M", k % 5, k % 7));
        match r % 14 {
            0 => Input::Add,
            1 => Input::Delete,
            2 | 3 => login(),
            4 | 5 => Input::Logout,
            6 => Input::Disconnect,
            7 => Input::LimitReached,
            8 => Input::LimitCleared,
            9 => Input::Block,
            10 => Input::Unblock,
            11 => Input::RateOverride {
                rate: rate(r >> 8),
                rate_after: rate(r >> 16),
            },
            12 => Input::ServiceOn {
                service: "turbo".into(),
                rate_after: rate(r >> 8),
            },
            _ => Input::ServiceOff {
                service: "turbo".into(),
                reason: EndReason::Timeout,
                rate_after: rate(r >> 8),
            },
        }
    };
    for seed in 1..=300u64 {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut state: Option<Subscriber> = None;
        for step in 0..200 {
            let input = inputs(next());
            let before = state.clone();
            let o = transition(before.as_ref(), &input);
            let ctx = format!("seed {seed} step {step}: {before:?} {input:?} -> {o:?}");
            let names: Vec<Event> = o.events.iter().map(|e| e.event).collect();
            // Refused users never log in, and get no service.
            if before.as_ref().is_some_and(|s| s.deleted || s.blocked) {
                assert!(!names.contains(&UserAuth), "{ctx}");
                assert!(!names.contains(&ServiceActivated), "{ctx}");
            }
            // Only an operator's add brings a deleted user back.
            if before.as_ref().is_some_and(|s| s.deleted) && input != Input::Add {
                assert!(o.state.deleted, "{ctx}");
            }
            // A flag event always goes with that flag's change, and the other way round
            // (user_del and user_add reset the whole state: their event says so).
            let b = before.clone().unwrap_or_default();
            if !matches!(input, Input::Delete | Input::Add) {
                let flag = |e: Event, from: bool, to: bool| {
                    assert_eq!(names.contains(&e), !from && to, "{e:?}: {ctx}");
                };
                flag(OwnDisabled, b.blocked, o.state.blocked);
                flag(OwnDisabledCancel, !b.blocked, !o.state.blocked);
                flag(UserRedirect, b.redirected, o.state.redirected);
                flag(UserRedirectCancel, !b.redirected, !o.state.redirected);
            }
            // A rate event says what changed.
            for e in o.events.iter().filter(|e| e.event == UserRateSet) {
                assert_ne!(e.old, e.new, "{ctx}");
                assert_eq!(e.new, o.state.rate, "{ctx}");
            }
            // user_add comes first, at most once.
            assert!(names.iter().skip(1).all(|e| *e != UserAdd), "{ctx}");
            // The same flag input again changes nothing.
            if matches!(
                input,
                Input::Block
                    | Input::Unblock
                    | Input::LimitReached
                    | Input::LimitCleared
                    | Input::Logout
            ) {
                let again = transition(Some(&o.state), &input);
                assert!(again.events.is_empty(), "{ctx} then again: {again:?}");
            }
            state = Some(o.state);
        }
    }
}
