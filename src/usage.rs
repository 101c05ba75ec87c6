//! The one-line form of a command-line error, shared by `berth` and `berthd`.

/// clap's message without its usage block and "error: " prefix, pointing at `help`.
pub fn one_line(e: &clap::Error, help: &str) -> String {
    let text = e.to_string();
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("invalid arguments");
    let msg = first.strip_prefix("error: ").unwrap_or(first);
    format!("{msg} (see '{help}')")
}
