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
  selected: new Set(), // seat ids, in the open event
  hold: null, // the live hold being counted down
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

function seatName(seat) {
  return `Row ${seat.row} seat ${seat.number}`;
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
  renderIdentity();
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
  if (!state.event || state.event.id !== result.body.id) {
    state.selected.clear();
    state.seats.clear();
    $("rows").replaceChildren();
  }
  state.event = result.body;
  state.events.set(state.event.id, state.event);
  $("events-view").hidden = true;
  $("event-view").hidden = false;
  renderFacts();
  await refreshMap();
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
    ["Price per seat", money(event.price_cents)],
    ["On sale", (event.sales_start_at ? `from ${when(event.sales_start_at)} ` : "now, ") + `until ${when(event.sales_end_at)}`],
    ["Seats per person", event.max_seats_per_user ? `at most ${event.max_seats_per_user}` : "no limit"],
  ];
  if (event.description) facts.unshift(["About", event.description]);
  $("event-facts").replaceChildren(
    ...facts.flatMap(([term, value]) => [el("dt", { text: term }), el("dd", { text: value })]),
  );
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
  const rows = $("rows");
  for (const seat of result.body.seats) {
    let entry = state.seats.get(seat.id);
    if (!entry) {
      const rowId = `row-${seat.row}`;
      let row = document.getElementById(rowId);
      if (!row) {
        row = el(
          "div",
          { class: "row", role: "group", "aria-label": `Row ${seat.row}`, id: rowId },
          el("span", { class: "row-label", "aria-hidden": "true", text: seat.row }),
          el("div", { class: "seats" }),
        );
        rows.append(row);
      }
      const button = el("button", {
        type: "button",
        class: "seat",
        "data-seat-id": seat.id,
        onclick: () => toggleSeat(seat.id),
      });
      button.append(el("span", { class: "num", text: String(seat.number) }));
      row.querySelector(".seats").append(button);
      entry = { seat, button };
      state.seats.set(seat.id, entry);
    }
    entry.seat = seat;
    if (seat.status !== "available") state.selected.delete(seat.id);
    renderSeat(entry);
  }
  $("seatmap").setAttribute(
    "aria-label",
    `Seat map: ${result.body.available_seats} of ${result.body.total_seats} seats available`,
  );
  renderSelection();
  return true;
}

function renderSeat({ seat, button }) {
  const selected = state.selected.has(seat.id);
  const mine = seat.status === "held" && state.hold && state.hold.tickets.some((t) => t.seat_id === seat.id);
  const status = mine ? "held by you" : seat.status;
  button.dataset.status = seat.status;
  button.setAttribute("aria-pressed", selected ? "true" : "false");
  if (seat.status === "available") button.removeAttribute("aria-disabled");
  else button.setAttribute("aria-disabled", "true");
  button.setAttribute("aria-label", `${seatName(seat)}, ${status}${selected ? ", selected" : ""}`);
  button.title = `${seatName(seat)}: ${status}`;
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
  return [...state.selected]
    .map((id) => state.seats.get(id).seat)
    .sort((a, b) => a.row.localeCompare(b.row) || a.number - b.number);
}

function renderSelection() {
  const seats = selectedSeats();
  const cap = seatCap();
  $("selection-text").textContent = seats.length
    ? `Selected ${seats.length} of at most ${cap}: ${seatList(seats)}. Total ${money(seats.length * state.event.price_cents)}.`
    : `No seats selected. Choose up to ${cap}.`;
  $("hold").disabled = seats.length === 0;
}

async function holdSeats() {
  if (!state.identity) {
    warn(signInFirst());
    signInControl().focus();
    return;
  }
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
  warn(`Your hold on ${seatList(hold.tickets)} lapsed. Choose seats again to hold them.`);
  refreshMap();
  loadBookings();
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

async function createVenue(event) {
  event.preventDefault();
  const form = event.target;
  const result = await api("POST", "/venues", {
    name: form.name.value.trim(),
    rows: Number(form.rows.value),
    cols: Number(form.cols.value),
  });
  if (!result.ok) {
    warn(problemText(result));
    return;
  }
  const venue = result.body;
  $("event-venue").value = venue.id;
  say(`Venue “${venue.name}” created: id ${venue.id}, ${venue.rows} rows of ${venue.cols} seats.`);
  form.reset();
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
  const result = await api("POST", "/events", body);
  if (!result.ok) {
    warn(problemText(result));
    return;
  }
  say(`Event “${result.body.name}” created (id ${result.body.id}).`);
  form.name.value = "";
  form.description.value = "";
  await loadEvents();
}

// ---------------------------------------------------------------------------------------------
// Navigation and start

function showList() {
  stopPolling();
  state.event = null;
  state.selected.clear();
  state.seats.clear();
  $("rows").replaceChildren();
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
    if (!document.hidden) refreshMap();
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
