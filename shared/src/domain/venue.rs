use super::{bounded_text, Invalid};

/// Rows and seats per row are capped so one request cannot generate an unbounded seat map.
pub const MAX_ROWS: i64 = 200;
pub const MAX_COLS: i64 = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueName(String);

impl VenueName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        bounded_text("name", raw, 200).map(VenueName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A rectangular seat map: `rows` rows (A, B, …) of `cols` seats numbered from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VenueLayout {
    rows: i32,
    cols: i32,
}

impl VenueLayout {
    pub fn parse(rows: i64, cols: i64) -> Result<Self, Invalid> {
        if !(1..=MAX_ROWS).contains(&rows) {
            return Err(Invalid(format!(
                "rows must be between 1 and {MAX_ROWS}, got {rows}"
            )));
        }
        if !(1..=MAX_COLS).contains(&cols) {
            return Err(Invalid(format!(
                "cols must be between 1 and {MAX_COLS}, got {cols}"
            )));
        }
        Ok(VenueLayout {
            rows: rows as i32,
            cols: cols as i32,
        })
    }

    pub fn rows(&self) -> i32 {
        self.rows
    }

    pub fn cols(&self) -> i32 {
        self.cols
    }

    /// Row labels in order, A first.
    pub fn row_labels(&self) -> Vec<String> {
        (1..=self.rows as u32).map(super::row_label).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_must_have_a_bounded_positive_size() {
        assert!(VenueLayout::parse(5, 10).is_ok());
        for (r, c) in [
            (0, 10),
            (5, 0),
            (-1, 3),
            (MAX_ROWS + 1, 1),
            (1, MAX_COLS + 1),
        ] {
            assert!(VenueLayout::parse(r, c).is_err(), "{r}x{c}");
        }
    }

    #[test]
    fn venue_names_are_trimmed_and_bounded() {
        assert_eq!(VenueName::parse("  Hall  ").unwrap().as_str(), "Hall");
        assert!(VenueName::parse("   ").is_err());
        assert!(VenueName::parse(&"x".repeat(201)).is_err());
    }
}
