//! The `api-version` query parameter.

use crate::error::ArmError;

/// `YYYY-MM-DD` with an optional `-preview`/`-privatepreview`/`-beta` suffix.
pub fn is_well_formed(v: &str) -> bool {
    let (date, suffix) = match v.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&v[..i.saturating_sub(1)], &v[i..]),
        None => (v, ""),
    };
    let parts: Vec<&str> = date.split('-').collect();
    parts.len() == 3
        && parts[0].len() == 4
        && parts[1].len() == 2
        && parts[2].len() == 2
        && parts.iter().all(|p| p.chars().all(|c| c.is_ascii_digit()))
        && (suffix.is_empty() || suffix.chars().all(|c| c.is_ascii_alphanumeric()))
}

pub fn missing() -> ArmError {
    ArmError::bad_request(
        "MissingApiVersionParameter",
        "The api-version query parameter (?api-version=) is required for all requests.",
    )
}

pub fn invalid(v: &str, supported: &[&str]) -> ArmError {
    ArmError::bad_request(
        "InvalidApiVersionParameter",
        format!(
            "The api-version '{v}' is invalid. The supported versions are '{}'.",
            supported.join(",")
        ),
    )
}

/// An api-version the resource type does not serve (ARM's wording).
pub fn unsupported(v: &str, resource_type: &str, location: &str, supported: &[&str]) -> ArmError {
    ArmError::bad_request(
        "NoRegisteredProviderFound",
        format!(
            "No registered resource provider found for location '{location}' and API version '{v}' for type '{}'. The supported api-versions are '{}'.",
            resource_type.split_once('/').map(|x| x.1).unwrap_or(resource_type),
            supported.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert!(is_well_formed("2025-04-01"));
        assert!(is_well_formed("2024-06-01-preview"));
        assert!(!is_well_formed("2025-4-01"));
        assert!(!is_well_formed("latest"));
        assert!(!is_well_formed(""));
    }
}
