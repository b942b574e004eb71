//! Every `/api/v1` endpoint over real HTTP, on SQLite and on PostgreSQL: the happy paths
//! and their failures.

mod accounts;
mod ads;
mod apikeys;
mod channels;
mod chat;
mod chat_live;
mod cluster;
mod discovery;
mod hardening;
mod harness;
mod interact;
mod money;
mod receiver;
mod recording;
mod security;
mod webhooks;
