//! An invocation waiting for its result: who gets the answer (a worker's queue or an engine
//! task), which worker may give it, and how a caller is told the call failed.

use std::sync::Arc;

use serde_json::value::RawValue;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::protocol::{self, ErrorBody};
use crate::worker_handle::WorkerHandle;

/// What an engine-started invocation resolves to.
pub(crate) type Outcome = Result<Box<RawValue>, ErrorBody>;

/// Where a result goes.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Relay the owner's `invocationresult` frame to this worker.
    Worker(Arc<WorkerHandle>),
    /// Hand the outcome to an engine task (HTTP, triggers).
    Internal(oneshot::Sender<Outcome>),
}

/// An invocation waiting for its result.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) reply: Reply,
    /// The worker the call was forwarded to; only it may answer.
    pub(crate) owner: Uuid,
    pub(crate) function_id: String,
}

impl Pending {
    /// Answers the caller with an error (the owner is gone, or forwarding failed).
    pub(crate) async fn fail(self, invocation_id: &Uuid, error: &ErrorBody) {
        match self.reply {
            Reply::Worker(caller) => {
                let _ = caller
                    .send_text(protocol::error_frame(
                        invocation_id,
                        &self.function_id,
                        error,
                    ))
                    .await;
            }
            Reply::Internal(tx) => {
                let _ = tx.send(Err(error.clone()));
            }
        }
    }
}
