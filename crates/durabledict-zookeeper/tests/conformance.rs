//! The whole conformance suite on a standalone ZooKeeper server.

mod common;

durabledict_conformance::suite!(conformance_zookeeper, crate::common::ZkFixture::shared());
