//! The HTTP edge Hearth's servers share (the coordinator, the AI gateway,
//! the messaging service).
//!
//! - [`limits`]: how many connections are accepted, in all and per source
//!   address, and how long a client may take to send a request head, so
//!   that a slow or flooding client cannot starve the others.
//! - [`serve`]: the accept loop that applies them, for plain TCP and for
//!   any stream a caller hands in (the coordinator's TLS).
//! - [`origin`]: the same-origin rule that keeps web pages of other sites
//!   (and DNS-rebinding names) away from services a browser can reach.
//! - [`throttle`]: at most one log line per period for floods of the same
//!   event.

pub mod limits;
pub mod origin;
pub mod serve;
pub mod throttle;

pub use limits::{Gate, Limits, Ticket};
pub use origin::{CrossSite, SameOrigin};
pub use throttle::Throttle;
