//! API keys: the secret a client sends, the hash Postgres stores, and the scopes a key grants.
//!
//! A key reads `lh_` + an 8-character prefix id + `_` + 32 random characters, all base62
//! (`lh_3fK9aQ2z_...`). The prefix (`lh_3fK9aQ2z`) is stored and shown so a key can be
//! recognised in listings; the whole key is only ever stored as its SHA-256 ([`KeyHash`]).
//! The random part holds 32 × log2(62) ≈ 190 bits, so an unsalted fast hash is enough:
//! there is nothing to brute-force.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Every key starts with this, so leaked keys are easy to recognise (and to scan for).
const TAG: &str = "lh_";
/// Characters of the visible prefix id.
const PREFIX_ID_LEN: usize = 8;
/// Characters of the secret part.
const SECRET_LEN: usize = 32;
/// `lh_` + prefix id: what [`ApiKey::prefix`] returns.
const PREFIX_LEN: usize = TAG.len() + PREFIX_ID_LEN;
/// The whole key: prefix, `_`, secret.
const KEY_LEN: usize = PREFIX_LEN + 1 + SECRET_LEN;

/// A plaintext API key, valid in shape. It is a secret: `Debug` shows only its prefix,
/// and there is deliberately no `Display`; [`ApiKey::expose`] is the one way to read it.
#[derive(Clone)]
pub struct ApiKey(String);

/// A string that is not shaped like a longhaul API key.
#[derive(Debug, thiserror::Error)]
#[error("not a longhaul API key: expected lh_ + 8 letters or digits + _ + 32 letters or digits")]
pub struct InvalidApiKey;

impl ApiKey {
    /// A fresh key from the thread-local CSPRNG.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let mut random = |n: usize| -> String {
            (&mut rng)
                .sample_iter(Alphanumeric)
                .take(n)
                .map(char::from)
                .collect()
        };
        let prefix_id = random(PREFIX_ID_LEN);
        let secret = random(SECRET_LEN);
        Self(format!("{TAG}{prefix_id}_{secret}"))
    }

    /// Parses a key as a client sent it, checking its shape (not whether it exists).
    pub fn parse(s: &str) -> Result<Self, InvalidApiKey> {
        let bytes = s.as_bytes();
        let shaped = bytes.len() == KEY_LEN
            && s.starts_with(TAG)
            && bytes[PREFIX_LEN] == b'_'
            && bytes[TAG.len()..PREFIX_LEN]
                .iter()
                .chain(&bytes[PREFIX_LEN + 1..])
                .all(u8::is_ascii_alphanumeric);
        if shaped {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidApiKey)
        }
    }

    /// The visible part, `lh_` + prefix id: safe to store, log and show.
    pub fn prefix(&self) -> &str {
        &self.0[..PREFIX_LEN]
    }

    /// The SHA-256 of the whole key, as Postgres stores it.
    pub fn hash(&self) -> KeyHash {
        KeyHash(Sha256::digest(self.0.as_bytes()).into())
    }

    /// The whole secret, to hand to its owner once.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", self.prefix())
    }
}

/// The SHA-256 of an API key: what identifies a key in Postgres.
///
/// Equality takes the same time whatever the bytes, so comparing hashes leaks nothing.
#[derive(Clone, Copy, Eq)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for KeyHash {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl PartialEq for KeyHash {
    fn eq(&self, other: &Self) -> bool {
        // Every byte is visited; `black_box` keeps the compiler from adding an early exit.
        let diff = self
            .0
            .iter()
            .zip(&other.0)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyHash({}…)", hex::encode(&self.0[..4]))
    }
}

/// What a key allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// Submit and cancel jobs.
    #[serde(rename = "jobs:write")]
    JobsWrite,
    /// Read jobs and their results.
    #[serde(rename = "jobs:read")]
    JobsRead,
    /// Manage tenants and keys, see every tenant.
    #[serde(rename = "admin")]
    Admin,
}

impl Scope {
    /// Every scope, in a fixed order.
    pub const ALL: [Scope; 3] = [Scope::JobsWrite, Scope::JobsRead, Scope::Admin];

    /// The name stored in Postgres and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::JobsWrite => "jobs:write",
            Scope::JobsRead => "jobs:read",
            Scope::Admin => "admin",
        }
    }
}

/// A string that names no scope.
#[derive(Debug, thiserror::Error)]
#[error("unknown scope {0:?}: expected \"jobs:write\", \"jobs:read\" or \"admin\"")]
pub struct UnknownScope(pub String);

impl FromStr for Scope {
    type Err = UnknownScope;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| UnknownScope(s.to_owned()))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_back_and_keeps_its_prefix() {
        let key = ApiKey::generate();
        assert_eq!(key.expose().len(), KEY_LEN);
        assert!(key.prefix().starts_with("lh_"));
        assert_eq!(key.prefix().len(), 11);
        let parsed = ApiKey::parse(key.expose()).unwrap();
        assert_eq!(parsed.expose(), key.expose());
        assert_eq!(parsed.hash(), key.hash());
    }

    #[test]
    fn two_generated_keys_differ() {
        let (a, b) = (ApiKey::generate(), ApiKey::generate());
        assert_ne!(a.expose(), b.expose());
        assert_ne!(a.prefix(), b.prefix());
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn malformed_keys_are_rejected() {
        let good = ApiKey::generate().expose().to_owned();
        let cases = [
            String::new(),
            "lh_".to_owned(),
            good[..KEY_LEN - 1].to_owned(),
            format!("{good}x"),
            good.replacen("lh_", "xx_", 1),
            format!("{}-{}", &good[..PREFIX_LEN], &good[PREFIX_LEN + 1..]),
            format!("{}!{}", &good[..KEY_LEN - 1 - 1], &good[KEY_LEN - 1..]),
            format!("{}é{}", &good[..PREFIX_LEN - 2], &good[PREFIX_LEN..]),
        ];
        for bad in &cases {
            assert!(ApiKey::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let key = ApiKey::generate();
        let shown = format!("{key:?}");
        assert_eq!(shown, format!("ApiKey({}…)", key.prefix()));
        assert!(!shown.contains(&key.expose()[PREFIX_LEN + 1..]));
    }

    #[test]
    fn the_hash_is_sha256_of_the_whole_key() {
        let key = ApiKey::parse("lh_abcdEFGH_0123456789abcdefghijABCDEFGHIJKL").unwrap();
        let expected: [u8; 32] = Sha256::digest(key.expose().as_bytes()).into();
        assert_eq!(key.hash().as_bytes(), &expected);
        assert_eq!(key.prefix(), "lh_abcdEFGH");
    }

    #[test]
    fn hashes_differing_in_any_byte_are_unequal() {
        let base = [7u8; 32];
        for i in 0..32 {
            let mut other = base;
            other[i] ^= 1;
            assert_ne!(KeyHash::from(base), KeyHash::from(other));
        }
        assert_eq!(KeyHash::from(base), KeyHash::from(base));
    }

    #[test]
    fn scopes_round_trip_through_their_names() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>().unwrap(), scope);
            let json = serde_json::to_string(&scope).unwrap();
            assert_eq!(json, format!("\"{}\"", scope.as_str()));
        }
        assert!("jobs:delete".parse::<Scope>().is_err());
    }
}
