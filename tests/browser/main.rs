//! The seat-map page (`web/`, served at `/`) in a real browser: Debian's headless Chromium driven
//! through chromedriver (WebDriver), against `local-api`'s router over a fresh database.
//! Needs `chromium` and `chromium-driver` (scripts/services installs them); without them every
//! test here fails, saying so. `UPDATE_SCREENSHOTS=1` also writes the README's screenshots to docs/.

#[path = "../common/mod.rs"]
mod common;
mod harness;
mod oauth;

use harness::{eventually, Browser, Driver, Server};
use oauth::{FakeUser, Reply, SignInStack};
use serde_json::json;

const DESKTOP: (u32, u32) = (1280, 1150);
const PHONE: (u32, u32) = (390, 844);

async fn desktop(driver: &Driver) -> Browser {
    driver.browser(DESKTOP.0, DESKTOP.1, false).await
}

/// `browser` on `server`'s page, signed in as the buyer `name`, with the event `event` open.
async fn buyer_at(browser: Browser, server: &Server, name: &str, event: &str) -> Browser {
    browser.open(server).await;
    browser.sign_in(name, false).await;
    browser.open_event(event).await;
    browser
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_buyers_queue_in_a_waiting_room_are_admitted_in_order_and_one_books() {
    let server = Server::start(&[]).await;
    // Six a minute: the first in line is admitted at once, the next ten seconds later, time
    // enough to open the second browser on a loaded machine (five seconds were not, once in CI).
    let room = json!({"waiting_room": {"admit_per_minute": 6}});
    server.venue_and_event_with("Big On-sale", 2, 4, room).await;
    let driver = Driver::start().await;
    let ann = buyer_at(desktop(&driver).await, &server, "ann", "Big On-sale").await;
    ann.eventually_text("#queue-text", "It is your turn").await;
    let ben = buyer_at(desktop(&driver).await, &server, "ben", "Big On-sale").await;
    ben.eventually_text(
        "#queue-text",
        "You are number 2 in the queue: 0 people are ahead of you",
    )
    .await;
    // Waiting: the map shows, the seats cannot be chosen yet.
    assert!(!ben.find("#pickers").await.is_displayed().await.unwrap());
    assert!(ann.find("#pickers").await.is_displayed().await.unwrap());

    ann.hold_seats(&[("A", 1)]).await;
    ann.click("#confirm").await;
    ann.eventually_text("#status", "Booked Row A seat 1").await;

    // Ben's turn comes by itself, after Ann's.
    ben.eventually_text("#queue-text", "It is your turn").await;
    ben.eventually_displayed("#pickers").await;
    ben.eventually_seat("A", 1, "booked").await;
    ben.hold_seats(&[("A", 2)]).await;
    for browser in [ann, ben] {
        browser.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_buyers_race_for_one_seat_one_books_it_and_the_other_sees_it_taken() {
    let server = Server::start(&[]).await;
    server.venue_and_event("Race Night", 3, 6, None).await;
    let driver = Driver::start().await;
    let alice = buyer_at(desktop(&driver).await, &server, "alice", "Race Night").await;
    let bob = buyer_at(desktop(&driver).await, &server, "bob", "Race Night").await;

    // Alice clicks; Bob uses the keyboard (Enter on the focused seat button).
    alice.seat("A", 1).await.click().await.unwrap();
    bob.seat("A", 1).await.send_keys("\u{E007}").await.unwrap();
    for browser in [&alice, &bob] {
        browser.eventually_seat("A", 1, "available, selected").await;
        let pressed = browser.seat("A", 1).await.attr("aria-pressed").await;
        assert_eq!(pressed.unwrap().as_deref(), Some("true"));
        browser
            .eventually_text("#selection-text", "Row A seat 1")
            .await;
    }

    // Both press "Hold" at the same moment: the database decides.
    let (alice_hold, bob_hold) = (alice.find("#hold").await, bob.find("#hold").await);
    let (clicked_a, clicked_b) = tokio::join!(alice_hold.click(), bob_hold.click());
    clicked_a.unwrap();
    clicked_b.unwrap();
    let (a, b) = (&alice, &bob);
    let alice_lost = eventually("one hold and one conflict", || async move {
        let (alice, bob) = (a, b);
        let alice_alert = alice.text("#alert").await;
        let bob_alert = bob.text("#alert").await;
        let alice_held = alice.text("#countdown").await.contains("Expires in");
        let bob_held = bob.text("#countdown").await.contains("Expires in");
        match (alice_held, bob_held) {
            (true, false) if bob_alert.contains("just taken") => Some(false),
            (false, true) if alice_alert.contains("just taken") => Some(true),
            _ => None,
        }
    })
    .await;
    let (winner, loser) = if alice_lost {
        (&bob, &alice)
    } else {
        (&alice, &bob)
    };

    // The loser is told which seat, and the map is refreshed (held by the winner for now).
    let alert = loser.text("#alert").await;
    assert!(
        alert.contains("Sorry, Row A seat 1 was just taken by someone else"),
        "{alert}"
    );
    loser.eventually_seat("A", 1, "held").await;
    assert!(loser
        .text("#selection-text")
        .await
        .contains("No seats selected"));

    // The winner confirms; the loser's map turns the seat booked without a reload.
    winner.eventually_seat("A", 1, "held by you").await;
    winner.click("#confirm").await;
    winner
        .eventually_text("#status", "Booked Row A seat 1")
        .await;
    winner.eventually_text("#bookings", "confirmed").await;
    winner.eventually_seat("A", 1, "booked").await;
    loser.eventually_seat("A", 1, "booked").await;
    let status = loser.seat("A", 1).await.attr("data-status").await.unwrap();
    assert_eq!(status.as_deref(), Some("booked"));
    assert_eq!(
        loser
            .seat("A", 1)
            .await
            .attr("aria-disabled")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );

    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hold_lapses_and_the_countdown_says_so() {
    let server = Server::start(&[("HOLD_TTL_SECONDS", "3")]).await;
    server.venue_and_event("Short Hold", 2, 5, None).await;
    let driver = Driver::start().await;
    let carol = buyer_at(desktop(&driver).await, &server, "carol", "Short Hold").await;

    let running = carol.hold_seats(&[("A", 2), ("A", 3)]).await;
    assert!(
        running.contains("Expires in 0:0")
            && (running.ends_with(":03") || running.ends_with(":02") || running.ends_with(":01")),
        "{running}"
    );
    carol.eventually_seat("A", 2, "held by you").await;
    assert!(carol.find("#confirm").await.is_enabled().await.unwrap());

    let lapsed = carol.eventually_text("#countdown", "lapsed").await;
    assert!(lapsed.starts_with("Your hold lapsed at"), "{lapsed}");
    let alert = carol.eventually_text("#alert", "lapsed").await;
    assert!(
        alert.contains("Your hold on Row A seat 2 and Row A seat 3 lapsed"),
        "{alert}"
    );
    assert!(!carol.find("#confirm").await.is_enabled().await.unwrap());
    carol.eventually_seat("A", 2, "available").await;
    carol.eventually_seat("A", 3, "available").await;
    carol.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_organizer_creates_an_event_that_a_buyer_then_books_and_cancels() {
    let server = Server::start(&[]).await;
    let driver = Driver::start().await;
    let organizer = desktop(&driver).await;
    organizer.open(&server).await;
    organizer.sign_in("olga", true).await;
    organizer
        .eventually_text("#whoami-text", "(organizer)")
        .await;

    organizer.type_into("#venue-name", "Grand Hall").await;
    for (field, value) in [("#venue-rows", "4"), ("#venue-cols", "8")] {
        let input = organizer.find(field).await;
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }
    organizer
        .submit("#venue-form", "Venue “Grand Hall” created")
        .await;
    let venue_id = organizer
        .find("#event-venue")
        .await
        .prop("value")
        .await
        .unwrap();
    assert!(venue_id.is_some_and(|id| !id.is_empty()));

    organizer.type_into("#event-name", "Opening Night").await;
    organizer.type_into("#event-cap", "2").await;
    // datetime-local takes keystrokes by locale; the values are set as a date picker would.
    for (field, value) in [
        ("event-starts", "2031-06-01T20:00"),
        ("event-sales-end", "2031-05-31T12:00"),
    ] {
        organizer
            .client
            .execute(
                "const f = document.getElementById(arguments[0]);\
                 f.value = arguments[1]; f.dispatchEvent(new Event('input', {bubbles: true}));",
                vec![json!(field), json!(value)],
            )
            .await
            .unwrap();
    }
    organizer
        .submit("#event-form", "Event “Opening Night” created")
        .await;
    organizer.eventually_text("#events", "Opening Night").await;

    // What the organizer typed is what the API stored.
    let (status, page) = server
        .call(reqwest::Method::GET, "/api/v1/events", "x", false, None)
        .await;
    assert_eq!(status, 200);
    let event = &page["items"][0];
    assert_eq!(event["name"], "Opening Night");
    assert_eq!(event["venue_name"], "Grand Hall");
    assert_eq!(event["max_seats_per_user"], 2);
    assert_eq!(event["price_cents"], 2500);
    assert!(event["sales_end_at"]
        .as_str()
        .unwrap()
        .starts_with("2031-05-31"));

    // A buyer sees it, is held to its cap, books, and cancels.
    let erin = buyer_at(desktop(&driver).await, &server, "erin", "Opening Night").await;
    erin.eventually_text("#event-facts", "at most 2").await;
    let seats = erin
        .client
        .find_all(fantoccini::Locator::Css("button.seat"))
        .await
        .unwrap();
    assert_eq!(seats.len(), 32);
    for number in 1..=3 {
        erin.seat("A", number).await.click().await.unwrap();
    }
    erin.eventually_text("#status", "at most 2 seats").await;
    erin.eventually_seat("A", 3, "available").await;
    erin.eventually_seat("A", 2, "available, selected").await;
    erin.click("#hold").await;
    erin.eventually_text("#countdown", "Expires in").await;
    erin.click("#confirm").await;
    erin.eventually_text("#status", "Booked Row A seat 1 and Row A seat 2")
        .await;
    // The list is refreshed after the hold and again after the confirmation: wait for the latter.
    let booking = erin.eventually_text("#bookings li", "confirmed").await;
    assert!(booking.contains("Opening Night"), "{booking}");
    assert!(
        booking.contains("Row A seat 1 and Row A seat 2"),
        "{booking}"
    );
    erin.eventually_seat("A", 1, "booked").await;

    erin.click(r#"#bookings button[aria-label^="Cancel booking of Row A seat 1"]"#)
        .await;
    erin.eventually_text("#status", "Cancelled Row A seat 1 and Row A seat 2")
        .await;
    erin.eventually_text("#bookings li", "cancelled").await;
    erin.eventually_seat("A", 1, "available").await;

    organizer.close().await;
    erin.close().await;
}

/// A browser signed in as the organizer `name`, on `server`'s page.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_buyer_joins_a_sold_out_events_waitlist_and_confirms_the_seat_it_offers() {
    let server = Server::start(&[]).await;
    let event = server.venue_and_event("Full House", 1, 2, None).await;
    let seats = server.seat_ids(event).await;
    let mut bookings = Vec::new();
    for (fan, seat) in [("fan-1", "Main A1"), ("fan-2", "Main A2")] {
        let body = json!({"event_id": event, "seat_ids": [seats[seat]]});
        let (status, booking) = server
            .call(
                reqwest::Method::POST,
                "/api/v1/bookings",
                fan,
                false,
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "{booking}");
        bookings.push(booking["id"].as_str().unwrap().to_owned());
    }
    let driver = Driver::start().await;
    let dana = buyer_at(desktop(&driver).await, &server, "dana", "Full House").await;

    // Sold out: the page offers the line.
    dana.eventually_displayed("#waitlist-panel").await;
    dana.eventually_text("#waitlist-text", "Sold out").await;
    set_value(&dana, "#waitlist-count", "1").await;
    dana.click("#waitlist-join").await;
    dana.eventually_text("#waitlist-text", "You are number 1 in line for 1 seat")
        .await;

    // Seat A2 comes back: it is dana's at once, and her page shows the offer within a poll.
    let (status, _) = server
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/bookings/{}", bookings[1]),
            "fan-2",
            false,
            None,
        )
        .await;
    assert_eq!(status, 200);
    dana.eventually_text("#waitlist-text", "Seats came back for you: Row A seat 2")
        .await;
    let countdown = dana.eventually_text("#countdown", "Expires in").await;
    assert!(
        countdown.starts_with("Expires in 1"),
        "15 minutes: {countdown}"
    );
    dana.eventually_seat("A", 2, "held by you").await;

    dana.click("#confirm").await;
    dana.eventually_text("#status", "Booked Row A seat 2").await;
    dana.eventually_seat("A", 2, "booked").await;
    let (status, entry) = server
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/events/{event}/waitlist/me"),
            "dana",
            false,
            None,
        )
        .await;
    assert_eq!((status, entry["state"].as_str()), (200, Some("fulfilled")));
    dana.close().await;
}

async fn organizer_at(browser: Browser, server: &Server, name: &str) -> Browser {
    browser.open(server).await;
    browser.sign_in(name, true).await;
    browser.eventually_text("#whoami-text", "(organizer)").await;
    browser
}

/// Sets a form control's value as a person would (datetime-local and select take keystrokes by
/// locale or by option text).
async fn set_value(browser: &Browser, css: &str, value: &str) {
    browser
        .client
        .execute(
            "const f = document.querySelector(arguments[0]);\
             f.value = arguments[1]; f.dispatchEvent(new Event('input', {bubbles: true}));\
             f.dispatchEvent(new Event('change', {bubbles: true}));",
            vec![json!(css), json!(value)],
        )
        .await
        .unwrap();
}

/// Replaces what the field `css` holds with `text`, typed.
async fn retype(browser: &Browser, css: &str, text: &str) {
    let input = browser.find(css).await;
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_venue_of_two_sections_is_drawn_as_two_labelled_blocks_whose_rows_never_merge() {
    let server = Server::start(&[]).await;
    server.theatre("Hamlet", 3, 2, 6).await;
    let driver = Driver::start().await;
    let buyer = buyer_at(desktop(&driver).await, &server, "hana", "Hamlet").await;
    buyer
        .eventually_seat_label(
            "Circle",
            "A",
            1,
            "Circle, row A seat 1, Circle 30.00, available",
        )
        .await;

    // Two groups, each named by its visible heading, front to back.
    let sections = buyer
        .client
        .execute(
            "return [...document.querySelectorAll('#rows > .section')].map(s => {\
               const heading = document.getElementById(s.getAttribute('aria-labelledby'));\
               const box = s.getBoundingClientRect();\
               return {role: s.getAttribute('role'), name: heading.textContent,\
                       shown: heading.offsetHeight > 0, top: box.top, bottom: box.bottom,\
                       rows: s.querySelectorAll('.row').length,\
                       seats: s.querySelectorAll('button.seat').length};\
             });",
            vec![],
        )
        .await
        .unwrap();
    let sections = sections.as_array().unwrap();
    assert_eq!(sections.len(), 2, "{sections:?}");
    for (section, (name, rows, seats)) in
        sections.iter().zip([("Stalls", 3, 18), ("Circle", 2, 12)])
    {
        assert_eq!(section["role"], "group", "{section}");
        assert_eq!(section["name"], name, "{section}");
        assert_eq!(section["shown"], true, "{section}");
        assert_eq!(section["rows"], rows, "{section}");
        assert_eq!(section["seats"], seats, "{section}");
    }
    // Circle is drawn apart, below the Stalls: its row A is not the Stalls' row A.
    assert!(
        sections[1]["top"].as_f64().unwrap() > sections[0]["bottom"].as_f64().unwrap() + 8.0,
        "{sections:?}"
    );
    let circle_a1 = buyer.seat_in("Circle", "A", 1).await;
    let map = buyer.attr("#seatmap", "aria-label").await.unwrap();
    assert_eq!(map, "Seat map: 30 of 30 seats available, in 2 sections");

    // Seats named by section: a choice in each reads so.
    circle_a1.click().await.unwrap();
    buyer.seat_in("Stalls", "C", 2).await.click().await.unwrap();
    let chosen = buyer.eventually_text("#selection-text", "Selected 2").await;
    assert!(
        chosen.contains("Stalls row C seat 2 and Circle row A seat 1. Total 70.00."),
        "{chosen}"
    );
    buyer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_legend_names_each_price_category_with_its_price_and_the_seats_it_has_left() {
    let server = Server::start(&[]).await;
    let event_id = server.theatre("Hamlet", 3, 2, 6).await;
    let driver = Driver::start().await;
    let buyer = buyer_at(desktop(&driver).await, &server, "ines", "Hamlet").await;

    let legend = buyer.eventually_text("#categories", "Standard").await;
    let lines: Vec<&str> = legend.lines().collect();
    assert_eq!(
        lines,
        [
            "Premium · 60.00 · 12 available",
            "Stalls · 40.00 · 6 available",
            "Circle · 30.00 · 6 available",
            "Standard · 25.00 · 6 available",
        ],
        "{legend}"
    );
    assert_eq!(
        buyer.attr("#categories", "aria-label").await.as_deref(),
        Some("Price categories")
    );
    // Not by colour alone: each category's pattern differs, and every seat says its category.
    let patterns = buyer
        .client
        .execute(
            "return [...document.querySelectorAll('#categories .cat-swatch')]\
               .map(s => getComputedStyle(s).backgroundImage + getComputedStyle(s).backgroundColor);",
            vec![],
        )
        .await
        .unwrap();
    let patterns: std::collections::HashSet<String> = patterns
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(patterns.len(), 4, "{patterns:?}");
    buyer
        .eventually_seat_label(
            "Stalls",
            "C",
            3,
            "Stalls, row C seat 3, Stalls 40.00, available",
        )
        .await;
    buyer
        .eventually_seat_label(
            "Circle",
            "B",
            6,
            "Circle, row B seat 6, Standard 25.00, available",
        )
        .await;
    // The price per seat is the range of the categories'.
    buyer
        .eventually_text("#event-facts", "25.00 to 60.00, by category")
        .await;

    // Someone books a Premium seat: the legend counts one fewer without a reload.
    let seats = server.seat_ids(event_id).await;
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            "/api/v1/bookings",
            "someone",
            false,
            Some(json!({"event_id": event_id, "seat_ids": [seats["Stalls B3"]]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    buyer
        .eventually_text("#categories", "Premium · 60.00 · 11 available")
        .await;
    buyer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wheelchair_place_shows_its_symbol_and_says_so_in_its_accessible_name() {
    let server = Server::start(&[]).await;
    server.theatre("Hamlet", 3, 2, 6).await;
    let driver = Driver::start().await;
    let buyer = buyer_at(desktop(&driver).await, &server, "jon", "Hamlet").await;

    for number in [1, 6] {
        buyer
            .eventually_seat_label(
                "Stalls",
                "A",
                number,
                &format!("Stalls, row A seat {number}, Premium 60.00, wheelchair place, available"),
            )
            .await;
        let text = buyer
            .seat_in("Stalls", "A", number)
            .await
            .text()
            .await
            .unwrap();
        assert!(text.contains('♿'), "{text:?}");
    }
    let plain = buyer.seat_in("Stalls", "A", 2).await;
    assert!(!plain.text().await.unwrap().contains('♿'));
    let label = plain.attr("aria-label").await.unwrap().unwrap();
    assert_eq!(label, "Stalls, row A seat 2, Premium 60.00, available");
    // The legend explains the symbol in words.
    buyer.eventually_displayed("#legend-wheelchair").await;
    assert!(buyer
        .text("#legend-wheelchair")
        .await
        .contains("wheelchair place"));
    buyer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn best_available_holds_the_seats_the_api_picks_shows_them_as_yours_and_says_when_they_are_apart(
) {
    let server = Server::start(&[]).await;
    server.theatre("Hamlet", 3, 2, 6).await;
    let driver = Driver::start().await;
    let buyer = buyer_at(desktop(&driver).await, &server, "kim", "Hamlet").await;

    // Two Stalls seats: the category's front row (C, the Stalls' A and B being Premium), centre.
    retype(&buyer, "#best-count", "2").await;
    set_value(&buyer, "#best-category", "Stalls").await;
    buyer.click("#best-hold").await;
    let said = buyer
        .eventually_text("#status", "Held the best available")
        .await;
    assert!(
        said.contains("Stalls row C seat 3 and Stalls row C seat 4."),
        "{said}"
    );
    assert!(!said.contains("not together"), "{said}");
    buyer.eventually_text("#countdown", "Expires in").await;
    assert!(buyer
        .text("#hold-seats")
        .await
        .contains("Stalls row C seat 3 and Stalls row C seat 4 · total 80.00"));
    for number in [3, 4] {
        buyer
            .eventually_seat_label(
                "Stalls",
                "C",
                number,
                &format!("Stalls, row C seat {number}, Stalls 40.00, held by you"),
            )
            .await;
    }
    assert!(!buyer
        .find("#hold-apart")
        .await
        .is_displayed()
        .await
        .unwrap());
    buyer.click("#confirm").await;
    buyer
        .eventually_text(
            "#status",
            "Booked Stalls row C seat 3 and Stalls row C seat 4",
        )
        .await;
    buyer
        .eventually_seat_label(
            "Stalls",
            "C",
            3,
            "Stalls, row C seat 3, Stalls 40.00, booked",
        )
        .await;

    // Two wheelchair places, from the keyboard: the only two are at either end of row A.
    buyer.click("#best-accessible").await;
    set_value(&buyer, "#best-category", "").await;
    buyer
        .find("#best-count")
        .await
        .send_keys("\u{E007}")
        .await
        .unwrap();
    let said = buyer
        .eventually_text("#status", "Held the best available")
        .await;
    assert!(
        said.contains("Stalls row A seat 1 and Stalls row A seat 6. They are not together"),
        "{said}"
    );
    buyer.eventually_displayed("#hold-apart").await;
    buyer
        .eventually_seat_label(
            "Stalls",
            "A",
            6,
            "Stalls, row A seat 6, Premium 60.00, wheelchair place, held by you",
        )
        .await;

    // More than are left: said so, nothing held.
    retype(&buyer, "#best-count", "3").await;
    buyer.click("#best-hold").await;
    let alert = buyer.eventually_text("#alert", "Not enough").await;
    assert!(alert.contains("wheelchair places"), "{alert}");
    buyer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_organizer_creates_a_venue_of_sections_with_wheelchair_places_and_an_event_with_a_category(
) {
    let server = Server::start(&[]).await;
    let driver = Driver::start().await;
    let olga = organizer_at(desktop(&driver).await, &server, "olga").await;

    olga.type_into("#venue-name", "Lyric").await;
    for (index, (name, rows, cols, wheelchair)) in
        [("Stalls", "3", "6", "A1, a6"), ("Circle", "2", "5", "")]
            .into_iter()
            .enumerate()
    {
        olga.click("#add-section").await;
        let entry = format!("#venue-section-list li:nth-child({})", index + 1);
        // The new entry's first field has the focus.
        olga.client
            .active_element()
            .await
            .unwrap()
            .send_keys(name)
            .await
            .unwrap();
        retype(&olga, &format!("{entry} [name=section_rows]"), rows).await;
        retype(&olga, &format!("{entry} [name=section_cols]"), cols).await;
        olga.type_into(&format!("{entry} [name=section_accessible]"), wheelchair)
            .await;
    }
    // Sections replace the one block of rows and seats.
    assert!(!olga.find("#venue-rows").await.is_displayed().await.unwrap());
    // Each section is a group named by its visible title.
    let group = olga
        .client
        .execute(
            "const li = document.querySelector('#venue-section-list li:nth-child(2)');             return [li.getAttribute('role'),                     document.getElementById(li.getAttribute('aria-labelledby')).textContent,                     li.querySelector('.remove').getAttribute('aria-label')];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(group, json!(["group", "Section 2", "Remove section 2"]));
    olga.submit(
        "#venue-form",
        "28 seats in 2 sections (Stalls, Circle), 2 wheelchair places.",
    )
    .await;
    assert!(olga.find("#venue-rows").await.is_displayed().await.unwrap());

    olga.type_into("#event-name", "Lyric Night").await;
    retype(&olga, "#event-price", "20").await;
    olga.click("#add-category").await;
    let entry = "#event-category-list li:nth-child(1)";
    olga.type_into(&format!("{entry} [name=category_name]"), "Front")
        .await;
    olga.type_into(&format!("{entry} [name=category_price]"), "75.50")
        .await;
    // The section is offered from the venue just made.
    let section = olga
        .find(&format!("{entry} [name=category_section]"))
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(section.as_deref(), Some("Stalls"));
    olga.type_into(&format!("{entry} [name=category_rows]"), "a")
        .await;
    olga.submit("#event-form", "Event “Lyric Night” created")
        .await;

    // What the organizer typed is what the API stored.
    let (status, page) = server
        .call(reqwest::Method::GET, "/api/v1/events", "x", false, None)
        .await;
    assert_eq!(status, 200, "{page}");
    let event_id = page["items"][0]["id"].as_i64().unwrap();
    let map = server.seat_map(event_id).await;
    assert_eq!(
        map["categories"],
        json!([
            {"name": "Front", "price_cents": 7550, "available": 6},
            {"name": "Standard", "price_cents": 2000, "available": 22},
        ])
    );
    let wheelchair: Vec<String> = map["seats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["accessible"] == true)
        .map(common::place)
        .collect();
    assert_eq!(wheelchair, ["Stalls A1", "Stalls A6"]);

    // And the page draws it so.
    olga.open_event("Lyric Night").await;
    olga.eventually_text("#categories", "Front · 75.50 · 6 available")
        .await;
    olga.eventually_seat_label(
        "Stalls",
        "A",
        6,
        "Stalls, row A seat 6, Front 75.50, wheelchair place, available",
    )
    .await;
    olga.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_seat_map_at_desktop_and_phone_width() {
    let server = Server::start(&[]).await;
    let event_id = server.theatre("Midsummer Strings", 5, 3, 10).await;
    let seats = server.seat_ids(event_id).await;
    let ids = |names: &[&str]| names.iter().map(|n| seats[*n]).collect::<Vec<_>>();
    // Other people's bookings and a hold, so every state shows.
    for (user, names, path) in [
        (
            "u1",
            &["Stalls C4", "Stalls C5", "Stalls C6", "Stalls C7"][..],
            "/api/v1/bookings",
        ),
        (
            "u2",
            &["Stalls D5", "Stalls D6", "Stalls D7"][..],
            "/api/v1/bookings",
        ),
        (
            "u3",
            &["Stalls A2", "Stalls A3", "Stalls B9", "Stalls B10"][..],
            "/api/v1/bookings",
        ),
        ("u4", &["Stalls E2", "Stalls E3"][..], "/api/v1/holds"),
        (
            "u5",
            &["Circle A5", "Circle A6", "Circle B1"][..],
            "/api/v1/bookings",
        ),
        ("u6", &["Circle C5", "Circle C6"][..], "/api/v1/holds"),
    ] {
        let (status, body) = server
            .call(
                reqwest::Method::POST,
                path,
                user,
                false,
                Some(json!({"event_id": event_id, "seat_ids": ids(names)})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    let driver = Driver::start().await;
    let wide = buyer_at(desktop(&driver).await, &server, "dana", "Midsummer Strings").await;
    for (section, row, number) in [("Stalls", "B", 5), ("Stalls", "B", 6)] {
        wide.seat_in(section, row, number)
            .await
            .click()
            .await
            .unwrap();
    }
    wide.click("#hold").await;
    wide.eventually_text("#countdown", "Expires in").await;
    wide.seat_in("Circle", "B", 8).await.click().await.unwrap();
    wide.eventually_seat_label(
        "Circle",
        "B",
        8,
        "Circle, row B seat 8, Standard 25.00, available, selected",
    )
    .await;
    wide.eventually_seat_label(
        "Stalls",
        "C",
        4,
        "Stalls, row C seat 4, Stalls 40.00, booked",
    )
    .await;
    wide.eventually_seat_label("Stalls", "E", 2, "Stalls, row E seat 2, Stalls 40.00, held")
        .await;
    let desktop_png = screenshot(&wide, "event-heading").await;

    // The same buyer on a phone: her live hold comes back with its countdown.
    let phone = driver.browser(PHONE.0, PHONE.1, true).await;
    let narrow = buyer_at(phone, &server, "dana", "Midsummer Strings").await;
    narrow.eventually_text("#countdown", "Expires in").await;
    narrow
        .seat_in("Circle", "B", 7)
        .await
        .click()
        .await
        .unwrap();
    narrow
        .eventually_seat_label(
            "Circle",
            "B",
            7,
            "Circle, row B seat 7, Standard 25.00, available, selected",
        )
        .await;
    // Nothing sticks out sideways at phone width.
    let overflow = narrow
        .client
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(overflow.as_i64(), Some(0), "the page scrolls sideways");
    let phone_png = screenshot(&narrow, "legend").await;

    save("seat-map-desktop.png", &desktop_png);
    save("seat-map-phone.png", &phone_png);
    wide.close().await;
    narrow.close().await;
}

const GRACE: FakeUser = FakeUser {
    sub: "5e2c91d0-grace",
    email: "grace@example.com",
    groups: &[],
};

/// The page through a stand-in gateway in front of `server`, in Cognito mode, where the hosted
/// UI knows `user` and answers as `reply`: its sign-in button is pressed. The stack, the driver
/// and the browser.
async fn hosted_sign_in(
    server: &Server,
    user: FakeUser,
    reply: Reply,
) -> (SignInStack, Driver, Browser) {
    let stack = SignInStack::start(server, user, reply).await;
    let driver = Driver::start().await;
    let browser = desktop(&driver).await;
    browser.open_url(&stack.page).await;
    browser.eventually_displayed("#signin-hosted-button").await;
    // No name field: nobody deployed can claim to be somebody by typing it.
    assert!(!browser.find("#signin").await.is_displayed().await.unwrap());
    browser.click("#signin-hosted-button").await;
    (stack, driver, browser)
}

/// Asserts the page is back, signed out, at the gateway's address.
async fn assert_signed_out(browser: &Browser, stack: &SignInStack) {
    browser.eventually_displayed("#signin-hosted-button").await;
    assert!(browser.attr("#whoami", "hidden").await.is_some());
    assert_eq!(current_url(browser).await, stack.page);
}

async fn current_url(browser: &Browser) -> String {
    browser.client.current_url().await.unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployed_a_buyer_signs_in_through_the_hosted_ui_with_pkce_and_every_api_call_carries_the_token(
) {
    let server = Server::start(&[]).await;
    server.venue_and_event("Gala Night", 2, 5, None).await;
    let (stack, _driver, grace) = hosted_sign_in(&server, GRACE, Reply::Honest).await;

    grace
        .eventually_text("#whoami-text", "Signed in as grace@example.com")
        .await;
    assert!(!grace.text("#whoami-text").await.contains("organizer"));
    // The code and state are gone from the address bar.
    assert_eq!(current_url(&grace).await, stack.page);

    // The hosted UI was asked for a code with an S256 challenge, and issued tokens only for the
    // verifier whose SHA-256 is that challenge.
    let log = stack.idp_log();
    assert_eq!(log.authorizations.len(), 1, "{log:?}");
    let asked = &log.authorizations[0];
    assert_eq!(asked.code_challenge_method, "S256");
    assert_eq!(asked.code_challenge.len(), 43, "{asked:?}");
    assert_eq!(asked.scope, "openid email profile");
    assert!(asked.state.len() >= 22, "{asked:?}");
    assert_eq!(log.verified_verifiers.len(), 1, "{log:?}");
    assert!((43..=128).contains(&log.verified_verifiers[0].len()));
    assert!(log.refused.is_empty(), "{log:?}");

    grace.open_event("Gala Night").await;
    grace.hold_seats(&[("A", 2)]).await;
    grace.click("#confirm").await;
    grace
        .eventually_text("#status", "Booked Row A seat 2")
        .await;
    // The list is refreshed after the hold and again after the confirmation: wait for the latter.
    let booking = grace.eventually_text("#bookings li", "confirmed").await;
    assert!(booking.contains("Gala Night"), "{booking}");
    assert!(booking.contains("Row A seat 2"), "{booking}");

    // The booking is the token's subject's, as the server saw it.
    let (status, mine) = server
        .call(
            reqwest::Method::GET,
            "/api/v1/bookings",
            GRACE.sub,
            false,
            None,
        )
        .await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["items"].as_array().unwrap().len(), 1, "{mine}");

    let traffic = stack.traffic();
    assert_eq!(traffic.without_token_after_sign_in, 0, "{traffic:?}");
    assert_eq!(traffic.refused, 0, "{traffic:?}");
    // Bookings, hold, confirm, availability, and the public reads too.
    assert!(traffic.with_token >= 6, "{traffic:?}");

    // Signing out revokes the refresh token, ends the hosted UI's session and comes back here.
    grace.click("#signout").await;
    eventually("the hosted UI's sign-out", || async {
        (stack.idp_log().logouts.len() == 1).then_some(())
    })
    .await;
    assert_signed_out(&grace, &stack).await;
    let log = stack.idp_log();
    assert_eq!(log.logouts, vec![stack.page.clone()]);
    assert_eq!(log.revoked.len(), 1, "{log:?}");
    grace.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployed_a_reply_carrying_a_state_the_page_did_not_send_is_refused_with_a_message() {
    let server = Server::start(&[]).await;
    let (stack, _driver, grace) = hosted_sign_in(&server, GRACE, Reply::WrongState).await;

    let alert = grace.eventually_text("#alert", "Sign-in refused").await;
    assert!(
        alert.contains("the reply did not match the sign-in started on this page"),
        "{alert}"
    );
    assert_signed_out(&grace, &stack).await;
    // The code was never offered to the token endpoint.
    let log = stack.idp_log();
    assert_eq!(log.authorizations.len(), 1, "{log:?}");
    assert!(
        log.verified_verifiers.is_empty() && log.refused.is_empty(),
        "{log:?}"
    );
    assert_eq!(stack.traffic().with_token, 0);
    grace.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployed_a_sign_in_the_identity_provider_refuses_is_reported_and_leaves_the_buyer_signed_out(
) {
    let server = Server::start(&[]).await;
    let (stack, _driver, grace) = hosted_sign_in(&server, GRACE, Reply::Refuse).await;

    grace
        .eventually_text("#alert", "Sign-in was cancelled or refused")
        .await;
    assert_signed_out(&grace, &stack).await;
    // The link's own description is not repeated on the page.
    assert!(!grace.text("#alert").await.contains("User cancelled"));
    grace.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployed_an_access_token_the_api_stops_accepting_is_renewed_and_the_call_goes_through() {
    let server = Server::start(&[]).await;
    let olga = FakeUser {
        sub: "0a9f-olga",
        email: "olga@example.com",
        groups: &["organizers"],
    };
    let (stack, _driver, browser) = hosted_sign_in(&server, olga, Reply::Honest).await;
    browser
        .eventually_text("#whoami-text", "Signed in as olga@example.com (organizer)")
        .await;
    // Her (empty) bookings have loaded: no call is in flight with the token about to lapse.
    browser.eventually_displayed("#bookings-empty").await;

    // The token lapses while the page is open; the next call that needs it is refused once,
    // renewed with the refresh token, and repeated.
    stack.expire_access_tokens();
    browser.type_into("#venue-name", "Lantern Hall").await;
    browser
        .submit("#venue-form", "Venue “Lantern Hall” created")
        .await;
    let log = stack.idp_log();
    assert_eq!(log.refreshes, 1, "{log:?}");
    let traffic = stack.traffic();
    assert_eq!(traffic.refused, 1, "{traffic:?}");
    assert_eq!(traffic.without_token_after_sign_in, 0, "{traffic:?}");
    browser.close().await;
}

async fn screenshot(browser: &Browser, top: &str) -> Vec<u8> {
    browser
        .client
        .execute(
            "document.getElementById(arguments[0]).scrollIntoView({block: 'start'}); \
             window.scrollBy(0, -12); document.activeElement.blur();",
            vec![json!(top)],
        )
        .await
        .unwrap();
    // The countdown's next tick, so the picture is settled.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let png = browser.client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    png
}

/// Always into target/browser-screenshots/; with UPDATE_SCREENSHOTS=1 also into docs/.
fn save(name: &str, png: &[u8]) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("browser-screenshots");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join(name), png).unwrap();
    if std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        std::fs::write(root.join("docs").join(name), png).unwrap();
    }
}
