//! The whole conformance suite against a real `redis-server`.

mod common;

use common::RedisFixture;

durabledict_conformance::suite!(conformance_redis, RedisFixture::server());
