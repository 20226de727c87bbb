// The seat-map page: plain DOM, no framework, no build step. Served at `/` by local-api and, deployed,
// by the events function (README, "The seat-map page"). Every API call goes to the same origin;
// deployed, sign-in goes through Cognito's hosted UI (functions/events/src/web.rs says which).
"use strict";

const API = "/api/v1";
const IDENTITY_KEY = "seatbook.identity";
// Cognito sign-in: the tokens, and the PKCE verifier and state while the hosted UI has the tab.
// sessionStorage, not localStorage: they end with the tab and are never shared between tabs.
const SESSION_KEY = "seatbook.session";
const PENDING_KEY = "seatbook.signin";
// A token this close to its expiry is renewed first, so that none expires in flight.
const RENEW_MS = 60 * 1000;
// The API takes at most 10 seats per booking or hold.
const MAX_SEATS_PER_REQUEST = 10;
const POLL_MS = 4000;

const state = {
  // event id → the event version this page's last write to it left (Seatbook-Event-Version).
  eventVersions: {},
  signIn: { mode: "local" }, // or {mode: "cognito", domain, clientId}
  identity: null, // {user, organizer}
  session: null, // Cognito: {accessToken, idToken, refreshToken, expiresAt}
  events: new Map(), // id -> event, for names in the bookings list
  nextCursor: null,
  event: null, // the open event
  seats: new Map(), // seat id -> {seat, button}
  sections: new Map(), // section name -> {box, rows: Map(row label -> seats element)}, the open map's
  lastSections: [], // the sections of the venue this organizer last created
  categories: [], // the open map's [{name, price_cents, available}], in its order
  selected: new Set(), // seat ids, in the open event
  hold: null, // the live hold being counted down
  available: null, // the open map's available seats (0: sold out)
  waitlist: null, // the caller's newest waitlist entry for the open event, or null
  queue: null, // the caller's entry in the open event's waiting room, or null
  admissions: {}, // event id -> the admission token that event's holds and bookings carry
  queueTimer: null,
  clockOffset: 0, // server clock minus ours, from the Date header
  countdownTimer: null,
  pollTimer: null,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// ---------------------------------------------------------------------------------------------
// Talking to the API

async function api(method, path, body, retried = false) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  // Reads of an event this page wrote to name the version that write left, so the server never
  // answers them with a seat map from before it (others may see it up to a second late).
  const read = method === "GET" && /^\/events\/(\d+)/.exec(path);
  if (read && state.eventVersions[read[1]]) {
    headers["seatbook-event-version"] = String(state.eventVersions[read[1]]);
  }
  // An event with a waiting room takes holds and bookings only with the caller's admission.
  const admission = method === "POST" && body && body.event_id && state.admissions[body.event_id];
  if (admission) headers["seatbook-admission"] = admission;
  if (cognito()) {
    const token = await accessToken();
    if (token) headers.authorization = `Bearer ${token}`;
  } else if (state.identity) {
    // Dev identity (local-api): these headers stand in for the JWT's claims.
    headers["x-dev-user"] = state.identity.user;
    if (state.identity.organizer) headers["x-dev-groups"] = "organizers";
  }
  let response;
  try {
    response = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    return { ok: false, status: 0, body: { detail: "Could not reach the server. Try again." } };
  }
  if (response.status === 401 && headers.authorization && !retried) {
    // API Gateway refused the token before any function ran, so even a POST is safe to repeat.
    if (await refreshSession()) return api(method, path, body, true);
    endSession();
  }
  // The Date header is whole seconds: only a clock that is clearly off is corrected.
  const date = Date.parse(response.headers.get("date") || "");
  if (!Number.isNaN(date)) {
    const skew = date + 500 - Date.now();
    state.clockOffset = Math.abs(skew) > 1500 ? skew : 0;
  }
  let data = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("json")) {
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
  }
  const version = Number(response.headers.get("seatbook-event-version"));
  if (response.ok && version && data && data.event_id) {
    state.eventVersions[data.event_id] = Math.max(state.eventVersions[data.event_id] || 0, version);
  }
  return { ok: response.ok, status: response.status, body: data, headers: response.headers };
}

/// The last segment of a problem's `type` (`seats-taken`, `sales-closed`, …).
function problemKind(result) {
  const type = (result.body && result.body.type) || "";
  return type.split("/").pop();
}

function problemText(result) {
  if (result.status === 401) return signInFirst();
  if (problemKind(result) === "admission-required") {
    return "It is not your turn: wait in the queue until the page says so, then choose your seats.";
  }
  if (result.status === 403) {
    return cognito()
      ? "Only organizers can do that: ask for your account to be added to the organizers group, then sign in again."
      : "Only organizers can do that: sign in with “Organizer” ticked.";
  }
  if (problemKind(result) === "rate-limited") {
    const wait = result.headers && result.headers.get("retry-after");
    return `Too many requests at once. Try again in ${wait || "a few"} seconds.`;
  }
  const body = result.body || {};
  return body.detail || body.title || `The request failed (HTTP ${result.status}).`;
}

// ---------------------------------------------------------------------------------------------
// Messages

function say(text) {
  const status = $("status");
  status.textContent = "";
  // A fresh text node, so screen readers announce a repeated message again.
  window.setTimeout(() => {
    status.textContent = text;
  }, 30);
  hideAlert();
}

function warn(text) {
  const alert = $("alert");
  alert.textContent = text;
  alert.hidden = false;
}

function hideAlert() {
  $("alert").hidden = true;
  $("alert").textContent = "";
}

// ---------------------------------------------------------------------------------------------
// Formatting

function money(cents) {
  return (cents / 100).toFixed(2);
}

function when(iso) {
  return new Date(iso).toLocaleString(undefined, {
    weekday: "short",
    day: "numeric",
    month: "short",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

/// A seat, or a ticket (whose seat the open map may know): "Row A seat 1", or in a venue of
/// several sections "Stalls row A seat 1".
function seatName(place) {
  const entry = place.seat_id !== undefined && state.seats.get(place.seat_id);
  const seat = entry ? entry.seat : place;
  const prefix = seat.section && state.sections.size > 1 ? `${seat.section} row` : "Row";
  return `${prefix} ${seat.row} seat ${seat.number}`;
}

/// A seat button's accessible name: where it is, its category and price, whether it is a
/// wheelchair place, its status.
function seatLabel(seat, status, selected) {
  const parts = [`${seat.section}, row ${seat.row} seat ${seat.number}`, `${seat.category} ${money(seat.price_cents)}`];
  if (seat.accessible) parts.push("wheelchair place");
  parts.push(status);
  if (selected) parts.push("selected");
  return parts.join(", ");
}

function seatList(seats) {
  const names = seats.map(seatName);
  if (names.length <= 1) return names.join("");
  return names.slice(0, -1).join(", ") + " and " + names[names.length - 1];
}

function serverNow() {
  return Date.now() + state.clockOffset;
}

// ---------------------------------------------------------------------------------------------
// Sign-in: locally a name (the dev identity); deployed, Cognito's hosted UI

function cognito() {
  return state.signIn.mode === "cognito";
}

function readSignInConfig() {
  const meta = document.querySelector('meta[name="seatbook-sign-in"]');
  if (meta && meta.content === "cognito" && meta.dataset.domain && meta.dataset.clientId) {
    return { mode: "cognito", domain: meta.dataset.domain, clientId: meta.dataset.clientId };
  }
  return { mode: "local" };
}

function signInFirst() {
  return cognito()
    ? "Sign in first (the “Sign in” button at the top of the page)."
    : "Sign in first (your name, at the top of the page).";
}

function signInControl() {
  return cognito() ? $("signin-hosted-button") : $("signin-name");
}

/// Whether nobody is signed in, having then said how to sign in and put the focus there: an
/// action that needs a buyer stops at this rather than go to the API anonymous.
function needsSignIn() {
  if (state.identity) return false;
  warn(signInFirst());
  signInControl().focus();
  return true;
}

/// The form a buyer's submit `event` came from, once it may be sent: `null` (after saying why)
/// when nobody is signed in or a field is invalid. Every buyer's form checks the same two things.
function submittedForm(event) {
  event.preventDefault();
  if (needsSignIn()) return null;
  const form = event.target;
  if (!form.checkValidity()) {
    form.reportValidity();
    return null;
  }
  return form;
}

function loadIdentity() {
  try {
    const saved = JSON.parse(window.localStorage.getItem(IDENTITY_KEY) || "null");
    if (saved && typeof saved.user === "string" && saved.user) state.identity = saved;
  } catch (err) {
    state.identity = null;
  }
}

function renderIdentity() {
  const signedIn = Boolean(state.identity);
  $("signin").hidden = signedIn || cognito();
  $("signin-hosted").hidden = signedIn || !cognito();
  $("whoami").hidden = !signedIn;
  $("bookings-view").hidden = !signedIn;
  $("organizer-view").hidden = !(signedIn && state.identity.organizer);
  if (signedIn) {
    $("whoami-text").textContent =
      `Signed in as ${state.identity.user}` + (state.identity.organizer ? " (organizer)" : "");
  }
}

function signIn(event) {
  event.preventDefault();
  const name = $("signin-name");
  if (!name.checkValidity()) {
    name.reportValidity();
    return;
  }
  state.identity = { user: name.value.trim(), organizer: $("signin-organizer").checked };
  window.localStorage.setItem(IDENTITY_KEY, JSON.stringify(state.identity));
  renderIdentity();
  say(`Signed in as ${state.identity.user}.`);
  loadBookings();
  loadWaitlist();
  enterQueue();
  $("signout").focus();
}

async function signOut() {
  if (cognito()) {
    await signOutOfCognito();
    return;
  }
  state.identity = null;
  window.localStorage.removeItem(IDENTITY_KEY);
  stopCountdown();
  state.hold = null;
  $("hold-panel").hidden = true;
  stopQueuePolling();
  state.queue = null;
  state.admissions = {};
  renderIdentity();
  renderQueue();
  say("Signed out.");
  $("signin-name").focus();
}

// Cognito: authorization code with PKCE (S256). The page is a public client: no secret, so the
// verifier proves that whoever redeems the code is the tab that asked for it.

function redirectUri() {
  return window.location.origin + "/";
}

function base64url(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomText(bytes) {
  return base64url(window.crypto.getRandomValues(new Uint8Array(bytes)));
}

function jwtClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    return null;
  }
}

async function startHostedSignIn() {
  const { domain, clientId } = state.signIn;
  if (!window.crypto.subtle) {
    warn("Sign-in needs the page over https.");
    return;
  }
  // 48 random bytes: a 64-character verifier (PKCE allows 43 to 128).
  const verifier = randomText(48);
  const digest = await window.crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  const pending = { verifier, state: randomText(24), hash: window.location.hash };
  window.sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const query = new URLSearchParams({
    response_type: "code",
    client_id: clientId,
    redirect_uri: redirectUri(),
    scope: "openid email profile",
    code_challenge: base64url(new Uint8Array(digest)),
    code_challenge_method: "S256",
    state: pending.state,
  });
  window.location.assign(`${domain}/oauth2/authorize?${query}`);
}

/// Back from the hosted UI (`?code=…&state=…` or `?error=…`): redeems the code (true), or says
/// why not.
async function completeHostedSignIn() {
  const params = new URLSearchParams(window.location.search);
  if (!params.has("code") && !params.has("error")) return;
  let pending = null;
  try {
    pending = JSON.parse(window.sessionStorage.getItem(PENDING_KEY) || "null");
  } catch (err) {
    pending = null;
  }
  window.sessionStorage.removeItem(PENDING_KEY);
  // The code leaves the address bar and the history whatever happens next.
  window.history.replaceState(null, "", "/" + ((pending && pending.hash) || window.location.hash));
  if (!pending) return; // Nothing was started here: an old or forged link.
  if (params.has("error")) {
    // Only the standard error code is shown: the description is whatever the link says.
    const code = params.get("error").replace(/[^a-z_]/g, "");
    warn(
      code === "access_denied"
        ? "Sign-in was cancelled or refused. You are not signed in."
        : `Sign-in failed (${code || "unknown error"}). Try again.`,
    );
    return;
  }
  if (params.get("state") !== pending.state) {
    warn("Sign-in refused: the reply did not match the sign-in started on this page. Sign in again.");
    return;
  }
  say("Signing in…");
  const result = await tokenRequest({
    grant_type: "authorization_code",
    client_id: state.signIn.clientId,
    code: params.get("code"),
    redirect_uri: redirectUri(),
    code_verifier: pending.verifier,
  });
  if (result.error) {
    warn(`Sign-in failed: the sign-in service did not issue a session (${result.error}). Try again.`);
    return;
  }
  setSession(result.tokens, null);
  say(`Signed in as ${state.identity.user}.`);
  return true;
}

async function tokenRequest(fields) {
  let response;
  try {
    response = await fetch(`${state.signIn.domain}/oauth2/token`, {
      method: "POST",
      body: new URLSearchParams(fields),
    });
  } catch (err) {
    return { error: "unreachable" };
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok || !body.access_token) return { error: body.error || `HTTP ${response.status}` };
  return { tokens: body };
}

/// The access token goes to the API: API Gateway's authorizer checks its `client_id` against its
/// audience, and it carries the two claims the functions read, `sub` and `cognito:groups`. The ID
/// token only names the person on the page.
function setSession(tokens, previous) {
  const access = jwtClaims(tokens.access_token) || {};
  const claims = jwtClaims(tokens.id_token) || access;
  state.session = {
    accessToken: tokens.access_token,
    idToken: tokens.id_token,
    // A refresh answers with new access and ID tokens only.
    refreshToken: tokens.refresh_token || (previous && previous.refreshToken) || null,
    expiresAt: access.exp ? access.exp * 1000 : Date.now() + (tokens.expires_in || 0) * 1000,
  };
  window.sessionStorage.setItem(SESSION_KEY, JSON.stringify(state.session));
  const groups = claims["cognito:groups"];
  state.identity = {
    user: claims.email || claims["cognito:username"] || claims.username || claims.sub,
    organizer: Array.isArray(groups) && groups.includes("organizers"),
  };
}

function loadSession() {
  let saved = null;
  try {
    saved = JSON.parse(window.sessionStorage.getItem(SESSION_KEY) || "null");
  } catch (err) {
    saved = null;
  }
  if (saved && saved.accessToken) setSession({ access_token: saved.accessToken, id_token: saved.idToken }, saved);
}

function endSession() {
  state.session = null;
  state.identity = null;
  window.sessionStorage.removeItem(SESSION_KEY);
  stopCountdown();
  state.hold = null;
  $("hold-panel").hidden = true;
  renderIdentity();
}

let refreshing = null;

/// One refresh at a time, however many calls find the token stale together.
function refreshSession() {
  if (!refreshing) {
    refreshing = (async () => {
      const session = state.session;
      if (!session || !session.refreshToken) return false;
      const result = await tokenRequest({
        grant_type: "refresh_token",
        client_id: state.signIn.clientId,
        refresh_token: session.refreshToken,
      });
      if (result.error || state.session !== session) return false;
      setSession(result.tokens, session);
      return true;
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function accessToken() {
  if (!state.session) return null;
  if (state.session.expiresAt - RENEW_MS <= Date.now() && !(await refreshSession())) {
    endSession();
    warn("Your sign-in has expired. Sign in again to continue.");
    return null;
  }
  return state.session && state.session.accessToken;
}

async function signOutOfCognito() {
  const { domain, clientId } = state.signIn;
  const refreshToken = state.session && state.session.refreshToken;
  endSession();
  if (refreshToken) {
    // Revoked, so the refresh token is worthless even to whoever may have copied it.
    await fetch(`${domain}/oauth2/revoke`, {
      method: "POST",
      body: new URLSearchParams({ token: refreshToken, client_id: clientId }),
    }).catch(() => {});
  }
  // The hosted UI's own session ends too; it sends the browser back here.
  window.location.assign(`${domain}/logout?${new URLSearchParams({ client_id: clientId, logout_uri: redirectUri() })}`);
}

// ---------------------------------------------------------------------------------------------
// Events list

async function loadEvents(more = false) {
  const query = more && state.nextCursor ? `?limit=20&cursor=${encodeURIComponent(state.nextCursor)}` : "?limit=20";
  const result = await api("GET", "/events" + query);
  if (!result.ok) {
    warn(problemText(result));
    return;
  }
  const list = $("events");
  if (!more) list.replaceChildren();
  for (const event of result.body.items) {
    state.events.set(event.id, event);
    const opens = event.sales_start_at && Date.parse(event.sales_start_at) > serverNow();
    list.append(
      el(
        "li",
        { class: "event-card" },
        el("a", { href: `#/events/${event.id}`, class: "event-link", text: event.name }),
        el("span", { class: "meta", text: `${when(event.starts_at)} · ${event.venue_name} · ${money(event.price_cents)}` }),
        opens ? el("span", { class: "meta", text: `On sale from ${when(event.sales_start_at)}` }) : "",
      ),
    );
  }
  state.nextCursor = result.body.next_cursor || null;
  $("events-more").hidden = !state.nextCursor;
  $("events-empty").hidden = list.children.length > 0;
}

// ---------------------------------------------------------------------------------------------
// One event and its seat map

function seatCap() {
  const cap = state.event && state.event.max_seats_per_user;
  return Math.min(cap || MAX_SEATS_PER_REQUEST, MAX_SEATS_PER_REQUEST);
}

async function openEvent(id) {
  stopPolling();
  const result = await api("GET", `/events/${id}`);
  if (!result.ok) {
    warn(result.status === 404 ? "There is no such event." : problemText(result));
    showList();
    return;
  }
  if (!state.event || state.event.id !== result.body.id) clearMap();
  state.event = result.body;
  state.events.set(state.event.id, state.event);
  $("events-view").hidden = true;
  $("event-view").hidden = false;
  renderFacts();
  $("best-count").max = String(seatCap());
  $("waitlist-count").max = String(seatCap());
  state.waitlist = null;
  state.queue = null;
  renderQueue();
  await refreshMap();
  await enterQueue();
  await loadWaitlist();
  renderHold();
  // A live hold of this event (made before a reload, or on another device) gets its countdown.
  if (!state.hold) await loadBookings();
  startPolling();
  $("event-heading").focus();
}

function renderFacts() {
  const event = state.event;
  $("event-heading").textContent = event.name;
  document.title = `${event.name} · Seatbook`;
  const facts = [
    ["When", when(event.starts_at)],
    ["Where", event.venue_name],
    ["Price per seat", money(event.price_cents), "fact-price"],
    ["On sale", (event.sales_start_at ? `from ${when(event.sales_start_at)} ` : "now, ") + `until ${when(event.sales_end_at)}`],
    ["Seats per person", event.max_seats_per_user ? `at most ${event.max_seats_per_user}` : "no limit"],
  ];
  if (event.description) facts.unshift(["About", event.description]);
  $("event-facts").replaceChildren(
    ...facts.flatMap(([term, value, id]) => [el("dt", { text: term }), el("dd", { text: value, id })]),
  );
}

function clearMap() {
  state.selected.clear();
  state.seats.clear();
  state.sections.clear();
  state.categories = [];
  $("rows").replaceChildren();
}

/// The rows element of `row` in the section `name`, drawn (apart from the others, labelled) the
/// first time it is seen. Sections come front to back, as the map lists them.
function rowSeats(name, row, several) {
  let section = state.sections.get(name);
  if (!section) {
    const headingId = `section-${state.sections.size}`;
    const box = el(
      "div",
      { class: "section", role: "group", "aria-labelledby": headingId, "data-section": name },
      el("h3", { class: "section-name", id: headingId, text: name }),
    );
    $("rows").append(box);
    section = { box, rows: new Map() };
    state.sections.set(name, section);
  }
  // One rectangle ("Main"): its name says nothing, so it is only read out, not shown.
  section.box.querySelector(".section-name").classList.toggle("visually-hidden", !several);
  let seats = section.rows.get(row);
  if (!seats) {
    seats = el("div", { class: "seats" });
    section.box.append(
      el(
        "div",
        { class: "row", role: "group", "aria-label": `Row ${row}` },
        el("span", { class: "row-label", "aria-hidden": "true", text: row }),
        seats,
      ),
    );
    section.rows.set(row, seats);
  }
  return seats;
}

async function refreshMap() {
  if (!state.event) return false;
  const eventId = state.event.id;
  const result = await api("GET", `/events/${eventId}/availability`);
  if (!state.event || state.event.id !== eventId) return false;
  if (!result.ok) {
    warn(problemText(result));
    return false;
  }
  const map = result.body;
  state.categories = map.categories || [];
  const several = new Set(map.seats.map((seat) => seat.section)).size > 1;
  for (const seat of map.seats) {
    let entry = state.seats.get(seat.id);
    if (!entry) {
      const button = el("button", {
        type: "button",
        class: "seat",
        "data-seat-id": seat.id,
        "data-section": seat.section,
        "data-row": seat.row,
        "data-number": seat.number,
        onclick: () => toggleSeat(seat.id),
      });
      if (seat.accessible) button.append(el("span", { class: "wheelchair", "aria-hidden": "true", text: "♿" }));
      button.append(el("span", { class: "num", text: String(seat.number) }), el("span", { class: "cat-mark", "aria-hidden": "true" }));
      rowSeats(seat.section, seat.row, several).append(button);
      entry = { seat, button };
      state.seats.set(seat.id, entry);
    }
    entry.seat = seat;
    if (seat.status !== "available") state.selected.delete(seat.id);
    renderSeat(entry);
  }
  state.available = map.available_seats;
  $("seatmap").setAttribute(
    "aria-label",
    `Seat map: ${map.available_seats} of ${map.total_seats} seats available` +
      (several ? `, in ${state.sections.size} sections` : ""),
  );
  $("legend-wheelchair").hidden = !map.seats.some((seat) => seat.accessible);
  renderCategories();
  renderSelection();
  renderWaitlist();
  return true;
}

/// Each category's pattern (and colour): its place in the map's list, six patterns in turn.
function categoryStyle(name) {
  const index = state.categories.findIndex((category) => category.name === name);
  return String(Math.max(index, 0) % 6);
}

/// The legend of price categories (a pattern, the name, the price and what is left, in words)
/// and the best-available control's choice of them.
function renderCategories() {
  const list = $("categories");
  list.replaceChildren(
    ...state.categories.map((category) =>
      el(
        "li",
        { "data-category": category.name },
        el("span", { class: "cat-swatch", "data-cat": categoryStyle(category.name), "aria-hidden": "true" }),
        " ",
        el("span", { class: "cat-name", text: category.name }),
        " · ",
        el("span", { class: "cat-price", text: money(category.price_cents) }),
        " · ",
        el("span", { class: "cat-left", text: `${category.available} available` }),
      ),
    ),
  );
  list.hidden = state.categories.length === 0;
  const select = $("best-category");
  const chosen = select.value;
  select.replaceChildren(
    el("option", { value: "", text: "Any category" }),
    ...state.categories.map((category) =>
      el("option", { value: category.name, text: `${category.name} (${money(category.price_cents)})` }),
    ),
  );
  if (state.categories.some((category) => category.name === chosen)) select.value = chosen;
  const waitFor = $("waitlist-category");
  const waited = waitFor.value;
  waitFor.replaceChildren(...[...select.options].map((option) => option.cloneNode(true)));
  if ([...waitFor.options].some((option) => option.value === waited)) waitFor.value = waited;
  // With categories, a seat costs what its category does: the facts give the range.
  const prices = state.categories.map((category) => category.price_cents);
  if (prices.length) {
    const low = Math.min(...prices);
    const high = Math.max(...prices);
    $("fact-price").textContent = low === high ? money(low) : `${money(low)} to ${money(high)}, by category`;
  }
}

function renderSeat({ seat, button }) {
  const selected = state.selected.has(seat.id);
  const mine = seat.status === "held" && state.hold && state.hold.tickets.some((t) => t.seat_id === seat.id);
  const status = mine ? "held by you" : seat.status;
  button.dataset.status = seat.status;
  button.dataset.cat = categoryStyle(seat.category);
  button.classList.toggle("is-mine", Boolean(mine));
  button.setAttribute("aria-pressed", selected ? "true" : "false");
  if (seat.status === "available") button.removeAttribute("aria-disabled");
  else button.setAttribute("aria-disabled", "true");
  const label = seatLabel(seat, status, selected);
  button.setAttribute("aria-label", label);
  button.title = label;
}

function toggleSeat(id) {
  const entry = state.seats.get(id);
  if (!entry) return;
  const { seat } = entry;
  if (seat.status !== "available") {
    say(`${seatName(seat)} is ${seat.status}.`);
    return;
  }
  if (state.selected.has(id)) {
    state.selected.delete(id);
  } else if (state.selected.size >= seatCap()) {
    say(`You can choose at most ${seatCap()} seats for this event.`);
    return;
  } else {
    state.selected.add(id);
  }
  renderSeat(entry);
  renderSelection();
}

function selectedSeats() {
  // In the map's order: front to back.
  return [...state.seats.values()].filter(({ seat }) => state.selected.has(seat.id)).map(({ seat }) => seat);
}

function renderSelection() {
  const seats = selectedSeats();
  const cap = seatCap();
  $("selection-text").textContent = seats.length
    ? `Selected ${seats.length} of at most ${cap}: ${seatList(seats)}. Total ${money(seats.reduce((sum, seat) => sum + seat.price_cents, 0))}.`
    : `No seats selected. Choose up to ${cap}.`;
  $("hold").disabled = seats.length === 0;
}

async function holdSeats() {
  if (needsSignIn()) return;
  const seats = selectedSeats();
  if (!seats.length) return;
  $("hold").disabled = true;
  const result = await api("POST", "/holds", { event_id: state.event.id, seat_ids: seats.map((s) => s.id) });
  if (result.ok) {
    state.hold = result.body;
    state.selected.clear();
    await refreshMap();
    renderHold();
    say(`Held ${seatList(result.body.tickets)}. Confirm before the hold lapses.`);
    $("confirm").focus();
    loadBookings();
    return;
  }
  if (result.status === 409 && problemKind(result) === "seats-taken") {
    const taken = (result.body.seat_ids || []).map((id) => state.seats.get(id)).filter(Boolean).map((e) => e.seat);
    await refreshMap();
    const names = taken.length ? seatList(taken) : "Some of your seats";
    warn(`Sorry, ${names} ${taken.length === 1 ? "was" : "were"} just taken by someone else. The seat map is updated; choose again.`);
    $("seatmap").focus();
    return;
  }
  warn(problemText(result));
  renderSelection();
}

/// The "Best available" control: the API chooses `count` seats (of a category, wheelchair places
/// or not) and holds them, as a hold of seats picked by hand.
async function holdBest(event) {
  const form = submittedForm(event);
  if (!form) return;
  const best = { count: Number(form.count.value) };
  if (form.category.value) best.category = form.category.value;
  if (form.accessible.checked) best.accessible = true;
  $("best-hold").disabled = true;
  const result = await api("POST", "/holds", { event_id: state.event.id, best_available: best });
  $("best-hold").disabled = false;
  if (result.ok) {
    state.hold = result.body;
    state.selected.clear();
    await refreshMap();
    renderHold();
    const apart = result.body.together === false
      ? " They are not together: no block of that many side by side was free."
      : "";
    say(`Held the best available: ${seatList(result.body.tickets)}.${apart} Confirm before the hold lapses.`);
    $("confirm").focus();
    loadBookings();
    return;
  }
  if (result.status === 409 && problemKind(result) === "not-enough-seats") {
    const left = result.body.available;
    const kind = [best.category, best.accessible ? "wheelchair places" : "seats"].filter(Boolean).join(" ");
    warn(`Not enough ${kind} free: ${left === undefined ? "fewer" : `only ${left}`} left for ${best.count}. Ask for fewer, or another category.`);
    await refreshMap();
    return;
  }
  warn(problemText(result));
}

// ---------------------------------------------------------------------------------------------
// The hold and its countdown

function renderHold() {
  const hold = state.hold;
  const panel = $("hold-panel");
  if (!hold || hold.lapsed || !state.event || hold.event_id !== state.event.id) {
    panel.hidden = true;
    stopCountdown();
    return;
  }
  panel.hidden = false;
  $("hold-seats").textContent = `${seatList(hold.tickets)} · total ${money(hold.total_cents)}`;
  $("hold-apart").hidden = hold.together !== false;
  $("confirm").disabled = false;
  $("release").hidden = false;
  startCountdown();
}

function startCountdown() {
  stopCountdown();
  tick();
  state.countdownTimer = window.setInterval(tick, 250);
}

function stopCountdown() {
  if (state.countdownTimer) window.clearInterval(state.countdownTimer);
  state.countdownTimer = null;
}

function tick() {
  const hold = state.hold;
  if (!hold) return stopCountdown();
  const left = Math.ceil((Date.parse(hold.expires_at) - serverNow()) / 1000);
  const countdown = $("countdown");
  if (left > 0) {
    const minutes = Math.floor(left / 60);
    const seconds = String(left % 60).padStart(2, "0");
    countdown.textContent = `Expires in ${minutes}:${seconds}`;
    countdown.dataset.state = left <= 30 ? "soon" : "running";
    return;
  }
  stopCountdown();
  const at = new Date(hold.expires_at).toLocaleTimeString();
  countdown.textContent = `Your hold lapsed at ${at}; those seats are free again.`;
  countdown.dataset.state = "lapsed";
  $("confirm").disabled = true;
  $("release").hidden = true;
  state.hold = { ...hold, lapsed: true };
  if (isOffer(hold)) warn(`The waitlist's offer of ${seatList(hold.tickets)} lapsed; the seats go to the next in line.`);
  else warn(`Your hold on ${seatList(hold.tickets)} lapsed. Choose seats again to hold them.`);
  refreshMap();
  loadBookings();
  loadWaitlist();
}

async function confirmHold() {
  const hold = state.hold;
  if (!hold) return;
  $("confirm").disabled = true;
  const result = await api("POST", `/holds/${hold.id}/confirm`);
  if (result.ok) {
    stopCountdown();
    state.hold = null;
    $("hold-panel").hidden = true;
    say(`Booked ${seatList(result.body.tickets)}. Your booking is in “My bookings”.`);
    await refreshMap();
    await loadBookings();
    await loadWaitlist();
    $("bookings-heading").focus();
    return;
  }
  if (result.status === 410) {
    stopCountdown();
    $("countdown").textContent = "Your hold lapsed before it was confirmed; those seats are free again.";
    $("countdown").dataset.state = "lapsed";
    $("release").hidden = true;
    warn("Your hold lapsed before it was confirmed. Choose seats again to hold them.");
    state.hold = { ...hold, lapsed: true };
    await refreshMap();
    return;
  }
  $("confirm").disabled = false;
  warn(problemText(result));
}

async function releaseHold() {
  const hold = state.hold;
  if (!hold) return;
  const result = await api("DELETE", `/bookings/${hold.id}`);
  if (!result.ok) {
    warn(problemText(result));
    return;
  }
  stopCountdown();
  state.hold = null;
  $("hold-panel").hidden = true;
  say(`Released ${seatList(hold.tickets)}.`);
  await refreshMap();
  loadBookings();
}

// ---------------------------------------------------------------------------------------------
// The waitlist of a sold-out event: joining it, one's place, and an offer (a hold of the seats
// that came back, shown, counted down and confirmed in the hold panel like any hold)

// ---------------------------------------------------------------------------------------------
// The waiting room: an event that has one sells only to buyers its queue has admitted

/// Joins the open event's queue (again: the same entry comes back) and follows it.
async function enterQueue() {
  stopQueuePolling();
  if (!state.event || !state.event.waiting_room || !state.identity) {
    renderQueue();
    return;
  }
  const eventId = state.event.id;
  const result = await api("POST", `/events/${eventId}/queue`);
  if (!state.event || state.event.id !== eventId) return;
  followQueue(result);
}

async function pollQueue() {
  if (!state.event || !state.event.waiting_room || !state.identity) return;
  const eventId = state.event.id;
  const result = await api("GET", `/events/${eventId}/queue/me`);
  if (!state.event || state.event.id !== eventId) return;
  // Not in the queue any more (Redis lost it): in again, at the back.
  if (result.status === 404) return enterQueue();
  followQueue(result);
}

/// Shows the entry `result` carries and looks again when its Retry-After says.
function followQueue(result) {
  let wait = Number((result.headers && result.headers.get("retry-after")) || 5);
  if (result.ok) {
    const before = state.queue && state.queue.state;
    state.queue = result.body;
    if (result.body.admission) state.admissions[state.event.id] = result.body.admission.token;
    else delete state.admissions[state.event.id];
    renderQueue();
    if (result.body.state === "admitted" && before !== "admitted") {
      say("It is your turn: choose your seats.");
      $("seatmap").focus();
    }
    // Nothing to wait for after an admission lapsed: the buyer joins again by hand.
    if (result.body.state === "expired") return;
  } else {
    warn(problemText(result));
  }
  state.queueTimer = window.setTimeout(pollQueue, Math.max(1, Math.min(wait || 5, 30)) * 1000);
}

function stopQueuePolling() {
  if (state.queueTimer) window.clearTimeout(state.queueTimer);
  state.queueTimer = null;
}

function duration(seconds) {
  if (seconds < 60) return `${seconds} second${seconds === 1 ? "" : "s"}`;
  const minutes = Math.round(seconds / 60);
  return `${minutes} minute${minutes === 1 ? "" : "s"}`;
}

function renderQueue() {
  const room = state.event && state.event.waiting_room;
  const entry = state.queue;
  const admitted = Boolean(entry && entry.state === "admitted");
  $("queue-panel").hidden = !room;
  // Seats are chosen once admitted; the map shows meanwhile what is left.
  $("pickers").hidden = Boolean(room) && !admitted;
  $("queue-join").hidden = !(entry && entry.state === "expired");
  if (!room) return;
  let text;
  if (!state.identity) {
    text = `This event has a waiting room. ${signInFirst()}`;
  } else if (!entry) {
    text = "Joining the queue…";
  } else if (admitted) {
    const until = new Date(entry.admission.expires_at);
    text = `It is your turn: choose your seats before ${until.toLocaleTimeString()}.`;
  } else if (entry.state === "sold_out") {
    text = "No seat is free right now. You keep your place: when seats come back, the queue moves again.";
  } else if (entry.state === "expired") {
    text = "Your turn passed without a booking. Join again to queue at the back.";
  } else if (entry.position === null) {
    text = "You are in the queue. The sale has not opened yet: when it does, everyone who came before is put in a random order.";
  } else {
    const ahead = entry.ahead === 1 ? "1 person is" : `${entry.ahead} people are`;
    text = `You are number ${entry.position} in the queue: ${ahead} ahead of you, about ${duration(entry.eta_seconds)} to go.`;
  }
  $("queue-text").textContent = text;
}

function isOffer(hold) {
  const entry = state.waitlist;
  return Boolean(hold && entry && entry.offer && entry.offer.hold_id === hold.id);
}

async function loadWaitlist() {
  if (!state.event || !state.identity) {
    state.waitlist = null;
    renderWaitlist();
    return;
  }
  const eventId = state.event.id;
  const result = await api("GET", `/events/${eventId}/waitlist/me`);
  if (!state.event || state.event.id !== eventId) return;
  state.waitlist = (result.ok && result.body) || null;
  renderWaitlist();
  if (result.ok && result.body && result.body.state === "offered") await showOffer(result.body.offer);
}

function renderWaitlist() {
  const entry = state.waitlist;
  const live = Boolean(entry && (entry.state === "waiting" || entry.state === "offered"));
  const soldOut = state.available === 0;
  $("waitlist-panel").hidden = !state.event || !(live || soldOut);
  $("waitlist-form").hidden = live;
  $("waitlist-leave").hidden = !live;
  const asked = entry ? `${entry.count} seat${entry.count === 1 ? "" : "s"}${entry.category ? ` (${entry.category})` : ""}` : "";
  let text = "Sold out. Join the waitlist: when seats come back, the first in line they suit gets them, held for a while.";
  if (entry && entry.state === "waiting") {
    text = `You are number ${entry.position} in line for ${asked}.`;
  } else if (entry && entry.state === "offered") {
    const seats = entry.offer.seats.map((id) => state.seats.get(id)).filter(Boolean).map((e) => e.seat);
    text = `Seats came back for you: ${seatList(seats)}. They are held for you: confirm before the countdown ends.`;
  } else if (entry && entry.state === "expired" && soldOut) {
    text = "Your waitlist offer lapsed and its seats went to the next in line. Join again to wait for more.";
  }
  $("waitlist-text").textContent = text;
}

/// The hold an offer is, in the hold panel (once: the poll finds the same offer again).
async function showOffer(offer) {
  if (state.hold && state.hold.id === offer.hold_id && !state.hold.lapsed) return;
  const result = await api("GET", `/bookings/${offer.hold_id}`);
  if (!result.ok || result.body.status !== "held") return;
  state.hold = result.body;
  await refreshMap();
  renderHold();
  say(`Seats came back for you from the waitlist: ${seatList(result.body.tickets)}. Confirm before the hold lapses.`);
}

async function joinWaitlist(event) {
  const form = submittedForm(event);
  if (!form) return;
  const body = { count: Number(form.count.value) };
  if (form.category.value) body.category = form.category.value;
  $("waitlist-join").disabled = true;
  const result = await api("POST", `/events/${state.event.id}/waitlist`, body);
  $("waitlist-join").disabled = false;
  if (result.ok) {
    state.waitlist = result.body;
    renderWaitlist();
    say(`You are on the waitlist, number ${result.body.position || 1} in line.`);
    $("waitlist-leave").focus();
    return;
  }
  if (result.status === 409 && problemKind(result) === "seats-available") {
    warn(`${result.body.available} matching seats are free right now: hold them instead of waiting.`);
    await refreshMap();
    return;
  }
  warn(problemText(result));
}

async function leaveWaitlist() {
  const result = await api("DELETE", `/events/${state.event.id}/waitlist/me`);
  if (!result.ok && result.status !== 404) {
    warn(problemText(result));
    return;
  }
  if (isOffer(state.hold)) {
    stopCountdown();
    state.hold = null;
    $("hold-panel").hidden = true;
  }
  say("You left the waitlist.");
  await loadWaitlist();
  await refreshMap();
  loadBookings();
}

// ---------------------------------------------------------------------------------------------
// My bookings

async function loadBookings() {
  if (!state.identity) return;
  const result = await api("GET", "/bookings?limit=50");
  if (!result.ok) {
    warn(problemText(result));
    return;
  }
  const list = $("bookings");
  list.replaceChildren();
  for (const booking of result.body.items) {
    const event = state.events.get(booking.event_id);
    const name = event ? event.name : `Event ${booking.event_id}`;
    const live = booking.status === "confirmed" || booking.status === "held";
    const item = el(
      "li",
      { class: "booking", "data-status": booking.status, "data-booking-id": booking.id },
      el("a", { href: `#/events/${booking.event_id}`, class: "booking-event", text: name }),
      el("span", { class: "booking-seats", text: seatList(booking.tickets) }),
      el("span", { class: "booking-status", text: booking.status + (booking.status === "held" && booking.expires_at ? ` until ${new Date(booking.expires_at).toLocaleTimeString()}` : "") }),
      el("span", { class: "meta", text: money(booking.total_cents) }),
    );
    if (live) {
      item.append(
        el("button", {
          type: "button",
          class: "secondary cancel",
          "aria-label": `Cancel booking of ${seatList(booking.tickets)} for ${name}`,
          text: "Cancel",
          onclick: () => cancelBooking(booking, name),
        }),
      );
    }
    list.append(item);
    // A live hold of the open event (say, after a reload) gets its countdown back.
    if (booking.status === "held" && !state.hold && state.event && booking.event_id === state.event.id
      && booking.expires_at && Date.parse(booking.expires_at) > serverNow()) {
      state.hold = booking;
      renderHold();
    }
  }
  $("bookings-empty").hidden = list.children.length > 0;
}

async function cancelBooking(booking, name) {
  const result = await api("DELETE", `/bookings/${booking.id}`);
  if (!result.ok) {
    warn(problemText(result));
    return;
  }
  if (state.hold && state.hold.id === booking.id) {
    stopCountdown();
    state.hold = null;
    $("hold-panel").hidden = true;
  }
  say(`Cancelled ${seatList(booking.tickets)} for ${name}; the seats are free again.`);
  await loadBookings();
  if (state.event && state.event.id === booking.event_id) await refreshMap();
  $("bookings-heading").focus();
}

// ---------------------------------------------------------------------------------------------
// Organizer

function isoFromLocal(value) {
  return value ? new Date(value).toISOString() : undefined;
}

function localInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

let entryCount = 0;

/// One labelled field of a section or category entry.
function entryField(label, attrs) {
  const id = `entry-${++entryCount}`;
  return el("div", { class: "field" }, el("label", { for: id, text: label }), el("input", { id, ...attrs }));
}

/// A section of the new venue: name, rows, seats per row, wheelchair places. With any section,
/// the venue is made of them instead of one block of rows × seats.
function addSection() {
  const list = $("venue-section-list");
  const item = el(
    "li",
    { class: "entry", role: "group" },
    el("span", { class: "entry-title" }),
    entryField("Section name", { name: "section_name", required: true, maxlength: 100 }),
    entryField("Rows", { name: "section_rows", type: "number", min: 1, max: 200, value: 5, required: true }),
    entryField("Seats per row", { name: "section_cols", type: "number", min: 1, max: 200, value: 10, required: true }),
    entryField("Wheelchair places (optional, like A1, A2)", { name: "section_accessible", maxlength: 2000 }),
  );
  item.append(el("button", { type: "button", class: "secondary remove", text: "Remove", onclick: () => removeEntry(item, "add-section", renderSections) }));
  list.append(item);
  renderSections();
  item.querySelector("input").focus();
}

/// Names an entry ("Section 2", shown and read out as its group's name) and its Remove button.
function entryTitle(item, title) {
  const heading = item.querySelector(".entry-title");
  heading.id = heading.id || `entry-title-${++entryCount}`;
  heading.textContent = title;
  item.setAttribute("aria-labelledby", heading.id);
  item.querySelector(".remove").setAttribute("aria-label", `Remove ${title.toLowerCase()}`);
}

function removeEntry(item, addButton, render) {
  item.remove();
  render();
  $(addButton).focus();
}

function renderSections() {
  const items = [...$("venue-section-list").children];
  items.forEach((item, index) => entryTitle(item, `Section ${index + 1}`));
  // Sections replace the single block: its fields are neither shown nor sent.
  const simple = items.length === 0;
  $("venue-simple").hidden = !simple;
  for (const input of $("venue-simple").querySelectorAll("input")) input.disabled = !simple;
}

/// A price category of the new event: name, price, section, rows (empty: the whole section).
function addCategory() {
  const item = el(
    "li",
    { class: "entry", role: "group" },
    el("span", { class: "entry-title" }),
    entryField("Category name", { name: "category_name", required: true, maxlength: 100 }),
    entryField("Price per seat", { name: "category_price", type: "number", min: 0, step: "0.01", required: true }),
    entryField("Section", { name: "category_section", required: true, maxlength: 100, list: "section-names", value: state.lastSections[0] || "" }),
    entryField("Rows (optional, like A, B; empty: all)", { name: "category_rows", maxlength: 2000 }),
  );
  item.append(el("button", { type: "button", class: "secondary remove", text: "Remove", onclick: () => removeEntry(item, "add-category", renderCategoryEntries) }));
  $("event-category-list").append(item);
  renderCategoryEntries();
  item.querySelector("input").focus();
}

function renderCategoryEntries() {
  [...$("event-category-list").children].forEach((item, index) => entryTitle(item, `Category ${index + 1}`));
}

/// "A1, b12" → [{row: "A", number: 1}, {row: "B", number: 12}]; null if a place is not a row and
/// a number.
function parsePlaces(text) {
  const places = [];
  for (const word of text.split(/[\s,;]+/).filter(Boolean)) {
    const match = /^([A-Za-z]{1,3})-?(\d{1,3})$/.exec(word);
    if (!match) return null;
    places.push({ row: match[1].toUpperCase(), number: Number(match[2]) });
  }
  return places;
}

function parseRows(text) {
  const rows = text.split(/[\s,;]+/).filter(Boolean).map((row) => row.toUpperCase());
  return rows.every((row) => /^[A-Z]{1,3}$/.test(row)) ? rows : null;
}

async function createVenue(event) {
  event.preventDefault();
  const form = event.target;
  const body = { name: form.name.value.trim() };
  const entries = [...$("venue-section-list").children];
  if (entries.length) {
    body.sections = [];
    for (const item of entries) {
      const field = (name) => item.querySelector(`[name="${name}"]`);
      const accessible = parsePlaces(field("section_accessible").value);
      if (!accessible) {
        warn("Write each wheelchair place as its row and number, like A1, A2.");
        field("section_accessible").focus();
        return;
      }
      const section = {
        name: field("section_name").value.trim(),
        rows: Number(field("section_rows").value),
        cols: Number(field("section_cols").value),
      };
      if (accessible.length) section.accessible = accessible;
      body.sections.push(section);
    }
  } else {
    body.rows = Number(form.rows.value);
    body.cols = Number(form.cols.value);
  }
  const result = await api("POST", "/venues", body);
  if (!result.ok) {
    warn(problemText(result));
    return;
  }
  const venue = result.body;
  const sections = venue.sections || [];
  $("event-venue").value = venue.id;
  state.lastSections = sections.map((section) => section.name);
  $("section-names").replaceChildren(...state.lastSections.map((name) => el("option", { value: name })));
  if (entries.length) {
    const wheelchair = sections.reduce((sum, section) => sum + (section.accessible || []).length, 0);
    say(
      `Venue “${venue.name}” created: id ${venue.id}, ${venue.total_seats} seats in ${sections.length} sections ` +
        `(${state.lastSections.join(", ")}), ${wheelchair} wheelchair place${wheelchair === 1 ? "" : "s"}.`,
    );
  } else {
    say(`Venue “${venue.name}” created: id ${venue.id}, ${venue.rows} rows of ${venue.cols} seats.`);
  }
  form.reset();
  $("venue-section-list").replaceChildren();
  renderSections();
  $("event-name").focus();
}

async function createEvent(event) {
  event.preventDefault();
  const form = event.target;
  const body = {
    name: form.name.value.trim(),
    starts_at: isoFromLocal(form.starts_at.value),
    venue_id: Number(form.venue_id.value),
    price_cents: Math.round(Number(form.price.value) * 100),
  };
  const description = form.description.value.trim();
  if (description) body.description = description;
  const salesStart = isoFromLocal(form.sales_start_at.value);
  if (salesStart) body.sales_start_at = salesStart;
  const salesEnd = isoFromLocal(form.sales_end_at.value);
  if (salesEnd) body.sales_end_at = salesEnd;
  if (form.max_seats_per_user.value) body.max_seats_per_user = Number(form.max_seats_per_user.value);
  const categories = [...$("event-category-list").children];
  if (categories.length) {
    body.categories = [];
    for (const item of categories) {
      const field = (name) => item.querySelector(`[name="${name}"]`);
      const rows = parseRows(field("category_rows").value);
      if (!rows) {
        warn("Write the category's rows as their labels, like A, B.");
        field("category_rows").focus();
        return;
      }
      const category = {
        name: field("category_name").value.trim(),
        price_cents: Math.round(Number(field("category_price").value) * 100),
        section: field("category_section").value.trim(),
      };
      if (rows.length) category.rows = rows;
      body.categories.push(category);
    }
  }
  const result = await api("POST", "/events", body);
  if (!result.ok) {
    warn(problemText(result));
    return;
  }
  say(`Event “${result.body.name}” created (id ${result.body.id}).`);
  form.name.value = "";
  form.description.value = "";
  $("event-category-list").replaceChildren();
  await loadEvents();
}

// ---------------------------------------------------------------------------------------------
// Navigation and start

function showList() {
  stopPolling();
  stopQueuePolling();
  state.event = null;
  clearMap();
  $("event-view").hidden = true;
  $("events-view").hidden = false;
  document.title = "Seatbook";
  loadEvents();
}

function route() {
  const match = window.location.hash.match(/^#\/events\/(\d+)$/);
  if (match) openEvent(Number(match[1]));
  else showList();
}

function startPolling() {
  stopPolling();
  // The map stays live: other buyers' holds and bookings show up without a reload.
  state.pollTimer = window.setInterval(() => {
    if (document.hidden) return;
    refreshMap();
    // In line (or able to join): an offer shows up without a reload.
    if (state.waitlist || state.available === 0) loadWaitlist();
  }, POLL_MS);
}

function stopPolling() {
  if (state.pollTimer) window.clearInterval(state.pollTimer);
  state.pollTimer = null;
}

async function start() {
  state.signIn = readSignInConfig();
  let justSignedIn = false;
  if (cognito()) {
    loadSession();
    // The right sign-in control shows while a code is being redeemed.
    renderIdentity();
    justSignedIn = await completeHostedSignIn();
  } else {
    loadIdentity();
  }
  renderIdentity();
  if (justSignedIn) $("signout").focus();
  $("signin").addEventListener("submit", signIn);
  $("signin-hosted-button").addEventListener("click", startHostedSignIn);
  $("signout").addEventListener("click", signOut);
  $("events-more").addEventListener("click", () => loadEvents(true));
  $("hold").addEventListener("click", holdSeats);
  $("best-form").addEventListener("submit", holdBest);
  $("waitlist-form").addEventListener("submit", joinWaitlist);
  $("waitlist-leave").addEventListener("click", leaveWaitlist);
  $("queue-join").addEventListener("click", enterQueue);
  $("add-section").addEventListener("click", () => addSection());
  $("add-category").addEventListener("click", () => addCategory());
  $("confirm").addEventListener("click", confirmHold);
  $("release").addEventListener("click", releaseHold);
  $("venue-form").addEventListener("submit", createVenue);
  $("event-form").addEventListener("submit", createEvent);
  const weekAhead = new Date(Date.now() + 7 * 24 * 3600 * 1000);
  weekAhead.setHours(20, 0, 0, 0);
  $("event-starts").value = localInput(weekAhead);
  $("bookings-heading").setAttribute("tabindex", "-1");
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.event) refreshMap();
  });
  window.addEventListener("hashchange", route);
  route();
  loadBookings();
}

document.addEventListener("DOMContentLoaded", start);
