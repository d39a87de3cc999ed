//! The data the roles exchange, as the runtime's own types: function definitions and option
//! overrides, payloads and results, apps and deployments, logs, and what workers and containers
//! are told and report. Protobuf versions of them live only in `wire/`, which converts.

mod app;
mod call;
pub(crate) mod function;
pub(crate) mod image;
mod logs;
pub(crate) mod volume;
mod worker;

pub(crate) use app::{
    AppState, AppSummary, ContainerSummary, DeployStrategy, Deployment, SecretSummary,
};
pub(crate) use call::{
    CallResult, GeneratorEvent, InputItem, MapOutput, OutputItem, Payload, ResultStatus, Stored,
};
pub(crate) use function::{
    Autoscaler, BatchConfig, FunctionDef, FunctionOptions, GpuRequest, NamedSecret, Resources,
    SealedValues,
};
pub(crate) use logs::{LogBatch, LogEntry, LogSource};
#[cfg(feature = "cli")]
pub(crate) use worker::parse_label;
pub(crate) use worker::{
    Constraints, ContainerCommand, ContainerHello, ContainerSpec, GpuDevice, InputsSeen,
    WorkerCommand, WorkerEvent, WorkerInfo, WorkerLogLine, WorkerSummary, describe_labels,
};
