//! The one integration-test binary: end-to-end tests of mailstow with real
//! Postfix and Dovecot peers. Holds only the module list; must not hold
//! tests or helpers itself.

#[allow(dead_code)]
mod util;

#[allow(dead_code)]
mod peers;

mod accounts;

mod cluster;
mod courier;
mod crash;
mod debian;
mod deny;
mod durability;
mod e2e;
mod exim;
mod faults;
mod from_dovecot;
mod hostile;
mod index;
mod install;
mod layers;
mod lda_lines;
mod lmtp;
mod mailutils;
mod managesieve;
mod opensmtpd;
mod ops;
mod package;
mod pipe;
mod powercut;
mod privilege;
mod proxy;
mod quota;
mod sieve_diff;
mod sieve_e2e;
mod sieve_examples;
mod sieve_filter;
mod sieve_sends;
mod sieve_store;
mod sieve_wild;
mod single_copy;
mod smtp;
mod system_users;
mod uidlist;
mod userdb;
