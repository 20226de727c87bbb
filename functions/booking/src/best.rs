//! Best available: which of an event's free seats a request for `count` seats gets. Pure: the
//! seats come in read ([`crate::pick`]), the choice goes out, and the same seats always give the
//! same choice.
//!
//! 1. A block of `count` free seats side by side in one row, preferring a block that leaves no
//!    single free seat stranded between it and a taken seat or the row's end;
//! 2. then the row nearest the front (the rows come in front to back);
//! 3. then the block whose centre is nearest the row's centre, then the lower seat number.
//!
//! With no such block anywhere, the `count` free seats nearest the front and then the centre,
//! not together. Fewer free seats than `count`: not enough.

/// One seat of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub id: i64,
    pub number: i32,
    /// Free and offered to this request (a wheelchair place is offered only when asked for, and
    /// then only they are).
    pub free: bool,
}

/// One row: every seat of it, free or not, in number order. Its centre is the middle of its first
/// and last seat, whichever of them are free.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    pub seats: Vec<Place>,
}

/// What a request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// These seats, front to back and by number; `together`: one block in one row.
    Seats { ids: Vec<i64>, together: bool },
    /// Fewer free seats than asked for: `available` are.
    NotEnough { available: usize },
}

/// A block's rank: lower is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    /// It leaves a single free seat between it and a taken seat or the row's end.
    strands: bool,
    /// Its row, from the front.
    row: usize,
    /// Twice the distance between its centre and its row's (so always a whole number).
    off_centre: i64,
    /// Its first seat's number.
    number: i32,
}

/// The best block: its rank, its row and the index of its first seat in that row.
fn best_block(rows: &[Row], count: usize) -> Option<(Rank, usize, usize)> {
    let mut best: Option<(Rank, usize, usize)> = None;
    for (r, row) in rows.iter().enumerate() {
        let seats = &row.seats;
        let (Some(first), Some(last)) = (seats.first(), seats.last()) else {
            continue;
        };
        let centre = i64::from(first.number) + i64::from(last.number);
        let mut start = 0;
        while start < seats.len() {
            if !seats[start].free {
                start += 1;
                continue;
            }
            // A run of free seats next to each other: seats[start..end].
            let mut end = start + 1;
            while end < seats.len()
                && seats[end].free
                && seats[end].number == seats[end - 1].number + 1
            {
                end += 1;
            }
            let run = end - start;
            for offset in 0..(run + 1).saturating_sub(count) {
                let (left, right) = (offset, run - offset - count);
                let (a, b) = (seats[start + offset], seats[start + offset + count - 1]);
                let rank = Rank {
                    strands: left == 1 || right == 1,
                    row: r,
                    off_centre: (i64::from(a.number) + i64::from(b.number) - centre).abs(),
                    number: a.number,
                };
                if best.is_none_or(|(known, _, _)| rank < known) {
                    best = Some((rank, r, start + offset));
                }
            }
            start = end;
        }
    }
    best
}

/// The seats `count` gets from `rows`, front to back.
pub fn choose(rows: &[Row], count: usize) -> Choice {
    let available = rows
        .iter()
        .flat_map(|row| &row.seats)
        .filter(|seat| seat.free)
        .count();
    if count == 0 || available < count {
        return Choice::NotEnough { available };
    }
    if let Some((_, r, first)) = best_block(rows, count) {
        let ids = rows[r].seats[first..first + count]
            .iter()
            .map(|seat| seat.id)
            .collect();
        return Choice::Seats {
            ids,
            together: true,
        };
    }
    // Apart: the free seats nearest the front, then nearest their row's centre, then the lower
    // number.
    let mut free: Vec<(usize, i64, i32, i64)> = Vec::with_capacity(available);
    for (r, row) in rows.iter().enumerate() {
        let (Some(first), Some(last)) = (row.seats.first(), row.seats.last()) else {
            continue;
        };
        let centre = i64::from(first.number) + i64::from(last.number);
        for seat in row.seats.iter().filter(|seat| seat.free) {
            let off_centre = (2 * i64::from(seat.number) - centre).abs();
            free.push((r, off_centre, seat.number, seat.id));
        }
    }
    free.sort_unstable();
    free.truncate(count);
    free.sort_unstable_by_key(|&(r, _, number, _)| (r, number));
    Choice::Seats {
        ids: free.into_iter().map(|(_, _, _, id)| id).collect(),
        together: false,
    }
}

/// Whether rows read behind `rows` could not change [`choose`]'s answer: a block among them leaves
/// no seat stranded, and every such block further back ranks lower. The reader stops there.
pub fn settled(rows: &[Row], count: usize) -> bool {
    best_block(rows, count).is_some_and(|(rank, _, _)| !rank.strands)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of seats numbered from 1, `x` taken and `.` free: "..xx.." — the seat ids are
    /// `row * 100 + number`.
    fn row(r: i64, layout: &str) -> Row {
        Row {
            seats: layout
                .chars()
                .enumerate()
                .map(|(i, c)| Place {
                    id: r * 100 + i as i64 + 1,
                    number: i as i32 + 1,
                    free: c == '.',
                })
                .collect(),
        }
    }

    fn venue(layouts: &[&str]) -> Vec<Row> {
        layouts
            .iter()
            .enumerate()
            .map(|(r, layout)| row(r as i64 + 1, layout))
            .collect()
    }

    fn together(ids: impl IntoIterator<Item = i64>) -> Choice {
        Choice::Seats {
            ids: ids.into_iter().collect(),
            together: true,
        }
    }

    #[test]
    fn four_in_an_empty_ten_by_twenty_venue_get_row_a_seats_nine_to_twelve() {
        let rows = venue(&[".".repeat(20).as_str(); 10]);
        assert_eq!(choose(&rows, 4), together(109..=112));
    }

    #[test]
    fn the_row_nearest_the_front_wins_even_off_centre() {
        let rows = venue(&["xxxxxxxxxxxxxx......", "...................."]);
        assert_eq!(choose(&rows, 2), together(115..=116));
    }

    #[test]
    fn in_a_row_the_block_nearest_its_centre_wins() {
        // Seats 1-4 and 13-20 free, 5-12 taken: 13-14 is nearer the centre (10.5) than 3-4.
        let rows = venue(&["....xxxxxxxx........"]);
        assert_eq!(choose(&rows, 2), together(113..=114));
    }

    #[test]
    fn blocks_as_near_the_centre_go_to_the_lower_seat_number() {
        // Three in twenty: 9-11 and 10-12 are both half a seat off the centre.
        let rows = venue(&[&".".repeat(20)]);
        assert_eq!(choose(&rows, 3), together(109..=111));
    }

    #[test]
    fn a_block_that_strands_one_seat_loses_to_one_that_does_not() {
        // Seats 1-7 free: 5-6 is on the centre (5.5) but leaves 7 alone; 4-5 and 6-7 leave none
        // and are as near it, so the lower wins.
        let rows = venue(&[".......xxx"]);
        assert_eq!(choose(&rows, 2), together(104..=105));
        // Row A can only strand a seat (1-2 leaves 3, 2-3 leaves 1): row B's clean block wins.
        let rows = venue(&["...xxxxx", "........"]);
        assert_eq!(choose(&rows, 2), together(204..=205));
    }

    #[test]
    fn a_stranding_block_is_taken_when_no_block_anywhere_is_clean() {
        let rows = venue(&["x...x", "xx.xx"]);
        // 2-3 and 3-4 each strand one seat; 2-3 and 3-4 are as far from the centre: lower wins.
        assert_eq!(choose(&rows, 2), together(102..=103));
        assert!(!settled(&rows, 2));
    }

    #[test]
    fn with_no_block_anywhere_the_seats_nearest_the_front_and_centre_are_given_apart() {
        let rows = venue(&[".x.x.x.x.", "x.x.x.x.x"]);
        assert_eq!(
            choose(&rows, 3),
            Choice::Seats {
                ids: vec![103, 105, 107],
                together: false
            }
        );
        assert_eq!(
            choose(&rows, 6),
            Choice::Seats {
                ids: vec![101, 103, 105, 107, 109, 204],
                together: false
            }
        );
    }

    #[test]
    fn seats_whose_numbers_do_not_follow_on_are_not_together() {
        let mut rows = venue(&["...."]);
        rows[0].seats[2].number = 7;
        rows[0].seats[3].number = 8;
        // 1-2 and 7-8: two blocks of two, none of three.
        assert!(matches!(
            choose(&rows, 3),
            Choice::Seats {
                together: false,
                ..
            }
        ));
    }

    #[test]
    fn fewer_free_seats_than_asked_for_is_not_enough_and_says_how_many_are_free() {
        let rows = venue(&["x.x", "xx."]);
        assert_eq!(choose(&rows, 3), Choice::NotEnough { available: 2 });
        assert_eq!(choose(&[], 1), Choice::NotEnough { available: 0 });
    }

    #[test]
    fn one_seat_goes_where_it_strands_nobody() {
        // Seats 2-5 free: 3 and 4, nearest the centre, each leave one seat alone; 2 does not.
        let rows = venue(&["x...."]);
        assert_eq!(choose(&rows, 1), together([102]));
    }

    #[test]
    fn a_clean_block_settles_the_choice_so_rows_behind_need_not_be_read() {
        let front = venue(&["........"]);
        assert!(settled(&front, 2));
        let mut more = front.clone();
        more.push(row(2, "........"));
        assert_eq!(choose(&front, 2), choose(&more, 2));
        assert!(!settled(&venue(&["x.x.x"]), 2));
    }

    #[test]
    fn a_herd_of_pairs_fills_an_even_venue_to_the_last_seat() {
        let mut rows = venue(&[".".repeat(20).as_str(); 20]);
        let mut apart = 0;
        for _ in 0..200 {
            let Choice::Seats { ids, together } = choose(&rows, 2) else {
                panic!("seats left");
            };
            apart += usize::from(!together);
            for seat in rows.iter_mut().flat_map(|row| &mut row.seats) {
                if ids.contains(&seat.id) {
                    assert!(seat.free, "seat {} given twice", seat.id);
                    seat.free = false;
                }
            }
        }
        assert_eq!(choose(&rows, 2), Choice::NotEnough { available: 0 });
        // The first pair of a row takes its centre, 10-11, leaving nine seats either side: each
        // row ends with one lone seat at each end, and those forty go in pairs apart, last.
        assert_eq!(apart, 20);
    }
}
