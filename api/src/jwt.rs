//! JWT Bearer tokens, for frontends whose backend mints them (`LONGHAUL_JWT_*`).
//!
//! A token is verified with the configured HS256 secret or PEM public key (RSA, EC or
//! Ed25519; the algorithm comes from `LONGHAUL_JWT_ALGORITHM` or the key type), and only
//! that algorithm is accepted (no `alg` confusion). `exp`, `aud` and `iss` are required and
//! checked, `nbf` is checked when present, with [`LEEWAY_SECS`] for clock skew. The tenant
//! comes from the `tenant` claim; scopes from `scope` (space-separated, OAuth style) or
//! `scopes` (an array). Tokens are never logged.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use longhaul_jobs::TenantId;
use longhaul_jobs::api_key::Scope;
use longhaul_jobs::config::{JwtConfig, JwtKey};
use serde::Deserialize;

/// Clock skew tolerated on `exp` and `nbf`: small, since tokens are short-lived.
const LEEWAY_SECS: u64 = 30;

/// Verifies tokens with the configured key.
pub(crate) struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

/// Why the JWT configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    /// `LONGHAUL_JWT_ALGORITHM` names no algorithm, or one that does not fit the key.
    #[error("LONGHAUL_JWT_ALGORITHM: {0}")]
    Algorithm(String),
    /// `LONGHAUL_JWT_PUBLIC_KEY` is not a PEM public key of a supported type.
    #[error(
        "LONGHAUL_JWT_PUBLIC_KEY: not a PEM public key of the algorithm's type (RSA, EC or Ed25519)"
    )]
    Key,
}

/// The claims longhaul reads (the registered ones are checked by [`Validation`]).
#[derive(Deserialize)]
struct Claims {
    tenant: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

/// A verified token: who it acts for and what it allows.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedToken {
    pub tenant: TenantId,
    pub scopes: Vec<Scope>,
}

impl JwtVerifier {
    /// Builds the verifier, checking the key and algorithm.
    pub(crate) fn new(config: &JwtConfig) -> Result<Self, JwtSetupError> {
        let named = config
            .algorithm
            .as_deref()
            .map(|a| {
                a.parse::<Algorithm>()
                    .map_err(|_| JwtSetupError::Algorithm(format!("unknown algorithm {a:?}")))
            })
            .transpose()?;
        let (key, algorithm) = match &config.key {
            JwtKey::Hs256Secret(secret) => match named {
                None | Some(Algorithm::HS256) => (
                    DecodingKey::from_secret(secret.as_bytes()),
                    Algorithm::HS256,
                ),
                Some(other) => {
                    return Err(JwtSetupError::Algorithm(format!(
                        "{other:?} does not go with LONGHAUL_JWT_HS256_SECRET"
                    )));
                }
            },
            JwtKey::PublicKeyPem(pem) => public_key(pem.as_bytes(), named)?,
        };
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&[&config.audience]);
        validation.set_issuer(&[&config.issuer]);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Ok(Self { key, validation })
    }

    /// Verifies a token: `None` for any bad token (shape, signature, time, audience,
    /// issuer, tenant). The reason is logged at debug level, the token never.
    pub(crate) fn verify(&self, token: &str) -> Option<VerifiedToken> {
        let claims = match jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation) {
            Ok(data) => data.claims,
            Err(e) => {
                tracing::debug!(reason = ?e.kind(), "rejected a JWT");
                return None;
            }
        };
        let Ok(tenant) = TenantId::parse(&claims.tenant) else {
            tracing::debug!("rejected a JWT: the tenant claim is not a tenant name");
            return None;
        };
        let names: Vec<String> = match (claims.scope, claims.scopes) {
            (Some(scope), _) => scope.split_whitespace().map(str::to_owned).collect(),
            (None, Some(scopes)) => scopes,
            (None, None) => Vec::new(),
        };
        // Scopes this version does not know grant nothing.
        let scopes = names.iter().filter_map(|s| s.parse().ok()).collect();
        Some(VerifiedToken { tenant, scopes })
    }
}

/// The key and algorithm of a PEM public key: the named algorithm, or the key type's usual
/// one (RSA: RS256, EC: ES256, Ed25519: EdDSA).
fn public_key(
    pem: &[u8],
    named: Option<Algorithm>,
) -> Result<(DecodingKey, Algorithm), JwtSetupError> {
    use jsonwebtoken::AlgorithmFamily as Family;
    let by_family = |family: Family| match family {
        Family::Rsa => DecodingKey::from_rsa_pem(pem).ok(),
        Family::Ec => DecodingKey::from_ec_pem(pem).ok(),
        Family::Ed => DecodingKey::from_ed_pem(pem).ok(),
        Family::Hmac => None,
    };
    match named {
        Some(algorithm) if algorithm.family() == Family::Hmac => Err(JwtSetupError::Algorithm(
            format!("{algorithm:?} needs LONGHAUL_JWT_HS256_SECRET, not a public key"),
        )),
        Some(algorithm) => by_family(algorithm.family())
            .map(|key| (key, algorithm))
            .ok_or(JwtSetupError::Key),
        None => [
            (Family::Rsa, Algorithm::RS256),
            (Family::Ec, Algorithm::ES256),
            (Family::Ed, Algorithm::EdDSA),
        ]
        .into_iter()
        .find_map(|(family, algorithm)| by_family(family).map(|key| (key, algorithm)))
        .ok_or(JwtSetupError::Key),
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::*;

    const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(&JwtConfig {
            key: JwtKey::Hs256Secret(SECRET.into()),
            algorithm: None,
            audience: "longhaul".into(),
            issuer: "https://auth.example.com".into(),
        })
        .unwrap()
    }

    fn token(claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn claims() -> serde_json::Value {
        json!({"tenant": "acme", "aud": "longhaul", "iss": "https://auth.example.com",
               "exp": now() + 300, "scope": "jobs:read jobs:write unknown:scope"})
    }

    #[test]
    fn a_valid_token_gives_its_tenant_and_known_scopes() {
        let verified = verifier().verify(&token(claims())).unwrap();
        assert_eq!(verified.tenant.as_str(), "acme");
        assert_eq!(verified.scopes, [Scope::JobsRead, Scope::JobsWrite]);
        let mut c = claims();
        c.as_object_mut().unwrap().remove("scope");
        c["scopes"] = json!(["jobs:read"]);
        assert_eq!(
            verifier().verify(&token(c)).unwrap().scopes,
            [Scope::JobsRead]
        );
    }

    #[test]
    fn bad_tokens_are_rejected() {
        let v = verifier();
        let with = |key: &str, value: serde_json::Value| {
            let mut c = claims();
            if value.is_null() {
                c.as_object_mut().unwrap().remove(key);
            } else {
                c[key] = value;
            }
            token(c)
        };
        for (case, bad) in [
            ("expired", with("exp", json!(now() - 120))),
            ("not yet valid", with("nbf", json!(now() + 120))),
            ("wrong audience", with("aud", json!("someone-else"))),
            (
                "wrong issuer",
                with("iss", json!("https://evil.example.com")),
            ),
            ("no tenant", with("tenant", json!(null))),
            ("bad tenant", with("tenant", json!("has spaces"))),
            ("no exp", with("exp", json!(null))),
            ("no aud", with("aud", json!(null))),
        ] {
            assert!(v.verify(&bad).is_none(), "{case}");
        }
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes"),
        )
        .unwrap();
        assert!(v.verify(&forged).is_none(), "bad signature");
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &claims(),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        assert!(v.verify(&hs512).is_none(), "another algorithm");
        assert!(v.verify("not.a.jwt").is_none());
    }

    /// Test-only key pairs (generated with openssl for these tests).
    const EC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgv45ysKFrH3I+MrCv
ATVaKMDBDbg1GZK//Zss7XkABx6hRANCAAQmXe/3XLTavVCwZwD2okDihpXAWu/d
cyVmLHXnC8pZVWU8trW2BnV6w0f5wVTXTZz6YCEC8ki5X/Q0lN6ujLui
-----END PRIVATE KEY-----
";
    const EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEJl3v91y02r1QsGcA9qJA4oaVwFrv
3XMlZix15wvKWVVlPLa1tgZ1esNH+cFU102c+mAhAvJIuV/0NJTeroy7og==
-----END PUBLIC KEY-----
";
    const ED_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIDAt5N+YQM+LHoYjldnPYZ14f2V6+ZHdtN65efSs46Me
-----END PRIVATE KEY-----
";
    const ED_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEA44nPPWy2PnL9/JDkMGYrghQxO/0gc4jLeiPTzkw/cRQ=
-----END PUBLIC KEY-----
";

    #[test]
    fn a_public_key_picks_its_algorithm_from_its_type() {
        for (public, private, algorithm) in [
            (EC_PUBLIC, EC_PRIVATE, Algorithm::ES256),
            (ED_PUBLIC, ED_PRIVATE, Algorithm::EdDSA),
        ] {
            let verifier = JwtVerifier::new(&JwtConfig {
                key: JwtKey::PublicKeyPem(public.to_owned()),
                algorithm: None,
                audience: "longhaul".into(),
                issuer: "https://auth.example.com".into(),
            })
            .unwrap();
            let signing = match algorithm {
                Algorithm::ES256 => EncodingKey::from_ec_pem(private.as_bytes()),
                _ => EncodingKey::from_ed_pem(private.as_bytes()),
            }
            .unwrap();
            let token = encode(&Header::new(algorithm), &claims(), &signing).unwrap();
            let verified = verifier
                .verify(&token)
                .expect("a token signed with the pair");
            assert_eq!(verified.tenant.as_str(), "acme", "{algorithm:?}");
            // An HS256 token signed with the public key as a secret (alg confusion) fails.
            let confused = encode(
                &Header::new(Algorithm::HS256),
                &claims(),
                &EncodingKey::from_secret(public.as_bytes()),
            )
            .unwrap();
            assert!(verifier.verify(&confused).is_none(), "{algorithm:?}");
        }
        // A named algorithm must fit the key.
        let mismatched = JwtConfig {
            key: JwtKey::PublicKeyPem(EC_PUBLIC.to_owned()),
            algorithm: Some("RS256".into()),
            audience: "a".into(),
            issuer: "i".into(),
        };
        assert!(JwtVerifier::new(&mismatched).is_err());
    }

    #[test]
    fn a_key_that_does_not_fit_the_algorithm_is_a_setup_error() {
        let config = |key: JwtKey, algorithm: Option<&str>| JwtConfig {
            key,
            algorithm: algorithm.map(str::to_owned),
            audience: "a".into(),
            issuer: "i".into(),
        };
        assert!(
            JwtVerifier::new(&config(JwtKey::Hs256Secret(SECRET.into()), Some("RS256"))).is_err()
        );
        assert!(
            JwtVerifier::new(&config(JwtKey::Hs256Secret(SECRET.into()), Some("XY999"))).is_err()
        );
        assert!(JwtVerifier::new(&config(JwtKey::PublicKeyPem("not a key".into()), None)).is_err());
        assert!(
            JwtVerifier::new(&config(
                JwtKey::PublicKeyPem("not a key".into()),
                Some("HS256")
            ))
            .is_err()
        );
    }
}
