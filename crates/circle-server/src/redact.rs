//! What the logs may say about a room. A room id is the members' link itself, so it never reaches a
//! log: lines carry [`room_tag`], a short keyed hash of it, stable for the life of the process (so the
//! lines of one room can be read together) and meaningless after it (the key is random per process).

use circle_protocol::RoomId;
use std::{
    hash::{BuildHasher, RandomState},
    sync::LazyLock,
};

/// The per-process key: `RandomState` is SipHash with random keys, made once.
static KEY: LazyLock<RandomState> = LazyLock::new(RandomState::new);

/// A room's log tag: 8 hex digits of a keyed hash of its id (32 bits: enough to tell the rooms of one
/// server apart in its logs, far too few to find a 128-bit id from).
pub fn room_tag(id: &RoomId) -> String {
    let hash = KEY.hash_one(id.0.as_str());
    format!("{:08x}", hash >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_is_stable_short_and_not_the_id() {
        let id = RoomId("dGhpc2lzYXJvb21pZDEyMw".into());
        let tag = room_tag(&id);
        assert_eq!(tag, room_tag(&id));
        assert_eq!(tag.len(), 8);
        assert!(!id.0.contains(&tag));
        assert_ne!(tag, room_tag(&RoomId("another".into())));
    }
}
