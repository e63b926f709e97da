#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod error;
mod find;
mod mariadb;
mod memcached;
mod net;
mod observe;
mod postgres;
mod process;
mod redis;
mod zookeeper;

pub use error::{Result, ServerError};
pub use mariadb::MariaDb;
pub use memcached::Memcached;
pub use net::free_port;
pub use observe::{Capture, process_cpu_time};
pub use postgres::Postgres;
pub use redis::{RedisCluster, RedisServer};
pub use zookeeper::{ZooKeeper, ZooKeeperEnsemble};
