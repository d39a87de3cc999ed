//! The `modal` command: control plane, worker, tokens, apps, secrets and containers.

fn main() -> std::process::ExitCode {
    modal::__private::modal_command()
}
