//! Reading a container's log, written by its monitor in Docker's json-file format (one JSON object per
//! line: `{"log": "...", "stream": "stdout", "time": "RFC 3339"}`), with `--tail`, `--since`/`--until`,
//! stream selection, and incremental reads for `logs -f`.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;

use protocol::messages::{LogChunk, LogsOptions, OutputStream};
use serde::Deserialize;

#[derive(Deserialize)]
struct Line {
    log: String,
    stream: String,
    time: String,
}

fn parse(line: &str) -> Option<LogChunk> {
    let l: Line = serde_json::from_str(line).ok()?;
    let stream = match l.stream.as_str() {
        "stderr" => OutputStream::Stderr,
        _ => OutputStream::Stdout,
    };
    let timestamp = crate::record::rfc3339_nanos(&l.time).unwrap_or(0);
    Some(LogChunk {
        stream,
        timestamp,
        data: l.log.into_bytes(),
    })
}

fn wanted(c: &LogChunk, o: &LogsOptions) -> bool {
    let stream_ok = match c.stream {
        OutputStream::Stderr => o.stderr,
        _ => o.stdout,
    };
    stream_ok && o.since.is_none_or(|s| c.timestamp >= s) && o.until.is_none_or(|u| c.timestamp < u)
}

/// Reads a log from its start, keeping the position for later [`LogReader::more`] calls.
pub struct LogReader {
    reader: Option<BufReader<std::fs::File>>,
    partial: String,
}

impl LogReader {
    /// Opens the log; a container that never wrote anything has no file yet, which reads as empty.
    pub fn open(path: &Path) -> std::io::Result<LogReader> {
        let reader = match std::fs::File::open(path) {
            Ok(f) => Some(BufReader::new(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(LogReader {
            reader,
            partial: String::new(),
        })
    }

    /// Everything written so far that the options select, honouring `tail`.
    pub fn initial(&mut self, opts: &LogsOptions) -> std::io::Result<Vec<LogChunk>> {
        let mut all = self.more(opts)?;
        if let Some(n) = opts.tail {
            let n = n as usize;
            if all.len() > n {
                all.drain(..all.len() - n);
            }
        }
        Ok(all)
    }

    /// Complete lines written since the last call.
    pub fn more(&mut self, opts: &LogsOptions) -> std::io::Result<Vec<LogChunk>> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line)?;
            if n == 0 {
                break;
            }
            if !line.ends_with('\n') {
                // A line still being written: keep it for the next call.
                self.partial.push_str(&line);
                break;
            }
            let full = if self.partial.is_empty() {
                line
            } else {
                std::mem::take(&mut self.partial) + &line
            };
            if let Some(c) = parse(full.trim_end()) {
                if wanted(&c, opts) {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }

    /// Reopens the file if it appeared after we first looked (a container that had not written yet).
    pub fn reopen_if_missing(&mut self, path: &Path) {
        if self.reader.is_none() {
            if let Ok(f) = std::fs::File::open(path) {
                let mut r = BufReader::new(f);
                let _ = r.seek(SeekFrom::Start(0));
                self.reader = Some(r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(log: &str, stream: &str, time: &str) -> String {
        serde_json::json!({"log": log, "stream": stream, "time": time}).to_string() + "\n"
    }

    #[test]
    fn tail_since_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("container.log");
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(line("a\n", "stdout", "2026-01-01T00:00:01Z").as_bytes())
            .unwrap();
        f.write_all(line("b\n", "stderr", "2026-01-01T00:00:02Z").as_bytes())
            .unwrap();
        f.write_all(line("c\n", "stdout", "2026-01-01T00:00:03Z").as_bytes())
            .unwrap();
        let opts = LogsOptions::default();
        let all = LogReader::open(&p).unwrap().initial(&opts).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].stream, OutputStream::Stderr);
        let tail = LogReader::open(&p)
            .unwrap()
            .initial(&LogsOptions {
                tail: Some(1),
                ..opts.clone()
            })
            .unwrap();
        assert_eq!(tail[0].data, b"c\n");
        let since = humantime::parse_rfc3339("2026-01-01T00:00:02Z")
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let later = LogReader::open(&p)
            .unwrap()
            .initial(&LogsOptions {
                since: Some(since),
                stderr: false,
                ..opts.clone()
            })
            .unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].data, b"c\n");
    }

    #[test]
    fn partial_lines_wait_for_their_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("container.log");
        let full = line("x\n", "stdout", "2026-01-01T00:00:01Z");
        let (a, b) = full.split_at(10);
        std::fs::write(&p, a).unwrap();
        let mut r = LogReader::open(&p).unwrap();
        let opts = LogsOptions::default();
        assert!(r.initial(&opts).unwrap().is_empty());
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b.as_bytes())
            .unwrap();
        assert_eq!(r.more(&opts).unwrap().len(), 1);
    }
}
