//! One integration-test binary (fast links): the real HTTP server on port 0 beside a Mastodon stand-in.

mod addresses;
mod architecture;
mod cli;
mod credentials;
mod declared;
mod documents;
mod echo;
mod errors;
mod exactly_once;
mod faults;
mod fixtures;
mod flow;
mod helpers;
mod hostile;
mod load;
mod memory;
mod oauth;
mod persistence;
mod postgres;
mod secrets;
mod security;
mod servers;
mod upstream;
