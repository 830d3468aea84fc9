//! The household assistant's decisions (`hearth-assistant`): what the
//! assistant remembers and for whom, when a reminder fires, how household
//! documents are cut into passages and found again, which tools the model
//! may call and with whose authority, and the API messaging and the gateway
//! speak about it. Pure: no sockets, files or clocks; the time is an input.
//! The gateway keeps the state and runs the tools (`ai-gateway/src/assistant`);
//! docs/assistant.md is the user's guide.

pub mod api;
pub mod arithmetic;
pub mod chunk;
pub mod dispatch;
pub mod extract;
pub mod language;
pub mod lists;
pub mod memory;
pub mod phrases;
pub mod say;
pub mod schedule;
pub mod scope;
pub mod search;
pub mod tools;
pub mod turns;
