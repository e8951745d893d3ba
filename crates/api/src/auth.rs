//! Who is calling: API keys (stored as SHA-256 digests) or JWT bearer
//! tokens from an identity provider; scopes `read`, `watch`, `admin`; rate
//! limits per key and per client address.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use shelfwatch_store::PgPool;
use shelfwatch_store::access;

use super::error::{ApiError, ApiResult};
use super::{App, AppState};
use crate::notify::Heard;
use shelfwatch_runtime::Secret;

/// What a credential may do. `admin` includes `watch`, which includes `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Read,
    Watch,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Watch => "watch",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "read" => Some(Scope::Read),
            "watch" => Some(Scope::Watch),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    fn grants(self, wanted: Scope) -> bool {
        match self {
            Scope::Admin => true,
            Scope::Watch => matches!(wanted, Scope::Watch | Scope::Read),
            Scope::Read => wanted == Scope::Read,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `key:<id>` or `jwt:<subject>`: owns watches, appears in the audit log.
    pub id: String,
    pub scopes: Vec<Scope>,
}

impl Principal {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| s.grants(scope))
    }
}

/// The caller of this request, if it presented a credential.
#[derive(Debug, Clone, Default)]
pub struct Caller(pub Option<Principal>);

impl Caller {
    /// A credential with `scope`: 401 without one, 403 with too little.
    pub fn require(&self, scope: Scope) -> ApiResult<&Principal> {
        match &self.0 {
            None => Err(ApiError::unauthorized(format!(
                "this needs an API key (X-Api-Key or Authorization: Bearer) or a bearer token \
                 with scope {}",
                scope.as_str()
            ))),
            Some(p) if !p.has(scope) => Err(ApiError::forbidden(format!(
                "this credential lacks scope {}",
                scope.as_str()
            ))),
            Some(p) => Ok(p),
        }
    }

    /// Reads are open unless `api.require_key_for_reads` is set.
    pub fn require_read(&self, app: &App) -> ApiResult<()> {
        if !app.settings.require_key_for_reads {
            return Ok(());
        }
        self.require(Scope::Read).map(|_| ())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or_default())
    }
}

/// `[api.jwt]`: bearer tokens from an identity provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// Expected `iss`.
    pub issuer: String,
    /// Expected `aud`.
    pub audience: String,
    /// Shared secret for HS256 tokens.
    pub hs256_secret: Option<Secret>,
    /// PEM public key for RS256 tokens.
    pub rs256_public_key_pem: Option<String>,
    /// Claim holding the scopes: a space-separated string or an array.
    #[serde(default = "default_scope_claim")]
    pub scope_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_scope_claim() -> String {
    "scope".to_owned()
}

fn default_leeway() -> u64 {
    30
}

/// The shortest HS256 secret accepted: the hash's output size (RFC 7518
/// section 3.2 asks for at least this many bytes).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// The smallest RS256 key accepted (RFC 7518 section 3.3).
pub const MIN_RSA_BITS: usize = 2048;

/// The modulus size of an RSA public key in PEM, SPKI (`BEGIN PUBLIC KEY`)
/// or PKCS#1 (`BEGIN RSA PUBLIC KEY`).
fn rsa_key_bits(pem: &str) -> anyhow::Result<usize> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::traits::PublicKeyParts;
    let pem = pem.trim();
    let key = rsa::RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(key.size() * 8)
}

/// Why a bearer token was refused, in the API's words (the library's
/// messages name its own types and parser).
fn token_refused(kind: &jsonwebtoken::errors::ErrorKind) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "it has expired".to_owned(),
        K::ImmatureSignature => "it is not valid yet (nbf)".to_owned(),
        K::InvalidSignature => "its signature does not verify".to_owned(),
        K::InvalidAlgorithm | K::InvalidAlgorithmName => {
            "it is not signed with the algorithm this API accepts".to_owned()
        }
        K::InvalidIssuer => "it is from another issuer".to_owned(),
        K::InvalidAudience => "it is for another audience".to_owned(),
        K::InvalidSubject => "it has the wrong subject".to_owned(),
        K::MissingRequiredClaim(claim) => format!("it lacks the {claim:?} claim"),
        _ => "it is not a well-formed JWT".to_owned(),
    }
}

struct JwtVerifier {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    scope_claim: String,
}

impl JwtVerifier {
    fn new(s: &JwtSettings) -> anyhow::Result<Self> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        let (key, alg) = match (&s.hs256_secret, &s.rs256_public_key_pem) {
            (Some(secret), None) => {
                let secret = secret.expose().as_bytes();
                if secret.len() < MIN_HS256_SECRET_BYTES {
                    bail!(
                        "api.jwt.hs256_secret is {} bytes; it must be at least \
                         {MIN_HS256_SECRET_BYTES} random bytes, or anyone could guess it \
                         and sign their own tokens",
                        secret.len()
                    );
                }
                (DecodingKey::from_secret(secret), Algorithm::HS256)
            }
            (None, Some(pem)) => {
                let bits = rsa_key_bits(pem)
                    .context("api.jwt.rs256_public_key_pem is not an RSA public key in PEM")?;
                if bits < MIN_RSA_BITS {
                    bail!(
                        "api.jwt.rs256_public_key_pem is a {bits}-bit RSA key; \
                         it must be at least {MIN_RSA_BITS} bits"
                    );
                }
                (
                    DecodingKey::from_rsa_pem(pem.as_bytes())
                        .context("api.jwt.rs256_public_key_pem is not an RSA public key in PEM")?,
                    Algorithm::RS256,
                )
            }
            _ => bail!("api.jwt needs exactly one of hs256_secret and rs256_public_key_pem"),
        };
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&s.issuer]);
        validation.set_audience(&[&s.audience]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = s.leeway_secs;
        validation.required_spec_claims = ["exp", "sub", "iss", "aud"]
            .into_iter()
            .map(String::from)
            .collect();
        Ok(Self {
            key,
            validation,
            scope_claim: s.scope_claim.clone(),
        })
    }

    fn verify(&self, token: &str) -> Result<Principal, String> {
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &self.key,
            &self.validation,
        )
        .map_err(|e| format!("bearer token refused: {}", token_refused(e.kind())))?;
        let claims = data.claims;
        let sub = claims
            .get("sub")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or("bearer token has no subject")?;
        let scopes = match claims.get(&self.scope_claim) {
            Some(serde_json::Value::String(s)) => {
                s.split_whitespace().filter_map(Scope::parse).collect()
            }
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_str().and_then(Scope::parse))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Principal {
            id: format!("jwt:{sub}"),
            scopes,
        })
    }
}

/// API keys start with this, so a bearer credential is known to be a key
/// rather than a token at a glance.
pub const KEY_PREFIX: &str = "sw_";

/// How long a checked key is trusted before it is looked up again. A
/// revocation reaches the cache at once through `LISTEN/NOTIFY`
/// ([`Authenticator::follow_revocations`]); this only bounds how long an
/// entry lives.
const KEY_CACHE_TTL: Duration = Duration::from_secs(30);

/// Entries kept before the cache is emptied.
const KEY_CACHE_MAX: usize = 10_000;

/// Checked API keys by digest. Keys are cached only while revocations are
/// being heard (`live`); every change that could make an entry stale bumps
/// `generation`, and a lookup that began under an older generation is not
/// cached (it may have read the key just before its revocation).
#[derive(Default)]
struct KeyCache {
    live: bool,
    generation: u64,
    keys: HashMap<[u8; 32], (Principal, Instant)>,
}

pub struct Authenticator {
    pool: PgPool,
    jwt: Option<JwtVerifier>,
    cache: Mutex<KeyCache>,
}

impl Authenticator {
    pub fn new(pool: PgPool, jwt: Option<&JwtSettings>) -> anyhow::Result<Self> {
        Ok(Self {
            pool,
            jwt: jwt.map(JwtVerifier::new).transpose()?,
            cache: Mutex::new(KeyCache::default()),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, KeyCache> {
        match self.cache.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Forgets every cached key; `live` says whether revocations are heard
    /// from now on (if not, nothing is cached until they are).
    fn reset_cache(&self, live: bool) {
        let mut cache = self.cache();
        cache.keys.clear();
        cache.generation += 1;
        cache.live = live;
    }

    /// Forgets the cached key with this id.
    fn forget_key(&self, id: i64) {
        let principal = format!("key:{id}");
        let mut cache = self.cache();
        cache.keys.retain(|_, (p, _)| p.id != principal);
        cache.generation += 1;
    }

    /// Drops each key from the cache the moment it is revoked, in this
    /// process or any other, until `stop` resolves. While the subscription
    /// is down (the database away), keys are not cached; when it is back,
    /// the cache starts empty, as revocations may have been missed.
    pub async fn follow_revocations(&self, stop: impl std::future::Future<Output = ()>) {
        crate::notify::follow(
            &self.pool,
            access::KEY_REVOCATIONS,
            "key revocations",
            stop,
            |heard| match heard {
                Heard::Live => self.reset_cache(true),
                Heard::Note(payload) => match payload.parse() {
                    Ok(id) => self.forget_key(id),
                    Err(_) => tracing::warn!(payload, "ignoring a malformed key revocation"),
                },
                Heard::Lost => self.reset_cache(false),
            },
        )
        .await;
    }

    /// The caller's principal from `X-Api-Key` or `Authorization: Bearer`;
    /// None without a credential, 401 with a bad one.
    pub async fn authenticate(&self, headers: &HeaderMap) -> ApiResult<Option<Principal>> {
        let bad = |m: &str| ApiError::unauthorized(m.to_owned());
        let credential = if let Some(value) = headers.get(header::AUTHORIZATION) {
            let value = value
                .to_str()
                .map_err(|_| bad("unreadable Authorization header"))?;
            let (scheme, token) = value
                .split_once(' ')
                .ok_or_else(|| bad("Authorization must be `Bearer <key or token>`"))?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(bad("Authorization must be `Bearer <key or token>`"));
            }
            token.trim().to_owned()
        } else if let Some(value) = headers.get("x-api-key") {
            value
                .to_str()
                .map_err(|_| bad("unreadable X-Api-Key header"))?
                .trim()
                .to_owned()
        } else {
            return Ok(None);
        };
        if credential.starts_with(KEY_PREFIX) {
            return self.api_key(&credential).await.map(Some);
        }
        match &self.jwt {
            Some(jwt) => jwt.verify(&credential).map(Some).map_err(|m| bad(&m)),
            None => Err(bad("unknown API key")),
        }
    }

    async fn api_key(&self, key: &str) -> ApiResult<Principal> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let generation = {
            let cache = self.cache();
            if cache.live
                && let Some((p, at)) = cache.keys.get(&digest)
                && at.elapsed() < KEY_CACHE_TTL
            {
                return Ok(p.clone());
            }
            cache.generation
        };
        let Some(row) = access::key_by_digest(&self.pool, &digest).await? else {
            return Err(ApiError::unauthorized("unknown or revoked API key"));
        };
        let principal = Principal {
            id: format!("key:{}", row.id),
            scopes: row.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
        };
        let mut cache = self.cache();
        if cache.live && cache.generation == generation {
            if cache.keys.len() >= KEY_CACHE_MAX {
                cache.keys.clear();
            }
            cache
                .keys
                .insert(digest, (principal.clone(), Instant::now()));
        }
        Ok(principal)
    }
}

/// Creates an API key; returns its id and the key, which is not stored and
/// cannot be shown again.
pub async fn create_key(
    pool: &PgPool,
    name: &str,
    scopes: &[Scope],
) -> anyhow::Result<(i64, String)> {
    if name.trim().is_empty() {
        bail!("the key needs a name");
    }
    if scopes.is_empty() {
        bail!("the key needs at least one scope (read, watch, admin)");
    }
    let raw: [u8; 32] = rand::random();
    let key = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
    let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
    let scope_names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    let prefix = &key[..KEY_PREFIX.len() + 6];
    let id = access::insert_key(pool, name.trim(), prefix, &digest, &scope_names)
        .await
        .context("storing the API key")?;
    Ok((id, key))
}

/// Reads `read,watch,admin`.
pub fn parse_scopes(text: &str) -> Result<Vec<Scope>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let scope = Scope::parse(part)
            .ok_or_else(|| format!("unknown scope {part:?}: use read, watch, admin"))?;
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    if out.is_empty() {
        return Err("give at least one scope: read, watch, admin".into());
    }
    Ok(out)
}

/// The client's address, the key of per-address limits.
fn client_ip(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A 429 for `limit`, counted in the metrics.
fn limited(limit: &str, wait: Duration) -> Response {
    super::http_metrics::rate_limited(limit);
    ApiError::too_many_requests(wait.as_secs_f64().ceil() as u64).into_response()
}

/// The per-address limit alone, for routes without credentials outside
/// `/v1` (the OpenAPI document and its UI).
pub async fn ip_limit(State(app): State<AppState>, req: Request, next: Next) -> Response {
    if let Err(wait) = app.ip_limiter.check(&client_ip(&req)) {
        return limited("ip", wait);
    }
    next.run(req).await
}

/// Rate limits and authentication for `/v1`. A caller without a
/// credential is limited per client address; a caller with a valid one per
/// key (so many clients behind one address each get their key's share).
/// Failed credentials are limited per address too, and an address out of
/// those tokens is refused before its next credential reaches the database.
pub async fn layer(State(app): State<AppState>, mut req: Request, next: Next) -> Response {
    let ip = client_ip(&req);
    let has_credential = req.headers().contains_key(header::AUTHORIZATION)
        || req.headers().contains_key("x-api-key");
    if !has_credential {
        if let Err(wait) = app.ip_limiter.check(&ip) {
            return limited("ip", wait);
        }
        req.extensions_mut().insert(Caller(None));
        return next.run(req).await;
    }
    if let Err(wait) = app.auth_failure_limiter.peek(&ip) {
        return limited("auth_failures", wait);
    }
    let principal = match app.auth.authenticate(req.headers()).await {
        Ok(p) => p,
        Err(e) => {
            let _ = app.auth_failure_limiter.check(&ip);
            return e.into_response();
        }
    };
    if let Some(p) = &principal
        && let Err(wait) = app.key_limiter.check(&p.id)
    {
        return limited("key", wait);
    }
    req.extensions_mut().insert(Caller(principal));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_nest() {
        assert!(Scope::Admin.grants(Scope::Watch));
        assert!(Scope::Watch.grants(Scope::Read));
        assert!(!Scope::Watch.grants(Scope::Admin));
        assert!(!Scope::Read.grants(Scope::Watch));
        assert_eq!(
            parse_scopes("read, watch").unwrap(),
            vec![Scope::Read, Scope::Watch]
        );
        assert!(parse_scopes("read,root").is_err());
        assert!(parse_scopes("").is_err());
    }

    const RSA_1024_SPKI: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCVvERfV8DOakayn3ZxFqGh4WnD
3sTCeXQKS2FhG9BQxUYh847KjGeONTmUqocFvN4T2dfkZAh3rqw/wvDEYAsmPsdR
FuQdvgc86bxgkTz+WkJFeF/FGTXHtchZfXN0CkXo56iOMP/n0zJF1sv4DVu43seK
nmKdpyPidG8y/bibCwIDAQAB
-----END PUBLIC KEY-----";

    const RSA_2048_PKCS1: &str = "-----BEGIN RSA PUBLIC KEY-----
MIIBCgKCAQEAoB4APDZqQEULCPKWXiWwwYKk2NIMLOR3ZvfNMIwMgJHdZI06/ETy
vQ4dL5kT+D46IWolRsoyM7qU6XHCzUJMCsn85jIwkKW17DK/+SF/ApQZybSbE0h8
xoSXRCLw3N85zeXIP49uWT0nNYpyoqn3XpdY1nHrq0U8CNCfRUBOaeMcgS/KJ9si
wtf5RoZKIzixaQwyK5HA14Uto5Tf3Vzg/rJiU/TtR5f0sWKb5QRDx4V19JZ1IkQJ
4L3wTs49WTcPF6UQVwTctsJji+419IDLxbWE/o5tMvacsXZQKofu9BhZ3QwkEjl6
SW3aC5yNfb9iKUrc9ziFGh2E5tCcZC/3FwIDAQAB
-----END RSA PUBLIC KEY-----";

    fn jwt(hs256: Option<&str>, rs256: Option<&str>) -> JwtSettings {
        JwtSettings {
            issuer: "https://idp.example".into(),
            audience: "shelfwatch".into(),
            hs256_secret: hs256.map(Secret::new),
            rs256_public_key_pem: rs256.map(str::to_owned),
            scope_claim: default_scope_claim(),
            leeway_secs: 0,
        }
    }

    fn refusal(s: &JwtSettings) -> String {
        match JwtVerifier::new(s) {
            Ok(_) => panic!("accepted"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn short_hs256_secrets_are_refused() {
        for short in ["", "hunter2", &"x".repeat(MIN_HS256_SECRET_BYTES - 1)] {
            let e = refusal(&jwt(Some(short), None));
            assert!(e.contains("api.jwt.hs256_secret"), "{e}");
            assert!(e.contains("at least 32"), "{e}");
        }
        assert!(JwtVerifier::new(&jwt(Some(&"x".repeat(MIN_HS256_SECRET_BYTES)), None)).is_ok());
    }

    #[test]
    fn small_or_broken_rs256_keys_are_refused() {
        let e = refusal(&jwt(None, Some(RSA_1024_SPKI)));
        assert!(e.contains("api.jwt.rs256_public_key_pem"), "{e}");
        assert!(e.contains("1024-bit"), "{e}");
        let e = refusal(&jwt(
            None,
            Some("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"),
        ));
        assert!(e.contains("api.jwt.rs256_public_key_pem"), "{e}");
        assert!(JwtVerifier::new(&jwt(None, Some(RSA_2048_PKCS1))).is_ok());
    }
}
