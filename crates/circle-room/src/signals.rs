//! Silent signals that interrupt nobody: reactions ("thank you", "me too", a heart, applause) shown
//! for a moment next to a name, and each person's connection level, told to facilitators only.
//!
//! Neither is kept beyond what the next view needs: a reaction is sent and forgotten (no history,
//! nothing in a late joiner's snapshot); a connection level is held only while its person is here,
//! for a facilitator who arrives later.

use crate::{Audience, Room, RoomError};
use circle_protocol::{
    ConnectionLevel, ConnectionReport, Millis, ParticipantId, Reaction, Role, ServerMsg,
};

/// Reactions one person may send at once before the steady rate applies.
pub const REACTION_BURST: u64 = 3;
/// After the burst, one reaction per this many milliseconds: enough to say thanks to each speaker,
/// too few to turn the list of names into a light show.
pub const REACTION_INTERVAL_MS: Millis = 2_000;
/// Connection level changes one person may report at once. Browsers report only on change, every
/// few seconds at most; this bounds a client that flaps, so facilitators' screens stay calm.
pub const QUALITY_BURST: u64 = 4;
/// After that burst, one level change per this many milliseconds.
pub const QUALITY_INTERVAL_MS: Millis = 2_000;

/// A per-person rate limit: `burst` requests at once, then one per `interval` (a virtual-time
/// bucket: `next` is when the bucket would be full again).
#[derive(Clone, Debug, Default)]
pub(crate) struct Bucket {
    next: Millis,
}

impl Bucket {
    /// Takes one request at `now` if the limit allows it.
    fn take(&mut self, now: Millis, burst: u64, interval: Millis) -> bool {
        let allowance = burst.saturating_sub(1).saturating_mul(interval);
        if self.next > now.saturating_add(allowance) {
            return false;
        }
        self.next = self.next.max(now).saturating_add(interval);
        true
    }
}

/// One participant's signal state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Signals {
    /// Their reaction rate limit.
    reactions: Bucket,
    /// Their connection level changes' rate limit.
    quality_changes: Bucket,
    /// Their last reported connection level; `None` (never reported) reads as good.
    level: Option<ConnectionLevel>,
}

impl Room {
    /// A silent reaction: everyone who sees the sender (never the waiting room), and the sender, are
    /// told who reacted and how.
    pub(crate) fn react(
        &mut self,
        now: Millis,
        from: &ParticipantId,
        reaction: Reaction,
    ) -> Result<(), RoomError> {
        if !self.settings.reactions {
            return Err(RoomError::ReactionsDisabled);
        }
        let p = self
            .participants
            .get_mut(from)
            .ok_or(RoomError::SessionGone)?;
        if !p
            .signals
            .reactions
            .take(now, REACTION_BURST, REACTION_INTERVAL_MS)
        {
            return Err(RoomError::RateLimited);
        }
        let msg = ServerMsg::Reaction {
            participant: from.clone(),
            reaction,
        };
        self.send(Audience::Seeing(from.clone()), msg.clone());
        self.send(Audience::One(from.clone()), msg);
        Ok(())
    }

    /// A participant's own connection level: facilitators are told when it changes, nobody else.
    pub(crate) fn report_quality(
        &mut self,
        now: Millis,
        from: &ParticipantId,
        level: ConnectionLevel,
    ) -> Result<(), RoomError> {
        let p = self
            .participants
            .get_mut(from)
            .ok_or(RoomError::SessionGone)?;
        if p.signals.level.unwrap_or(ConnectionLevel::Good) == level {
            p.signals.level = Some(level);
            return Ok(());
        }
        if !p
            .signals
            .quality_changes
            .take(now, QUALITY_BURST, QUALITY_INTERVAL_MS)
        {
            return Err(RoomError::RateLimited);
        }
        p.signals.level = Some(level);
        self.send(
            Audience::Facilitators,
            ServerMsg::ConnectionQuality {
                participant: from.clone(),
                level,
            },
        );
        Ok(())
    }

    /// The connection levels a facilitator's snapshot lists: every admitted participant's that is not
    /// good, in join order. Empty for anyone else.
    pub(crate) fn connection_reports_for(&self, viewer: Role) -> Vec<ConnectionReport> {
        if viewer != Role::Facilitator {
            return Vec::new();
        }
        let mut reports: Vec<(u64, ConnectionReport)> = self
            .participants
            .iter()
            .filter_map(|(id, p)| {
                let level = p.signals.level?;
                (p.admitted && level != ConnectionLevel::Good).then(|| {
                    (
                        p.seq,
                        ConnectionReport {
                            participant: id.clone(),
                            level,
                        },
                    )
                })
            })
            .collect();
        reports.sort_by_key(|(seq, _)| *seq);
        reports.into_iter().map(|(_, r)| r).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_one_per_interval() {
        let mut b = Bucket::default();
        let now = 10_000;
        for _ in 0..3 {
            assert!(b.take(now, 3, 2_000));
        }
        assert!(!b.take(now, 3, 2_000));
        assert!(!b.take(now + 1_999, 3, 2_000));
        assert!(b.take(now + 2_000, 3, 2_000));
        assert!(!b.take(now + 2_000, 3, 2_000));
        // A long quiet spell refills the whole burst, never more.
        let later = now + 60_000;
        for _ in 0..3 {
            assert!(b.take(later, 3, 2_000));
        }
        assert!(!b.take(later, 3, 2_000));
    }
}
