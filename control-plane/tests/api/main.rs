//! Every `/api/v1` endpoint over real HTTP, on SQLite and on PostgreSQL: the happy paths
//! and their failures.

mod accounts;
mod ads;
mod apikeys;
mod audience;
mod channels;
mod chat;
mod chat_live;
mod clips;
mod cluster;
mod cluster_streams;
mod discovery;
mod hardening;
mod harness;
mod interact;
mod ladder;
mod money;
mod money_stream;
mod node_recordings;
mod receiver;
mod recording;
mod s3;
mod security;
mod uploads;
mod videos;
mod webhooks;
