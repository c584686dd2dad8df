//! Short-lived TURN credentials, the "TURN REST API" scheme exactly as coturn's `use-auth-secret`
//! checks them: the username is `"<expiry, unix seconds>:<id>"` and the password is
//! `base64(HMAC-SHA1(shared secret, username))`. Nothing is stored: any server that knows the
//! secret (this crate, or an external coturn) can check a username on its own.
//!
//! The `turn` crate's own `LongTermAuthHandler` expects a bare number as the username, so the
//! `expiry:id` form coturn documents is checked here instead.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Makes the username and password a client hands to a TURN server that shares `secret`.
///
/// `id` names the session (it is not secret; keep it free of personal data, it may reach a
/// TURN server's logs); the credentials stop working `ttl` after `now`.
pub fn credentials(secret: &str, id: &str, ttl: Duration, now: SystemTime) -> (String, String) {
    let expiry = now
        .checked_add(ttl)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let username = format!("{expiry}:{id}");
    let password = password(secret, &username);
    (username, password)
}

/// The password for `username`: base64 of its HMAC-SHA1 under the shared secret.
fn password(secret: &str, username: &str) -> String {
    // HMAC accepts a key of any length, so `new_from_slice` cannot fail here.
    let mut mac =
        <Hmac<Sha1>>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    BASE64_STANDARD.encode(mac.finalize().into_bytes())
}

/// The expiry written at the front of a REST-API username, if it has one.
fn expiry(username: &str) -> Option<u64> {
    let stamp = username
        .split_once(':')
        .map_or(username, |(stamp, _)| stamp);
    if stamp.is_empty() || !stamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stamp.parse().ok()
}

/// Checks REST-API usernames for the `turn` server: an expired or malformed username has no key,
/// so the request is refused; otherwise the key is derived from the password the secret implies,
/// and the `turn` crate checks the request's MESSAGE-INTEGRITY against it (a wrong password fails
/// there).
pub(crate) struct RestAuth {
    /// The secret shared with whoever issues credentials (Circle's `joined` message).
    secret: String,
}

impl RestAuth {
    pub(crate) fn new(secret: String) -> Self {
        RestAuth { secret }
    }

    /// The long-term key (RFC 5389 §15.4) for `username` in `realm`, if the username is still valid
    /// at `now`.
    pub(crate) fn key(&self, username: &str, realm: &str, now: SystemTime) -> Option<Vec<u8>> {
        let expiry = expiry(username)?;
        let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
        if expiry < now {
            return None;
        }
        let password = password(&self.secret, username);
        Some(turn::auth::generate_auth_key(username, realm, &password))
    }
}

impl turn::auth::AuthHandler for RestAuth {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        _src_addr: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        // The error text never names the user: the turn crate may log it.
        self.key(username, realm, SystemTime::now())
            .ok_or(turn::Error::ErrNoSuchUser)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_coturns_rest_api_form() {
        // The expected password was computed independently, with Python's hmac module:
        // base64(hmac.new(b"north", b"1600000000:alice", sha1).digest()).
        let now = UNIX_EPOCH + Duration::from_secs(1_599_999_000);
        let (user, pass) = credentials("north", "alice", Duration::from_secs(1000), now);
        assert_eq!(user, "1600000000:alice");
        assert_eq!(pass, "gq98pTOhhHaAu0we9aV79kOVVv0=");
        assert_eq!(pass.len(), 28, "base64 of a 20-byte SHA-1 HMAC");
    }

    #[test]
    fn expired_or_malformed_usernames_have_no_key() {
        let auth = RestAuth::new("s".into());
        let now = UNIX_EPOCH + Duration::from_secs(2_000);
        assert!(auth.key("2000:x", "r", now).is_some());
        assert!(auth.key("1999:x", "r", now).is_none());
        assert!(auth.key("x:2500", "r", now).is_none());
        assert!(auth.key(":x", "r", now).is_none());
        assert!(auth.key("", "r", now).is_none());
        assert!(auth.key("99999999999999999999999:x", "r", now).is_none());
    }
}
