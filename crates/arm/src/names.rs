//! ARM naming rules. Each resource type states its rule once, here or in its
//! provider, and every write checks it before anything is stored.

use crate::error::ArmError;

#[derive(Debug, Clone, Copy)]
pub struct NameRule {
    pub min: usize,
    pub max: usize,
    pub allowed: fn(char) -> bool,
    pub first: fn(char) -> bool,
    pub last: fn(char) -> bool,
    /// The rule in words, for the error message.
    pub description: &'static str,
}

impl NameRule {
    pub fn check(&self, kind: &str, name: &str) -> Result<(), ArmError> {
        let n = name.chars().count();
        let ok = n >= self.min
            && n <= self.max
            && name.chars().all(self.allowed)
            && name.chars().next().is_some_and(self.first)
            && name.chars().last().is_some_and(self.last);
        if ok {
            Ok(())
        } else {
            Err(ArmError::bad_request(
                "InvalidResourceName",
                format!("The {kind} name '{name}' is invalid. {}", self.description),
            ))
        }
    }
}

fn any(_: char) -> bool {
    true
}

fn rg_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '(' | ')' | '-' | '.')
}

fn not_period(c: char) -> bool {
    c != '.'
}

fn alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

fn alnum_dash_underscore(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

pub const RESOURCE_GROUP: NameRule = NameRule {
    min: 1,
    max: 90,
    allowed: rg_char,
    first: any,
    last: not_period,
    description: "Resource group names are 1-90 characters of letters, digits, underscores, parentheses, hyphens and periods, and cannot end in a period.",
};

pub const USER_ASSIGNED_IDENTITY: NameRule = NameRule {
    min: 3,
    max: 128,
    allowed: alnum_dash_underscore,
    first: alnum,
    last: any,
    description: "User-assigned identity names are 3-128 characters of letters, digits, hyphens and underscores, starting with a letter or digit.",
};

/// Characters no ARM resource name may contain, whatever its type.
pub fn check_generic(kind: &str, name: &str) -> Result<(), ArmError> {
    let bad = name.chars().any(|c| {
        matches!(
            c,
            '<' | '>' | '%' | '&' | ':' | '\\' | '?' | '/' | '*' | '#'
        ) || c.is_control()
    });
    if name.is_empty() || name.len() > 260 || bad || name.ends_with('.') || name.ends_with(' ') {
        return Err(ArmError::bad_request(
            "InvalidResourceName",
            format!(
                "The {kind} name '{name}' is invalid. Names cannot be empty, longer than 260 characters, end with a period or space, or contain < > % & : \\ ? / * # or control characters."
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_group_rule() {
        assert!(RESOURCE_GROUP
            .check("resource group", "my-rg_(1).x")
            .is_ok());
        assert!(RESOURCE_GROUP.check("resource group", "ends.").is_err());
        assert!(RESOURCE_GROUP.check("resource group", "").is_err());
        assert!(RESOURCE_GROUP
            .check("resource group", &"a".repeat(91))
            .is_err());
        assert!(RESOURCE_GROUP.check("resource group", "has space").is_err());
    }

    #[test]
    fn identity_rule() {
        assert!(USER_ASSIGNED_IDENTITY.check("identity", "id-1").is_ok());
        assert!(USER_ASSIGNED_IDENTITY.check("identity", "-x1").is_err());
        assert!(USER_ASSIGNED_IDENTITY.check("identity", "ab").is_err());
    }
}
