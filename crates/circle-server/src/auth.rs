//! Secrets and tokens: random room ids, participant ids and facilitator secrets; signed resume tokens
//! (JWT, HS256) scoped to one room and one session; the operator key check.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use circle_protocol::{ParticipantId, RoomId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};
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
}

/// Signs and checks resume tokens.
pub struct TokenKeys {
    /// Signs new tokens.
    encoding: EncodingKey,
    /// Checks presented tokens.
    decoding: DecodingKey,
    /// Token lifetime in seconds.
    ttl_secs: u64,
}

impl TokenKeys {
    /// Keys from the configured secret, or a random one when it is empty.
    pub fn new(secret: &str, ttl_secs: u64) -> Self {
        let secret = if secret.is_empty() {
            random_token(32)
        } else {
            secret.to_owned()
        };
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            ttl_secs,
        }
    }

    /// A token that resumes `session` in `room`.
    pub fn issue(&self, room: &RoomId, session: &ParticipantId) -> String {
        let now = unix_secs();
        let claims = Claims {
            room: room.0.clone(),
            sub: session.0.clone(),
            scope: RESUME_SCOPE.into(),
            iat: now,
            exp: now + self.ttl_secs,
        };
        // HS256 signing over serialisable claims cannot fail; an empty token would simply not resume.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default()
    }

    /// The session a token resumes in `room`, if it is genuine, unexpired and for that room.
    pub fn check(&self, room: &RoomId, token: &str) -> Result<ParticipantId, TokenError> {
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
        Ok(ParticipantId(c.sub))
    }

    /// A token like [`TokenKeys::issue`] but already expired: for tests of expiry.
    #[doc(hidden)]
    pub fn issue_expired(&self, room: &RoomId, session: &ParticipantId) -> String {
        let now = unix_secs();
        let claims = Claims {
            room: room.0.clone(),
            sub: session.0.clone(),
            scope: RESUME_SCOPE.into(),
            iat: now - 120,
            exp: now - 60,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .unwrap_or_default()
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
        let keys = TokenKeys::new("", 60);
        let room = new_room_id();
        let who = new_participant_id();
        let t = keys.issue(&room, &who);
        assert_eq!(keys.check(&room, &t), Ok(who.clone()));
        assert_eq!(keys.check(&new_room_id(), &t), Err(TokenError::Invalid));
        assert_eq!(
            TokenKeys::new("", 60).check(&room, &t),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            keys.check(&room, &keys.issue_expired(&room, &who)),
            Err(TokenError::Expired)
        );
        assert_eq!(keys.check(&room, "not.a.token"), Err(TokenError::Invalid));
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
