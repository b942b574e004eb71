//! Search latency over 100,000 synthetic channels, on SQLite (always) and PostgreSQL (when
//! `CASCADE_TEST_POSTGRES` names a server: a fresh schema is made there).
//!
//! Every channel has a title of three words, a description of twelve, two tags and a
//! category, drawn from a vocabulary of 2,000 made-up words (seeded, the same each run);
//! one channel in twenty has "music" in its title. Queries: a word in one channel in 20
//! (every hit ranked: the costly case), a rare word, a prefix of three letters, two words.
//! Before criterion's own runs, each query is timed 200 times alone and p50/p95/p99 are
//! printed (criterion reports means, the issue asks for the 95th percentile).
//!
//! `cargo bench -p control-plane --bench search` (`CASCADE_SEARCH_CHANNELS=n` for another
//! count).

use std::time::{Duration, Instant};

mod common;

use control_plane::db::Backend;
use control_plane::discovery::search;
use control_plane::{Config, ControlPlane};
use criterion::{criterion_group, criterion_main, Criterion};

const BATCH: usize = 500;

/// A deterministic generator (xorshift64*): the same data every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// 2,000 pronounceable made-up words (none is "music").
fn vocabulary() -> Vec<String> {
    const ON: [&str; 16] = [
        "b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "st",
    ];
    const NU: [&str; 5] = ["a", "e", "i", "o", "u"];
    let mut rng = Rng(0x5EED);
    let mut words = std::collections::BTreeSet::new();
    while words.len() < 2000 {
        let syllables = 2 + rng.below(2);
        let w: String = (0..syllables)
            .map(|_| format!("{}{}", ON[rng.below(ON.len())], NU[rng.below(NU.len())]))
            .collect();
        if w != "music" {
            words.insert(w);
        }
    }
    words.into_iter().collect()
}

struct Channel {
    title: String,
    body: String,
    tags: Vec<String>,
    category: String,
}

fn channels(n: usize, words: &[String]) -> Vec<Channel> {
    let mut rng = Rng(42);
    let mut pick = |k: usize| {
        (0..k)
            .map(|_| words[rng.below(words.len())].as_str())
            .collect::<Vec<_>>()
    };
    (0..n)
        .map(|i| {
            let mut title = pick(3);
            if i % 20 == 0 {
                title[1] = "music";
            }
            Channel {
                title: title.join(" "),
                body: pick(12).join(" "),
                tags: pick(2).into_iter().map(str::to_owned).collect(),
                category: format!("category {}", i % 20),
            }
        })
        .collect()
}

/// The statement `head` followed by `rows` tuples of `width` placeholders.
fn values(head: &str, rows: usize, width: usize) -> String {
    let tuples: Vec<String> = (0..rows)
        .map(|r| {
            let ps: Vec<String> = (1..=width).map(|c| format!("${}", r * width + c)).collect();
            format!("({})", ps.join(", "))
        })
        .collect();
    format!("{head} VALUES {}", tuples.join(", "))
}

/// Writes the channels and their search documents straight into the tables (one
/// transaction a batch), as `search::upsert` would have: a document per channel, and on
/// SQLite its FTS5 row.
async fn seed(cp: &ControlPlane, all: &[Channel]) {
    let pool = cp.db().pool();
    sqlx::query(
        "INSERT INTO users (id, email, username, password_hash, created_at, updated_at) \
         VALUES ('bench', 'bench@example.com', 'bench', 'x', 0, 0)",
    )
    .execute(pool)
    .await
    .unwrap();
    let sqlite = cp.db().backend() == Backend::Sqlite;
    for (b, chunk) in all.chunks(BATCH).enumerate() {
        let mut tx = pool.begin().await.unwrap();
        let id = |i: usize| format!("c{}", b * BATCH + i);
        let sql = values(
            "INSERT INTO channels (id, owner_id, slug, title, description, tags, category, \
             created_at, updated_at)",
            chunk.len(),
            9,
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (i, c) in chunk.iter().enumerate() {
            q = q
                .bind(id(i))
                .bind("bench")
                .bind(id(i))
                .bind(&c.title)
                .bind(&c.body)
                .bind(serde_json::to_string(&c.tags).unwrap())
                .bind(&c.category)
                .bind(0i64)
                .bind(0i64);
        }
        q.execute(&mut *tx).await.unwrap();
        if sqlite {
            let sql = values(
                "INSERT INTO search_fts (rowid, title, body, tags, category)",
                chunk.len(),
                5,
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (i, c) in chunk.iter().enumerate() {
                q = q
                    .bind((b * BATCH + i + 1) as i64)
                    .bind(&c.title)
                    .bind(&c.body)
                    .bind(c.tags.join(" "))
                    .bind(&c.category);
            }
            q.execute(&mut *tx).await.unwrap();
        }
        let sql = values(
            "INSERT INTO search_docs (kind, id, channel_id, title, body, tags, category, \
             fts_rowid, updated_at)",
            chunk.len(),
            9,
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (i, c) in chunk.iter().enumerate() {
            q = q
                .bind("channel")
                .bind(id(i))
                .bind(id(i))
                .bind(&c.title)
                .bind(&c.body)
                .bind(c.tags.join(" "))
                .bind(&c.category)
                .bind(sqlite.then_some((b * BATCH + i + 1) as i64))
                .bind(0i64);
        }
        q.execute(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
    }
    if !sqlite {
        sqlx::query("ANALYZE").execute(pool).await.unwrap();
    }
}

fn percentiles(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    (at(0.50), at(0.95), at(0.99))
}

fn bench(c: &mut Criterion) {
    let n: usize = std::env::var("CASCADE_SEARCH_CHANNELS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let words = vocabulary();
    let data = channels(n, &words);
    // A word of about one channel in 2,000 (each word is drawn ~850 times over 100,000
    // channels' 17 words, one in ten of them into a title).
    let rare = words[777].clone();
    let prefix: String = words[1234].chars().take(3).collect();
    let two = format!("music {}", words[5]);
    let queries = [
        ("one_in_20", "music".to_owned()),
        ("rare_word", rare),
        ("prefix_3", prefix),
        ("two_words", two),
    ];
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let name = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        let Some(cp) = rt
            .block_on(common::open(backend, "search", Config::default()))
            .map(|(cp, _)| cp)
        else {
            eprintln!("SKIPPED (PostgreSQL): CASCADE_TEST_POSTGRES is not set");
            continue;
        };
        let t = Instant::now();
        rt.block_on(seed(&cp, &data));
        eprintln!(
            "{name}: {n} channels seeded in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let mut group = c.benchmark_group(format!("search_{n}/{name}"));
        group.sample_size(30);
        for (label, q) in &queries {
            let hits = rt.block_on(search::find(&cp, q, None, 20)).unwrap().len();
            let times: Vec<Duration> = (0..200)
                .map(|_| {
                    let t = Instant::now();
                    rt.block_on(search::find(&cp, q, None, 20)).unwrap();
                    t.elapsed()
                })
                .collect();
            let (p50, p95, p99) = percentiles(times);
            eprintln!(
                "{name} {label} ({q:?}, {hits} hits shown): p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms",
                p50.as_secs_f64() * 1e3,
                p95.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            );
            group.bench_function(*label, |b| {
                b.iter(|| rt.block_on(search::find(&cp, q, None, 20)).unwrap())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
