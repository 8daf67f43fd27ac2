//! HMAC-SHA256 with the key schedule run once per secret, streamed over the parts of a message.
//!
//! This module owns the keyed MAC state of a secret. It is the audited `hmac` crate over `sha2`
//! (SHA-NI where the CPU has it): each secret is keyed once ([`KeyedMac::new`]); every tag then
//! starts from a copy of that state and hashes the parts (`t`, `.`, body …) without concatenating
//! them. The keyed state is key-equivalent (with it anyone can sign); with the `zeroize` features
//! of `hmac` and `sha2` it is wiped on drop, copies included.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The HMAC-SHA256 state of one key, after the key schedule.
#[derive(Clone)]
pub(crate) struct KeyedMac(Hmac<Sha256>);

impl KeyedMac {
    /// Runs the key schedule: keys longer than a block are hashed first, shorter ones are padded
    /// with zeros (RFC 2104 §2).
    pub(crate) fn new(key: &[u8]) -> KeyedMac {
        // HMAC accepts keys of any length, so this cannot fail.
        match Hmac::<Sha256>::new_from_slice(key) {
            Ok(mac) => KeyedMac(mac),
            Err(_) => unreachable!("HMAC takes keys of any length"),
        }
    }

    /// The tag of the concatenation of `parts`, computed without concatenating them.
    pub(crate) fn tag(&self, parts: &[&[u8]]) -> [u8; super::TAG_LEN] {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4231_test_cases() {
        // Case 2: a short key.
        let mac = KeyedMac::new(b"Jefe");
        let tag = mac.tag(&[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(tag),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Case 6: a key longer than a block is hashed first.
        let mac = KeyedMac::new(&[0xaa; 131]);
        let tag = mac.tag(&[
            b"Test Using Larger Than Block-Size Key - ",
            b"Hash Key First",
        ]);
        assert_eq!(
            hex::encode(tag),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn parts_are_streamed_as_if_concatenated() {
        let mac = KeyedMac::new(b"key");
        let data: Vec<u8> = (0..300u16).map(|i| i.to_le_bytes()[0]).collect();
        for split in [0, 1, 55, 63, 64, 65, 200, 300] {
            assert_eq!(
                mac.tag(&[&data[..split], &data[split..]]),
                mac.tag(&[&data])
            );
        }
    }
}
