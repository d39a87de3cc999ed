//! The door for generated code (`::modal::__private`): re-exports of what the macros expand to,
//! and nothing else. Not a public API.

pub use bytes::Bytes;
pub use inventory;
pub use serde;

pub use crate::app::attr_values::{
    IntoCpu, IntoGpuList, IntoMemory, IntoStrings, cpu, gpu_list, memory, string_pairs, strings,
    volumes,
};
pub use crate::app::{FunctionSpec, GpuConfig};
#[cfg(feature = "cli")]
pub use crate::cli::command::run as modal_command;
pub use crate::cli::main_with;
pub use crate::client::ClsCore;
pub use crate::container::runner::{blocking, guard_hook};
pub use crate::registry::class::{
    ClassCell, ClassMethods, ClassParams, hook_error, hook_failure, new_class, no_such_method,
};
pub use crate::registry::outcome::{
    RemoteValue, assert_remote_arg, assert_remote_value, batch_failed, batch_values, decode_args,
    decode_batch, drain_iter, drain_stream, encode_value,
};
pub use crate::registry::probes::{
    DescribeNone, DescribeProbe, DescribeViaDebug, EntryErrorProbe, EntryErrorViaDebug,
    EntryErrorViaDisplay, EntryErrorViaModal, ErrorProbe, GeneratorMisuse, UserErrorViaDebug,
    UserErrorViaDisplay, UserErrorViaSerde, run_blocking,
};
pub use crate::registry::{
    AppEntry, BatchFuture, BoundSlot, ClassBuilder, ClassInstance, EntrypointArgs,
    EntrypointFuture, EntrypointRegistration, FunctionEntry, FunctionRegistration, GeneratorSink,
    Invoker, Outcome, OutcomeFuture, ParamKind, ParamSpec, ResultFormatter,
};
