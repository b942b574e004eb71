-- Backups that succeeded: `cascade backup` (SQLite or pg_dump) and the backups `serve
-- --backup-dir` schedules. Every process on the database exports the newest as
-- cascade_backup_last_success_timestamp_seconds. A row is written after its backup is
-- complete, so a backup never holds its own row; the newest 100 are kept.
CREATE TABLE backups (
    -- When the backup started, ms: the copy holds everything committed before it.
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    -- The file written (as the process that wrote it named it).
    file TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    -- 'sqlite' or 'pg_dump'.
    kind TEXT NOT NULL
);
CREATE INDEX backups_started ON backups (started_at);
