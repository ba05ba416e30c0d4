/// What went wrong in building a pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A pool needs at least one peer.
    #[error("an upstream pool needs at least one peer")]
    NoPeers,
    /// A peer's weight must be at least 1.
    #[error("peer {peer} has weight 0; expected a weight of at least 1")]
    ZeroWeight {
        /// The peer as `host:port`.
        peer: String,
    },
}
