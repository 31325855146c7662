//! The real backend: nftables over netlink with nftnl and mnl.
