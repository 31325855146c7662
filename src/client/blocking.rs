//! A blocking face of [`Client`](super::Client), for tests and simple tools.
//!
//! Each client owns a current-thread tokio runtime and blocks on it; do not use it from
//! inside an async context (tokio forbids blocking on a runtime there).

use super::{
    ClientError, ExplanationView, GroupView, OverlapView, RawResponse, Response, StatusView,
};
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// The blocking twin of [`super::Client`]; same methods, same results.
#[derive(Debug)]
pub struct Client {
    inner: super::Client,
    rt: tokio::runtime::Runtime,
}

impl Client {
    /// Fails only if the runtime cannot be built (out of threads or file descriptors).
    pub fn new(socket_path: impl Into<PathBuf>) -> io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Client {
            inner: super::Client::new(socket_path),
            rt,
        })
    }

    pub fn with_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.inner = self.inner.with_timeout(timeout);
        self
    }

    pub fn call_raw(&self, params: &[(&str, &str)]) -> Result<RawResponse, ClientError> {
        self.rt.block_on(self.inner.call_raw(params))
    }

    pub fn call(&self, params: &[(&str, &str)]) -> Result<Response, ClientError> {
        self.rt.block_on(self.inner.call(params))
    }

    pub fn create_group(
        &self,
        name: &str,
        description: &str,
        owner: Option<&str>,
    ) -> Result<String, ClientError> {
        self.rt
            .block_on(self.inner.create_group(name, description, owner))
    }

    pub fn delete_group(&self, name: &str, owner: Option<&str>) -> Result<String, ClientError> {
        self.rt.block_on(self.inner.delete_group(name, owner))
    }

    pub fn authorize_cidr(
        &self,
        group: &str,
        protocol: &str,
        from: i32,
        to: i32,
        cidr: &str,
        owner: Option<&str>,
    ) -> Result<String, ClientError> {
        self.rt.block_on(
            self.inner
                .authorize_cidr(group, protocol, from, to, cidr, owner),
        )
    }

    pub fn revoke_cidr(
        &self,
        group: &str,
        protocol: &str,
        from: i32,
        to: i32,
        cidr: &str,
        owner: Option<&str>,
    ) -> Result<Vec<OverlapView>, ClientError> {
        self.rt.block_on(
            self.inner
                .revoke_cidr(group, protocol, from, to, cidr, owner),
        )
    }

    pub fn authorize_pair(
        &self,
        group: &str,
        src_group: &str,
        src_owner: &str,
        owner: Option<&str>,
    ) -> Result<String, ClientError> {
        self.rt.block_on(
            self.inner
                .authorize_pair(group, src_group, src_owner, owner),
        )
    }

    pub fn revoke_pair(
        &self,
        group: &str,
        src_group: &str,
        src_owner: &str,
        owner: Option<&str>,
    ) -> Result<Vec<OverlapView>, ClientError> {
        self.rt
            .block_on(self.inner.revoke_pair(group, src_group, src_owner, owner))
    }

    pub fn describe(
        &self,
        names: &[&str],
        owner: Option<&str>,
    ) -> Result<Vec<GroupView>, ClientError> {
        self.rt.block_on(self.inner.describe(names, owner))
    }

    pub fn register_instance(
        &self,
        id: &str,
        iface: &str,
        addrs: &[&str],
        groups: &[&str],
        owner: Option<&str>,
    ) -> Result<String, ClientError> {
        self.rt.block_on(
            self.inner
                .register_instance(id, iface, addrs, groups, owner),
        )
    }

    pub fn deregister_instance(
        &self,
        id: &str,
        owner: Option<&str>,
    ) -> Result<String, ClientError> {
        self.rt.block_on(self.inner.deregister_instance(id, owner))
    }

    pub fn add_group_members(
        &self,
        group: &str,
        addrs: &[&str],
        owner: Option<&str>,
    ) -> Result<String, ClientError> {
        self.rt
            .block_on(self.inner.add_group_members(group, addrs, owner))
    }

    pub fn remove_group_members(
        &self,
        group: &str,
        addrs: &[&str],
        owner: Option<&str>,
    ) -> Result<String, ClientError> {
        self.rt
            .block_on(self.inner.remove_group_members(group, addrs, owner))
    }

    pub fn modify_instance_groups(
        &self,
        id: &str,
        groups: &[&str],
        owner: Option<&str>,
    ) -> Result<String, ClientError> {
        self.rt
            .block_on(self.inner.modify_instance_groups(id, groups, owner))
    }

    pub fn status(&self) -> Result<StatusView, ClientError> {
        self.rt.block_on(self.inner.status())
    }

    pub fn explain(
        &self,
        instance: &str,
        source: &str,
        protocol: &str,
        port: Option<u16>,
        icmp_type: Option<u8>,
        icmp_code: Option<u8>,
    ) -> Result<ExplanationView, ClientError> {
        self.rt.block_on(
            self.inner
                .explain(instance, source, protocol, port, icmp_type, icmp_code),
        )
    }
}
