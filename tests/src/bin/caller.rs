//! A second program that reaches the deployed app by name: it declares no app of its own.
//!
//! `caller square X` | `caller spawn-slow SECS` | `caller get CALL_ID` | `caller secret NAME` |
//! `caller no-secret NAME` | `caller dict-secret NAME` | `caller spawn-linger SECS` |
//! `caller spawn-method SECS` | `caller wrong-types X` | `caller square-in APP X`

use modal::{Function, FunctionCall};

const APP: &str = "e2e-deployed";

#[modal::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let show = |e: modal::Error| e.to_string();
    match arg(0).as_str() {
        "square" => {
            let square: Function<(i64,), i64> = Function::from_name(APP, "square");
            let x: i64 = arg(1).parse().map_err(|e| format!("{e}"))?;
            println!("square: {}", square.remote(x).await.map_err(show)?);
        }
        "square-in" => {
            let square: Function<(i64,), i64> = Function::from_name(&arg(1), "square");
            let x: i64 = arg(2).parse().map_err(|e| format!("{e}"))?;
            println!("square: {}", square.remote(x).await.map_err(show)?);
        }
        "wrong-types" => {
            let square: Function<(u64,), u64> = Function::from_name(APP, "square");
            let x: u64 = arg(1).parse().map_err(|e| format!("{e}"))?;
            println!("square: {}", square.remote(x).await.map_err(show)?);
        }
        "spawn-slow" => {
            let slow: Function<(u64,), String> = Function::from_name(APP, "slow");
            let call = slow
                .spawn(arg(1).parse().unwrap_or(3))
                .await
                .map_err(show)?;
            println!("call: {}", call.object_id());
        }
        "spawn-linger" => {
            let linger: Function<(u64,), u64> = Function::from_name(APP, "linger");
            let call = linger
                .spawn(arg(1).parse().unwrap_or(300))
                .await
                .map_err(show)?;
            println!("call: {}", call.object_id());
        }
        "spawn-method" => {
            let nap = modal::Cls::from_name(APP, "Sleeper").method::<(u64,), String>("nap");
            let call = nap.spawn(arg(1).parse().unwrap_or(3)).await.map_err(show)?;
            println!("call: {}", call.object_id());
        }
        "get" => {
            let call: FunctionCall<String> = FunctionCall::from_id(&arg(1)).await.map_err(show)?;
            println!(
                "result: {}",
                call.get(std::time::Duration::from_secs(60))
                    .await
                    .map_err(show)?
            );
        }
        "secret" | "no-secret" | "dict-secret" => {
            let tag = match arg(0).as_str() {
                "secret" => "with_secret",
                "dict-secret" => "with_dict_secret",
                _ => "without_secret",
            };
            let f: Function<(String,), Option<usize>> = Function::from_name(APP, tag);
            println!("len: {:?}", f.remote(arg(1)).await.map_err(show)?);
        }
        other => return Err(format!("unknown command `{other}`")),
    }
    Ok(())
}
