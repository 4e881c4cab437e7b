//! recoverite's DNS server: answers as Azure's resolver answers a client in
//! a given virtual network.
//!
//! **How the server knows the client's network:** by the query's source
//! address. Every NIC and private endpoint IP configuration, and every
//! virtual network, has a loopback alias (see `recoverite_rp_network::aliases`);
//! a query sent from that alias (`dig -b ALIAS @127.0.0.1 -p PORT NAME`) is
//! answered for that network. Any other source (127.0.0.1) is outside every
//! network and sees public DNS.

pub mod resolve;
pub mod server;
pub mod snapshot;

pub use resolve::{hosts_file, resolve, Rcode, Resolution};
pub use server::{serve, Resolver};
pub use snapshot::{RType, Snapshot};
