//! Unit tests of the monitor's formats: attach framing, json-file log entries, the exit record and the
//! report line. The process side (daemon, container, sockets) is tested end to end in
//! `tests/monitor.rs`, since the monitor reaps any child, which a multi-threaded test binary must not.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;
use serde_json::Value;

use super::exit::ExitRecord;
use super::frame::{self, Decoder, Event, FrameError};
use super::log::{JsonLog, Stream, MAX_LINE};
use super::{Report, Started};

#[derive(Debug, PartialEq, Eq)]
enum Owned {
    Stdin(Vec<u8>),
    Resize(u16, u16),
    Close,
    Start,
}

fn decode_all(decoder: &mut Decoder, data: &[u8]) -> Result<Vec<Owned>, FrameError> {
    let mut out = Vec::new();
    decoder.feed(data, |ev| match ev {
        Event::Stdin(b) => match out.last_mut() {
            // Payload pieces of one frame arrive separately; join them for comparison.
            Some(Owned::Stdin(prev)) => prev.extend_from_slice(b),
            _ => out.push(Owned::Stdin(b.to_vec())),
        },
        Event::Resize { rows, cols } => out.push(Owned::Resize(rows, cols)),
        Event::CloseStdin => out.push(Owned::Close),
        Event::Start => out.push(Owned::Start),
    })?;
    Ok(out)
}

#[test]
fn start_frames_decode() {
    let mut d = Decoder::new();
    let mut data = Vec::new();
    frame::encode(frame::START, &[], &mut data);
    assert_eq!(decode_all(&mut d, &data).unwrap(), vec![Owned::Start]);
}

#[test]
fn header_is_docker_multiplexing() {
    assert_eq!(
        frame::header(frame::STDERR, 0x0102_0304),
        [2, 0, 0, 0, 1, 2, 3, 4]
    );
    let mut out = Vec::new();
    frame::encode(frame::STDOUT, b"hi", &mut out);
    assert_eq!(out, [1, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
}

#[test]
fn decoder_handles_every_split() {
    let mut wire = Vec::new();
    frame::encode(frame::STDIN, b"hello\n", &mut wire);
    frame::encode(frame::RESIZE, &[0, 40, 0, 120], &mut wire);
    frame::encode(frame::STDIN, b"", &mut wire);
    frame::encode(frame::STDIN, b"more", &mut wire);
    frame::encode(frame::CLOSE_STDIN, b"", &mut wire);
    let expected = vec![
        Owned::Stdin(b"hello\n".to_vec()),
        Owned::Resize(40, 120),
        Owned::Stdin(b"more".to_vec()),
        Owned::Close,
    ];
    // Whole, byte by byte, and in every two-piece split.
    assert_eq!(decode_all(&mut Decoder::new(), &wire).unwrap(), expected);
    let mut d = Decoder::new();
    let mut got = Vec::new();
    for b in &wire {
        got.extend(decode_all(&mut d, std::slice::from_ref(b)).unwrap());
    }
    let mut joined: Vec<Owned> = Vec::new();
    for ev in got {
        match (joined.last_mut(), ev) {
            (Some(Owned::Stdin(prev)), Owned::Stdin(b)) => prev.extend(b),
            (_, ev) => joined.push(ev),
        }
    }
    // Byte-wise feeding cannot tell the two stdin frames apart across the resize; compare in order.
    assert_eq!(joined, expected);
    for cut in 0..wire.len() {
        let mut d = Decoder::new();
        let mut got = decode_all(&mut d, &wire[..cut]).unwrap();
        let rest = decode_all(&mut d, &wire[cut..]).unwrap();
        match (got.last_mut(), rest.first()) {
            (Some(Owned::Stdin(a)), Some(Owned::Stdin(b))) => {
                a.extend_from_slice(b);
                got.extend(rest.into_iter().skip(1));
            }
            _ => got.extend(rest),
        }
        assert_eq!(got, expected, "split at {cut}");
    }
}

#[test]
fn decoder_rejects_bad_frames() {
    let mut d = Decoder::new();
    assert_eq!(
        decode_all(&mut d, &frame::header(frame::STDOUT, 1)),
        Err(FrameError::UnknownStream(1))
    );
    let mut d = Decoder::new();
    assert_eq!(
        decode_all(&mut d, &frame::header(frame::RESIZE, 3)),
        Err(FrameError::BadResize(3))
    );
}

fn at(secs: u64, nanos: u32) -> SystemTime {
    UNIX_EPOCH + Duration::new(secs, nanos)
}

fn entries(log: JsonLog<Vec<u8>>) -> Vec<Value> {
    let bytes = log.into_inner();
    let text = String::from_utf8(bytes).expect("log is UTF-8");
    assert!(text.is_empty() || text.ends_with('\n'));
    text.lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect()
}

#[test]
fn log_entries_are_lines_per_stream() {
    let mut log = JsonLog::new(Vec::new());
    let t = at(1_700_000_000, 123_456_789);
    log.append(Stream::Stdout, b"one\ntw", t);
    log.append(Stream::Stderr, b"err \"quoted\"\n", t);
    log.append(Stream::Stdout, b"o\nthree", t);
    log.flush(t);
    let e = entries(log);
    let got: Vec<(&str, &str)> = e
        .iter()
        .map(|v| (v["log"].as_str().unwrap(), v["stream"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("one\n", "stdout"),
            ("err \"quoted\"\n", "stderr"),
            ("two\n", "stdout"),
            ("three", "stdout"),
        ]
    );
    let time = e[0]["time"].as_str().unwrap();
    assert_eq!(time, "2023-11-14T22:13:20.123456789Z");
    assert_eq!(humantime::parse_rfc3339(time).unwrap(), t);
}

#[test]
fn long_lines_are_split_and_bytes_made_valid() {
    let mut log = JsonLog::new(Vec::new());
    let t = at(0, 0);
    let long = vec![b'x'; MAX_LINE * 2 + 10];
    log.append(Stream::Stdout, &long, t);
    log.append(Stream::Stdout, b"\n", t);
    log.append(Stream::Stderr, b"\xff\x00\x1b[0m\n", t);
    log.flush(t);
    let e = entries(log);
    let lens: Vec<usize> = e[..3]
        .iter()
        .map(|v| v["log"].as_str().unwrap().len())
        .collect();
    assert_eq!(lens, [MAX_LINE, MAX_LINE, 11]);
    assert!(e[2]["log"].as_str().unwrap().ends_with('\n'));
    assert_eq!(e[3]["log"].as_str().unwrap(), "\u{fffd}\u{0}\u{1b}[0m\n");
    assert_eq!(e.len(), 4);
}

#[test]
fn exit_record_format() {
    let t = at(1_700_000_000, 5);
    let exited = ExitRecord::from_wait(WaitStatus::Exited(Pid::from_raw(1), 3), false, t).unwrap();
    let v: Value = serde_json::to_value(&exited).unwrap();
    assert_eq!(v["exit_code"], 3);
    assert!(v["signal"].is_null());
    assert_eq!(v["oom_killed"], false);
    assert_eq!(v["finished_at"], "2023-11-14T22:13:20.000000005Z");

    let killed = ExitRecord::from_wait(
        WaitStatus::Signaled(Pid::from_raw(1), Signal::SIGKILL, false),
        true,
        t,
    )
    .unwrap();
    assert_eq!(
        (killed.exit_code, killed.signal, killed.oom_killed),
        (137, Some(9), true)
    );
    assert!(ExitRecord::from_wait(WaitStatus::StillAlive, false, t).is_none());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exit.json");
    killed.write(&path).unwrap();
    assert_eq!(ExitRecord::read(&path).unwrap(), killed);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["exit.json"], "no temporary file is left behind");
}

#[test]
fn report_is_one_line_either_way() {
    let ok = Report::Started(Started {
        pid: 42,
        monitor_pid: 7,
    });
    assert_eq!(ok.to_line(), "{\"pid\":42,\"monitor_pid\":7}\n");
    let failed = Report::failed("bad\nthing");
    assert_eq!(failed.to_line(), "{\"error\":\"bad thing\"}\n");
    assert_eq!(
        serde_json::from_str::<Report>(ok.to_line().trim()).unwrap(),
        ok
    );
    assert_eq!(
        serde_json::from_str::<Report>(failed.to_line().trim()).unwrap(),
        failed
    );
}
