//! 256-bit identifiers for devices and sync tasks.

use std::fmt;
use std::str::FromStr;

use data_encoding::BASE32_NOPAD;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// Why a displayed id could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdParseError {
    /// The text is not base32 (letters a–z and digits 2–7, dashes allowed).
    #[error("`{0}` is not a QSync id: expected base32 letters a-z and digits 2-7")]
    NotBase32(String),
    /// The text decodes to the wrong number of bytes.
    #[error("`{text}` decodes to {len} bytes, a QSync id has 32")]
    WrongLength {
        /// The text given.
        text: String,
        /// How many bytes it decoded to.
        len: usize,
    },
}

fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    // The operating system's random source failing is not recoverable for a program that
    // needs identities; ring documents it as practically infallible on supported platforms.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        std::process::abort();
    }
    bytes
}

fn display(bytes: &[u8; 32], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let text = BASE32_NOPAD.encode(bytes).to_ascii_lowercase();
    for (i, chunk) in text.as_bytes().chunks(4).enumerate() {
        if i > 0 {
            f.write_str("-")?;
        }
        // Base32 output is ASCII, so every chunk is valid UTF-8.
        f.write_str(std::str::from_utf8(chunk).map_err(|_| fmt::Error)?)?;
    }
    Ok(())
}

fn parse(text: &str) -> Result<[u8; 32], IdParseError> {
    let cleaned: String = text
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let bytes = BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .map_err(|_| IdParseError::NotBase32(text.to_owned()))?;
    let len = bytes.len();
    bytes.try_into().map_err(|_| IdParseError::WrongLength {
        text: text.to_owned(),
        len,
    })
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Serialized as its displayed text in human-readable formats (JSON), as its 32
        /// bytes in binary ones (postcard on the wire and in the database).
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name([u8; 32]);

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    serializer.collect_str(self)
                } else {
                    self.0.serialize(serializer)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                if deserializer.is_human_readable() {
                    let text = String::deserialize(deserializer)?;
                    text.parse().map_err(serde::de::Error::custom)
                } else {
                    <[u8; 32]>::deserialize(deserializer).map(Self)
                }
            }
        }

        impl $name {
            /// The length of the id in bytes.
            pub const LEN: usize = 32;

            /// A new random id from the operating system's secure random source.
            pub fn random() -> Self {
                Self(random_bytes())
            }

            /// The id with these exact bytes.
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The id's bytes.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The first four groups of the displayed form (19 characters, 80 bits): what
            /// people compare and type to name a device.
            pub fn fingerprint(&self) -> String {
                let mut text = self.to_string();
                text.truncate(19);
                text
            }

            /// The first group of the displayed form, handy in logs and file names.
            pub fn short(&self) -> String {
                let mut full = self.to_string();
                full.truncate(4);
                full
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                display(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                parse(text).map(Self)
            }
        }
    };
}

id_type!(
    /// The identity of one QSync device: 32 random bytes chosen once, when the device
    /// first starts, and announced in its mDNS TXT record.
    DeviceId
);

id_type!(
    /// The identity of one sync task (the seed's `secure_id`): shared by every device
    /// linked to the task, so that two tasks never collide even if their folders do.
    TaskId
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn display_is_grouped_lowercase_base32() {
        let id = DeviceId::from_bytes([0u8; 32]);
        assert_eq!(
            id.to_string(),
            "aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa"
        );
        assert_eq!(id.short(), "aaaa");
    }

    #[test]
    fn bad_text_is_a_typed_error() {
        assert!(matches!(
            "hello!".parse::<TaskId>(),
            Err(IdParseError::NotBase32(_))
        ));
        assert!(matches!(
            "aaaa".parse::<TaskId>(),
            Err(IdParseError::WrongLength { .. })
        ));
    }

    #[test]
    fn random_ids_differ() {
        assert_ne!(DeviceId::random(), DeviceId::random());
    }

    proptest! {
        #[test]
        fn display_round_trips(bytes in any::<[u8; 32]>()) {
            let id = DeviceId::from_bytes(bytes);
            prop_assert_eq!(id.to_string().parse::<DeviceId>().unwrap(), id);
            prop_assert_eq!(id.to_string().to_uppercase().replace('-', "").parse::<DeviceId>().unwrap(), id);
        }

        #[test]
        fn parsing_never_panics(text in ".{0,80}") {
            let _ = text.parse::<TaskId>();
        }

        #[test]
        fn postcard_round_trips(bytes in any::<[u8; 32]>()) {
            let id = TaskId::from_bytes(bytes);
            let encoded = postcard::to_stdvec(&id).unwrap();
            prop_assert_eq!(encoded.len(), 32);
            prop_assert_eq!(postcard::from_bytes::<TaskId>(&encoded).unwrap(), id);
        }

        #[test]
        fn json_is_the_displayed_text(bytes in any::<[u8; 32]>()) {
            let id = DeviceId::from_bytes(bytes);
            let json = serde_json::to_string(&id).unwrap();
            prop_assert_eq!(&json, &format!("\"{id}\""));
            prop_assert_eq!(serde_json::from_str::<DeviceId>(&json).unwrap(), id);
        }
    }
}
