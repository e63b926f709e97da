//! The whole conformance suite against a local 3-master Redis Cluster, hash-tagged keys.

mod common;

use common::RedisFixture;

durabledict_conformance::suite!(conformance_redis_cluster, RedisFixture::cluster());
