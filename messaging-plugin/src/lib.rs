//! Household messaging over the Hearth mesh (`hearth-messaging`).
//!
//! Rooms, direct messages and a DM with the assistant, delivered live over
//! WebSocket and kept in SQLite on the hub ([`store`]); who is talking comes
//! from the mesh itself ([`identity`]: the caller's tunnel address, named by
//! the agent). The assistant is a member of the chat: a message for it goes
//! to the AI gateway over the end-to-end encrypted API and the answer grows
//! in the room as it streams ([`assistant`]). A web page and a command-line
//! client come with it; the page is an installable app ([`web`]).
//! docs/messaging.md is the user's guide.

pub mod api;
pub mod assistant;
pub mod atrest;
pub mod chat;
pub mod commands;
pub mod config;
pub mod hub;
pub mod identity;
pub mod meaning;
pub mod protocol;
pub mod quota;
pub mod recent;
pub mod server;
pub mod service;
pub mod store;
pub mod terminal;
pub mod web;
