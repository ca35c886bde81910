//! Pairing: proving that the device at the other end of a connection is the one its
//! person means, with a short code shown on one device and typed on the other.
//!
//! The connection is already a Noise session, so each side knows the other's key (its
//! device id). What is not known is whether that key belongs to the device the person is
//! looking at: a device in the middle could hold a connection with each. The asker shows a
//! random [`PairingCode`]; the answerer's person types it. Both run SPAKE2 (a PAKE) with the
//! code, their two device ids as identities, and prove the key they got, bound to the
//! connection's handshake hash and the task. A device in the middle holds two connections
//! with two handshake hashes, and must guess the code to pass either: one guess per
//! attempt, a chance of 1 in 10⁸ (`CODE_SPACE`), and nothing it sees lets it test guesses
//! offline.
//!
//! ```
//! use qsync_wire::pairing::{Answerer, Asker, PairingCode};
//! use qsync_wire::{Handshake, Identity, TaskId};
//!
//! # let (alice, bob) = (Identity::generate()?, Identity::generate()?);
//! # let (mut hs_a, m1) = Handshake::initiate(&alice, None)?;
//! # let mut hs_b = Handshake::respond(&bob)?;
//! # let m2 = hs_b.read(&m1)?.unwrap();
//! # let m3 = hs_a.read(&m2)?.unwrap();
//! # hs_b.read(&m3)?;
//! # let (a, b) = (hs_a.into_session()?, hs_b.into_session()?);
//! let task = TaskId::from_bytes([3; 32]);
//! let code = PairingCode::random()?; // shown on Alice's screen
//! let (asker, request) = Asker::start(&code, &a, task);
//! // Bob's person types the code Alice's screen shows.
//! let typed: PairingCode = code.to_string().parse()?;
//! let (answerer, answer, proof_b) = Answerer::answer(&typed, &b, task, &request)?;
//! let proof_a = asker.check(&answer, &proof_b)?; // Alice: Bob knew the code
//! answerer.check(&proof_a)?; // Bob: Alice knew it too; both may record the link
//! # Ok::<(), qsync_wire::WireError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use qsync_base::{DeviceId, TaskId};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use spake2::{Ed25519Group, Identity as SpakeId, Password, Spake2};

use crate::{Session, WireError};

/// How many codes there are: the chance of one guess passing is 1 / `CODE_SPACE`.
pub const CODE_SPACE: u32 = 100_000_000;

/// Eight digits, shown as `1234-5678`, that the person types on the other device.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PairingCode(u32);

impl fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PairingCode(..)")
    }
}

impl fmt::Display for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:04}", self.0 / 10_000, self.0 % 10_000)
    }
}

impl PairingCode {
    /// A uniformly random code.
    pub fn random() -> Result<Self, WireError> {
        let rng = SystemRandom::new();
        loop {
            let mut bytes = [0u8; 4];
            rng.fill(&mut bytes)
                .map_err(|_| WireError::Crypto("the system random source failed"))?;
            let value = u32::from_be_bytes(bytes);
            // Rejection sampling: every code equally likely.
            if value < u32::MAX - u32::MAX % CODE_SPACE {
                return Ok(Self(value % CODE_SPACE));
            }
        }
    }

    fn password(&self) -> Password {
        Password::new(format!("qsync/2 code {:08}", self.0))
    }
}

impl FromStr for PairingCode {
    type Err = WireError;

    /// Eight digits; dashes and spaces between them are ignored.
    fn from_str(text: &str) -> Result<Self, WireError> {
        let digits: String = text.chars().filter(|c| *c != '-' && *c != ' ').collect();
        if digits.len() != 8 || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(WireError::Pairing(
                "a pairing code is eight digits, like 1234-5678",
            ));
        }
        digits
            .parse()
            .map(Self)
            .map_err(|_| WireError::Pairing("a pairing code is eight digits"))
    }
}

/// What both proofs are bound to: this connection, the two devices and the task.
struct Context {
    hash: [u8; 32],
    asker: DeviceId,
    answerer: DeviceId,
    task: TaskId,
}

impl Context {
    fn message(&self, role: &[u8]) -> Vec<u8> {
        let mut message = b"qsync/2 pairing proof ".to_vec();
        for part in [
            role,
            &self.hash,
            self.asker.as_bytes(),
            self.answerer.as_bytes(),
            self.task.as_bytes(),
        ] {
            message.extend_from_slice(part);
        }
        message
    }

    fn proof(&self, key: &[u8], role: &[u8]) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key);
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&key, &self.message(role)).as_ref());
        out
    }

    fn check(&self, key: &[u8], role: &[u8], proof: &[u8; 32]) -> Result<(), WireError> {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key);
        // Constant time: the check tells nothing about how close a forgery came.
        hmac::verify(&key, &self.message(role), proof).map_err(|_| {
            WireError::Pairing(
                "the pairing code did not match: mistyped, or another device is in the middle; nothing was linked",
            )
        })
    }
}

fn ids(asker: DeviceId, answerer: DeviceId) -> (SpakeId, SpakeId) {
    (
        SpakeId::new(asker.as_bytes()),
        SpakeId::new(answerer.as_bytes()),
    )
}

/// The asking side, which shows the code.
pub struct Asker {
    spake: Spake2<Ed25519Group>,
    context: Context,
}

impl fmt::Debug for Asker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Asker").finish_non_exhaustive()
    }
}

impl Asker {
    /// Start pairing `task` over `session` with the code shown to this side's person:
    /// the asker and the SPAKE2 message for the `LinkRequest`.
    pub fn start(code: &PairingCode, session: &Session, task: TaskId) -> (Self, Vec<u8>) {
        let (a, b) = ids(session.local(), session.peer());
        let (spake, message) = Spake2::<Ed25519Group>::start_a(&code.password(), &a, &b);
        let context = Context {
            hash: *session.handshake_hash(),
            asker: session.local(),
            answerer: session.peer(),
            task,
        };
        (Self { spake, context }, message)
    }

    /// Check the answerer's message and proof: on success the peer knew the code, and the
    /// returned proof (for the `LinkConfirm`) tells it this side did too.
    pub fn check(self, answer: &[u8], proof: &[u8; 32]) -> Result<[u8; 32], WireError> {
        let key = self
            .spake
            .finish(answer)
            .map_err(|_| WireError::Pairing("the pairing answer is malformed"))?;
        self.context.check(&key, b"answerer", proof)?;
        Ok(self.context.proof(&key, b"asker"))
    }
}

/// The answering side, whose person typed the code.
pub struct Answerer {
    key: Vec<u8>,
    context: Context,
}

impl fmt::Debug for Answerer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Answerer").finish_non_exhaustive()
    }
}

impl Answerer {
    /// Answer the asker's SPAKE2 `request` with the code typed here: the answerer, the
    /// SPAKE2 message and the proof for the `LinkAnswer`.
    pub fn answer(
        code: &PairingCode,
        session: &Session,
        task: TaskId,
        request: &[u8],
    ) -> Result<(Self, Vec<u8>, [u8; 32]), WireError> {
        let (a, b) = ids(session.peer(), session.local());
        let (spake, message) = Spake2::<Ed25519Group>::start_b(&code.password(), &a, &b);
        let key = spake
            .finish(request)
            .map_err(|_| WireError::Pairing("the pairing request is malformed"))?;
        let context = Context {
            hash: *session.handshake_hash(),
            asker: session.peer(),
            answerer: session.local(),
            task,
        };
        let proof = context.proof(&key, b"answerer");
        Ok((Self { key, context }, message, proof))
    }

    /// Check the asker's proof: on success both sides knew the code.
    pub fn check(self, proof: &[u8; 32]) -> Result<(), WireError> {
        self.context.check(&self.key, b"asker", proof)
    }
}
