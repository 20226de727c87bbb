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

/// A venue has at most this many sections: stalls, circle, balconies, boxes…
pub const MAX_SECTIONS: usize = 20;
/// Seats in a whole venue, however many sections: as many as the largest single grid.
pub const MAX_SEATS: i64 = MAX_ROWS * MAX_COLS;
/// The section a `{rows, cols}` venue is: its only one.
pub const DEFAULT_SECTION: &str = "Main";

/// A section's name: 1 to 100 characters once trimmed, unique in its venue (ignoring case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionName(String);

impl SectionName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        bounded_text("a section's name", raw, 100).map(SectionName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The 1-based index of a row label within its section (A → 1, AA → 27): the inverse of
/// [`super::row_label`], for labels as the API writes them (capital letters only).
pub fn row_number(label: &str) -> Option<u32> {
    if label.is_empty() || label.len() > 3 || !label.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    Some(
        label
            .bytes()
            .fold(0, |n, b| n * 26 + u32::from(b - b'A') + 1),
    )
}

/// One section of a venue: its own grid of rows (A, B, … within it) and seats, and the places in
/// it kept for wheelchairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    name: SectionName,
    layout: VenueLayout,
    /// (row within the section from 1, seat number), in the order given.
    accessible: Vec<(u32, i32)>,
}

impl Section {
    /// `accessible` names wheelchair places as (row label, seat number); each must be a seat of
    /// this section, named once.
    pub fn parse(
        name: &str,
        rows: i64,
        cols: i64,
        accessible: &[(&str, i64)],
    ) -> Result<Self, Invalid> {
        let name = SectionName::parse(name)?;
        let layout = VenueLayout::parse(rows, cols)
            .map_err(|Invalid(why)| Invalid(format!("section {:?}: {why}", name.as_str())))?;
        let mut places = Vec::with_capacity(accessible.len());
        for &(row, number) in accessible {
            let place = row_number(row)
                .filter(|r| *r as i32 <= layout.rows())
                .zip(Some(number).filter(|n| (1..=i64::from(layout.cols())).contains(n)))
                .map(|(r, n)| (r, n as i32))
                .ok_or_else(|| {
                    Invalid(format!(
                        "section {:?} has no seat {row:?} {number} for a wheelchair place: its \
                         rows are A to {} and its seats 1 to {}",
                        name.as_str(),
                        super::row_label(layout.rows() as u32),
                        layout.cols()
                    ))
                })?;
            if places.contains(&place) {
                return Err(Invalid(format!(
                    "section {:?} lists wheelchair place {row} {number} twice",
                    name.as_str()
                )));
            }
            places.push(place);
        }
        Ok(Section {
            name,
            layout,
            accessible: places,
        })
    }

    pub fn name(&self) -> &SectionName {
        &self.name
    }

    pub fn layout(&self) -> VenueLayout {
        self.layout
    }

    /// The wheelchair places as (row label, seat number).
    pub fn accessible(&self) -> impl Iterator<Item = (String, i32)> + '_ {
        self.accessible
            .iter()
            .map(|&(row, number)| (super::row_label(row), number))
    }

    fn seats(&self) -> i64 {
        i64::from(self.layout.rows()) * i64::from(self.layout.cols())
    }
}

/// A venue's seat map: its sections, front to back, each a grid of its own. The venue counts
/// rows straight through its sections (the first section's rows, then the next's), which is how
/// seats are stored (`seats.row_index`); labels start again at A in each section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatMap {
    sections: Vec<Section>,
}

impl SeatMap {
    /// A `{rows, cols}` venue: one section, [`DEFAULT_SECTION`].
    pub fn one_grid(layout: VenueLayout) -> Self {
        SeatMap {
            sections: vec![Section {
                name: SectionName(DEFAULT_SECTION.to_owned()),
                layout,
                accessible: Vec::new(),
            }],
        }
    }

    /// 1 to [`MAX_SECTIONS`] sections with distinct names (ignoring case) and at most
    /// [`MAX_SEATS`] seats in all.
    pub fn parse(sections: Vec<Section>) -> Result<Self, Invalid> {
        if sections.is_empty() {
            return Err(Invalid("a venue needs at least one section".to_owned()));
        }
        if sections.len() > MAX_SECTIONS {
            return Err(Invalid(format!(
                "a venue may have at most {MAX_SECTIONS} sections, {} were given",
                sections.len()
            )));
        }
        for (i, section) in sections.iter().enumerate() {
            let name = section.name.as_str();
            if sections[..i]
                .iter()
                .any(|earlier| earlier.name.as_str().to_lowercase() == name.to_lowercase())
            {
                return Err(Invalid(format!(
                    "section names must be unique in a venue: {name:?} is given twice"
                )));
            }
        }
        let seats: i64 = sections.iter().map(Section::seats).sum();
        if seats > MAX_SEATS {
            return Err(Invalid(format!(
                "a venue may have at most {MAX_SEATS} seats in all, these sections have {seats}"
            )));
        }
        Ok(SeatMap { sections })
    }

    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// Rows in the whole venue.
    pub fn rows(&self) -> i32 {
        self.sections.iter().map(|s| s.layout.rows()).sum()
    }

    /// Seats in the widest row.
    pub fn widest(&self) -> i32 {
        self.sections
            .iter()
            .map(|s| s.layout.cols())
            .max()
            .unwrap_or_default()
    }

    /// Each section's first row as the venue counts rows, from 1, in section order.
    pub fn first_rows(&self) -> Vec<i32> {
        self.sections
            .iter()
            .scan(1, |next, section| {
                let first = *next;
                *next += section.layout.rows();
                Some(first)
            })
            .collect()
    }

    /// For each row of the venue in order: its label (within its section) and its seats.
    pub fn venue_rows(&self) -> (Vec<String>, Vec<i32>) {
        self.sections
            .iter()
            .flat_map(|s| {
                s.layout
                    .row_labels()
                    .into_iter()
                    .map(move |label| (label, s.layout.cols()))
            })
            .unzip()
    }

    /// The wheelchair places as (venue row, seat number).
    pub fn accessible_places(&self) -> (Vec<i32>, Vec<i32>) {
        self.sections
            .iter()
            .zip(self.first_rows())
            .flat_map(|(s, first)| {
                s.accessible
                    .iter()
                    .map(move |&(row, number)| (first + row as i32 - 1, number))
            })
            .unzip()
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

    #[test]
    fn row_labels_read_back_to_their_numbers() {
        for n in [1, 2, 26, 27, 52, 200, 703] {
            assert_eq!(row_number(&crate::domain::row_label(n)), Some(n));
        }
        for bad in ["", "a", "A1", "ÄB", "ABCD", " A"] {
            assert_eq!(row_number(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_section_names_only_its_own_seats_as_wheelchair_places() {
        let stalls = Section::parse("Stalls", 3, 4, &[("A", 1), ("C", 4)]).unwrap();
        assert_eq!(
            stalls.accessible().collect::<Vec<_>>(),
            [("A".to_owned(), 1), ("C".to_owned(), 4)]
        );
        for place in [("D", 1), ("A", 5), ("A", 0), ("a", 1), ("", 1)] {
            assert!(
                Section::parse("Stalls", 3, 4, &[place]).is_err(),
                "{place:?}"
            );
        }
        assert!(Section::parse("Stalls", 3, 4, &[("A", 1), ("A", 1)]).is_err());
        assert!(Section::parse(" ", 3, 4, &[]).is_err());
        assert!(Section::parse("Stalls", 0, 4, &[]).is_err());
    }

    #[test]
    fn a_seat_map_counts_rows_through_its_sections_front_to_back() {
        let map = SeatMap::parse(vec![
            Section::parse("Stalls", 2, 3, &[("B", 2)]).unwrap(),
            Section::parse("Circle", 3, 5, &[("A", 1)]).unwrap(),
        ])
        .unwrap();
        assert_eq!((map.rows(), map.widest()), (5, 5));
        assert_eq!(map.first_rows(), [1, 3]);
        let (labels, cols) = map.venue_rows();
        assert_eq!(labels, ["A", "B", "A", "B", "C"]);
        assert_eq!(cols, [3, 3, 5, 5, 5]);
        assert_eq!(map.accessible_places(), (vec![2, 3], vec![2, 1]));
    }

    #[test]
    fn section_names_are_unique_ignoring_case_and_the_venue_is_bounded() {
        let section = |name: &str| Section::parse(name, 1, 1, &[]).unwrap();
        assert!(SeatMap::parse(vec![section("Stalls"), section("stalls")]).is_err());
        assert!(SeatMap::parse(vec![]).is_err());
        assert!(SeatMap::parse(
            (0..=MAX_SECTIONS)
                .map(|i| section(&i.to_string()))
                .collect()
        )
        .is_err());
        let big = || Section::parse("x", MAX_ROWS, MAX_COLS, &[]).unwrap();
        let mut bigger = big();
        bigger.name = SectionName("y".to_owned());
        assert!(SeatMap::parse(vec![big(), bigger]).is_err());
        let one = SeatMap::one_grid(VenueLayout::parse(2, 2).unwrap());
        assert_eq!(one.sections()[0].name().as_str(), DEFAULT_SECTION);
    }
}
