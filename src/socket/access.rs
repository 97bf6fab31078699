//! Closing the sockets of accounts that lose access. Every `ACCESS_REFRESH_MS` each instance reads
//! the database's access log (see `auth::revocation`); the sockets of every account disabled or
//! deleted since are disconnected on this instance (each instance closes its own). The client
//! sees `disconnect`, and its reconnect is refused with `connect_error` `Unauthorized`.

use socketioxide::{SocketIo, adapter::Adapter};
use uuid::Uuid;

use super::user_room;
use crate::{metrics::inc, state::AppState};

/// Sweeps an account's sockets again on this many later polls: a handshake that passed its
/// token check just before the revocation was applied may join the account's room after the
/// first sweep (and its sends are refused meanwhile).
const SWEEPS: u32 = 3;

/// Polls the access log until the process ends, closing revoked accounts' sockets.
pub async fn watch_access<A: Adapter>(io: SocketIo<A>, app: AppState) {
    let interval = app.config.access_refresh;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut recent: Vec<(Uuid, u32)> = Vec::new();
    let mut failing = false;
    loop {
        ticker.tick().await;
        match app.accounts.refresh_access().await {
            Ok(newly) => {
                if failing {
                    tracing::info!("access log readable again");
                    failing = false;
                }
                for id in newly {
                    tracing::info!(user = %id, "account disabled or deleted: closing its sockets");
                    recent.push((id, SWEEPS + 1));
                }
            }
            Err(err) if !failing => {
                tracing::warn!(error = %err, "could not read the access log; known revocations stay in force");
                failing = true;
            }
            Err(_) => {}
        }
        recent.retain(|(id, _)| app.accounts.is_revoked(*id));
        for (id, left) in &mut recent {
            close_sockets(&io, &app, *id).await;
            *left -= 1;
        }
        recent.retain(|(_, left)| *left > 0);
    }
}

async fn close_sockets<A: Adapter>(io: &SocketIo<A>, app: &AppState, id: Uuid) {
    let sockets = io.local().to(user_room(id)).sockets();
    if sockets.is_empty() {
        return;
    }
    inc(&app.metrics.revoked_sockets_closed);
    tracing::info!(user = %id, sockets = sockets.len(), "closing a revoked account's sockets");
    for socket in sockets {
        if let Err(err) = socket.disconnect() {
            tracing::debug!(error = %err, "socket already gone");
        }
    }
}
