//! HMAC-SHA256 (RFC 2104) from SHA-256 states keyed once per secret, streamed over the parts of a
//! message.
//!
//! This module owns the one piece of cryptography the crate assembles itself: it feeds the
//! `sha2` crate's SHA-256 compression function directly. Each secret absorbs `key ⊕ ipad` and
//! `key ⊕ opad` once ([`KeyedMac::new`]); every tag then starts from copies of those two states,
//! hashes the parts (`t`, `.`, body …) without concatenating them, and pads by hand. Going through
//! `hmac::Hmac` instead cost a buffered wrapper, a 64-byte buffer zeroed byte by byte on every
//! drop and several copies per message, about 3 % of a 1 KiB verification. The tests check it
//! against the `hmac` crate for keys and part lengths around every block boundary.
//!
//! The keyed states are key-equivalent (with them anyone can sign), so they are zeroed on drop,
//! and so is each per-message copy.

use sha2::block_api::compress256;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// SHA-256 block size.
const BLOCK_LEN: usize = 64;
/// Where the 64-bit message length goes in the last block.
const LENGTH_AT: usize = BLOCK_LEN - 8;
/// SHA-256 initial hash value (FIPS 180-4 §5.3.3).
const INITIAL_STATE: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The HMAC-SHA256 states of one key, after the inner and outer pad blocks.
#[derive(Clone)]
pub(crate) struct KeyedMac {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl KeyedMac {
    /// Runs the key schedule: keys longer than a block are hashed first, shorter ones are padded
    /// with zeros (RFC 2104 §2).
    pub(crate) fn new(key: &[u8]) -> KeyedMac {
        let mut block = Zeroizing::new([0u8; BLOCK_LEN]);
        if key.len() > BLOCK_LEN {
            let mut digest = Sha256::digest(key);
            block[..digest.len()].copy_from_slice(&digest);
            digest.zeroize();
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let padded = |pad: u8| {
            let mut state = INITIAL_STATE;
            let mut padded = Zeroizing::new([0u8; BLOCK_LEN]);
            for (out, key_byte) in padded.iter_mut().zip(block.iter()) {
                *out = key_byte ^ pad;
            }
            compress256(&mut state, std::slice::from_ref(&*padded));
            state
        };
        KeyedMac {
            inner: padded(0x36),
            outer: padded(0x5c),
        }
    }

    /// The tag of the concatenation of `parts`, without building it.
    pub(crate) fn tag(&self, parts: &[&[u8]]) -> [u8; super::TAG_LEN] {
        let mut state = self.inner;
        let mut block = [0u8; BLOCK_LEN];
        let mut filled = 0;
        // The inner hash has already absorbed the pad block.
        let mut length = BLOCK_LEN as u64;
        for &part in parts {
            length = length.wrapping_add(part.len() as u64);
            let mut part = part;
            if filled > 0 {
                let take = part.len().min(BLOCK_LEN - filled);
                block[filled..filled + take].copy_from_slice(&part[..take]);
                filled += take;
                part = &part[take..];
                if filled < BLOCK_LEN {
                    continue;
                }
                compress256(&mut state, std::slice::from_ref(&block));
            }
            // Whole blocks straight from the caller's bytes: the body is never copied.
            let (blocks, rest) = part.as_chunks::<BLOCK_LEN>();
            compress256(&mut state, blocks);
            block[..rest.len()].copy_from_slice(rest);
            filled = rest.len();
        }
        let inner_hash = finish(&mut state, &mut block, filled, length);

        let mut outer = self.outer;
        let mut block = [0u8; BLOCK_LEN];
        block[..inner_hash.len()].copy_from_slice(&inner_hash);
        let tag = finish(
            &mut outer,
            &mut block,
            inner_hash.len(),
            (BLOCK_LEN + inner_hash.len()) as u64,
        );
        state.zeroize();
        outer.zeroize();
        tag
    }
}

impl Drop for KeyedMac {
    fn drop(&mut self) {
        self.inner.zeroize();
        self.outer.zeroize();
    }
}

/// Pads the `filled` bytes in `block` (FIPS 180-4 §5.1.1) for a message of `length` bytes, runs
/// the last one or two compressions and returns the digest.
fn finish(
    state: &mut [u32; 8],
    block: &mut [u8; BLOCK_LEN],
    filled: usize,
    length: u64,
) -> [u8; 32] {
    block[filled] = 0x80;
    block[filled + 1..].fill(0);
    if filled >= LENGTH_AT {
        compress256(state, std::slice::from_ref(block));
        block.fill(0);
    }
    block[LENGTH_AT..].copy_from_slice(&length.wrapping_mul(8).to_be_bytes());
    compress256(state, std::slice::from_ref(block));
    let mut digest = [0u8; 32];
    for (out, word) in digest.chunks_exact_mut(4).zip(state.iter()) {
        out.copy_from_slice(&word.to_be_bytes());
    }
    digest
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, KeyInit, Mac};

    fn reference(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    #[test]
    fn matches_the_hmac_crate_around_every_block_boundary() {
        let keys: Vec<Vec<u8>> = [0, 1, 16, 32, 63, 64, 65, 100, 256, 1024]
            .iter()
            .map(|&len| (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect())
            .collect();
        let data: Vec<u8> = (0..400u32)
            .map(|i| u8::try_from(i % 256).unwrap())
            .collect();
        let lengths = [
            0, 1, 2, 10, 11, 52, 53, 54, 55, 56, 57, 63, 64, 65, 119, 120, 128, 200,
        ];
        for key in &keys {
            let mac = KeyedMac::new(key);
            for &a in &lengths {
                for &b in &[0, 1, 55, 64, 130] {
                    let parts: [&[u8]; 3] = [&data[..a], b".", &data[a..a + b]];
                    assert_eq!(
                        mac.tag(&parts),
                        reference(key, &parts),
                        "key {} parts {a}+1+{b}",
                        key.len()
                    );
                }
                assert_eq!(mac.tag(&[&data[..a]]), reference(key, &[&data[..a]]));
            }
            assert_eq!(mac.tag(&[]), reference(key, &[]));
        }
    }

    #[test]
    fn rfc_4231_test_case_2() {
        let mac = KeyedMac::new(b"Jefe");
        let tag = mac.tag(&[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
