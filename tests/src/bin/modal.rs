//! The `modal` command, built in this package so the end-to-end tests can run it.

fn main() -> std::process::ExitCode {
    modal::__private::modal_command()
}
