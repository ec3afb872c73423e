//! Azure Monitor Logs Ingestion API: `LogRecord`s as rows of the custom table
//! `MqscopeEvents_CL` (`deploy/azure/`), sent through a data collection rule.
//!
//! `POST {endpoint}/dataCollectionRules/{dcr-immutable-id}/streams/{stream}?api-version=2023-01-01`
//! with a gzip-compressed JSON array, `Content-Type: application/json`,
//! `Content-Encoding: gzip` and a Microsoft Entra ID bearer token for
//! `https://monitor.azure.com/.default`; the service answers 204
//! (<https://learn.microsoft.com/azure/azure-monitor/logs/logs-ingestion-api-overview>).
//!
//! | module | job |
//! |---|---|
//! | `config` | `AzureLogsConfig` (`[azure_logs]`), validation, identity defaults from the workload identity variables |
//! | `token` | client credentials grant (federated token file or client secret), token cache |
//! | `batch` | rows serialised once; requests cut to the 1 MB limit and gzip-compressed (pure) |
//! | `exporter` | `AzureLogs`: own thread, bounded queue, retries with backoff, `Retry-After`, bounded shutdown |

mod batch;
pub mod config;
pub mod exporter;
mod token;

pub use config::{AuthMethod, AzureLogsConfig};
pub use exporter::{AzureError, AzureErrorKind, AzureLogs, AzureStats};
