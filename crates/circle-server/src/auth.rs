//! Secrets and tokens: random room ids, participant ids and facilitator secrets; signed resume tokens
//! (JWT, HS256) scoped to one room and one session; the operator key check.
//!
//! Carry-over tokens (standing rooms, graceful restart) are signed with the same key, scoped to one
//! members' link, valid [`CARRY_TTL_SECS`], and hold one participant's place ([`circle_room::CarryOver`]);
//! the server keeps no copy. The key itself, when not configured, lives in `<data_dir>/token.key`
//! ([`load_or_create_key`]) so tokens survive a restart.
//!
//! Only the latest token of a session resumes it: each token carries a random `jti`, and
//! [`TokenKeys`] remembers the latest `jti` of each session (in memory, until that token would have
//! expired). A resume issues a new token, so every earlier one stops working at once.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use circle_protocol::{Millis, ParticipantId, Role, RoomId};
use circle_room::{Carried, CarryOver};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{SystemTime, UNIX_EPOCH},
};
use subtle::ConstantTimeEq;

/// `n` random bytes as URL-safe base64 without padding.
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A new room id: 128 random bits.
pub fn new_room_id() -> RoomId {
    RoomId(random_token(16))
}

/// A new participant (session) id: 96 random bits, so it cannot be guessed to forge a target.
pub fn new_participant_id() -> ParticipantId {
    ParticipantId(random_token(12))
}

/// A new facilitator secret: 128 random bits.
pub fn new_secret() -> String {
    random_token(16)
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn secrets_match(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// What a resume token says.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The room it is valid for.
    room: String,
    /// The session (participant id).
    sub: String,
    /// What it may be used for: only resuming.
    scope: String,
    /// Issued at, seconds since the epoch.
    iat: u64,
    /// Expires at, seconds since the epoch.
    exp: u64,
    /// This token's random id: only the session's latest one resumes it.
    jti: String,
}

/// The one scope resume tokens carry.
const RESUME_SCOPE: &str = "resume";
/// The scope of carry-over tokens: they cannot be used to resume, nor resume tokens to carry over.
const CARRY_SCOPE: &str = "carry";
/// How long a carry-over token works: long enough for a restart, short enough that a token copied
/// off a screen is soon worthless.
pub const CARRY_TTL_SECS: u64 = 600;

/// What a carry-over token says: one participant's place in a standing room's meeting.
#[derive(Debug, Serialize, Deserialize)]
struct CarryClaims {
    /// The members' link of the meeting when the token was made: the next meeting is started there.
    room: String,
    /// The link the participant came by, when a rotation during the meeting made it differ from
    /// `room` (members are not told of a rotation, so their client still names the old link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    via: Option<String>,
    /// What it may be used for: only carrying over.
    scope: String,
    /// Issued at, seconds since the epoch.
    iat: u64,
    /// Expires at, seconds since the epoch.
    exp: u64,
    /// The pseudonym.
    name: String,
    /// The browser's device id for the room, if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device: Option<String>,
    /// Member or facilitator.
    role: Role,
    /// Admitted (not in the waiting room).
    admitted: bool,
    /// When their hand went up, while it was up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hand: Option<Millis>,
    /// Their hand's place in the speaking order, while it was up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    place: Option<u32>,
    /// A facilitator had muted them.
    muted: bool,
}

impl CarryClaims {
    /// The claims for `carry`'s place in the meeting at `room`, valid from `iat` to `exp`.
    fn new(room: &RoomId, via: Option<String>, carry: &CarryOver, iat: u64, exp: u64) -> Self {
        Self {
            room: room.0.clone(),
            via,
            scope: CARRY_SCOPE.into(),
            iat,
            exp,
            name: carry.name.clone(),
            device: carry.device.clone(),
            role: carry.place.role,
            admitted: carry.place.admitted,
            hand: carry.place.hand_raised_at,
            place: carry.place.hand_place,
            muted: carry.place.muted_by_facilitator,
        }
    }
}

/// Why a resume token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Bad signature, malformed, wrong scope or another room.
    #[error("the resume token is not valid for this room")]
    Invalid,
    /// Past its expiry.
    #[error("the resume token has expired")]
    Expired,
    /// A later token of the same session exists (it was resumed since): this one is spent.
    #[error("this resume token was replaced by a later one")]
    Superseded,
    /// The signing key cannot sign (checked once, when the keys are made).
    #[error("resume tokens cannot be signed: {0}")]
    Signing(String),
}

/// Sessions whose latest token is remembered before stale entries are swept.
const SWEEP_AT: usize = 4096;

/// Signs and checks resume tokens.
pub struct TokenKeys {
    /// Signs new tokens.
    encoding: EncodingKey,
    /// Checks presented tokens.
    decoding: DecodingKey,
    /// Token lifetime in seconds.
    ttl_secs: u64,
    /// Each session's latest token: session id → (`jti`, expiry in Unix seconds). A session's entry
    /// goes when the session ends ([`TokenKeys::forget`]); any left behind (a room that stopped
    /// without ending its sessions) are swept once past their expiry, when the map grows past
    /// [`SWEEP_AT`] (doubling the threshold while live).
    latest: Mutex<Latest>,
}

/// The latest token of each session, and the size at which to sweep expired entries next.
struct Latest {
    by_session: HashMap<String, (String, u64)>,
    sweep_at: usize,
}

impl TokenKeys {
    /// Keys from the configured secret, or a random one when it is empty. Signs and checks one probe
    /// token, so a key that cannot sign fails here, at start, and never later.
    pub fn new(secret: &str, ttl_secs: u64) -> Result<Self, TokenError> {
        let secret = if secret.is_empty() {
            random_token(32)
        } else {
            secret.to_owned()
        };
        let keys = Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            ttl_secs,
            latest: Mutex::new(Latest {
                by_session: HashMap::new(),
                sweep_at: SWEEP_AT,
            }),
        };
        let probe_room = new_room_id();
        let probe = keys.sign(&keys.claims(&probe_room, &new_participant_id(), unix_secs()))?;
        keys.check_signature(&probe_room, &probe)?;
        Ok(keys)
    }

    fn claims(&self, room: &RoomId, session: &ParticipantId, now: u64) -> Claims {
        Claims {
            room: room.0.clone(),
            sub: session.0.clone(),
            scope: RESUME_SCOPE.into(),
            iat: now,
            exp: now + self.ttl_secs,
            jti: random_token(12),
        }
    }

    fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    fn latest(&self) -> std::sync::MutexGuard<'_, Latest> {
        // A poisoned lock means a panic elsewhere while inserting; the map is still a valid map.
        self.latest.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A token that resumes `session` in `room`; every earlier token of that session stops working.
    pub fn issue(&self, room: &RoomId, session: &ParticipantId) -> String {
        let now = unix_secs();
        let claims = self.claims(room, session, now);
        let token = match self.sign(&claims) {
            Ok(token) => token,
            // `new` signed a probe with this key and the same claim shape; HMAC cannot fail after
            // that. Should it ever, the session simply cannot resume (its grace period still holds).
            Err(e) => {
                tracing::error!(error = %e, "could not sign a resume token");
                return String::new();
            }
        };
        let mut latest = self.latest();
        latest
            .by_session
            .insert(claims.sub, (claims.jti, claims.exp));
        if latest.by_session.len() >= latest.sweep_at {
            latest.by_session.retain(|_, (_, exp)| *exp > now);
            latest.sweep_at = (latest.by_session.len() * 2).max(SWEEP_AT);
        }
        token
    }

    /// Forgets an ended session's latest token. Nothing can resume a session its room no longer
    /// has (a resume of it is refused as gone), so there is nothing left to supersede; without this
    /// every session of the last `ttl_secs` stays remembered, which on a busy server is most of its
    /// memory growth (a soak's thousands of joins an hour each left one entry here).
    pub fn forget(&self, session: &ParticipantId) {
        self.latest().by_session.remove(&session.0);
    }

    /// Sessions whose latest token is remembered now (for tests: ended sessions are forgotten).
    pub fn remembered(&self) -> usize {
        self.latest().by_session.len()
    }

    /// The session a token resumes in `room`, if it is genuine, unexpired, for that room, and the
    /// session's latest.
    pub fn check(&self, room: &RoomId, token: &str) -> Result<ParticipantId, TokenError> {
        let claims = self.check_signature(room, token)?;
        let latest = self.latest();
        match latest.by_session.get(&claims.sub) {
            Some((jti, _)) if secrets_match(jti, &claims.jti) => Ok(ParticipantId(claims.sub)),
            // Issued by an earlier process with the same key: nothing newer is known here.
            None => Ok(ParticipantId(claims.sub)),
            Some(_) => Err(TokenError::Superseded),
        }
    }

    fn check_signature(&self, room: &RoomId, token: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            },
        )?;
        let c = data.claims;
        if c.room != room.0 || c.scope != RESUME_SCOPE {
            return Err(TokenError::Invalid);
        }
        Ok(c)
    }

    /// A carry-over token for one participant of the meeting at `room` (its members' link now),
    /// who came by the link `via`.
    pub fn issue_carry(
        &self,
        room: &RoomId,
        via: &RoomId,
        carry: &CarryOver,
    ) -> Result<String, TokenError> {
        let now = unix_secs();
        let via = (via != room).then(|| via.0.clone());
        let claims = CarryClaims::new(room, via, carry, now, now + CARRY_TTL_SECS);
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// The place a carry-over token holds, if it is genuine, unexpired and for the link `joined`
    /// (the link now, or the one the participant came by), and the link of the meeting to go to.
    pub fn check_carry(
        &self,
        joined: &RoomId,
        token: &str,
    ) -> Result<(RoomId, CarryOver), TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<CarryClaims>(token, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        let c = data.claims;
        let for_link = c.room == joined.0 || c.via.as_deref() == Some(joined.0.as_str());
        if !for_link || c.scope != CARRY_SCOPE {
            return Err(TokenError::Invalid);
        }
        let carry = CarryOver {
            name: c.name,
            device: c.device,
            place: Carried {
                role: c.role,
                admitted: c.admitted,
                hand_raised_at: c.hand,
                hand_place: c.place,
                muted_by_facilitator: c.muted,
            },
        };
        Ok((RoomId(c.room), carry))
    }

    /// A carry-over token like [`TokenKeys::issue_carry`] but already expired: for tests of expiry.
    #[doc(hidden)]
    pub fn issue_carry_expired(&self, room: &RoomId, carry: &CarryOver) -> String {
        let now = unix_secs();
        let claims = CarryClaims::new(room, None, carry, now - 1200, now - 600);
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default()
    }

    /// A token like [`TokenKeys::issue`] but already expired: for tests of expiry.
    #[doc(hidden)]
    pub fn issue_expired(&self, room: &RoomId, session: &ParticipantId) -> String {
        let mut claims = self.claims(room, session, unix_secs() - 120);
        claims.exp = claims.iat + 60;
        self.sign(&claims).unwrap_or_default()
    }
}

/// The name of the token key's file in the data directory.
pub const TOKEN_KEY_FILE: &str = "token.key";

/// Why the token key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Reading, creating or writing it failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It holds too short a key (someone edited it).
    #[error("{0}: holds fewer than 32 characters; delete it to make a new key")]
    TooShort(std::path::PathBuf),
}

/// The token key kept in `<dir>/token.key`: read if it is there, else made (256 random bits) and
/// written with mode 0600, so only the server's user can read it. It is the server's own secret,
/// not meeting data: with it, resume and carry-over tokens outlive a restart.
pub fn load_or_create_key(dir: &std::path::Path) -> Result<String, KeyFileError> {
    use std::io::{ErrorKind as Io, Write};
    let path = dir.join(TOKEN_KEY_FILE);
    let io = |source| KeyFileError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            let key = random_token(32);
            file.write_all(key.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok(key)
        }
        Err(e) if e.kind() == Io::AlreadyExists => {
            let key = std::fs::read_to_string(&path).map_err(io)?;
            let key = key.trim().to_owned();
            if key.len() < 32 {
                return Err(KeyFileError::TooShort(path));
            }
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_scoped_to_room_and_key() {
        let keys = TokenKeys::new("", 60).unwrap();
        let room = new_room_id();
        let who = new_participant_id();
        let t = keys.issue(&room, &who);
        assert_eq!(keys.check(&room, &t), Ok(who.clone()));
        assert_eq!(keys.check(&new_room_id(), &t), Err(TokenError::Invalid));
        assert_eq!(
            TokenKeys::new("", 60).unwrap().check(&room, &t),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            keys.check(&room, &keys.issue_expired(&room, &who)),
            Err(TokenError::Expired)
        );
        assert_eq!(keys.check(&room, "not.a.token"), Err(TokenError::Invalid));
    }

    #[test]
    fn only_the_latest_token_of_a_session_resumes_it() {
        let keys = TokenKeys::new("", 60).unwrap();
        let room = new_room_id();
        let who = new_participant_id();
        let first = keys.issue(&room, &who);
        let second = keys.issue(&room, &who);
        assert_ne!(first, second, "two tokens of one second differ");
        assert_eq!(keys.check(&room, &first), Err(TokenError::Superseded));
        assert_eq!(keys.check(&room, &second), Ok(who.clone()));
        // Another session's tokens are untouched.
        let other = new_participant_id();
        let theirs = keys.issue(&room, &other);
        assert_eq!(keys.check(&room, &theirs), Ok(other));
        assert_eq!(keys.check(&room, &second), Ok(who));
    }

    #[test]
    fn carry_tokens_are_scoped_to_their_room_and_purpose() {
        let keys = TokenKeys::new("", 60).unwrap();
        let room = new_room_id();
        let carry = CarryOver {
            name: "Sam".into(),
            device: Some("dev-1".into()),
            place: Carried {
                role: Role::Member,
                admitted: true,
                hand_raised_at: Some(1_700_000_000_000),
                hand_place: Some(2),
                muted_by_facilitator: true,
            },
        };
        let t = keys.issue_carry(&room, &room, &carry).unwrap();
        assert_eq!(
            keys.check_carry(&room, &t).unwrap(),
            (room.clone(), carry.clone())
        );
        assert_eq!(
            keys.check_carry(&new_room_id(), &t),
            Err(TokenError::Invalid)
        );
        // After a rotation of the members' link, the old link the member knows still carries
        // them to the meeting at the new one.
        let old = new_room_id();
        let rotated = keys.issue_carry(&room, &old, &carry).unwrap();
        assert_eq!(keys.check_carry(&old, &rotated).unwrap().0, room);
        assert_eq!(keys.check(&room, &t), Err(TokenError::Invalid), "no resume");
        let resume = keys.issue(&room, &new_participant_id());
        assert_eq!(keys.check_carry(&room, &resume), Err(TokenError::Invalid));
        let other = TokenKeys::new("", 60).unwrap();
        assert_eq!(
            other.check_carry(&room, &t),
            Err(TokenError::Invalid),
            "forged"
        );
        let expired = keys.issue_carry_expired(&room, &carry);
        assert_eq!(keys.check_carry(&room, &expired), Err(TokenError::Expired));
    }

    #[test]
    fn the_key_file_is_made_once_private_and_kept() {
        let dir = std::env::temp_dir().join(format!("circle-key-{}", random_token(6)));
        let first = load_or_create_key(&dir).unwrap();
        assert!(first.len() >= 32);
        assert_eq!(
            load_or_create_key(&dir).unwrap(),
            first,
            "read back, not remade"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(TOKEN_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.join(TOKEN_KEY_FILE), "short").unwrap();
        assert!(matches!(
            load_or_create_key(&dir),
            Err(KeyFileError::TooShort(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ids_are_long_and_url_safe() {
        let id = new_room_id();
        assert_eq!(id.0.len(), 22);
        assert!(
            id.0.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert!(secrets_match("abc", "abc") && !secrets_match("abc", "abd"));
    }
}
