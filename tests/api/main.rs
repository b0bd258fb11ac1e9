//! One integration-test binary (fast links): the real HTTP server on port 0 beside a Mastodon stand-in.

mod addresses;
mod architecture;
mod call_api;
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
mod generated;
mod helpers;
mod hostile;
mod load;
mod oauth;
mod persistence;
mod postgres;
mod power_automate;
mod schemas;
mod secrets;
mod security;
mod servers;
mod upstream;
