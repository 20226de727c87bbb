use super::venue::row_number;
use super::{bounded_text, row_label, Invalid, PriceCents};

/// The category of every seat that no price category covers, at the event's `price_cents`.
pub const STANDARD: &str = "Standard";
/// An event has at most this many price categories.
pub const MAX_CATEGORIES: usize = 50;

/// A price category's name: 1 to 100 characters once trimmed, unique in its event (ignoring
/// case), and not [`STANDARD`], which names the seats no category covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryName(String);

impl CategoryName {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = bounded_text("a category's name", raw, 100)?;
        if name.eq_ignore_ascii_case(STANDARD) {
            return Err(Invalid(format!(
                "{STANDARD:?} names the seats no category covers, at the event's price_cents: \
                 choose another name for a category"
            )));
        }
        Ok(CategoryName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A section of the event's venue as categories name it: its name, and its rows as the venue
/// counts them (`first_row` and the `rows` after it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VenueSection {
    pub name: String,
    pub first_row: i32,
    pub rows: i32,
}

/// A category as the organizer wrote it: a name, a price, a section and maybe some of its rows
/// (`None`: the whole section).
#[derive(Debug, Clone, Copy)]
pub struct CategoryRequest<'a> {
    pub name: &'a str,
    pub price_cents: i64,
    pub section: &'a str,
    pub rows: Option<&'a [String]>,
}

/// One price category, checked against the venue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceCategory {
    name: CategoryName,
    price: PriceCents,
    section: String,
    /// As given; `None`: the whole section.
    rows: Option<Vec<String>>,
    /// The rows it covers, as the venue counts them.
    covers: Vec<i32>,
}

impl PriceCategory {
    pub fn name(&self) -> &CategoryName {
        &self.name
    }

    pub fn price(&self) -> PriceCents {
        self.price
    }

    pub fn section(&self) -> &str {
        &self.section
    }

    pub fn rows(&self) -> Option<&[String]> {
        self.rows.as_deref()
    }
}

/// An event's price categories, in the order given: a seat is in the first category that covers
/// its row, and in [`STANDARD`] when none does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceCategories(Vec<PriceCategory>);

impl PriceCategories {
    /// Up to [`MAX_CATEGORIES`] categories with distinct names (ignoring case), each naming a
    /// section of `venue` and, if it lists rows, rows that section has, each once.
    pub fn parse(
        requested: &[CategoryRequest<'_>],
        venue: &[VenueSection],
    ) -> Result<Self, Invalid> {
        if requested.len() > MAX_CATEGORIES {
            return Err(Invalid(format!(
                "an event may have at most {MAX_CATEGORIES} price categories, {} were given",
                requested.len()
            )));
        }
        let mut categories: Vec<PriceCategory> = Vec::with_capacity(requested.len());
        for request in requested {
            let name = CategoryName::parse(request.name)?;
            if categories
                .iter()
                .any(|c| c.name.as_str().to_lowercase() == name.as_str().to_lowercase())
            {
                return Err(Invalid(format!(
                    "price category names must be unique in an event: {:?} is given twice",
                    name.as_str()
                )));
            }
            let price = PriceCents::parse(request.price_cents)
                .map_err(|Invalid(why)| Invalid(format!("category {:?}: {why}", name.as_str())))?;
            let wanted = request.section.trim();
            let section = venue.iter().find(|s| s.name == wanted).ok_or_else(|| {
                let names: Vec<&str> = venue.iter().map(|s| s.name.as_str()).collect();
                Invalid(format!(
                    "category {:?} names section {wanted:?}, which the venue does not have \
                     (its sections: {})",
                    name.as_str(),
                    names.join(", ")
                ))
            })?;
            let covers = match request.rows {
                None => (section.first_row..section.first_row + section.rows).collect(),
                Some(rows) => section_rows(name.as_str(), section, rows)?,
            };
            categories.push(PriceCategory {
                name,
                price,
                section: section.name.clone(),
                rows: request.rows.map(<[String]>::to_vec),
                covers,
            });
        }
        Ok(PriceCategories(categories))
    }

    pub fn categories(&self) -> &[PriceCategory] {
        &self.0
    }

    /// (venue row, category position from 1) for every row a category covers, the first cover
    /// winning; rows left out are [`STANDARD`].
    pub fn row_categories(&self) -> (Vec<i32>, Vec<i32>) {
        let mut assigned: Vec<(i32, i32)> = Vec::new();
        for (position, category) in (1..).zip(&self.0) {
            for &row in &category.covers {
                if !assigned.iter().any(|(r, _)| *r == row) {
                    assigned.push((row, position));
                }
            }
        }
        assigned.sort_unstable();
        assigned.into_iter().unzip()
    }
}

/// The venue rows of `section` that `rows` (labels within the section) name.
fn section_rows(
    category: &str,
    section: &VenueSection,
    rows: &[String],
) -> Result<Vec<i32>, Invalid> {
    if rows.is_empty() {
        return Err(Invalid(format!(
            "category {category:?} lists no rows: leave rows out to cover the whole section"
        )));
    }
    let mut covers = Vec::with_capacity(rows.len());
    for label in rows {
        let row = row_number(label)
            .map(|n| n as i32)
            .filter(|n| *n <= section.rows)
            .ok_or_else(|| {
                Invalid(format!(
                    "category {category:?} names row {label:?}, which section {:?} does not \
                     have (its rows are A to {})",
                    section.name,
                    row_label(section.rows as u32)
                ))
            })?;
        let row = section.first_row + row - 1;
        if covers.contains(&row) {
            return Err(Invalid(format!(
                "category {category:?} lists row {label} twice"
            )));
        }
        covers.push(row);
    }
    Ok(covers)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn venue() -> Vec<VenueSection> {
        vec![
            VenueSection {
                name: "Stalls".into(),
                first_row: 1,
                rows: 3,
            },
            VenueSection {
                name: "Circle".into(),
                first_row: 4,
                rows: 2,
            },
        ]
    }

    fn category<'a>(
        name: &'a str,
        section: &'a str,
        rows: Option<&'a [String]>,
    ) -> CategoryRequest<'a> {
        CategoryRequest {
            name,
            price_cents: 1000,
            section,
            rows,
        }
    }

    #[test]
    fn the_first_category_covering_a_row_wins_and_uncovered_rows_are_left_out() {
        let front = ["A".to_owned()];
        let categories = PriceCategories::parse(
            &[
                category("Front", "Stalls", Some(&front)),
                category("Stalls", "Stalls", None),
            ],
            &venue(),
        )
        .unwrap();
        // Rows 1 (Stalls A) in Front, 2 and 3 in Stalls; the Circle's 4 and 5 are Standard.
        assert_eq!(categories.row_categories(), (vec![1, 2, 3], vec![1, 2, 2]));
        let circle_b = ["B".to_owned()];
        let circle =
            PriceCategories::parse(&[category("Back", "Circle", Some(&circle_b))], &venue())
                .unwrap();
        assert_eq!(circle.row_categories(), (vec![5], vec![1]));
    }

    #[test]
    fn a_category_names_a_section_and_rows_the_venue_has() {
        let d = ["D".to_owned()];
        let twice = ["A".to_owned(), "A".to_owned()];
        let none: [String; 0] = [];
        for bad in [
            category("X", "Balcony", None),
            category("X", "Circle", Some(&["C".to_owned()])),
            category("X", "Stalls", Some(&d)),
            category("X", "Stalls", Some(&twice)),
            category("X", "Stalls", Some(&none)),
            category("Standard", "Stalls", None),
            category(" ", "Stalls", None),
            CategoryRequest {
                price_cents: -1,
                ..category("X", "Stalls", None)
            },
        ] {
            assert!(PriceCategories::parse(&[bad], &venue()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn category_names_are_unique_ignoring_case() {
        let twice = [
            category("Gold", "Stalls", None),
            category("gold", "Circle", None),
        ];
        assert!(PriceCategories::parse(&twice, &venue()).is_err());
        assert!(PriceCategories::parse(&[], &venue())
            .unwrap()
            .categories()
            .is_empty());
    }
}
