//! Scale-out: several instances sharing state through real servers. Trackers share Redis
//! (`redis`), seeders read an S3-compatible bucket on Garage (`s3`), and both run behind haproxy
//! while instances are killed (`balancer`).

mod balancer;
mod redis;
mod s3;
