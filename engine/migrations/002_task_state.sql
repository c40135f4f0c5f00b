-- 002_task_state.sql - what a task saved to resume from (acknowledged ranges of
-- a disk copy, ...): kept across attempts, sent with every dispatch.
ALTER TABLE tasks ADD COLUMN state jsonb;
