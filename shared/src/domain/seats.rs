use super::Invalid;
use std::collections::HashSet;

/// A booking may take at most this many seats: enough for a group, too few to hoard a venue.
pub const MAX_SEATS_PER_BOOKING: usize = 10;

/// The seats one booking asks for: 1 to 10 distinct seat ids, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatSelection(Vec<i64>);

impl SeatSelection {
    pub fn parse(seat_ids: Vec<i64>) -> Result<Self, Invalid> {
        if seat_ids.is_empty() {
            return Err(Invalid("seat_ids must name at least one seat".to_owned()));
        }
        if seat_ids.len() > MAX_SEATS_PER_BOOKING {
            return Err(Invalid(format!(
                "a booking may take at most {MAX_SEATS_PER_BOOKING} seats, {} were requested",
                seat_ids.len()
            )));
        }
        let mut seen = HashSet::with_capacity(seat_ids.len());
        if let Some(dup) = seat_ids.iter().find(|id| !seen.insert(**id)) {
            return Err(Invalid(format!("seat {dup} is listed more than once")));
        }
        Ok(SeatSelection(seat_ids))
    }

    pub fn ids(&self) -> &[i64] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The label of the 1-based row `index`: 1 → A, 26 → Z, 27 → AA, 28 → AB, 703 → AAA.
pub fn row_label(index: u32) -> String {
    assert!(index > 0, "rows are numbered from 1");
    let mut n = index;
    let mut label = Vec::new();
    while n > 0 {
        n -= 1;
        label.push(b'A' + (n % 26) as u8);
        n /= 26;
    }
    label.reverse();
    String::from_utf8(label).expect("ASCII letters")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_is_one_to_ten_distinct_seats() {
        assert!(SeatSelection::parse(vec![]).is_err());
        assert!(SeatSelection::parse(vec![1, 2, 1]).is_err());
        assert!(SeatSelection::parse((1..=11).collect()).is_err());
        assert_eq!(SeatSelection::parse((1..=10).collect()).unwrap().len(), 10);
    }

    #[test]
    fn rows_are_labelled_like_a_spreadsheet() {
        let labels: Vec<String> = [1, 2, 26, 27, 28, 52, 53, 702, 703].map(row_label).into();
        assert_eq!(labels, ["A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"]);
    }
}
