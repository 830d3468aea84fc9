//! Several coordinators on one PostgreSQL database, all serving: the
//! database is the truth, each coordinator keeps its in-memory network in
//! step with it, and each streams its own nodes' maps.
//!
//! Every write is announced on the database's `hearth` channel
//! (`Db::announce`, after the commit). Each coordinator listens and, for
//! announcements from the others, reads what changed back from the database
//! and applies it to its network as if it had made the change itself: the
//! nodes streaming from it hear the deltas. When the listening connection
//! drops, it reads everything again ([`Coordinator::resync`]), so nothing
//! announced meanwhile is missed.
//!
//! Chosen over one active coordinator with a standby: both take
//! registrations and admin commands, and a node can follow its map from
//! either; the single-use-key guarantee is the database's (a conditional
//! update of the key's row). Two registrations racing on two coordinators
//! may pick the same new id, address or name: the database refuses the
//! second, whose coordinator reads the other's node and tries again.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;

use crate::coordinator::Coordinator;
use crate::db::{Announcement, Backend, CHANNEL};

/// An announcement as it travels on the channel.
#[derive(serde::Deserialize)]
struct Envelope {
    origin: String,
    what: Announcement,
}

/// Follows the other coordinators' announcements until `stop` turns true.
pub async fn follow(coordinator: Arc<Coordinator>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Backend::Postgres(pool) = coordinator.db().backend().clone() else {
        return;
    };
    let origin = coordinator.db().origin().to_string();
    let mut delay = Duration::from_millis(200);
    loop {
        let listening = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            // Whatever was announced before we listened is read now.
            if let Err(error) = coordinator.resync().await {
                tracing::warn!(%error, "could not read the shared database again");
            }
            loop {
                let notification = listener.recv().await?;
                let Ok(envelope) = serde_json::from_str::<Envelope>(notification.payload()) else {
                    continue;
                };
                if envelope.origin == origin {
                    continue;
                }
                let applied = match envelope.what {
                    Announcement::Node { id } => coordinator.follow_node(id).await,
                    Announcement::Policy => coordinator.follow_policy().await,
                    Announcement::Relays => coordinator.refresh_relays().await,
                    Announcement::Users => coordinator.follow_users().await,
                };
                if let Err(error) = applied {
                    tracing::warn!(%error, "could not apply another coordinator's change");
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            outcome = listening => {
                if let Err(error) = outcome {
                    tracing::warn!(%error, "lost the shared database's announcements; listening again");
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}
