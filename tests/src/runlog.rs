//! A run log on the host that test functions write to from inside their containers: a container
//! shares the host's loopback network but not its files, so a function notes each run of
//! itself by sending one line over TCP to the test program, which appends it to `DIR/runs.log`
//! and answers how many lines with that first word the file has had from it. The answer comes
//! after the line is written, so a function that exits right after noting itself is counted.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The listening run log; it serves until the process ends.
pub struct RunLog {
    addr: SocketAddr,
}

type Counts = Arc<Mutex<HashMap<(String, String), u64>>>;

impl RunLog {
    /// Listens on a free port of the loopback address.
    pub fn start() -> std::io::Result<RunLog> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let counts: Counts = Arc::default();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counts = Arc::clone(&counts);
                std::thread::spawn(move || serve(stream, &counts));
            }
        });
        Ok(RunLog { addr })
    }

    /// Where functions send their lines (`host:port`).
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }
}

fn serve(stream: TcpStream, counts: &Counts) {
    let Ok(mut reply) = stream.try_clone() else {
        return;
    };
    let mut request = String::new();
    if BufReader::new(stream).read_line(&mut request).is_err() {
        return;
    }
    let Some((dir, line)) = request.trim_end().split_once('\t') else {
        return;
    };
    let key = line.split(' ').next().unwrap_or_default().to_owned();
    let n = {
        let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry((dir.to_owned(), key)).or_default();
        *n += 1;
        *n
    };
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(PathBuf::from(dir).join("runs.log"))
        // One write with O_APPEND: lines of concurrent runs never mix.
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    if written.is_ok() {
        let _ = writeln!(reply, "{n}");
    }
}

/// Appends `line` to `DIR/runs.log` through the run log at `addr`; returns how many lines
/// starting with the same word it has written there (this one included).
pub fn append(addr: &str, dir: &str, line: &str) -> std::io::Result<u64> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    writeln!(stream, "{dir}\t{line}")?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    answer
        .trim()
        .parse()
        .map_err(|_| std::io::Error::other("the run log did not write the line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_written_and_counted_by_their_first_word() {
        let dir = std::env::temp_dir().join(format!("modal-runlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.to_string_lossy();
        let log = RunLog::start().unwrap();
        assert_eq!(append(&log.addr(), &d, "a 1").unwrap(), 1);
        assert_eq!(append(&log.addr(), &d, "b 2").unwrap(), 1);
        assert_eq!(append(&log.addr(), &d, "a 3").unwrap(), 2);
        let text = std::fs::read_to_string(dir.join("runs.log")).unwrap();
        assert_eq!(text, "a 1\nb 2\na 3\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
