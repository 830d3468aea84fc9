//! What the assistant writes through: the messages' store and the live
//! fan-out (the service's use cases hand it these, not themselves).

use crate::hub::Hub;
use crate::store::Store;

/// The store and the fan-out.
#[derive(Clone)]
pub struct Chat {
    /// Messages and rooms.
    pub store: Store,
    /// Live fan-out.
    pub hub: Hub,
}
