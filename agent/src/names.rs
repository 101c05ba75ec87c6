//! Random two-word container names (`brave_turing`), as Docker gives containers without `--name`.

const ADJECTIVES: [&str; 24] = [
    "brave",
    "calm",
    "clever",
    "eager",
    "fervent",
    "gentle",
    "happy",
    "jolly",
    "keen",
    "lucid",
    "modest",
    "nifty",
    "optimistic",
    "proud",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "tender",
    "upbeat",
    "vibrant",
    "wise",
    "zealous",
];
const NOUNS: [&str; 24] = [
    "babbage", "curie", "darwin", "einstein", "fermi", "galileo", "hopper", "hypatia", "kepler",
    "lamport", "lovelace", "mccarthy", "noether", "pascal", "ritchie", "shannon", "tesla",
    "thompson", "turing", "wozniak", "yalow", "wright", "knuth", "dijkstra",
];

/// A random name; `taken` lets the caller retry on a collision (a numeric suffix is added after a few
/// tries, so this always terminates).
pub fn generate(taken: impl Fn(&str) -> bool) -> String {
    for attempt in 0..16u32 {
        let r = random_u64();
        let name = format!(
            "{}_{}",
            ADJECTIVES[(r % 24) as usize],
            NOUNS[((r >> 8) % 24) as usize]
        );
        let name = if attempt < 8 {
            name
        } else {
            format!("{name}{}", (r >> 16) % 100)
        };
        if !taken(&name) {
            return name;
        }
    }
    format!("container_{}", random_hex(6))
}

/// Docker's rule for `--name`: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn is_valid(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && name.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `n` random bytes as lowercase hex (container ids are 32 bytes: 64 hex).
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    fill_random(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    fill_random(&mut b);
    u64::from_le_bytes(b)
}

fn fill_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: getrandom writes at most `len` bytes into the buffer.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_avoid_taken_ones() {
        let n = generate(|_| false);
        assert!(is_valid(&n), "{n}");
        let first = generate(|_| false);
        let other = generate(|c| c == first);
        assert_ne!(other, first);
        let fallback = generate(|_| true);
        assert!(fallback.starts_with("container_"));
    }

    #[test]
    fn ids_are_64_hex() {
        let id = random_hex(32);
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn name_rules() {
        assert!(is_valid("web"));
        assert!(is_valid("a1.b_c-d"));
        assert!(!is_valid("-web"));
        assert!(!is_valid("w"));
        assert!(!is_valid("we b"));
        assert!(!is_valid("a/b"));
    }
}
