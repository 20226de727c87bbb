//! The notifier function: delivers booking confirmations from the outbox to a webhook.
//!
//! A confirmation is written to `outbox` in the same transaction as its booking, so it can never
//! be lost with a frozen Lambda. This function runs on a schedule (EventBridge), claims due rows
//! with `FOR UPDATE SKIP LOCKED` (so concurrent runs never deliver the same row at the same time),
//! POSTs each one signed with HMAC-SHA256, and records the result in the same transaction:
//! delivered, retried later with back-off, or `dead` after too many failures. Delivery is at least
//! once (a crash after the POST and before the commit delivers again); receivers deduplicate on the
//! `Seatbook-Delivery` header.

mod outbox;
mod webhook;

pub use outbox::{dead_letters, drain, housekeeping, DrainReport, Policy};
pub use webhook::{signature, Webhook, WebhookSettings, DELIVERY_HEADER, SIGNATURE_HEADER};
