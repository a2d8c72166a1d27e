//! Bad input end to end: what a broken or hostile NAS sends must never crash the
//! server, corrupt a user, or merge two users; the module logs it and goes on.
mod common;
use common::*;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn an_implausible_acct_delay_time_is_ignored_not_clamped() {
    let server = Server::start(Options::default());
    let nas = "127.0.0.2";
    let before = now();
    let start = acct_attrs("Start", "delay", "d1", nas, 0, 0, 0) + ", Acct-Delay-Time = 4000000000";
    assert!(server.acct(&start).ok);
    let interim = acct_attrs("Interim-Update", "delay", "d1", nas, 1000, 1000, 60)
        + ", Acct-Delay-Time = 4000000000";
    assert!(server.acct(&interim).ok);
    let (start_time, jobs): (i64, i64) = server
        .sql()
        .query_row(
            "SELECT start_time, (SELECT COUNT(*) FROM disconnect_queue) FROM sessions \
             WHERE acct_session_id = 'd1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // Dated when it arrived, not a week back (which early in a month is last month
    // and queued a month-boundary disconnect).
    assert!(
        (before - 5..=now() + 5).contains(&start_time),
        "start {start_time}, now {before}"
    );
    assert_eq!(jobs, 0, "no month-boundary disconnect for a session opened now");
    wait_until("the log line", std::time::Duration::from_secs(5), || {
        server.log_text().contains("Acct-Delay-Time 4000000000")
    });
}
