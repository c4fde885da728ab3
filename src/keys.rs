//! API keys: how HTTP callers say who they are. A key maps to a principal (name, role,
//! attributes); only its SHA-256 hash is stored, and the key is shown once, when created.
//!
//! Keys are 32 random bytes from the operating system's generator, so a single fast hash is
//! enough to make the stored value useless to whoever reads the database (there is nothing to
//! brute-force, unlike a password).

use std::collections::BTreeMap;

use rand::TryRngCore;
use sha2::{Digest, Sha256};

use crate::metadata::{AuditKind, AuditRecord, Metadata, MetadataError, NewKey, Outcome, StoredKey};
use crate::policy::{PolicySet, Principal};

/// Every key starts with this, so leaked keys are easy to find by secret scanners.
pub const KEY_PREFIX: &str = "qk_";

/// Errors while managing or checking keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The role is not one of the configured roles.
    #[error("role '{role}' is not defined; defined roles: {defined}")]
    UnknownRole { role: String, defined: String },
    /// The key name is empty or has characters that would be confusing in the audit log.
    #[error("key name '{0}' is not usable: use 1 to 64 letters, digits, '.', '_', '-' or '@'")]
    BadName(String),
    /// The operating system's random generator failed.
    #[error("cannot generate a key: {0}")]
    Random(String),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// Why a request's credentials were not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no API key: send the header 'Authorization: Bearer <key>'; create a key with `quarry keys create --role analyst --name <you>`")]
    Missing,
    #[error("the Authorization header is not 'Bearer <key>'")]
    Malformed,
    #[error("the API key is not valid (unknown or revoked); ask an admin for a new one")]
    Invalid,
}

/// The SHA-256 of a key, as stored.
pub fn hash(key: &str) -> String {
    format!("{:x}", Sha256::digest(key.as_bytes()))
}

fn is_key_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Creates a key for a new principal; returns the stored key and the key itself (shown once).
pub fn create(
    metadata: &Metadata,
    policies: &PolicySet,
    name: &str,
    role: &str,
    attributes: BTreeMap<String, String>,
    created_by: &str,
) -> Result<(StoredKey, String), KeyError> {
    if !is_key_name(name) {
        return Err(KeyError::BadName(name.to_string()));
    }
    if policies.get(role).is_none() {
        return Err(KeyError::UnknownRole {
            role: role.to_string(),
            defined: policies.roles().map(|p| p.role().to_string()).collect::<Vec<_>>().join(", "),
        });
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("{KEY_PREFIX}{secret}");
    let new = NewKey {
        name: name.to_string(),
        role: role.to_string(),
        attributes: attributes.clone(),
        prefix: key.chars().take(KEY_PREFIX.len() + 6).collect(),
        hash: hash(&key),
        created_by: created_by.to_string(),
    };
    let audit = key_audit(
        created_by,
        "key_created",
        name,
        serde_json::json!({ "role": role, "attributes": attributes }),
    );
    let stored = metadata.create_key(&new, &audit)?;
    Ok((stored, key))
}

/// Demo keys are named `demo-<role>`.
pub const DEMO_KEY_PREFIX: &str = "demo-";

/// One key per configured role for the demo (`demo-analyst`, `demo-steward`, ...), replacing
/// earlier demo keys. Every demo principal has `country=DE`, which the regional role's row
/// filters read.
pub fn create_demo_keys(
    metadata: &Metadata,
    policies: &PolicySet,
) -> Result<Vec<(StoredKey, String)>, KeyError> {
    let mut created = Vec::new();
    for policy in policies.roles() {
        let name = format!("{DEMO_KEY_PREFIX}{}", policy.role());
        revoke(metadata, &name, "quarry-demo")?;
        let attributes = BTreeMap::from([("country".to_string(), "DE".to_string())]);
        created.push(create(metadata, policies, &name, policy.role(), attributes, "quarry-demo")?);
    }
    Ok(created)
}

/// Revokes the active key named `name`; false when there is none.
pub fn revoke(metadata: &Metadata, name: &str, revoked_by: &str) -> Result<bool, KeyError> {
    let audit = key_audit(revoked_by, "key_revoked", name, serde_json::json!({}));
    Ok(metadata.revoke_key(name, &audit)?)
}

fn key_audit(by: &str, action: &str, name: &str, extra: serde_json::Value) -> AuditRecord {
    let mut detail = serde_json::json!({ "action": action, "key": name });
    if let (Some(detail), serde_json::Value::Object(extra)) = (detail.as_object_mut(), extra) {
        detail.extend(extra);
    }
    AuditRecord {
        principal: by.to_string(),
        role: "admin".to_string(),
        kind: AuditKind::Edit,
        question: None,
        sql: None,
        outcome: Outcome::Answered,
        row_count: None,
        duration_ms: 0,
        detail,
    }
}

/// The principal of an `Authorization` header value.
pub fn authenticate(metadata: &Metadata, header: Option<&str>) -> Result<Principal, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let key = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(AuthError::Malformed)?;
    if !key.starts_with(KEY_PREFIX) {
        return Err(AuthError::Invalid);
    }
    match metadata.active_key(&hash(key)) {
        Ok(Some(stored)) => {
            Ok(Principal { name: stored.name, role: stored.role, attributes: stored.attributes })
        }
        Ok(None) => Err(AuthError::Invalid),
        Err(e) => {
            tracing::error!("reading API keys: {e}");
            Err(AuthError::Invalid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_authenticate_until_revoked_and_only_hashes_are_stored() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let db = dir.path().join("quarry.db");
        let metadata = Metadata::open(&db).unwrap_or_else(|e| panic!("{e}"));
        let policies = PolicySet::default();
        let attrs = BTreeMap::from([("country".to_string(), "DE".to_string())]);
        let (stored, key) = create(&metadata, &policies, "ana", "analyst", attrs.clone(), "test")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(key.starts_with(KEY_PREFIX) && key.len() == KEY_PREFIX.len() + 64);
        assert!(key.starts_with(&stored.prefix));

        let principal =
            authenticate(&metadata, Some(&format!("Bearer {key}"))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((principal.name.as_str(), principal.role.as_str()), ("ana", "analyst"));
        assert_eq!(principal.attributes, attrs);
        assert_eq!(authenticate(&metadata, None), Err(AuthError::Missing));
        assert_eq!(authenticate(&metadata, Some(&key)), Err(AuthError::Malformed));
        assert_eq!(authenticate(&metadata, Some("Bearer qk_00")), Err(AuthError::Invalid));

        let again = create(&metadata, &policies, "ana", "analyst", BTreeMap::new(), "test");
        assert!(matches!(again, Err(KeyError::Metadata(MetadataError::KeyNameTaken(_)))), "{again:?}");
        let unknown = create(&metadata, &policies, "bob", "wizard", BTreeMap::new(), "test");
        assert!(matches!(unknown, Err(KeyError::UnknownRole { .. })), "{unknown:?}");
        assert!(matches!(
            create(&metadata, &policies, "a b", "analyst", BTreeMap::new(), "t"),
            Err(KeyError::BadName(_))
        ));

        assert!(revoke(&metadata, "ana", "test").unwrap_or_else(|e| panic!("{e}")));
        assert!(!revoke(&metadata, "ana", "test").unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(authenticate(&metadata, Some(&format!("Bearer {key}"))), Err(AuthError::Invalid));

        let secret = key.as_bytes();
        for file in std::fs::read_dir(dir.path()).into_iter().flatten().flatten() {
            let raw = std::fs::read(file.path()).unwrap_or_default();
            assert!(!raw.windows(secret.len()).any(|w| w == secret), "the key is in {:?}", file.path());
        }
    }
}
