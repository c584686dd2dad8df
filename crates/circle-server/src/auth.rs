//! Secrets and tokens: random room ids, participant ids and facilitator secrets; signed resume tokens
//! (JWT, HS256) scoped to one room and one session; the operator key check.
//!
//! Only the latest token of a session resumes it: each token carries a random `jti`, and
//! [`TokenKeys`] remembers the latest `jti` of each session (in memory, until that token would have
//! expired). A resume issues a new token, so every earlier one stops working at once.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use circle_protocol::{ParticipantId, RoomId};
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
    /// Each session's latest token: session id → (`jti`, expiry in Unix seconds). Entries past their
    /// expiry are swept when the map grows past [`SWEEP_AT`] (doubling the threshold while live).
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

    /// A token like [`TokenKeys::issue`] but already expired: for tests of expiry.
    #[doc(hidden)]
    pub fn issue_expired(&self, room: &RoomId, session: &ParticipantId) -> String {
        let mut claims = self.claims(room, session, unix_secs() - 120);
        claims.exp = claims.iat + 60;
        self.sign(&claims).unwrap_or_default()
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
