use super::Invalid;

/// The identity provider's subject for a person (Cognito `sub`, or the dev header locally).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let ok = !raw.is_empty() && raw.len() <= 128 && raw.chars().all(|c| c.is_ascii_graphic());
        if ok {
            Ok(UserId(raw.to_owned()))
        } else {
            Err(Invalid(
                "a user id is 1 to 128 visible ASCII characters".to_owned(),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_visible_ascii_of_bounded_length() {
        assert!(UserId::parse("5f1c-aa").is_ok());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("has space").is_err());
        assert!(UserId::parse(&"x".repeat(129)).is_err());
    }
}
