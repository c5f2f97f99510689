//! The client's reactions to its pinned connection: replies and out-of-band frames read
//! from it, releasing it when its state ended, and repairing the client when it is lost
//! (failover, stall during a failover).

use super::connection_log::CloseReason;
use super::pinned::PinnedOutput;
use super::{ClientConnection, LOST_IN_FAILOVER, Phase};
use crate::local::BrokenTransaction;
use crate::metrics::ErrorKind;
use crate::stats::Stats;
use crate::upstream::MasterRoute;
use crate::upstream::connection::STALLED_DURING_FAILOVER;

impl ClientConnection {
    pub(super) fn on_pinned_read(&mut self, read: std::io::Result<usize>) {
        let Some(session) = self.pinned.as_mut() else {
            return;
        };
        let is_ok = match read {
            Ok(0) | Err(_) => false,
            Ok(_) => session.take_outputs(&mut self.pinned_outputs).is_ok(),
        };
        let mut outputs = std::mem::take(&mut self.pinned_outputs);
        for output in outputs.drain(..) {
            match output {
                PinnedOutput::Reply {
                    seq,
                    bytes,
                    is_complete,
                } => {
                    self.replies
                        .deliver(seq, &bytes, is_complete, &mut self.out);
                }
                PinnedOutput::OutOfBand(bytes) => self.out.extend_from_slice(&bytes),
                PinnedOutput::Selected(db) => self.session.db = db,
            }
        }
        self.pinned_outputs = outputs;
        if !is_ok {
            self.on_pinned_lost();
        }
        self.release_pinned_if_idle();
        self.refresh_registry(None);
    }

    pub(super) fn release_pinned_if_idle(&mut self) {
        if self.controls_in_flight == 0
            && self
                .pinned
                .as_ref()
                .is_some_and(|session| session.is_releasable(self.session.db))
            && let Some(session) = self.pinned.take()
        {
            session.release(self.session.db);
        }
    }

    /// The pinned connection died (failover, or the server dropped it): answer what it
    /// owed, remember broken transactions and subscriptions to restore.
    pub(super) fn on_pinned_lost(&mut self) {
        let Some(session) = self.pinned.take() else {
            return;
        };
        let lost = session.into_lost();
        for seq in lost.unanswered {
            if self.replies.has_streamed(seq) {
                self.close(Phase::Abort, CloseReason::ReplyInterrupted);
            }
            Stats::bump(&self.shared.stats.upstream_errors);
            self.shared.metrics.error(ErrorKind::PinnedLost);
            self.reply_error(seq, LOST_IN_FAILOVER);
        }
        if lost.was_in_multi {
            self.session.broken = Some(BrokenTransaction::MultiLost);
        } else if lost.was_watching {
            self.session.broken = Some(BrokenTransaction::WatchLost);
        }
        if !lost.subscriptions.is_idle() {
            self.resubscribe = Some(lost.subscriptions);
        }
        if lost.is_unrecoverable {
            // Tracking invalidations or MONITOR lines were lost: the client must reconnect.
            self.close(Phase::Abort, CloseReason::PinnedLost);
        }
    }

    /// True while a failover holds traffic and the pinned connection owes replies.
    pub(super) fn is_pinned_stalled_check_due(&self) -> bool {
        matches!(self.routes.master, MasterRoute::Unavailable(_))
            && self
                .pinned
                .as_ref()
                .is_some_and(|session| !session.oldest_wait().is_zero())
    }

    /// During a failover, a pinned connection that owes a reply for too long is given up,
    /// for the same reason as shared ones (see `STALLED_DURING_FAILOVER`).
    pub(super) fn check_pinned_stall(&mut self) {
        let is_stalled = self.is_pinned_stalled_check_due()
            && self
                .pinned
                .as_ref()
                .is_some_and(|session| session.oldest_wait() > STALLED_DURING_FAILOVER);
        if is_stalled {
            self.on_pinned_lost();
        }
    }
}
