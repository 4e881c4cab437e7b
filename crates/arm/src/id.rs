//! ARM resource paths.
//!
//! A request path is a *scope* (tenant, subscription, resource group or any
//! resource) optionally followed by `providers/{namespace}/{type}/{name}/...`.
//! Extension resources (role assignments, for example) hang off any scope, so
//! the provider part is the one after the **last** `providers` segment.

use crate::error::ArmError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderPart {
    /// The namespace as the client spelled it.
    pub namespace: String,
    /// How many leading path segments form the scope the provider part hangs off.
    pub scope_len: usize,
    /// Resource type segments after the namespace (`vaults`, `privateEndpointConnections`, …).
    pub types: Vec<String>,
    /// Names for the leading types; `names.len()` is `types.len()` (a resource)
    /// or `types.len() - 1` (a collection, or an action such as `register`).
    pub names: Vec<String>,
}

impl ProviderPart {
    pub fn is_resource(&self) -> bool {
        !self.types.is_empty() && self.names.len() == self.types.len()
    }
    pub fn is_collection(&self) -> bool {
        self.names.len() + 1 == self.types.len()
    }
    /// `Microsoft.X/a/b` for every type segment.
    pub fn full_type(&self) -> String {
        let mut s = self.namespace.clone();
        for t in &self.types {
            s.push('/');
            s.push_str(t);
        }
        s
    }
    /// The type path without the namespace, `a/b`.
    pub fn type_path(&self) -> String {
        self.types.join("/")
    }
    pub fn name(&self) -> Option<&str> {
        if self.is_resource() {
            self.names.last().map(String::as_str)
        } else {
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// Percent-decoded, non-empty segments.
    pub segments: Vec<String>,
    pub subscription: Option<String>,
    pub resource_group: Option<String>,
    pub provider: Option<ProviderPart>,
}

impl ResourcePath {
    pub fn parse(path: &str) -> Result<ResourcePath, ArmError> {
        let mut segments = Vec::new();
        for raw in path.split('/') {
            if raw.is_empty() {
                continue;
            }
            let seg = percent_encoding::percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| {
                    ArmError::bad_request(
                        "InvalidRequestUri",
                        "The request path is not valid UTF-8.",
                    )
                })?
                .into_owned();
            segments.push(seg);
        }
        let subscription = match segments.first() {
            Some(s) if s.eq_ignore_ascii_case("subscriptions") => segments.get(1).cloned(),
            _ => None,
        };
        let resource_group = if subscription.is_some()
            && segments
                .get(2)
                .is_some_and(|s| s.eq_ignore_ascii_case("resourcegroups"))
        {
            segments.get(3).cloned()
        } else {
            None
        };
        let provider = segments
            .iter()
            .rposition(|s| s.eq_ignore_ascii_case("providers"))
            .filter(|&i| i + 1 < segments.len())
            .map(|i| {
                let rest = &segments[i + 2..];
                let mut types = Vec::new();
                let mut names = Vec::new();
                for (k, s) in rest.iter().enumerate() {
                    if k % 2 == 0 {
                        types.push(s.clone());
                    } else {
                        names.push(s.clone());
                    }
                }
                ProviderPart {
                    namespace: segments[i + 1].clone(),
                    scope_len: i,
                    types,
                    names,
                }
            });
        Ok(ResourcePath {
            segments,
            subscription,
            resource_group,
            provider,
        })
    }

    /// Joins the first `n` segments as an id (`/a/b/c`).
    pub fn prefix(&self, n: usize) -> String {
        join(&self.segments[..n.min(self.segments.len())])
    }

    /// The whole path as an id.
    pub fn id(&self) -> String {
        join(&self.segments)
    }

    /// The scope a provider part hangs off (`/subscriptions/s/resourceGroups/rg`, …).
    pub fn scope(&self) -> String {
        match &self.provider {
            Some(p) => self.prefix(p.scope_len),
            None => self.id(),
        }
    }

    /// For a collection or action path, the id of the resource it belongs to.
    pub fn parent_id(&self) -> String {
        self.prefix(self.segments.len().saturating_sub(1))
    }

    /// The resource group's id, when the path is inside one.
    pub fn resource_group_id(&self) -> Option<String> {
        self.resource_group.as_ref().map(|_| self.prefix(4))
    }

    pub fn is_subscription_scope(&self) -> bool {
        self.segments.len() == 2 && self.subscription.is_some()
    }
}

pub fn join(segments: &[String]) -> String {
    let mut s = String::new();
    for seg in segments {
        s.push('/');
        s.push_str(seg);
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

/// The case-folded key under which a resource id is stored.
pub fn key(id: &str) -> String {
    id.trim_end_matches('/').to_ascii_lowercase()
}

/// Whether `scope` contains `id` (equal, or an ancestor on a segment boundary).
pub fn scope_contains(scope: &str, id: &str) -> bool {
    let s = key(scope);
    let i = key(id);
    s.is_empty()
        || s == "/"
        || i == s
        || (i.starts_with(&s) && i.as_bytes().get(s.len()) == Some(&b'/'))
}

pub fn resource_group_id(subscription: &str, rg: &str) -> String {
    format!("/subscriptions/{subscription}/resourceGroups/{rg}")
}

/// Splits a full ARM id back into a path (used for ids found inside bodies).
pub fn parse_id(id: &str) -> Option<ResourcePath> {
    if !id.starts_with('/') {
        return None;
    }
    ResourcePath::parse(id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_extension_resource() {
        let p = ResourcePath::parse(
            "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u/providers/Microsoft.Authorization/roleAssignments/a1",
        )
        .unwrap();
        assert_eq!(p.subscription.as_deref(), Some("s1"));
        assert_eq!(p.resource_group.as_deref(), Some("rg"));
        let pp = p.provider.as_ref().unwrap();
        assert_eq!(pp.namespace, "Microsoft.Authorization");
        assert_eq!(pp.types, vec!["roleAssignments"]);
        assert!(pp.is_resource());
        assert_eq!(
            p.scope(),
            "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u"
        );
    }

    #[test]
    fn collection_and_action_paths() {
        let p =
            ResourcePath::parse("/subscriptions/s/providers/Microsoft.RecoveryServices/register")
                .unwrap();
        let pp = p.provider.unwrap();
        assert!(pp.is_collection());
        assert_eq!(pp.types, vec!["register"]);
        let p = ResourcePath::parse("/subscriptions/s/resourcegroups/x%20y").unwrap();
        assert_eq!(p.resource_group.as_deref(), Some("x y"));
        assert!(p.provider.is_none());
    }

    #[test]
    fn scope_containment_is_segment_aware_and_case_insensitive() {
        assert!(scope_contains(
            "/subscriptions/S",
            "/subscriptions/s/resourceGroups/a"
        ));
        assert!(!scope_contains(
            "/subscriptions/s/resourceGroups/a",
            "/subscriptions/s/resourceGroups/ab"
        ));
        assert!(scope_contains("/", "/subscriptions/s"));
    }
}
