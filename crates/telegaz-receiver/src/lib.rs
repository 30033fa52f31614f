//! The receiving side of Telegaz: device accounts and their FTP namespaces,
//! durable uploads, the audit trail and start-up reconciliation.

mod audit;
mod outage;
mod receiver;
mod reconcile;
mod tcp;

pub use audit::AuditLog;
pub use outage::{OutageError, OutageJournal, ReplayReport};
pub use receiver::{DeviceAccount, DeviceUpload, Receiver, ReceiverSettings};
pub use reconcile::{ReconcileError, ReconcileReport, reconcile};
pub use tcp::{TcpSettings, serve_tcp};
