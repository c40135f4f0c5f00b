-- 003_placement.sql - where each attempt of a task was sent (the worker's own
-- queue, or NULL for the shared ekman.worker queue), so that load can be
-- counted per worker and the tasks of a lost worker sent elsewhere.
ALTER TABLE tasks ADD COLUMN dispatched_to text;
CREATE INDEX tasks_active_host ON tasks (host) WHERE status IN ('STARTING', 'RUNNING', 'CANCELLING');
CREATE INDEX tasks_pending_target ON tasks (dispatched_to) WHERE status = 'PENDING';
-- A task no worker can run yet is looked at again after this time.
ALTER TABLE tasks ADD COLUMN dispatch_not_before timestamptz;
