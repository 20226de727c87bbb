//! What the browser tests stand on: a server over a fresh database (every function's routes,
//! dev identity on, the page at `/`), a chromedriver on a free port, and headless Chromium
//! sessions driven through it.

use crate::common;
use fantoccini::{Client, ClientBuilder, Locator};
use seatbook::DevIdentity;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use test_support::TestDb;

/// How long a condition on the page may take to become true.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// `local-api`'s router (`seatbook::app`, dev identity on) on an ephemeral loopback port, over a
/// database of its own that is dropped with it.
pub struct Server {
    pub address: String,
    pub http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
    /// Held only for its Drop: the database goes once the server task is stopped.
    _db: TestDb,
}

impl Server {
    pub async fn start(env: &[(&str, &str)]) -> Server {
        let db = TestDb::migrated("browser").await;
        let vars = common::settings_env(db.url(), 8, &db.name, env.iter().copied());
        let state = common::prepare(&vars).await;
        let (address, server) = common::serve(state, DevIdentity::On);
        Server {
            address,
            http: reqwest::Client::new(),
            server,
            _db: db,
        }
    }

    /// A call to the API as `user` (an organizer when `organizer`), for setting the scene.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
        organizer: bool,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.address))
            .header("x-dev-user", user);
        if organizer {
            request = request.header("x-dev-groups", "organizers");
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// What an organizer's POST of `body` to `path` made (asserted a 201).
    async fn organize(&self, path: &str, body: Value) -> Value {
        let (status, made) = self
            .call(reqwest::Method::POST, path, "organizer-1", true, Some(body))
            .await;
        assert_eq!(status, 201, "{made}");
        made
    }

    /// A venue of `rows` × `cols` and an event in it, on sale now; returns the event's id.
    pub async fn venue_and_event(&self, name: &str, rows: i64, cols: i64, cap: Option<i64>) -> i64 {
        let cap = json!({"max_seats_per_user": cap});
        self.venue_and_event_with(name, rows, cols, cap).await
    }

    /// [`Server::venue_and_event`] with the members of `extra` in the event (a waiting room, a
    /// cap); returns the event's id.
    pub async fn venue_and_event_with(
        &self,
        name: &str,
        rows: i64,
        cols: i64,
        extra: Value,
    ) -> i64 {
        let venue = json!({"name": format!("{name} Hall"), "rows": rows, "cols": cols});
        let venue = self.organize("/api/v1/venues", venue).await;
        self.event_in(&venue, name, extra).await
    }

    /// An event `name` in `venue` (as made), on sale now at 25.00 a seat, with the members of
    /// `extra` added; returns its id. One body for every scene, so they differ only in `extra`.
    async fn event_in(&self, venue: &Value, name: &str, extra: Value) -> i64 {
        let mut event = json!({
            "name": name,
            "starts_at": "2031-06-01T19:30:00Z",
            "venue_id": venue["id"],
            "price_cents": 2500,
        });
        for (member, value) in extra.as_object().expect("extra is an object") {
            event[member] = value.clone();
        }
        self.organize("/api/v1/events", event).await["id"]
            .as_i64()
            .unwrap()
    }

    /// A theatre for `name`: Stalls (`stalls` rows of `cols`, wheelchair places A1 and A`cols`),
    /// then Circle (`circle` rows of `cols`); the event priced Premium (Stalls A and B) 60.00,
    /// Stalls (the rest of it) 40.00, Circle (its row A) 30.00, the rest Standard at 25.00.
    /// Returns the event's id.
    pub async fn theatre(&self, name: &str, stalls: i64, circle: i64, cols: i64) -> i64 {
        let venue = json!({
            "name": format!("{name} Theatre"),
            "sections": [
                {"name": "Stalls", "rows": stalls, "cols": cols,
                 "accessible": [{"row": "A", "number": 1}, {"row": "A", "number": cols}]},
                {"name": "Circle", "rows": circle, "cols": cols},
            ],
        });
        let venue = self.organize("/api/v1/venues", venue).await;
        let categories = json!({"categories": [
            {"name": "Premium", "price_cents": 6000, "section": "Stalls", "rows": ["A", "B"]},
            {"name": "Stalls", "price_cents": 4000, "section": "Stalls"},
            {"name": "Circle", "price_cents": 3000, "section": "Circle", "rows": ["A"]},
        ]});
        self.event_in(&venue, name, categories).await
    }

    /// The seat ids of an event, keyed by e.g. `"Main A1"` ([`common::place`]).
    pub async fn seat_ids(&self, event_id: i64) -> HashMap<String, i64> {
        let map = self.seat_map(event_id).await;
        map["seats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (common::place(s), s["id"].as_i64().unwrap()))
            .collect()
    }

    /// An event's seat map as the API serves it (asserted a 200).
    pub async fn seat_map(&self, event_id: i64) -> Value {
        let (status, map) = self
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/events/{event_id}/availability"),
                "anyone",
                false,
                None,
            )
            .await;
        assert_eq!(status, 200, "{map}");
        map
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn executable(var: &str, candidates: &[&str]) -> PathBuf {
    if let Ok(path) = std::env::var(var) {
        return PathBuf::from(path);
    }
    for candidate in candidates {
        let path = PathBuf::from(candidate);
        if path.is_absolute() && path.exists() {
            return path;
        }
        if let Some(dirs) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&dirs) {
                let full = dir.join(candidate);
                if full.exists() {
                    return full;
                }
            }
        }
    }
    panic!(
        "the browser tests need Debian's `chromium` and `chromium-driver` (looked for {candidates:?}; \
         {var} names another). Run scripts/services, which installs them with apt."
    );
}

/// A chromedriver of this test's own, on a free port; killed when dropped.
pub struct Driver {
    url: String,
    chromium: PathBuf,
    child: Child,
}

impl Driver {
    pub async fn start() -> Driver {
        let chromium = executable("CHROMIUM", &["/usr/bin/chromium", "chromium"]);
        let chromedriver = executable("CHROMEDRIVER", &["/usr/bin/chromedriver", "chromedriver"]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", chromedriver.display()));
        let driver = Driver {
            url: format!("http://127.0.0.1:{port}"),
            chromium,
            child,
        };
        let status = format!("{}/status", driver.url);
        let started = Instant::now();
        loop {
            if let Ok(response) = reqwest::get(&status).await {
                if response.status().is_success() {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not answer on {status}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    /// A new headless Chromium session (its own profile, so its own sign-in) of `width` ×
    /// `height`; `phone` emulates a touch phone's viewport of that size.
    pub async fn browser(&self, width: u32, height: u32, phone: bool) -> Browser {
        let mut options = json!({
            "binary": self.chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                format!("--window-size={width},{height}"),
            ],
        });
        if phone {
            options["mobileEmulation"] = json!({
                "deviceMetrics": {"width": width, "height": height, "pixelRatio": 2.0, "touch": true},
            });
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".to_owned(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".to_owned(), options);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session");
        Browser { client }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser (one WebDriver session) on the page.
pub struct Browser {
    pub client: Client,
}

impl Browser {
    pub async fn open(&self, server: &Server) {
        self.open_url(&format!("{}/", server.address)).await;
    }

    /// Opens the page at `url` (the server's, or a gateway's in front of it).
    pub async fn open_url(&self, url: &str) {
        self.client.goto(url).await.expect("open the page");
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Id("signin-name"))
            .await
            .expect("the sign-in field");
    }

    pub async fn sign_in(&self, name: &str, organizer: bool) {
        let field = self.find("#signin-name").await;
        field.send_keys(name).await.expect("type the name");
        if organizer {
            self.find("#signin-organizer").await.click().await.unwrap();
        }
        self.find("#signin-submit").await.click().await.unwrap();
        let expected = format!("Signed in as {name}");
        self.eventually_text("#whoami-text", &expected).await;
    }

    /// Opens the event from the list by its link text and waits for its seat map.
    pub async fn open_event(&self, name: &str) {
        let link = self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::LinkText(name))
            .await
            .unwrap_or_else(|_| panic!("a link to the event {name:?} in the list"));
        link.click().await.unwrap();
        self.eventually_text("#event-heading", name).await;
        self.find("button.seat").await;
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
    }

    /// The button of a seat of a venue of one section.
    pub async fn seat(&self, row: &str, number: u32) -> fantoccini::elements::Element {
        self.seat_in("Main", row, number).await
    }

    /// The button of seat `number` of row `row` in the section `section`.
    pub async fn seat_in(
        &self,
        section: &str,
        row: &str,
        number: u32,
    ) -> fantoccini::elements::Element {
        self.find(&format!(
            r#"button.seat[data-section="{section}"][data-row="{row}"][data-number="{number}"]"#
        ))
        .await
    }

    /// A seat's accessible name ("Stalls, row A seat 1, Premium 60.00, wheelchair place, available").
    pub async fn seat_label_in(&self, section: &str, row: &str, number: u32) -> String {
        self.seat_in(section, row, number)
            .await
            .attr("aria-label")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// The attribute `name` of the element `css`.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.find(css).await.attr(name).await.unwrap()
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        self.find(css)
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Submits the form `form` and waits until the page's status says `status`.
    pub async fn submit(&self, form: &str, status: &str) {
        self.click(&format!("{form} button[type=submit]")).await;
        self.eventually_text("#status", status).await;
    }

    /// Selects the seats `seats` (row, number) and presses Hold; waits until the hold's countdown
    /// runs, and returns what it says.
    pub async fn hold_seats(&self, seats: &[(&str, u32)]) -> String {
        for (row, number) in seats {
            self.seat(row, *number).await.click().await.unwrap();
        }
        self.click("#hold").await;
        self.eventually_text("#countdown", "Expires in").await
    }

    pub async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the element's visible text contains `expected`; returns the text.
    pub async fn eventually_text(&self, css: &str, expected: &str) -> String {
        let started = Instant::now();
        loop {
            let text = self.text(css).await;
            if text.contains(expected) {
                return text;
            }
            if started.elapsed() > PATIENCE {
                panic!(
                    "waited {PATIENCE:?} for {css} to say {expected:?}; it says {text:?} \
                     (the page's status: {:?}, alert: {:?})",
                    self.text("#status").await,
                    self.text("#alert").await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the accessible name of a seat (of a venue of one section, priced 25.00) is
    /// exactly "Main, row {row} seat {number}, Standard 25.00, {state}".
    pub async fn eventually_seat(&self, row: &str, number: u32, state: &str) {
        let label = format!("Main, row {row} seat {number}, Standard 25.00, {state}");
        self.eventually_seat_label("Main", row, number, &label)
            .await
    }

    /// Waits until the accessible name of a seat is exactly `label`.
    pub async fn eventually_seat_label(&self, section: &str, row: &str, number: u32, label: &str) {
        eventually(
            &format!("seat {section} {row}{number} to read {label:?}"),
            || async move {
                (self.seat_label_in(section, row, number).await == label).then_some(())
            },
        )
        .await
    }

    /// Waits until the element is shown (not just in the document).
    pub async fn eventually_displayed(&self, css: &str) {
        eventually(&format!("{css} to be shown"), || async move {
            let element = self.client.find(Locator::Css(css)).await.ok()?;
            element.is_displayed().await.ok()?.then_some(())
        })
        .await
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// Polls `check` until it gives a value, for at most [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "waited {PATIENCE:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
