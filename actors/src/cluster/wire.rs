//! Wire: every message that crosses between the learner node and its workers. Frames are
//! bincode with a size limit; the hub decodes them itself, so a frame that does not decode is
//! refused and logged instead of failing an actor.

use ractor::message::{BoxedDowncastErr, SerializedMessage};
use ractor::RpcReplyPort;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::messages::{PolicyVersion, Prompt, RolloutGroup, ScoredGroup};

/// Largest frame we encode or decode: above a weight chunk, far below ractor_cluster's 16 MiB.
pub const MAX_FRAME_BYTES: u64 = 15 * 1024 * 1024;

/// The process group the hub joins on the learner node; workers find it there.
pub const HUB_GROUP: &str = "srlm-hub";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerRole {
    Generator,
    Scorer,
}

/// Worker → learner node, answered by a [`Reply`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// A worker's first request; `node` is its ractor_cluster node name (how its session's
    /// disconnect is matched to it).
    Join { node: String, role: WorkerRole },
    /// Up to `max` prompts to sample; answered empty after a short wait when none is free.
    Prompts { worker: u64, max: usize },
    /// Chunk `index` of the encoded weights of `version`.
    WeightChunk { worker: u64, version: PolicyVersion, index: u32 },
    /// A sampled group to score; answered `None` after a short wait when none is queued.
    Rollout { worker: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// `recipe` is the run's recipe (TOML) the worker builds its sampler or rewarder from.
    Joined {
        worker: u64,
        recipe: String,
        version: PolicyVersion,
    },
    /// `version` is the newest published policy: a generator behind it fetches it meanwhile.
    Prompts {
        prompts: Vec<Prompt>,
        version: PolicyVersion,
    },
    Chunk(WeightChunk),
    Rollout(Option<RolloutGroup>),
    /// The run is over; the worker exits.
    Finished,
    Refused(String),
}

/// One piece of an encoded policy version; `checksum` (CRC-32) covers the whole blob.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightChunk {
    pub version: PolicyVersion,
    pub index: u32,
    pub chunks: u32,
    pub total_bytes: u64,
    pub checksum: u32,
    /// As one byte string: serde's default writes and reads a `Vec<u8>` element by element.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// Worker → learner node, one way.
// A report is built once per group and serialized at once: boxing the scored group saves nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Report {
    GroupsGenerated {
        worker: u64,
        groups: Vec<RolloutGroup>,
    },
    GroupScored {
        worker: u64,
        group: ScoredGroup,
    },
    /// The worker swapped in `version`, whose transfer took `seconds` for `bytes`.
    WeightsAdopted {
        worker: u64,
        version: PolicyVersion,
        bytes: u64,
        seconds: f64,
    },
    /// Sampling or scoring failed: what the worker holds goes back to the queue.
    Failed {
        worker: u64,
        reason: String,
    },
}

/// The hub's mailbox. `Ask` and `Tell` carry encoded frames and may come from another node;
/// `NodeLeft` comes from the local node server's session events.
pub enum HubMsg {
    /// An encoded [`Request`]; the reply port takes an encoded [`Reply`].
    Ask(Vec<u8>, RpcReplyPort<Vec<u8>>),
    /// An encoded [`Report`].
    Tell(Vec<u8>),
    /// The node named so closed its session (it disconnected or died).
    NodeLeft(String),
}

const ASK: &str = "ask";
const TELL: &str = "tell";

impl ractor::Message for HubMsg {
    fn serializable() -> bool {
        true
    }

    fn serialize(self) -> Result<SerializedMessage, BoxedDowncastErr> {
        match self {
            HubMsg::Ask(args, reply) => Ok(SerializedMessage::Call { variant: ASK.into(), args, reply, metadata: None }),
            HubMsg::Tell(args) => Ok(SerializedMessage::Cast { variant: TELL.into(), args, metadata: None }),
            HubMsg::NodeLeft(_) => Err(BoxedDowncastErr),
        }
    }

    /// Never fails on content: whatever arrives is handed to the hub, which refuses what does
    /// not decode. `NodeLeft` cannot be sent from another node.
    fn deserialize(m: SerializedMessage) -> Result<Self, BoxedDowncastErr> {
        match m {
            SerializedMessage::Call { args, reply, .. } => Ok(HubMsg::Ask(args, reply)),
            SerializedMessage::Cast { args, .. } => Ok(HubMsg::Tell(args)),
            SerializedMessage::CallReply(..) => Err(BoxedDowncastErr),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("frame does not decode: {0}")]
pub struct FrameError(String);

fn options() -> impl bincode::Options {
    use bincode::Options;
    bincode::DefaultOptions::new().with_limit(MAX_FRAME_BYTES)
}

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, FrameError> {
    use bincode::Options;
    options().serialize(value).map_err(|e| FrameError(e.to_string()))
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, FrameError> {
    use bincode::Options;
    options().deserialize(bytes).map_err(|e| FrameError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_garbage_is_an_error_not_a_panic() {
        let r = Request::Prompts { worker: 3, max: 2 };
        assert_eq!(decode::<Request>(&encode(&r).unwrap()).unwrap(), r);
        assert!(decode::<Request>(&[0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        // A length prefix claiming more than the limit is refused before allocating.
        let huge = encode(&(MAX_FRAME_BYTES * 4)).unwrap();
        assert!(decode::<Report>(&[vec![0u8], huge].concat()).is_err());
    }
}
