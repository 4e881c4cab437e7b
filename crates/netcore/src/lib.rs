//! The network as Azure decides it, free of HTTP and storage: address math,
//! address management, service tags, security rules and routes. Every
//! decision the network provider, the DNS server and the gateway make about
//! traffic comes from here, so each rule lives in one place.

pub mod cidr;
pub mod ipam;
pub mod nsg;
pub mod routes;
pub mod tags;
