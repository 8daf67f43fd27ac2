//! The crate's one default source of randomness.
//!
//! Everything random in the crate — event ids, generated secrets, endpoint ids — takes its bytes
//! from here unless the caller supplies them (`EventId::from_parts`, `Secret::from_random_bytes`,
//! …), which is how tests and custom dispatchers stay deterministic. The bytes come from the
//! operating system's generator through the `getrandom` crate; nothing is seeded in-process.

/// `N` bytes from the operating system's random generator.
///
/// # Panics
/// Only if the operating system cannot provide randomness at all (no `getrandom(2)`, no
/// `/dev/urandom`); continuing with predictable ids or secrets would be worse than stopping.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if let Err(err) = getrandom::fill(&mut buf) {
        panic!("the operating system random generator is unavailable: {err}");
    }
    buf
}
