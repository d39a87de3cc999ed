//! How a panic in a container reads in the app's logs: with `RUST_BACKTRACE=1`, the user's own
//! frames, with the frames of std, the async runtime and modal-rs folded into a count (as Rust's
//! short backtraces do); `RUST_BACKTRACE=full` prints every frame.

/// How `RUST_BACKTRACE` asks for backtraces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Unset or `0`: no backtrace (Rust's default report).
    Off,
    /// The user's frames, the rest folded.
    Short,
    /// `full`: every frame (Rust's default report).
    Full,
}

impl Style {
    /// The style `RUST_BACKTRACE` asks for.
    pub(crate) fn from_env() -> Style {
        match std::env::var("RUST_BACKTRACE").as_deref() {
            Err(_) | Ok("0" | "") => Style::Off,
            Ok("full") => Style::Full,
            Ok(_) => Style::Short,
        }
    }
}

/// Frames of code the user did not write: std, the async runtime, modal-rs and what its macros
/// generate, and the process's own start.
fn is_internal(symbol: &str) -> bool {
    const PATHS: &[&str] = &[
        "std::",
        "core::",
        "alloc::",
        "__rustc::",
        "__rust_",
        "rust_begin_unwind",
        "modal::",
        "tokio::",
        "futures::",
        "futures_util::",
        "futures_core::",
        "__libc_start",
    ];
    const NAMES: &[&str] = &[
        "start_thread",
        "clone",
        "clone3",
        "__clone",
        "_start",
        "main",
    ];
    let s = symbol.trim().trim_start_matches('<');
    PATHS.iter().any(|p| s.starts_with(p))
        || NAMES.contains(&s)
        || s.contains("::__modal_invoke")
        || s.contains(" as modal::")
        || s.starts_with("<unknown>")
}

/// One frame of a captured backtrace: its numbered line and the `at` lines after it.
struct Frame<'a> {
    symbol: &'a str,
    lines: Vec<&'a str>,
}

fn frames(text: &str) -> Vec<Frame<'_>> {
    let mut out: Vec<Frame<'_>> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let numbered = trimmed
            .split_once(": ")
            .filter(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        match (numbered, out.last_mut()) {
            (Some((_, symbol)), _) => out.push(Frame {
                symbol,
                lines: vec![line],
            }),
            (None, Some(frame)) if trimmed.starts_with("at ") => frame.lines.push(line),
            _ => {}
        }
    }
    out
}

/// The backtrace with runs of internal frames replaced by one line that counts them.
pub(crate) fn fold(backtrace: &str) -> String {
    let mut out = String::new();
    let mut folded = 0usize;
    let flush = |out: &mut String, folded: &mut usize| {
        if *folded > 0 {
            let s = if *folded == 1 { "" } else { "s" };
            out.push_str(&format!(
                "      ({folded} frame{s} of std, the runtime or modal-rs)\n"
            ));
            *folded = 0;
        }
    };
    for frame in frames(backtrace) {
        if is_internal(frame.symbol) {
            folded += 1;
            continue;
        }
        flush(&mut out, &mut folded);
        for line in frame.lines {
            out.push_str(line);
            out.push('\n');
        }
    }
    flush(&mut out, &mut folded);
    out
}

/// The report of a panic in the short style: what Rust prints, with the backtrace folded.
pub(crate) fn short_report(thread: &str, location: &str, message: &str, backtrace: &str) -> String {
    format!(
        "thread '{thread}' panicked at {location}:\n{message}\nstack backtrace (std, runtime and modal-rs frames folded; RUST_BACKTRACE=full shows them):\n{}",
        fold(backtrace)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURED: &str = "   0: __rustc::rust_begin_unwind
             at /rustc/abc/library/std/src/panicking.rs:689:5
   1: core::panicking::panic_fmt
             at /rustc/abc/library/core/src/panicking.rs:80:14
   2: errors::_::__modal_impl_divide
             at ./examples/errors.rs:25:5
   3: errors::_::__modal_invoke
             at ./examples/errors.rs:23:1
   4: modal::container::runner::run_sync::{{closure}}
             at ./modal-runtime/src/container/runner.rs:113:56
   5: <core::panic::unwind_safe::AssertUnwindSafe<F> as core::ops::function::FnOnce<()>>::call_once
             at /rustc/abc/library/core/src/panic/unwind_safe.rs:274:9
   6: __rust_try
   7: errors::helper
             at ./examples/errors.rs:40:1
   8: tokio::runtime::task::raw::poll
   9: std::sys::pal::unix::thread::Thread::new::thread_start
  10: start_thread
  11: clone
";

    #[test]
    fn the_users_frames_stay_and_the_rest_is_counted() {
        let folded = fold(CAPTURED);
        assert_eq!(
            folded,
            "      (2 frames of std, the runtime or modal-rs)
   2: errors::_::__modal_impl_divide
             at ./examples/errors.rs:25:5
      (4 frames of std, the runtime or modal-rs)
   7: errors::helper
             at ./examples/errors.rs:40:1
      (4 frames of std, the runtime or modal-rs)
"
        );
    }

    #[test]
    fn the_report_reads_like_rusts() {
        let r = short_report("modal-input-0", "src/main.rs:3:5", "boom", CAPTURED);
        assert!(r.starts_with("thread 'modal-input-0' panicked at src/main.rs:3:5:\nboom\n"));
        assert!(r.contains("RUST_BACKTRACE=full"));
        assert!(!r.contains("rust_begin_unwind"));
    }
}
