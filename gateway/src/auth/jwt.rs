//! `auth.jwt`: verifying a bearer JWT (signature, `alg`, `exp`, `nbf`, `iss`, `aud`) with
//! jsonwebtoken, then mapping its claims through `claims_mapping.rs`.
//!
//! Keys are read once, at load time. Choosing which credential to verify is `builtin.rs`'s job.

use std::fmt;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use policies::ConfigError;
use serde_json::{Value, json};

use super::claims_mapping::ClaimsMapping;
use super::config_fields::{Fields, Problems};
use super::{AuthFailure, Verified};

/// Default allowance, in seconds, for clock skew on `exp` and `nbf`.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// The largest `leeway_secs`: an hour of skew is a broken clock, and a larger value would
/// overflow jsonwebtoken's `now - leeway`.
const MAX_LEEWAY_SECS: u64 = 3_600;

const KEYS: &[&str] = &[
    "algorithms",
    "secret",
    "secret_file",
    "secret_base64",
    "public_key",
    "public_key_file",
    "issuer",
    "audience",
    "leeway_secs",
    "require_exp",
    "claims",
];

const SUPPORTED: &str =
    "HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";

/// A compiled `jwt:` block.
pub(crate) struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    mapping: ClaimsMapping,
}

impl fmt::Debug for JwtVerifier {
    /// Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("key", &"<redacted>")
            .field("algorithms", &self.validation.algorithms)
            .field("issuer", &self.validation.iss)
            .field("audience", &self.validation.aud)
            .field("leeway_secs", &self.validation.leeway)
            .field("mapping", &self.mapping)
            .finish()
    }
}

impl JwtVerifier {
    /// Compiles the `jwt:` block found at `path`.
    pub(super) fn from_config(value: &Value, path: &str, problems: &mut Problems) -> Option<Self> {
        let before = problems.len();
        let fields = Fields::new(value, path, KEYS, problems)?;
        let algorithms = algorithms(&fields, problems);
        let key = algorithms
            .as_deref()
            .and_then(|algorithms| decoding_key(&fields, algorithms, problems));
        let issuer = fields.strings("issuer", problems);
        let audience = fields.strings("audience", problems);
        let leeway = fields
            .u64("leeway_secs", problems)
            .unwrap_or(DEFAULT_LEEWAY_SECS);
        if leeway > MAX_LEEWAY_SECS {
            problems.push(ConfigError::new(
                fields.key_path("leeway_secs"),
                format!("at most {MAX_LEEWAY_SECS}"),
            ));
        }
        let require_exp = fields.bool("require_exp", problems).unwrap_or(true);
        let mapping = match fields.get("claims") {
            Some(claims) => {
                ClaimsMapping::from_config(claims, &fields.key_path("claims"), problems)
            }
            None => Some(ClaimsMapping::default()),
        };
        let (Some(algorithms), Some(key), Some(mapping)) = (algorithms, key, mapping) else {
            return None;
        };
        if problems.len() != before {
            return None;
        }

        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = algorithms;
        validation.leeway = leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.required_spec_claims.clear();
        if require_exp {
            validation.required_spec_claims.insert("exp".to_owned());
        }
        if let Some(issuer) = issuer {
            validation.set_issuer(&issuer);
            validation.required_spec_claims.insert("iss".to_owned());
        }
        // Without a configured audience, `aud` is not checked (jsonwebtoken would otherwise
        // refuse every token that carries one).
        match audience {
            Some(audience) => {
                validation.set_audience(&audience);
                validation.required_spec_claims.insert("aud".to_owned());
            }
            None => validation.validate_aud = false,
        }
        Some(Self {
            key,
            validation,
            mapping,
        })
    }

    /// Verifies a token and maps its claims.
    ///
    /// # Errors
    /// A bad signature, a disallowed algorithm, failed time / issuer / audience checks, a
    /// malformed token, or claims that do not fit the mapping. Messages never hold the token.
    pub(super) fn verify(&self, token: &str) -> Result<Verified, AuthFailure> {
        let data = jsonwebtoken::decode::<Value>(token, &self.key, &self.validation)
            .map_err(|error| AuthFailure(failure_message(error.kind())))?;
        let claims = data.claims;
        if !claims.is_object() {
            return Err(AuthFailure("malformed token".to_owned()));
        }
        let result = self.mapping.apply(&claims)?;
        let subject = claims.get("sub").and_then(Value::as_str).map(str::to_owned);
        Ok(Verified {
            identity: json!({ "kind": "jwt", "subject": subject, "claims": claims }),
            result,
        })
    }
}

/// A short message for a verification error; never holds the token.
fn failure_message(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "token expired".to_owned(),
        ErrorKind::ImmatureSignature => "token not yet valid (nbf)".to_owned(),
        ErrorKind::InvalidIssuer => "token issuer not accepted".to_owned(),
        ErrorKind::InvalidAudience => "token audience not accepted".to_owned(),
        ErrorKind::InvalidSignature => "invalid token signature".to_owned(),
        ErrorKind::InvalidAlgorithm => "token algorithm not allowed".to_owned(),
        // The claim names come from our own validation settings.
        ErrorKind::MissingRequiredClaim(claim) => format!("token has no {claim} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("token claim {claim} is malformed"),
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "malformed token".to_owned(),
        _ => "invalid token".to_owned(),
    }
}

fn algorithms(fields: &Fields<'_>, problems: &mut Problems) -> Option<Vec<Algorithm>> {
    let at = fields.key_path("algorithms");
    let Some(names) = fields.strings("algorithms", problems) else {
        if !fields.has("algorithms") {
            problems.push(ConfigError::new(
                at,
                format!("required: list the accepted algorithms ({SUPPORTED})"),
            ));
        }
        return None;
    };
    let mut algorithms = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        match name.parse::<Algorithm>() {
            Ok(algorithm) => algorithms.push(algorithm),
            Err(_) => problems.push(ConfigError::new(
                format!("{at}[{i}]"),
                format!("unknown algorithm '{name}': expected one of {SUPPORTED}"),
            )),
        }
    }
    if algorithms.len() != names.len() {
        return None;
    }
    let first = algorithms.first()?.family();
    if algorithms.iter().any(|a| a.family() != first) {
        problems.push(ConfigError::new(
            at,
            "all algorithms must be of one family (HS*, RS*/PS*, ES* or EdDSA): one key verifies them all",
        ));
        return None;
    }
    Some(algorithms)
}

fn decoding_key(
    fields: &Fields<'_>,
    algorithms: &[Algorithm],
    problems: &mut Problems,
) -> Option<DecodingKey> {
    let family = algorithms.first()?.family();
    let (wanted, unwanted): (&[&str], &[&str]) = if family == AlgorithmFamily::Hmac {
        (
            &["secret", "secret_file"],
            &["public_key", "public_key_file"],
        )
    } else {
        (
            &["public_key", "public_key_file"],
            &["secret", "secret_file", "secret_base64"],
        )
    };
    for key in unwanted {
        if fields.has(key) {
            problems.push(ConfigError::new(
                fields.key_path(key),
                format!(
                    "not used with {}: give {}",
                    family_name(family),
                    wanted.join(" or ")
                ),
            ));
        }
    }
    let key = match family {
        AlgorithmFamily::Hmac => secret_key(fields, problems)?,
        _ => public_key(fields, family, problems)?,
    };
    // Build a verifier for each algorithm once now, so that a key that cannot verify them
    // (a P-384 key for ES256, a private key) fails at load time, not on every upgrade.
    for algorithm in algorithms {
        if jsonwebtoken::crypto::verify("AAAA", b"probe", &key, *algorithm).is_err() {
            let source = wanted
                .iter()
                .find(|k| fields.has(k))
                .map_or_else(|| fields.path().to_owned(), |k| fields.key_path(k));
            problems.push(ConfigError::new(
                source,
                format!("the key cannot verify {algorithm:?} tokens"),
            ));
            return None;
        }
    }
    Some(key)
}

fn family_name(family: AlgorithmFamily) -> &'static str {
    match family {
        AlgorithmFamily::Hmac => "HS* algorithms",
        AlgorithmFamily::Rsa => "RS*/PS* algorithms",
        AlgorithmFamily::Ec => "ES* algorithms",
        AlgorithmFamily::Ed => "EdDSA",
    }
}

/// `secret` or `secret_file`, optionally base64 (`secret_base64: true`).
fn secret_key(fields: &Fields<'_>, problems: &mut Problems) -> Option<DecodingKey> {
    let base64 = fields.bool("secret_base64", problems).unwrap_or(false);
    let (at, bytes) = match (fields.has("secret"), fields.has("secret_file")) {
        (true, true) => {
            problems.push(ConfigError::new(
                fields.path(),
                "give secret or secret_file, not both",
            ));
            return None;
        }
        (false, false) => {
            problems.push(ConfigError::new(
                fields.path(),
                "HS* algorithms need secret or secret_file",
            ));
            return None;
        }
        (true, false) => {
            let secret = fields.non_empty_string("secret", problems)?;
            (fields.key_path("secret"), secret.as_bytes().to_vec())
        }
        (false, true) => {
            let (_, mut bytes) = fields.file("secret_file", problems)?;
            // `echo secret > file` adds a line ending nobody means as part of the secret.
            for ending in [b'\n', b'\r'] {
                if bytes.last() == Some(&ending) {
                    bytes.pop();
                }
            }
            (fields.key_path("secret_file"), bytes)
        }
    };
    let key = if base64 {
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| DecodingKey::from_base64_secret(text.trim()).ok())
            .ok_or("is not valid base64 (secret_base64: true)")
    } else {
        DecodingKey::from_secret(&bytes).map_err(|_| "must not be empty")
    };
    key.map_err(|problem| problems.push(ConfigError::new(at, problem)))
        .ok()
}

/// `public_key` (PEM text) or `public_key_file`.
fn public_key(
    fields: &Fields<'_>,
    family: AlgorithmFamily,
    problems: &mut Problems,
) -> Option<DecodingKey> {
    let (at, pem, file) = match (fields.has("public_key"), fields.has("public_key_file")) {
        (true, true) => {
            problems.push(ConfigError::new(
                fields.path(),
                "give public_key or public_key_file, not both",
            ));
            return None;
        }
        (false, false) => {
            problems.push(ConfigError::new(
                fields.path(),
                format!("{} need public_key or public_key_file", family_name(family)),
            ));
            return None;
        }
        (true, false) => {
            let pem = fields.non_empty_string("public_key", problems)?;
            (fields.key_path("public_key"), pem.as_bytes().to_vec(), None)
        }
        (false, true) => {
            let (name, bytes) = fields.file("public_key_file", problems)?;
            (fields.key_path("public_key_file"), bytes, Some(name))
        }
    };
    let (parsed, kind) = match family {
        AlgorithmFamily::Rsa => (DecodingKey::from_rsa_pem(&pem), "an RSA"),
        AlgorithmFamily::Ec => (DecodingKey::from_ec_pem(&pem), "an EC"),
        AlgorithmFamily::Ed => (DecodingKey::from_ed_pem(&pem), "an Ed25519"),
        AlgorithmFamily::Hmac => return None,
    };
    parsed
        .map_err(|_| {
            let place = file.map(|name| format!(" ({name})")).unwrap_or_default();
            problems.push(ConfigError::new(
                at,
                format!("not {kind} public key in PEM{place}"),
            ));
        })
        .ok()
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
