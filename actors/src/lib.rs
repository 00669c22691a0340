//! srlm-actors: the asynchronous runtime (generators, scorers, learner, weight broadcast).
//!
//! A skeleton for now: the runtime is the subject of its own issue and will be generic over
//! small capability traits (`Sampler`, `Rewarder`, `Trainer`) so that it knows nothing of candle.
