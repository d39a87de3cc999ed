//! `modal function stats APP FUNCTION`: what a function of a running or deployed app is doing
//! now.

#![allow(clippy::print_stdout, clippy::print_stderr)] // A command-line tool.

use serde_json::json;

use super::admin::{client, table};
use super::args::FunctionCommand;
use crate::error::Result;
use crate::wire::pb;

pub(super) async fn run(cmd: FunctionCommand) -> Result<()> {
    let client = client().await?;
    let mut api = client.api.clone();
    match cmd {
        FunctionCommand::Stats {
            app,
            function,
            common,
        } => {
            let found = api
                .function_get(pb::FunctionGetRequest {
                    app_name: app.clone(),
                    tag: function.clone(),
                    environment_name: common.env,
                })
                .await?
                .into_inner();
            let s = api
                .function_get_current_stats(pb::FunctionStatsRequest {
                    function_id: found.function_id.clone(),
                })
                .await?
                .into_inner();
            if common.json {
                println!(
                    "{}",
                    json!({"app": app, "function": function, "function_id": found.function_id,
                           "backlog": s.backlog, "num_total_runners": s.num_total_runners,
                           "num_running_inputs": s.num_running_inputs,
                           "input_headroom": s.input_headroom,
                           "succeeded": s.succeeded, "failed": s.failed})
                );
            } else {
                let row = vec![
                    format!("{app}.{function}"),
                    s.backlog.to_string(),
                    s.num_total_runners.to_string(),
                    s.num_running_inputs.to_string(),
                    s.input_headroom.to_string(),
                    s.succeeded.to_string(),
                    s.failed.to_string(),
                ];
                println!(
                    "{}",
                    table(
                        &[
                            "Function",
                            "Backlog",
                            "Containers",
                            "Running inputs",
                            "Headroom",
                            "Succeeded",
                            "Failed"
                        ],
                        vec![row]
                    )
                );
            }
        }
    }
    Ok(())
}
