//! Built-in authentication under a listener's `auth:` key (JWT and API keys), checked before
//! `rbac.auth_function_id`. Never logs tokens, keys or Authorization headers.
//!
//! ```yaml
//! auth:
//!   jwt:
//!     algorithms: [HS256]          # required; one family: HS256/384/512, RS256/384/512 and
//!                                  # PS256/384/512, ES256/384, or EdDSA
//!     secret: ${JWT_SECRET}        # HS*: secret or secret_file (one trailing newline dropped);
//!     secret_base64: false         #   secret_base64: true decodes either as standard base64
//!     public_key_file: /etc/k.pem  # RS*/PS*/ES*/EdDSA: public_key (PEM text) or public_key_file
//!     issuer: https://issuer       # optional, string or list; when set, iss is required
//!     audience: [my-app]           # optional, string or list; when set, aud is required,
//!                                  #   when unset aud is not checked
//!     leeway_secs: 30              # clock skew allowed on exp and nbf (default 30, max 3600)
//!     require_exp: true            # default true: a token without exp is refused
//!     claims:                      # optional mapping to an AuthResult (see below)
//!       allowed_functions: claims.fns
//!       function_registration_prefix: claims.tenant
//!       context: { sub: claims.sub, tenant: claims.tenant }
//!   api_keys:
//!     keys:                        # inline list and/or keys_file (a YAML or JSON list of
//!       - id: partner-a            #   the same entries), read at load time
//!         sha256: "<64 hex>"       # printf %s KEY | sha256sum
//!         result: { allowed_functions: [api::x], context: { partner: a } }
//!     keys_file: /etc/iii/api-keys.yaml
//! ```
//!
//! - Values from the environment are written `${VAR}` (expanded in the config text); each
//!   `*_file` is read once, at load time, and a read error names the file.
//! - Unknown keys at any level, `auth:` with neither `jwt` nor `api_keys`, a malformed
//!   `sha256`, duplicate key ids or hashes, and AuthResult fields of the wrong type are config
//!   errors naming their key path.
//! - `nbf` is checked when present. The token's `alg` must be listed in `algorithms`.
//! - `claims:` has the shape of an AuthResult. A string `claims` or `claims.a.b` is a path
//!   into the verified claims (`claims.roles.0` indexes a list); other values are literals;
//!   maps and lists are walked. A missing or null claim leaves its key (or list element) out,
//!   and an absent AuthResult field takes the AuthResult default. Without `claims:` the
//!   mapping is `{context: {sub: claims.sub}}`. A claim of the wrong type refuses the token.
//! - An API key entry without `result:` maps to `{context: {key_id: <id>}}`.
//! - Where credentials are read, in order: the `x-api-key` header, then the `api_key` query
//!   parameter (both only with `api_keys`), then `Authorization: Bearer <token>`, which is
//!   verified as a JWT when `jwt` is configured and the token has three dot-separated segments
//!   (or `api_keys` is not configured), and as an API key otherwise. A JWT-shaped bearer that
//!   fails is refused; it is not retried as an API key.
//! - Presented API keys are hashed with SHA-256 and compared with every stored hash in
//!   constant time.
//! - A verified caller gets an `identity`: `{kind: "jwt", subject: <sub or null>, claims}` or
//!   `{kind: "api_key", subject: <id>, key_id: <id>}`. The listener passes it, with the
//!   AuthInput, to `rbac.auth_function_id` when one is set (whose AuthResult then wins);
//!   otherwise the built-in's AuthResult is the session's. A failure is `AUTH_ERROR` + 1008,
//!   with a short message that never holds the credential.

mod api_keys;
mod builtin;
mod claims_mapping;
mod config_fields;
mod jwt;
mod result_shape;
#[cfg(test)]
mod test_files;

pub use api_keys::sha256_hex;
pub use builtin::{AuthFailure, BuiltinAuth, Credentials, Verified};
pub use jwt::DEFAULT_LEEWAY_SECS;
