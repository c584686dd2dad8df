//! A standing room's stored definition, the inputs that create or change one, its ids, and the
//! facilitator secret (shown once) with its hash (kept).

use std::fmt;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use circle_protocol::{RoomId, Settings};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{Schedule, StoreError};

/// Longest title, in characters, after trimming.
pub const MAX_TITLE_CHARS: usize = 80;
/// Latest the waiting room may open before a scheduled start, in minutes.
pub const MAX_EARLY_OPEN_MINS: u32 = 120;

/// Random bytes in a standing room's organiser id and in its members' link id (as ad-hoc room ids).
const ID_BYTES: usize = 16;
/// Random bytes in a facilitator secret: 256 bits.
const SECRET_BYTES: usize = 32;

/// `n` random bytes as URL-safe base64 without padding.
fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A standing room's organiser id: random, used by the organiser API only (never in a members'
/// link, so a member cannot manage the room).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StandingId(pub String);

impl StandingId {
    /// A new random organiser id (128 bits).
    pub fn random() -> Self {
        Self(random_token(ID_BYTES))
    }
}

impl fmt::Display for StandingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new random members' link id (128 bits, the same shape as an ad-hoc room's id).
pub(crate) fn random_link() -> RoomId {
    RoomId(random_token(ID_BYTES))
}

/// A facilitator secret in plaintext. It exists only in the answer to a creation or a rotation;
/// the store keeps its [`SecretHash`]. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct FacilitatorSecret(pub String);

impl FacilitatorSecret {
    /// A new random secret (256 bits).
    pub(crate) fn random() -> Self {
        Self(random_token(SECRET_BYTES))
    }
}

impl fmt::Debug for FacilitatorSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FacilitatorSecret(..)")
    }
}

/// The SHA-256 of a facilitator secret, lower-case hex. The secret is 256 random bits, so a plain
/// hash cannot be reversed by guessing; no salt or slow hash is needed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash(String);

impl SecretHash {
    /// The hash of `secret`.
    pub fn of(secret: &str) -> Self {
        Self(hex::encode(Sha256::digest(secret.as_bytes())))
    }

    /// Whether `presented` is the secret, compared in time that does not depend on where the
    /// hashes differ.
    pub fn verify(&self, presented: &str) -> bool {
        let presented = Self::of(presented);
        self.0.as_bytes().ct_eq(presented.0.as_bytes()).into()
    }

    /// The hex digest, as stored.
    pub fn as_hex(&self) -> &str {
        &self.0
    }

    /// A stored digest, checked for shape (64 lower-case hex digits).
    pub(crate) fn from_hex(hex: String) -> Result<Self, StoreError> {
        let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if ok {
            Ok(Self(hex))
        } else {
            Err(StoreError::Other(
                "a stored secret hash is malformed".into(),
            ))
        }
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// A standing room as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StandingRoom {
    /// The organiser id.
    pub id: StandingId,
    /// The members' link id: the room id in `#room=…`; changes when the members' link is rotated.
    pub link: RoomId,
    /// The title, trimmed; unique on the server, compared case-insensitively.
    pub title: String,
    /// The settings each new meeting starts with.
    pub settings: Settings,
    /// The facilitator secret's hash; changes when the facilitator link is rotated.
    pub secret: SecretHash,
    /// When the group meets; `None`: the room is always open.
    pub schedule: Option<Schedule>,
    /// How many minutes before a scheduled start the waiting room opens.
    pub early_open_mins: u32,
}

/// What an organiser gives to create a standing room.
#[derive(Clone, Debug, PartialEq)]
pub struct NewStandingRoom {
    /// The title (trimmed by the store; 1 to 80 characters, no hidden characters).
    pub title: String,
    /// The settings each meeting starts with.
    pub settings: Settings,
    /// When the group meets, if it has a schedule.
    pub schedule: Option<Schedule>,
    /// How many minutes before a scheduled start the waiting room opens (0 to 120).
    pub early_open_mins: u32,
}

/// A partial change: `None` leaves a field as it is; `schedule: Some(None)` removes the schedule.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StandingPatch {
    /// A new title.
    pub title: Option<String>,
    /// New settings (all of them).
    pub settings: Option<Settings>,
    /// A new schedule, or `Some(None)` to remove it.
    pub schedule: Option<Option<Schedule>>,
    /// A new early-open time.
    pub early_open_mins: Option<u32>,
}

/// A title checked and trimmed, with the key that makes titles unique regardless of case.
pub(crate) struct Title {
    pub(crate) title: String,
    pub(crate) key: String,
}

impl Title {
    pub(crate) fn parse(raw: &str) -> Result<Self, StoreError> {
        let title = raw.trim();
        let chars = title.chars().count();
        if chars == 0 || chars > MAX_TITLE_CHARS {
            return Err(StoreError::Invalid(format!(
                "a title is 1 to {MAX_TITLE_CHARS} characters"
            )));
        }
        if circle_room::has_hidden_characters(title) {
            return Err(StoreError::Invalid(
                "a title cannot hold control or invisible characters".into(),
            ));
        }
        Ok(Self {
            title: title.to_owned(),
            key: title.to_lowercase(),
        })
    }
}

/// Checks an early-open time.
pub(crate) fn check_early_open(mins: u32) -> Result<u32, StoreError> {
    if mins > MAX_EARLY_OPEN_MINS {
        return Err(StoreError::Invalid(format!(
            "early_open_mins is 0 to {MAX_EARLY_OPEN_MINS}"
        )));
    }
    Ok(mins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_hash_verifies_only_its_secret() {
        let secret = FacilitatorSecret::random();
        let hash = SecretHash::of(&secret.0);
        assert!(hash.verify(&secret.0));
        assert!(!hash.verify(&FacilitatorSecret::random().0));
        assert!(!hash.verify(""));
        assert!(!format!("{hash:?}{secret:?}").contains(&secret.0));
    }

    #[test]
    fn secrets_are_256_bits() {
        assert_eq!(FacilitatorSecret::random().0.len(), 43);
    }

    #[test]
    fn titles_are_trimmed_checked_and_keyed_by_case() {
        let t = Title::parse("  Tuesday Group ").unwrap();
        assert_eq!(
            (t.title.as_str(), t.key.as_str()),
            ("Tuesday Group", "tuesday group")
        );
        assert!(Title::parse("   ").is_err());
        assert!(Title::parse(&"x".repeat(81)).is_err());
        assert!(Title::parse("a\u{202E}b").is_err());
    }
}
