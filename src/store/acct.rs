//! The store's side of the accounting pipeline ([`crate::pipeline::AcctStore`]): the
//! writer's transaction, with the caches that belong to it.

use std::cell::RefCell;

use chrono_tz::Tz;

use super::db::{params, Conn as Connection};
use super::modulation::HourlyUsers;
use super::policies::QuotaCache;
use super::{
    capping, disconnect, modulation, policies, writer, LimitRow, NewCoaJob, NewDisconnectJob,
    StoreError,
};
use crate::capping::{Decision, Period, Usage as CapUsage, UsageMark};
use crate::pipeline::capping::Totals;
use crate::pipeline::AcctStore;
use crate::policies::{RawPolicy, Reached};
use crate::sessions::{Attribution, Outcome, Session, Usage};
use crate::topups::TopupBalance;

/// One batch's transaction as the pipeline sees it.
pub(crate) struct WriterTx<'a> {
    pub(crate) conn: &'a Connection,
    pub(crate) tz: Tz,
    /// None outside accounting (a login's or the CLI's capping decision).
    pub(crate) quotas: Option<RefCell<&'a mut QuotaCache>>,
    pub(crate) hourly: Option<&'a HourlyUsers>,
}

impl<'a> WriterTx<'a> {
    /// An accounting update's: with the writer's policy and modulation caches.
    pub(crate) fn accounting(
        conn: &'a Connection,
        tz: Tz,
        quotas: &'a mut QuotaCache,
        hourly: &'a HourlyUsers,
    ) -> Self {
        WriterTx {
            conn,
            tz,
            quotas: Some(RefCell::new(quotas)),
            hourly: Some(hourly),
        }
    }
}

impl AcctStore for WriterTx<'_> {
    fn close_nas(&self, nas_ip: &str, at: i64, reason: &str) -> Result<usize, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "UPDATE sessions SET stop_time = CASE WHEN ?1 > start_time THEN ?1 ELSE start_time END, \
                 closed_reason = ?2 WHERE nas_ip = ?3 AND stop_time IS NULL",
            )?
            .execute(params![at, reason, nas_ip])?)
    }

    fn load_session(&self, nas_ip: &str, key: &str) -> Result<Option<Session>, StoreError> {
        writer::load_session(self.conn, nas_ip, key)
    }

    fn nas_counts_wraps(&self, nas_ip: &str) -> bool {
        writer::nas_counts_wraps(self.conn, nas_ip)
    }

    fn save_session(
        &self,
        nas_ip: &str,
        key: &str,
        prev: Option<&Session>,
        s: &Session,
    ) -> Result<(), StoreError> {
        writer::save_session(self.conn, nas_ip, key, prev, s)
    }

    fn add_usage(
        &self,
        user: &str,
        at: Attribution,
        event_time: i64,
        d: Usage,
    ) -> Result<Option<Totals>, StoreError> {
        let totals = writer::add_usage(self.conn, user, at, d)?;
        // Only modulated users: everyone else's update writes nothing more.
        if self.hourly.is_some_and(|h| h.contains(user)) {
            modulation::add_hour_usage(self.conn, user, event_time, d)?;
        }
        Ok(totals)
    }

    fn enqueue_disconnect(&self, job: &NewDisconnectJob, now: i64) -> Result<bool, StoreError> {
        disconnect::enqueue(self.conn, job, now)
    }

    fn user_limits(&self, user: &str) -> Result<Vec<LimitRow>, StoreError> {
        capping::user_limits(self.conn, user)
    }

    fn capping_inputs(
        &self,
        user: &str,
        period: Period,
        usage: Option<CapUsage>,
    ) -> Result<(CapUsage, Vec<TopupBalance>, Vec<UsageMark>), StoreError> {
        match usage {
            Some(u) => Ok((
                u,
                capping::topups_for_period(self.conn, user, period.start, period.end)?,
                capping::usage_marks(self.conn, user, period.start)?,
            )),
            None => capping::capping_inputs(self.conn, self.tz, user, period),
        }
    }

    fn apply_decision(
        &self,
        user: &str,
        period_start: i64,
        now: i64,
        d: &Decision,
    ) -> Result<Vec<u64>, StoreError> {
        capping::apply_decision(self.conn, user, period_start, now, d)
    }

    fn nested<T>(&self, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        writer::in_savepoint(self.conn, &writer::CAPPING, f)
    }

    fn exhausted_change(
        &self,
        user: &str,
    ) -> Option<(&'static str, Option<String>, Option<String>)> {
        modulation::exhausted_change(self.conn, user)
    }

    fn enqueue_coa(&self, job: &NewCoaJob, why: &str, now: i64) -> Result<bool, StoreError> {
        modulation::enqueue_coa(self.conn, job, why, now)
    }

    fn policy_quota(
        &self,
        outcome: &Outcome,
        now: i64,
        control: &RawPolicy,
        totals: Option<&Totals>,
    ) -> Result<Option<Reached>, StoreError> {
        match &self.quotas {
            Some(q) => policies::quota_after_record(
                self.conn,
                self.tz,
                &mut q.borrow_mut(),
                outcome,
                now,
                control,
                totals,
            ),
            None => Ok(None),
        }
    }
}
